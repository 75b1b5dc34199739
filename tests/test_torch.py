"""The PyTorch adapter against torch's own LRN and the float64 reference (tests/reference.py).

Forward and input gradient over shapes, sizes, betas, layouts and dtypes; autograd checks to the
second order; the custom ops (opcheck, torch.compile); the module as a drop-in in a small CNN.
"""

import copy
import doctest
import pickle
import re
from functools import partial

import numpy as np
import pytest
from conftest import TOL, assert_close
from reference import lrn_grad_ref, lrn_ref

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lrn_core  # noqa: E402
import lrn_core.adapters.torch as lt  # noqa: E402
from lrn_core.adapters.torch import (  # noqa: E402
    LocalResponseNorm,
    LRNFunction,
    convert_local_response_norm,
    local_response_norm,
)
from lrn_core.tolerances import NATIVE, REFERENCE  # noqa: E402

#: bfloat16 is computed in float32 and rounded once, like float16 in TOL
BF16_RTOL = REFERENCE["bfloat16"]
SIZES = [1, 2, 3, 4, 5, 6, 7, 11, 30]
BETAS = [0.75, 0.5, 1.0, 0.6, 2.0]
SHAPES = [(2, 7, 5, 3), (3, 8, 10), (2, 5, 3, 2, 3), (1, 1, 1, 1), (2, 20, 1, 1), (4, 3, 9)]
LAYOUTS = ["contiguous", "channels_last", "permuted", "sliced"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def layout(x, kind):
    """``x`` (same values) laid out as ``kind``: channels last, another dim order, or a slice."""
    if kind == "contiguous":
        return x.contiguous()
    if kind == "channels_last":  # the channel dim innermost, for any rank
        order = [0, *range(2, x.dim()), 1]
    elif kind == "permuted":  # an arbitrary dim order in memory
        order = list(reversed(range(x.dim())))
    elif kind == "sliced":  # not dense: every other element of a larger tensor along each dim
        big = torch.zeros([2 * n for n in x.shape], dtype=x.dtype)
        view = big[tuple(slice(None, None, 2) for _ in x.shape)]
        view.copy_(x)
        return view
    inverse = [order.index(d) for d in range(x.dim())]
    return x.permute(order).contiguous().permute(inverse)


def params(rng, beta=None):
    return {
        "alpha": float(rng.uniform(0.1, 3.0)),
        "k": float(rng.uniform(0.5, 2.0)),
        "beta": float(rng.choice(BETAS)) if beta is None else beta,
    }


def forward_and_grad(fn, x, dy):
    """fn(x) and the gradient of sum(dy * fn(x)) with respect to x."""
    x = x.detach().requires_grad_()
    y = fn(x)
    (dx,) = torch.autograd.grad(y, x, dy)
    return y.detach(), dx


def grad_scale(dy, x, ref):
    """dx is a difference of two terms: its error is relative to the terms, not to dx."""
    return np.abs(dy).max() * max(np.abs(x).max(), 1.0) + np.abs(ref).max()


def np64(t):
    return t.detach().double().numpy()


# --- forward and input gradient against native torch and the reference ------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", LAYOUTS)
def test_float64_matches_native_and_reference(rng, shape, kind):
    for i, size in enumerate(SIZES):
        for beta in (BETAS[i % len(BETAS)], BETAS[(i + 2) % len(BETAS)]):
            p = params(rng, beta)
            x = layout(torch.from_numpy(rng.standard_normal(shape)), kind)
            dy = torch.from_numpy(rng.standard_normal(shape))
            y, dx = forward_and_grad(partial(local_response_norm, size=size, **p), x, dy)
            # native gets the contiguous copy: it fails on some layouts (a view() in its code)
            yn, dxn = forward_and_grad(
                partial(F.local_response_norm, size=size, **p), x.contiguous(), dy
            )
            assert y.stride() == x.stride() or kind == "sliced"
            assert y.dtype == torch.float64 and y.shape == x.shape
            assert_close(y, yn.numpy())
            assert_close(y, lrn_ref(x.numpy(), size, **p))
            ref = lrn_grad_ref(dy.numpy(), x.numpy(), size, **p)
            scale = grad_scale(dy.numpy(), x.numpy(), ref)
            assert_close(dx, dxn.numpy(), scale=scale)
            assert_close(dx, ref, scale=scale)


@pytest.mark.parametrize("kind", LAYOUTS)
def test_float32_matches_reference_and_native(rng, kind):
    for shape in SHAPES:
        for size in SIZES:
            p = params(rng)
            x = layout(torch.from_numpy(rng.standard_normal(shape, dtype=np.float32) * 3), kind)
            dy = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
            y, dx = forward_and_grad(partial(local_response_norm, size=size, **p), x, dy)
            yn, dxn = forward_and_grad(
                partial(F.local_response_norm, size=size, **p), x.contiguous(), dy
            )
            assert y.dtype == dx.dtype == torch.float32
            assert_close(y, lrn_ref(x.numpy(), size, **p))
            ref = lrn_grad_ref(dy.numpy(), x.numpy(), size, **p)
            scale = grad_scale(dy.numpy(), x.numpy(), ref)
            assert_close(dx, ref, scale=scale)
            # native float32 accumulates in float32: a few ulps more
            rtol = NATIVE["float32"]
            np.testing.assert_allclose(y, yn, rtol=rtol, atol=1e-6)
            np.testing.assert_allclose(dx, dxn, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", ["contiguous", "channels_last"])
def test_half_dtypes_are_float32_rounded_once(rng, dtype, kind):
    """float16 and bfloat16 (native torch has neither on the CPU): float32 math, one rounding."""
    rtol = TOL[np.dtype(np.float16)][0] if dtype == torch.float16 else BF16_RTOL
    for shape in SHAPES[:4]:
        for size in (1, 2, 5, 6):
            p = params(rng)
            x = layout(torch.from_numpy(rng.standard_normal(shape) * 4).to(dtype), kind)
            dy = torch.from_numpy(rng.standard_normal(shape)).to(dtype)
            y, dx = forward_and_grad(partial(local_response_norm, size=size, **p), x, dy)
            assert y.dtype == dx.dtype == dtype
            assert y.stride() == x.stride()
            # exactly the float32 result, rounded
            y32, dx32 = forward_and_grad(
                partial(local_response_norm, size=size, **p), x.float(), dy.float()
            )
            assert torch.equal(y, y32.to(dtype)) and torch.equal(dx, dx32.to(dtype))
            ref = lrn_ref(np64(x), size, **p)
            np.testing.assert_allclose(np64(y), ref, rtol=rtol, atol=1e-7)
            gref = lrn_grad_ref(np64(dy), np64(x), size, **p)
            scale = grad_scale(np64(dy), np64(x), gref)
            np.testing.assert_allclose(np64(dx), gref, rtol=rtol, atol=rtol * scale)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=3, max_size=5),
    size=st.integers(1, 12),
    alpha=st.floats(1e-4, 10.0),
    beta=st.floats(0.0, 3.0),
    k=st.floats(0.1, 3.0),
    channels_last=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_matches_native_float64(shape, size, alpha, beta, k, channels_last, seed):
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.standard_normal(shape) * 2)
    if channels_last:
        x = layout(x, "channels_last")
    dy = torch.from_numpy(rng.standard_normal(shape))
    p = {"alpha": alpha, "beta": beta, "k": k}
    y, dx = forward_and_grad(partial(local_response_norm, size=size, **p), x, dy)
    yn, dxn = forward_and_grad(partial(F.local_response_norm, size=size, **p), x, dy)
    assert_close(y, yn.numpy())
    assert_close(dx, dxn.numpy(), scale=grad_scale(dy.numpy(), x.numpy(), dxn.numpy()))


