"""The PyTorch adapter under every transform and serialisation route (issue 12).

Each route runs on every entry point: the functional, the module, a converted model,
``LRNFunction.apply`` and the raw ``torch.ops.lrn_core`` ops; values are compared in float64 with
native ``F.local_response_norm`` and with central finite differences. PyTorch's own checkers
(gradcheck in fast and slow mode, gradgradcheck, forward-AD and batched checks, opcheck) run on
the three ops, and planted errors in the backward and in the JVP must be caught.
"""

import warnings
from functools import partial

import numpy as np
import pytest
from reference import lrn_ref

torch = pytest.importorskip("torch")

import torch.autograd.forward_ad as fwAD  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.func import functional_call, grad, hessian, jacfwd, jacrev, jvp, vjp, vmap  # noqa: E402

import lrn_core  # noqa: E402
import lrn_core.adapters.torch as lt  # noqa: E402
from lrn_core.adapters.torch import (  # noqa: E402
    LocalResponseNorm,
    LRNFunction,
    convert_local_response_norm,
    local_response_norm,
)

P = {"alpha": 0.9, "beta": 0.75, "k": 1.2}  # large alpha: the cross-channel terms matter


def routes(size):
    """name -> f(x) computing LRN with torch's window, one per entry point."""
    model = convert_local_response_norm(torch.nn.Sequential(torch.nn.LocalResponseNorm(size, **P)))
    return {
        "functional": lambda x: local_response_norm(x, size, **P),
        "module": LocalResponseNorm(size, **P),
        "converted": model,
        "LRNFunction": lambda x: LRNFunction.apply(x, size, P["alpha"], P["beta"], P["k"]),
        "op": lambda x: torch.ops.lrn_core.lrn_forward(
            x, size, P["alpha"], P["beta"], P["k"], size // 2
        ),
    }


def native(size):
    return lambda x: F.local_response_norm(x, size, **P)


ROUTES = ["functional", "module", "converted", "LRNFunction", "op"]
SIZES = [3, 4]  # odd and even (the windows differ from their transposes)


@pytest.fixture
def x():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 6, 3, 2, dtype=torch.float64, generator=g) * 1.5


def close(a, b, tol=1e-10):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def central_jvp(f, x, v, eps=1e-6):
    return (f(x + eps * v) - f(x - eps * v)) / (2 * eps)


# --- forward mode ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("route", ROUTES)
def test_jvp_matches_native_and_finite_differences(x, route, size):
    f, ref = routes(size)[route], native(size)
    v = torch.randn_like(x)
    y, t = jvp(f, (x,), (v,))
    yn, tn = jvp(ref, (x,), (v,))
    close(y, yn)
    close(t, tn)
    assert t.abs().max() > 1e-3  # not the silent zero of issue 12
    close(t, central_jvp(f, x, v), tol=1e-7)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("route", ROUTES)
def test_jacfwd_equals_jacrev_and_native(x, route, size):
    f = routes(size)[route]
    x = x[:1, :, :1]
    jf = jacfwd(f)(x)
    close(jf, jacrev(f)(x))
    close(jf, jacrev(native(size))(x))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("requires_grad", [False, True])
def test_forward_ad_dual_tensors(x, route, size, requires_grad):
    f = routes(size)[route]
    v = torch.randn_like(x)
    with fwAD.dual_level():
        out = fwAD.unpack_dual(f(fwAD.make_dual(x.clone().requires_grad_(requires_grad), v)))
        ref = fwAD.unpack_dual(native(size)(fwAD.make_dual(x.clone(), v)))
    assert out.tangent is not None  # issue 12: it was silently None
    close(out.primal, ref.primal)
    close(out.tangent, ref.tangent)
    if requires_grad:  # forward and reverse at once
        out.primal.sum().backward()


# --- reverse mode and second order under torch.func --------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("route", ROUTES)
def test_grad_vjp_jacrev(x, route, size):
    f, ref = routes(size)[route], native(size)
    w = torch.randn_like(x)
    loss = lambda g: lambda t: (g(t) * w).sin().sum()  # noqa: E731
    close(grad(loss(f))(x), grad(loss(ref))(x))
    y, pull = vjp(f, x)
    yn, pulln = vjp(ref, x)
    close(y, yn)
    close(pull(w)[0], pulln(w)[0])
    close(jacrev(f)(x[:1, :, :1]), jacrev(ref)(x[:1, :, :1]))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("route", ROUTES)
def test_hessian_and_forward_over_reverse(x, route, size):
    """hessian is jacfwd(jacrev): the JVP of the backward op; also reverse-over-reverse."""
    f, ref = routes(size)[route], native(size)
    x = x[:1, :, :1, :1]
    w = torch.randn_like(x)
    loss = lambda g: lambda t: (g(t) * w).pow(2).sum()  # noqa: E731
    h = hessian(loss(f))(x)
    close(h, hessian(loss(ref))(x))
    close(h, jacrev(jacrev(loss(f)))(x))
    close(h, jacfwd(jacfwd(loss(f)))(x))
    # finite differences of the gradient, column by column
    g = grad(loss(f))
    for i in range(x.numel()):
        e = torch.zeros_like(x).view(-1)
        e[i] = 1
        e = e.view_as(x)
        close(h.reshape(x.numel(), -1)[:, i].view_as(x), central_jvp(g, x, e), tol=1e-6)


@pytest.mark.parametrize("route", ["module", "converted"])
def test_per_sample_gradients_functional_call(x, route):
    """vmap(grad(functional_call(model, ...))): per-sample gradients (here wrt the input and a
    conv weight in front of the LRN), against native and a loop of single-sample grads."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 6, 1, dtype=torch.float64)

    def build(lrn_module):
        return torch.nn.Sequential(conv, lrn_module)

    ours = build(
        routes(4)[route]
        if route == "module"
        else convert_local_response_norm(torch.nn.LocalResponseNorm(4, **P))
    )
    nat = build(torch.nn.LocalResponseNorm(4, **P))
    params = {k: v.detach() for k, v in ours.named_parameters()}

    def loss(model):
        def f(p, sample):
            return functional_call(model, p, (sample[None],)).tanh().sum()

        return f

    per = vmap(grad(loss(ours)), in_dims=(None, 0))(params, x)
    pern = vmap(grad(loss(nat)), in_dims=(None, 0))(params, x)
    for name in params:
        close(per[name], pern[name])
        assert per[name].shape == (x.shape[0], *params[name].shape)
    single = grad(loss(ours))(params, x[1])
    close(per["0.weight"][1], single["0.weight"])


@pytest.mark.parametrize("route", ROUTES)
def test_vmap_of_grad_and_jacfwd(x, route):
    f, ref = routes(3)[route], native(3)
    loss = lambda g: lambda t: g(t[None]).cos().sum()  # noqa: E731
    close(vmap(grad(loss(f)))(x), vmap(grad(loss(ref)))(x))
    close(vmap(jacfwd(loss(f)))(x), vmap(jacfwd(loss(ref)))(x))


# --- vmap: a real batching rule ----------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("in_dims", [0, 1, 3])
def test_vmap_is_one_kernel_call_without_warning(monkeypatch, x, route, in_dims):
    calls = []
    real = lrn_core.lrn
    monkeypatch.setattr(lrn_core, "lrn", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    xs = torch.stack([x, 2 * x, -x], dim=in_dims)  # 3 samples of shape (2, 6, 3, 2)
    f = routes(4)[route]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = vmap(f, in_dims=in_dims)(xs)
    assert len(calls) == 1
    close(y, vmap(native(4), in_dims=in_dims)(xs))
    close(y[1], f(2 * x))
    # nested vmap: two vmapped dims, still one call
    calls.clear()
    y2 = vmap(vmap(f))(xs.movedim(in_dims, 0)[:, None].expand(3, 2, *x.shape))
    assert len(calls) == 1
    close(y2[:, 0], vmap(native(4))(xs.movedim(in_dims, 0)))


def test_vmap_over_backward_and_window_ops_with_unbatched_operands(x):
    ops = torch.ops.lrn_core
    dys = torch.randn(3, *x.shape, dtype=torch.float64)
    got = vmap(ops.lrn_backward, in_dims=(0, None, None, None, None, None, None))(
        dys, x, 4, 0.9, 0.75, 1.2, 2
    )
    for i in range(3):
        close(got[i], ops.lrn_backward(dys[i], x, 4, 0.9, 0.75, 1.2, 2))
    xs = torch.randn(3, *x.shape, dtype=torch.float64)
    got = vmap(ops.lrn_backward, in_dims=(None, 1, None, None, None, None, None))(
        x, xs.movedim(0, 1), 4, 0.9, 0.75, 1.2, 2
    )
    close(got[2], ops.lrn_backward(x, xs[2], 4, 0.9, 0.75, 1.2, 2))
    got = vmap(ops.window_sum, in_dims=(2, None, None))(xs.movedim(0, 2), 4, 1)
    close(got[1], ops.window_sum(xs[1], 4, 1))


def test_vmap_per_sample_without_channel_dim_raises():
    """A per-sample 1-D tensor has no channel dim 1: the op's own error, as unbatched."""
    with pytest.raises(ValueError, match="channel dimension 1"):
        vmap(lambda t: LRNFunction.apply(t, 3))(torch.randn(4, 6))
    with pytest.raises(ValueError, match="channel dimension 1"):
        LRNFunction.apply(torch.randn(6), 3)