def test_non_finite_inputs_like_native():
    """inf/nan spread only to the outputs whose window holds them, as in native torch."""
    x = torch.randn(2, 12, 3, dtype=torch.float64)
    x[0, 3, 1] = float("inf")
    x[1, 8, 0] = float("nan")
    x[1, 2, 2] = -float("inf")
    for size in (1, 2, 3, 4, 5):
        y = local_response_norm(x, size, 1.0)
        yn = F.local_response_norm(x, size, 1.0)
        np.testing.assert_array_equal(torch.isnan(y), torch.isnan(yn))
        assert_close(y, yn.numpy())


def test_defaults_are_natives(rng):
    x = torch.from_numpy(rng.standard_normal((2, 9, 4, 4)) * 30)
    assert_close(local_response_norm(x, 3), F.local_response_norm(x, 3).numpy())
    assert_close(LocalResponseNorm(4)(x), torch.nn.LocalResponseNorm(4)(x).numpy())


# --- layouts, memory, hand-off to the core ------------------------------------------------------


def _spy(monkeypatch, name):
    """Record the arrays lrn_core.<name> receives from the adapter."""
    calls = []
    real = getattr(lrn_core, name)

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(lrn_core, name, spy)
    return calls


def _ptr(a):
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_zero_copy_hand_off_and_layout_kept(monkeypatch, fmt):
    fwd, bwd = _spy(monkeypatch, "lrn"), _spy(monkeypatch, "lrn_backward")
    x = torch.randn(2, 8, 5, 6).to(memory_format=fmt).requires_grad_()
    y = local_response_norm(x, 5, 0.5)
    (xa,), kw = fwd[0]
    assert _ptr(xa) == x.data_ptr() and xa.strides == tuple(4 * s for s in x.stride())
    assert _ptr(kw["out"]) == y.data_ptr() and kw["axis"] == 1
    assert y.is_contiguous(memory_format=fmt) and y.stride() == x.stride()
    dy = torch.randn_like(y)
    y.backward(dy)
    (dya, xa), kw = bwd[0]
    assert _ptr(dya) == dy.data_ptr() and _ptr(xa) == x.data_ptr()
    assert _ptr(kw["out"]) == x.grad.data_ptr()
    assert x.grad.is_contiguous(memory_format=fmt)