# --- PyTorch's own checkers on the three ops ---------------------------------------------------

OPS = {
    "lrn_forward": (
        lambda x, dy: (x,),
        lambda t: partial(
            torch.ops.lrn_core.lrn_forward, size=4, alpha=0.9, beta=0.75, k=1.2, before=1
        ),
    ),
    "lrn_backward": (
        lambda x, dy: (dy, x),
        lambda t: partial(
            torch.ops.lrn_core.lrn_backward, size=4, alpha=0.9, beta=0.75, k=1.2, before=2
        ),
    ),
    "window_sum": (
        lambda x, dy: (x,),
        lambda t: partial(torch.ops.lrn_core.window_sum, size=4, before=1),
    ),
}


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("fast_mode", [True, False])
def test_gradcheck_all_modes_on_the_ops(x, name, fast_mode):
    args, make = OPS[name]
    inputs = tuple(
        t.clone().requires_grad_() for t in args(x[:, :, :2, :1], torch.randn_like(x[:, :, :2, :1]))
    )
    fn = make(None)
    assert torch.autograd.gradcheck(
        fn,
        inputs,
        fast_mode=fast_mode,
        check_forward_ad=True,
        check_backward_ad=True,
        check_batched_grad=True,
        check_batched_forward_grad=True,
        check_undefined_grad=True,
    )
    assert torch.autograd.gradgradcheck(
        fn,
        inputs,
        fast_mode=fast_mode,
        check_fwd_over_rev=True,
        check_rev_over_rev=True,
        check_batched_grad=True,
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_opcheck_every_test_util(x, dtype):
    from torch.library import opcheck
    from torch.testing._internal.optests.generate_tests import DEFAULT_TEST_UTILS

    x = x.to(dtype)
    dy = torch.randn_like(x)
    ops = torch.ops.lrn_core
    cases = [
        (ops.lrn_forward.default, (x.requires_grad_(), 4, 0.9, 0.75, 1.2, 2)),
        (ops.lrn_backward.default, (dy.requires_grad_(), x, 4, 0.9, 0.75, 1.2, 1)),
        (ops.window_sum.default, (x, 5, 1)),
    ]
    for op, args in cases:
        result = opcheck(op, args, test_utils=DEFAULT_TEST_UTILS)
        assert set(result) == set(DEFAULT_TEST_UTILS)
        assert all(v == "SUCCESS" for v in result.values()), result


# --- planted errors must be caught -------------------------------------------------------------


def _check_everything(fn, inputs):
    """What this suite runs; returns the list of checks that failed."""
    failed = []
    for label, check in [
        ("gradcheck fast", partial(torch.autograd.gradcheck, fast_mode=True)),
        ("gradcheck slow", partial(torch.autograd.gradcheck, fast_mode=False)),
        (
            "gradcheck forward AD",
            partial(
                torch.autograd.gradcheck,
                check_forward_ad=True,
                check_backward_ad=False,
                fast_mode=False,
            ),
        ),
        (
            "gradgradcheck",
            partial(torch.autograd.gradgradcheck, fast_mode=False, check_fwd_over_rev=True),
        ),
    ]:
        try:
            check(fn, inputs)
        except Exception:
            failed.append(label)
    return failed


def test_a_two_percent_error_in_the_backward_kernel_is_caught(monkeypatch, x):
    """2% on the cross-channel part of the backward kernel only: a small fraction of dx."""
    real = lrn_core.lrn_backward

    def planted(dy, x, *, size, alpha, beta, k, before, axis, out):
        # dx = dy s^-b - c x W'(...): the second term scaled by 1.02
        s = k + alpha / size * lrn_core.window_sum(x * x, size, axis=axis, before=before)
        diag = dy * s**-beta
        full = real(dy, x, size, alpha, beta, k, axis=axis, before=before)
        out[...] = diag + 1.02 * (full - diag)
        return out

    xs = x[:1, :, :1, :1].clone().requires_grad_()
    f = lambda t: local_response_norm(t, 4, **P)  # noqa: E731
    y = f(xs)
    assert torch.autograd.gradcheck(f, (xs,), fast_mode=False)
    monkeypatch.setattr(lrn_core, "lrn_backward", planted)
    (g,) = torch.autograd.grad(y, xs, torch.ones_like(y))
    (gn,) = torch.autograd.grad(native(4)(xs), xs, torch.ones_like(y))
    err = ((g - gn).abs().max() / gn.abs().max()).item()
    assert 1e-4 < err < 0.05  # the plant is small
    failed = _check_everything(f, (xs,))
    # fast-mode gradcheck (one random projection, rtol 1e-3 on it) misses this one as a rule;
    # the slow mode compares every entry of the Jacobian
    assert "gradcheck slow" in failed
    assert "gradgradcheck" in failed  # the double backward is checked against this backward


def test_a_two_percent_error_in_the_jvp_is_caught(monkeypatch, x):
    real = lrn_core.adapters.torch._composite._forward_jvp
    monkeypatch.setattr(
        lrn_core.adapters.torch._composite, "_forward_jvp", lambda *a: real(*a) * 1.02
    )
    xs = x[:1, :, :1, :1].clone().requires_grad_()
    f = lambda t: local_response_norm(t, 4, **P)  # noqa: E731
    failed = _check_everything(f, (xs,))
    assert "gradcheck forward AD" in failed
    assert "gradcheck slow" not in failed  # reverse mode is untouched
    v = torch.randn_like(xs)
    with fwAD.dual_level():
        t = fwAD.unpack_dual(f(fwAD.make_dual(xs.detach(), v))).tangent
        tn = fwAD.unpack_dual(native(4)(fwAD.make_dual(xs.detach(), v))).tangent
    with pytest.raises(AssertionError):
        close(t, tn)


# --- dtypes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_jvp_and_vmap_low_precision(x, dtype):
    xl = x.to(dtype)
    v = torch.randn_like(xl)
    y, t = jvp(lambda a: local_response_norm(a, 4, **P), (xl,), (v,))
    y64, t64 = jvp(native(4), (xl.double(),), (v.double(),))
    assert t.dtype == y.dtype == dtype
    tol = {torch.float32: 1e-5, torch.bfloat16: 3e-2, torch.float16: 3e-3}[dtype]
    torch.testing.assert_close(t.double(), t64, rtol=tol, atol=tol)
    ys = vmap(lambda a: local_response_norm(a, 4, **P))(xl)  # per sample (6, 3, 2): 3 channels
    np.testing.assert_allclose(
        ys.double().numpy(),
        lrn_ref(xl.double().numpy(), 4, before=2, axis=2, **P),
        rtol=tol,
        atol=tol,
    )


# --- TorchScript -------------------------------------------------------------------------------


def test_torchscript_module_and_functional(x, tmp_path):
    """Like native, the module and the functional script; the program calls lrn_core's op."""
    xf = x.float()
    m = torch.jit.script(LocalResponseNorm(4, **P))
    assert "lrn_core::lrn_forward" in str(m.inlined_graph)
    torch.testing.assert_close(m(xf), F.local_response_norm(xf, 4, **P))
    torch.testing.assert_close(m(x), local_response_norm(x, 4, **P), rtol=0, atol=0)
    f = torch.jit.script(local_response_norm)
    torch.testing.assert_close(f(x, 3, 0.5, 0.75, 1.0), local_response_norm(x, 3, 0.5))
    ints = torch.arange(54).reshape(1, 6, 3, 3)
    torch.testing.assert_close(f(ints, 3, 0.5, 0.75, 1.0), F.local_response_norm(ints, 3, 0.5))
    with pytest.raises(Exception, match="Expected 3D or higher dimensionality"):
        f(torch.randn(2, 3), 3, 1e-4, 0.75, 1.0)
    with pytest.raises(Exception, match="size must be an integer >= 1, got 0"):
        f(x, 0, 1e-4, 0.75, 1.0)
    xg = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(m(xg).sum(), xg)
    xn = x.clone().requires_grad_()
    (gn,) = torch.autograd.grad(F.local_response_norm(xn, 4, **P).sum(), xn)
    close(g, gn)
    torch.jit.save(m, tmp_path / "m.pt")
    torch.testing.assert_close(torch.jit.load(tmp_path / "m.pt")(x), m(x), rtol=0, atol=0)


# --- serialised programs in a fresh process ----------------------------------------------------


def _run(code, **env):
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _saved_model(tmp_path):
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), LocalResponseNorm(4, alpha=0.5)).eval()
    x = torch.randn(2, 3, 9, 9)
    torch.save((x, m(x)), tmp_path / "xy.pt")
    return m, x


def test_export_trace_script_load_after_import_torch_and_lrn_core(tmp_path):
    m, x = _saved_model(tmp_path)
    ep = torch.export.export(m, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, tmp_path / "m.pt2")
    torch.jit.save(torch.jit.trace(m, x), tmp_path / "t.pt")
    torch.jit.save(torch.jit.script(m), tmp_path / "s.pt")
    out = _run(f"""
import sys, torch, lrn_core
x, y = torch.load(r"{tmp_path}/xy.pt")
for f in ("t.pt", "s.pt"):
    print(torch.equal(torch.jit.load(r"{tmp_path}/" + f)(x), y))
m = torch.export.load(r"{tmp_path}/m.pt2").module()
print(torch.equal(m(x), y), m(torch.cat([x, x, x]))[4:].equal(y))
""")
    assert out.split() == ["True"] * 4


def test_import_lrn_core_registers_the_ops_only_if_torch_is_imported():
    out = _run("import sys, lrn_core; print('torch' in sys.modules, hasattr(lrn_core, 'adapters'))")
    assert out.split() == ["False", "False"]
    out = _run("import torch, lrn_core; print(torch.ops.lrn_core.lrn_forward.default)")
    assert out.strip() == "lrn_core.lrn_forward.default"


def test_aoti_fails_at_compile_time_or_runs_standalone_decomposed(tmp_path):
    """Without decomposition AOTInductor refuses at compile time (naming the way out); with
    lrn_core.adapters.torch.decompositions() the package runs in a process without lrn-core."""
    m, x = _saved_model(tmp_path)
    ep = torch.export.export(m, (x,))
    with pytest.raises(Exception, match=r"run_decompositions\(lrn_core.adapters.torch"):
        torch._inductor.aoti_compile_and_package(ep, package_path=str(tmp_path / "bad.pt2"))
    assert not (tmp_path / "bad.pt2").exists()
    ep = ep.run_decompositions(lt.decompositions())
    assert not any("lrn_core" in str(n.target) for n in ep.graph.nodes)
    path = torch._inductor.aoti_compile_and_package(ep, package_path=str(tmp_path / "m.pt2"))
    out = _run(f"""
import sys, torch
x, y = torch.load(r"{tmp_path}/xy.pt")
r = torch._inductor.aoti_load_package(r"{path}")(x)
torch.testing.assert_close(r, y, rtol=1e-5, atol=1e-6)
print("lrn_core" in sys.modules)
""")
    assert out.strip() == "False"