def test_expanded_upstream_gradient_is_not_copied(monkeypatch):
    """y.sum().backward() sends a stride-0 gradient: it is read in place."""
    bwd = _spy(monkeypatch, "lrn_backward")
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    local_response_norm(x, 4, 0.5).sum().backward()
    (dya, _), _ = bwd[0]
    assert dya.strides == (0, 0, 0, 0)
    ref = lrn_grad_ref(np.ones(x.shape), x.detach().numpy(), 4, 0.5)
    assert_close(x.grad, ref, scale=grad_scale(1.0, x.detach().numpy(), ref))


def _saved(fn, x):
    """The tensors autograd keeps between forward and backward of fn(x)."""
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return saved


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_autograd_keeps_only_the_input(dtype):
    x = torch.randn(4, 16, 8, 8, dtype=dtype).requires_grad_()
    ours = _saved(lambda t: local_response_norm(t, 5), x)
    assert len(ours) == 1 and ours[0] is x  # by reference, in its own dtype: no new memory
    assert len(_saved(lambda t: LRNFunction.apply(t, 5), x)) == 1
    if dtype == torch.float32:
        native = _saved(lambda t: F.local_response_norm(t, 5), x)
        assert sum(t.numel() for t in native) >= 2 * x.numel()


def test_batch_size_zero_and_no_channels():
    for shape in [(0, 5, 3, 3), (0, 4, 7), (3, 0, 2, 2), (0, 3, 2, 2, 2)]:
        for fmt in ("contiguous", "channels_last"):
            x = layout(torch.randn(shape), fmt).requires_grad_()
            y = local_response_norm(x, 3)
            assert y.shape == F.local_response_norm(x, 3).shape == x.shape
            y.sum().backward()
            assert x.grad.shape == x.shape


def test_no_grad_and_inference_mode():
    x = torch.randn(2, 8, 3, 3, requires_grad=True)
    expected = F.local_response_norm(x, 3).detach()
    with torch.no_grad():
        y = local_response_norm(x, 3)
    assert y.grad_fn is None and not y.requires_grad
    torch.testing.assert_close(y, expected)
    with torch.inference_mode():
        y = LocalResponseNorm(3)(x.detach().clone())
    torch.testing.assert_close(y, expected)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (5,), (3, 4)])
def test_rank_error_is_natives(shape):
    x = torch.randn(shape)
    with pytest.raises(ValueError) as native:
        F.local_response_norm(x, 3)
    with pytest.raises(ValueError) as ours:
        local_response_norm(x, 3)
    assert str(ours.value) == str(native.value)
    with pytest.raises(ValueError):
        LocalResponseNorm(3)(x)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"size": 0}, ValueError, "size must be an integer >= 1, got 0"),
        ({"size": 2.5}, TypeError, "size must be an integer"),
        ({"size": True}, TypeError, "size must be an integer"),
        ({"size": 3, "alpha": float("nan")}, ValueError, "alpha must be finite"),
        ({"size": 3, "beta": "x"}, TypeError, "beta must be a real number"),
        ({"size": 3, "k": None}, TypeError, "k must be a real number"),
    ],
)
def test_bad_parameters(kwargs, exc, match):
    x = torch.randn(2, 4, 3)
    with pytest.raises(exc, match=match):
        local_response_norm(x, **kwargs)
    with pytest.raises(exc, match=match):
        LocalResponseNorm(**kwargs)(x)


def test_bad_before_and_dtype():
    with pytest.raises(ValueError, match=r"before must be an integer in \[0, 3\], got 4"):
        LRNFunction.apply(torch.randn(2, 4, 3), 4, 1e-4, 0.75, 1.0, 4)
    for dtype in (torch.int64, torch.complex64, torch.bool):  # the ops refuse them
        with pytest.raises(TypeError, match="float32, float64, float16 or bfloat16"):
            LRNFunction.apply(torch.ones(2, 3, 4, dtype=dtype), 3)
        with pytest.raises(TypeError, match="float32, float64, float16 or bfloat16"):
            torch.ops.lrn_core.lrn_forward(torch.ones(2, 3, 4, dtype=dtype), 3, 1e-4, 0.75, 1.0, 1)
    with pytest.raises(ValueError, match="channel dimension 1"):
        LRNFunction.apply(torch.randn(5), 3)