@pytest.mark.parametrize("size", [1, 3, 4, 6])
@pytest.mark.parametrize("before", [0, "torch", "last"])
def test_aten_decompositions_match_the_kernels(x, size, before):
    before = {"torch": size // 2, "last": size - 1}.get(before, before)
    p = (size, 0.9, 0.75, 1.2, before)
    dy = torch.randn_like(x)
    dec = lt.decompositions()
    ops = torch.ops.lrn_core
    close(dec[ops.lrn_forward.default](x, *p), ops.lrn_forward(x, *p))
    close(dec[ops.lrn_backward.default](dy, x, *p), ops.lrn_backward(dy, x, *p))
    close(dec[ops.window_sum.default](x, size, before), ops.window_sum(x, size, before))


# --- ONNX ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 4, 5])
@pytest.mark.parametrize("dynamo", [True, False])
def test_onnx_export_both_exporters_onnxruntime_matches(tmp_path, size, dynamo):
    """Odd sizes export as ONNX LRN, even ones as Pad/Slice/Add with torch's window; onnxruntime
    matches eager lrn-core, with a dynamic batch."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    if dynamo:
        pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    m = convert_local_response_norm(
        torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3), torch.nn.LocalResponseNorm(size, alpha=0.5, k=1.3)
        )
    ).eval()
    x = torch.randn(2, 3, 9, 9)
    f = tmp_path / "m.onnx"
    if dynamo:
        torch.onnx.export(
            m,
            (x,),
            f,
            dynamo=True,
            custom_translation_table=lt.onnx_translation_table(),
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    else:
        torch.onnx.export(
            m, (x,), f, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "batch"}}
        )
    kinds = {n.op_type for n in onnx.load(f).graph.node}
    assert ("LRN" in kinds) == (size % 2 == 1)
    sess = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for xx in (x, torch.randn(5, 3, 9, 9)):
        with torch.no_grad():
            want = m(xx).numpy()
        got = sess.run(None, {name: xx.numpy()})[0]
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)
        np.testing.assert_allclose(
            got,
            F.local_response_norm(m[0](xx), size, alpha=0.5, k=1.3).detach().numpy(),
            rtol=2e-6,
            atol=2e-6,
        )


# Export with default arguments (no table), other ranks and dtypes, the raw op that does need the
# table: tests/test_torch_onnx.py.


@pytest.mark.parametrize("route", ROUTES)
def test_compile_fullgraph_every_route(x, route):
    """Dynamo refuses autograd.Functions with a custom jvp: every route must still compile."""
    torch._dynamo.reset()
    f = routes(4)[route]
    xs = x.clone().requires_grad_()
    y = torch.compile(f, fullgraph=True, backend="aot_eager")(xs)
    (g,) = torch.autograd.grad(y.sin().sum(), xs)
    xn = x.clone().requires_grad_()
    yn = native(4)(xn)
    (gn,) = torch.autograd.grad(yn.sin().sum(), xn)
    close(y, yn)
    close(g, gn)


@pytest.mark.parametrize("route", ROUTES)
def test_autograd_functional_and_linearize(x, route):
    """torch.autograd.functional (reverse, forward-mode and vectorized strategies, which use
    dual tensors and the legacy vmap) and torch.func.linearize."""
    AF = torch.autograd.functional
    f, ref = routes(4)[route], native(4)
    x = x[:1, :, :2, :1]
    v = torch.randn_like(x)
    sq = lambda g: lambda t: (g(t) ** 2).sum()  # noqa: E731
    jn = AF.jacobian(ref, x)
    close(AF.jacobian(f, x, vectorize=True), jn)
    close(AF.jacobian(f, x, vectorize=True, strategy="forward-mode"), jn)
    close(
        AF.hessian(sq(f), x, vectorize=True, outer_jacobian_strategy="forward-mode"),
        AF.hessian(sq(ref), x),
    )
    close(AF.hvp(sq(f), x, v)[1], AF.hvp(sq(ref), x, v)[1])
    close(AF.jvp(f, x, v)[1], AF.jvp(ref, x, v)[1])
    close(torch.func.linearize(f, x)[1](v), jvp(ref, (x,), (v,))[1])


def test_every_private_torch_name_resolves():
    """The adapter's private torch names all sit in ``_compat``, and each resolves on this torch
    (CI runs this on the oldest supported and the newest torch); the other modules use none."""
    import pathlib

    from lrn_core.adapters.torch import _compat

    for name in _compat.__all__:
        assert callable(getattr(_compat, name)), name
    x = torch.randn(2, 3)
    assert _compat.python_dispatch(x) is False and _compat.is_fake(x) is False
    assert _compat.aot_compiling() is False and _compat.current_fwd_level() == -1
    assert _compat.functorch_transforms_active() is False
    assert _compat.TransformType.Jvp is not None and _compat.len_torch_dispatch_stack() == 0
    assert isinstance(_compat.is_torch_function_mode_enabled(), bool)
    from torch.onnx import symbolic_helper

    for helper in ("_get_const", "_get_tensor_rank"):  # looked up when a symbolic runs
        assert callable(getattr(symbolic_helper, helper)), helper
    for path in pathlib.Path(_compat.__file__).parent.glob("*.py"):
        if path.name != "_compat.py":
            text = path.read_text()
            assert "torch._" not in text and "._C." not in text, path.name