@pytest.mark.parametrize(
    "dtype",
    [torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8, torch.bool, torch.complex64],
)
def test_integer_bool_complex_inputs_as_native(dtype):
    """As native: int64 gives float32 (native averages the squares in int64, truncating), the
    others raise native's NotImplementedError; the functional and the module agree."""
    x = (torch.arange(2 * 6 * 3 * 3) % 7 - 3).reshape(2, 6, 3, 3).to(dtype)
    for ours in (partial(local_response_norm, size=3, alpha=0.1), LocalResponseNorm(3, alpha=0.1)):
        try:
            want = F.local_response_norm(x, 3, alpha=0.1)
        except Exception as exc:
            with pytest.raises(type(exc), match=re.escape(str(exc)[:40])):
                ours(x)
            assert dtype != torch.int64
            continue
        got = ours(x)
        assert got.dtype == want.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_other_devices_fall_back_to_native_or_raise(monkeypatch):
    """Never a host copy: the public function hands non-CPU tensors to the native op; the
    autograd.Function and the custom ops refuse them (a fake CUDA tensor stands in for one)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    native = []
    real = F.local_response_norm
    monkeypatch.setattr(F, "local_response_norm", lambda *a, **kw: native.append(a) or real(*a))
    with FakeTensorMode():
        x = torch.empty(2, 6, 3, 3, device="cuda")
        assert local_response_norm(x, 3).device == x.device
        assert LocalResponseNorm(3)(x).device == x.device
        assert len(native) == 2
        with pytest.raises(RuntimeError, match="CPU only, got a tensor on cuda"):
            LRNFunction.apply(x, 3)
        with pytest.raises(RuntimeError, match="CPU only, got a tensor on cuda"):
            torch.ops.lrn_core.lrn_backward(x, x, 3, 1e-4, 0.75, 1.0, 1)
    # meta tensors: shapes only, through native (public API) or the fake kernels (the ops)
    xm = torch.empty(2, 6, 3, 3, device="meta").to(memory_format=torch.channels_last)
    assert local_response_norm(xm, 3).is_meta
    ym = LRNFunction.apply(xm, 3)
    assert ym.is_meta and ym.stride() == xm.stride()


# --- the module --------------------------------------------------------------------------------


def test_module_is_a_drop_in():
    ours, native = (
        LocalResponseNorm(4, alpha=2e-4, beta=0.5, k=2.0),
        torch.nn.LocalResponseNorm(4, alpha=2e-4, beta=0.5, k=2.0),
    )
    assert isinstance(ours, torch.nn.LocalResponseNorm)
    assert repr(ours) == repr(native) == "LocalResponseNorm(4, alpha=0.0002, beta=0.5, k=2.0)"
    assert ours.extra_repr() == native.extra_repr()
    assert ours.state_dict() == native.state_dict() == {}
    ours.load_state_dict(native.state_dict())
    assert repr(LocalResponseNorm(3)) == repr(torch.nn.LocalResponseNorm(3))
    x = torch.randn(2, 7, 4, 4, dtype=torch.float64)
    assert_close(ours(x), native(x).numpy())
    for clone in (copy.deepcopy(ours), pickle.loads(pickle.dumps(ours))):
        assert type(clone) is LocalResponseNorm and repr(clone) == repr(ours)


def test_convert_swaps_every_native_module():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.LocalResponseNorm(5),
        torch.nn.Sequential(torch.nn.ReLU(), torch.nn.LocalResponseNorm(2, beta=0.5, k=2.0)),
    ).eval()
    ref = copy.deepcopy(net)
    assert convert_local_response_norm(net) is net
    assert type(net[1]) is LocalResponseNorm and type(net[2][1]) is LocalResponseNorm
    assert repr(net) == repr(ref) and not net[2][1].training
    assert net.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(net(x), ref(x), rtol=1e-5, atol=1e-6)
    assert type(convert_local_response_norm(torch.nn.LocalResponseNorm(3))) is LocalResponseNorm


def test_torch_function_override_is_honoured():
    """Like the native function, tensor subclasses with __torch_function__ see the call."""
    seen = []

    class Logged(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            seen.append(func)
            return super().__torch_function__(func, types, args, kwargs or {})

    local_response_norm(torch.randn(2, 4, 3).as_subclass(Logged), 3)
    assert seen[0] is local_response_norm


# --- autograd: gradcheck, gradgradcheck, double backward against native ------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8])
def test_gradcheck_and_gradgradcheck(size):
    x = torch.randn(2, 6, 3, 2, dtype=torch.float64)
    x = layout(x, "channels_last").requires_grad_()
    for fn in (
        lambda t: local_response_norm(t, size, 0.7, 0.75, 1.5),
        lambda t: local_response_norm(t, size, 2.0, 1.3, 0.5),
    ):
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("size,before", [(4, 0), (4, 1), (4, 3), (5, 0), (6, 2), (3, 2)])
def test_lrn_function_windows_gradcheck(rng, size, before):
    x = torch.from_numpy(rng.standard_normal((2, 7, 3))).requires_grad_()
    fn = lambda t: LRNFunction.apply(t, size, 0.9, 0.6, 1.2, before)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    p = {"alpha": 0.9, "beta": 0.6, "k": 1.2, "before": before}
    assert_close(fn(x).detach(), lrn_ref(x.detach().numpy(), size, **p))


def test_window_sum_op_and_its_adjoint_gradcheck():
    v = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    for size, before in [(1, 0), (4, 0), (4, 3), (4, 1), (5, 2), (9, 2)]:
        fn = partial(torch.ops.lrn_core.window_sum, size=size, before=before)
        assert torch.autograd.gradcheck(fn, (v,))
        assert torch.autograd.gradgradcheck(fn, (v,))
        expected = lrn_core.window_sum(v.detach().numpy(), size, axis=1, before=before)
        np.testing.assert_array_equal(fn(v).detach(), expected)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_create_graph_gradient_equals_fused(rng, dtype):
    """With create_graph=True the input gradient must equal the one without, and be differentiable
    again (the backward op's own autograd kernel). gradgradcheck alone cannot see a slip here, it
    only checks the second derivative against this first one."""
    # bfloat16: two results each within BF16_RTOL of the exact one
    rtol = {torch.float64: 1e-13, torch.float32: 1e-5, torch.bfloat16: 2 * BF16_RTOL}[dtype]
    for size, before in [(1, 0), (2, 0), (2, 1), (4, 0), (4, 1), (4, 2), (4, 3), (5, 2), (6, 5)]:
        x = torch.from_numpy(rng.standard_normal((2, 7, 3)) * 2).to(dtype).requires_grad_()
        dy = torch.from_numpy(rng.standard_normal(x.shape)).to(dtype)
        y = LRNFunction.apply(x, size, 1.3, 0.75, 0.8, before)
        (fused,) = torch.autograd.grad(y, x, dy, retain_graph=True)
        (composed,) = torch.autograd.grad(y, x, dy, create_graph=True)
        assert composed.requires_grad and not fused.requires_grad
        np.testing.assert_allclose(
            np64(composed), np64(fused), rtol=rtol, atol=rtol * np64(dy).__abs__().max()
        )


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_double_backward_matches_native(rng, size):
    """A gradient penalty, d/dx |d<w, lrn(x)>/dx|^2, against native torch's autograd."""
    x = torch.from_numpy(rng.standard_normal((2, 7, 3, 2)) * 2)
    w = torch.from_numpy(rng.standard_normal(x.shape))

    def penalty_grad(fn):
        t = x.clone().requires_grad_()
        (g,) = torch.autograd.grad((fn(t) * w).sum(), t, create_graph=True)
        (gg,) = torch.autograd.grad((g * g).sum(), t)
        return g.detach(), gg

    g, gg = penalty_grad(lambda t: local_response_norm(t, size, 1.5, 0.75, 1.0))
    gn, ggn = penalty_grad(lambda t: F.local_response_norm(t, size, 1.5, 0.75, 1.0))
    assert_close(g, gn.numpy(), scale=gn.numpy())
    assert_close(gg, ggn.numpy(), scale=ggn.numpy() * 1e2)


def test_double_backward_half_dtype():
    x = torch.randn(2, 6, 3, dtype=torch.bfloat16, requires_grad=True)
    (g,) = torch.autograd.grad(local_response_norm(x, 3, 2.0).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x)
    assert g.dtype == gg.dtype == torch.bfloat16
    x64 = x.detach().double().requires_grad_()
    (g64,) = torch.autograd.grad(local_response_norm(x64, 3, 2.0).sum(), x64, create_graph=True)
    (gg64,) = torch.autograd.grad(g64.sum(), x64)
    torch.testing.assert_close(gg.double(), gg64, rtol=0.05, atol=0.05)


# --- the custom ops and torch.compile ----------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_opcheck(dtype, fmt):
    x = torch.randn(2, 6, 3, 4, dtype=dtype).to(memory_format=fmt)
    dy = torch.randn(2, 6, 3, 4, dtype=dtype)
    ops = torch.ops.lrn_core
    xg = x.detach().requires_grad_()
    torch.library.opcheck(ops.lrn_forward.default, (xg, 4, 0.5, 0.75, 1.0, 2))
    torch.library.opcheck(ops.window_sum.default, (xg, 4, 1))
    # the backward op is called with grad mode off only; double backward composes window_sum
    torch.library.opcheck(ops.lrn_backward.default, (dy, x, 4, 0.5, 0.75, 1.0, 2))


def _capturing_backend(graphs):
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func

    def capture(name):
        def compiler(gm, example_inputs):
            graphs[name] = gm
            return make_boxed_func(gm.forward)

        return compiler

    return aot_autograd(fw_compiler=capture("forward"), bw_compiler=capture("backward"))


def _calls(gm):
    return [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]


def test_compile_sees_one_op_each_way_and_saves_only_the_input():
    graphs = {}
    m = torch.compile(LocalResponseNorm(4, 0.5), backend=_capturing_backend(graphs), fullgraph=True)
    x = torch.randn(2, 6, 3, 3).to(memory_format=torch.channels_last).requires_grad_()
    y = m(x)
    y.backward(torch.ones_like(y))
    assert _calls(graphs["forward"]) == ["lrn_core.lrn_forward.default"]
    assert _calls(graphs["backward"]) == ["lrn_core.lrn_backward.default"]
    saved = [
        n
        for n in graphs["backward"].graph.nodes
        if n.op == "placeholder" and not n.name.startswith("tangents")
    ]
    assert len(saved) == 1  # x
    xe = x.detach().requires_grad_()
    LocalResponseNorm(4, 0.5)(xe).backward(torch.ones_like(y))
    torch.testing.assert_close(y, LocalResponseNorm(4, 0.5)(x))
    torch.testing.assert_close(x.grad, xe.grad)


def test_compile_inductor_fullgraph_small_cnn():
    """The default backend, no graph break, float32 channels_last, dynamic batch."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), LocalResponseNorm(4))
    net = net.to(memory_format=torch.channels_last)
    compiled = torch.compile(net, fullgraph=True, dynamic=True)
    for n in (2, 3):
        x = torch.randn(n, 3, 8, 8).to(memory_format=torch.channels_last)
        y = compiled(x)
        y.square().sum().backward()
        grads = [p.grad.clone() for p in net.parameters()]
        net.zero_grad()
        yn = net(x)
        yn.square().sum().backward()
        torch.testing.assert_close(y, yn, rtol=1e-5, atol=1e-6)
        for g, p in zip(grads, net.parameters(), strict=True):
            torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-5)
        net.zero_grad()


def test_export_keeps_the_op():
    net = convert_local_response_norm(
        torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.LocalResponseNorm(4))
    )
    x = torch.randn(2, 3, 7, 7)
    ep = torch.export.export(net, (x,))
    assert "lrn_core.lrn_forward.default" in _calls(ep.graph_module)
    torch.testing.assert_close(ep.module()(x), net(x))


# --- training: the same losses as with the native module ---------------------------------------


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=1.0),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 12, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.LocalResponseNorm(4, alpha=1e-1, beta=0.5, k=2.0),
        )
        self.head = torch.nn.Linear(12 * 4 * 4, 5)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def _train(model, x, target, steps=6):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize(
    "dtype,fmt,rtol",
    [
        (torch.float64, torch.contiguous_format, 1e-10),
        (torch.float32, torch.channels_last, 1e-4),
    ],
)
def test_sgd_small_cnn_same_losses_as_native(dtype, fmt, rtol):
    native = SmallCNN().to(dtype=dtype, memory_format=fmt)
    ours = convert_local_response_norm(copy.deepcopy(native))
    assert sum(type(m) is LocalResponseNorm for m in ours.modules()) == 2
    x = torch.randn(16, 3, 8, 8, dtype=dtype).to(memory_format=fmt) * 3
    target = torch.randint(0, 5, (16,))
    ln, lo = _train(native, x, target), _train(ours, x, target)
    np.testing.assert_allclose(lo, ln, rtol=rtol)
    assert ln[-1] < ln[0]
    for p, q in zip(native.parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=rtol * 10, atol=rtol)


def test_docstring_examples():
    result = doctest.testmod(lt, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0
