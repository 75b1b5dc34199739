"""``torch.onnx.export`` with its default arguments on models using lrn-core (issue 23, item 3).

A drop-in must export wherever the native ``torch.nn.LocalResponseNorm`` does, with the same call:
no ``custom_translation_table``, under the dynamo exporter (the default from torch 2.9) and the
TorchScript one (``dynamo=False``). Each file is run in onnxruntime and compared with the float64
reference and with native ``F.local_response_norm``; odd sizes must become ONNX ``LRN`` (whose
centred window is torch's), even sizes the exact window sum (ONNX's even window is not torch's).
"""

import warnings

import numpy as np
import pytest
from reference import lrn_ref

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import torch.nn.functional as F  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import lrn_core.adapters.torch as lt  # noqa: E402
from lrn_core.tolerances import FLOOR, NATIVE, REFERENCE  # noqa: E402

P = {"alpha": 0.5, "beta": 0.75, "k": 1.3}  # large alpha: the cross-channel terms matter

# The dynamo exporter needs onnxscript; it leaves the functional and the module to lrn-core's own
# ONNX operators from torch 2.8 on (torch.onnx.ops; is_in_onnx_export() set under dynamo=True).
HAS_ONNXSCRIPT = __import__("importlib").util.find_spec("onnxscript") is not None
HAS_ONNX_OPS = hasattr(getattr(torch.onnx, "ops", None), "symbolic")


def _exporter_kwargs(exporter):
    """The extra arguments of each exporter: none at all for "default"."""
    if exporter == "default":
        # torch >= 2.9 defaults to dynamo=True, older torch to the TorchScript exporter
        if torch.onnx.export.__kwdefaults__.get("dynamo", False):
            _need_dynamo()
        return {}
    if exporter == "dynamo":
        _need_dynamo()
        return {"dynamo": True}
    return {"dynamo": False}


def _need_dynamo():
    if not HAS_ONNXSCRIPT:
        pytest.skip("the dynamo ONNX exporter needs onnxscript")
    if not HAS_ONNX_OPS:
        pytest.skip("torch < 2.8: dynamo=True needs custom_translation_table (see test below)")


def _export(model, x, path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation warning
        torch.onnx.export(model, (x,), str(path), **kwargs)
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


class _Functional(torch.nn.Module):
    def __init__(self, size, **p):
        super().__init__()
        self.size, self.p = size, p

    def forward(self, x):
        return lt.local_response_norm(x, self.size, **self.p)


class _Function(_Functional):
    def forward(self, x):
        return lt.LRNFunction.apply(x, self.size, self.p["alpha"], self.p["beta"], self.p["k"])


def _model(route, size, **p):
    if route == "converted":
        net = torch.nn.Sequential(torch.nn.Identity(), torch.nn.LocalResponseNorm(size, **p))
        net = lt.convert_local_response_norm(net)
        assert type(net[1]) is lt.LocalResponseNorm
        return net.eval()
    return {"functional": _Functional, "LRNFunction": _Function}[route](size, **p)


def _check_native(got, x, size, **p):
    """onnxruntime's result against the float64 reference and native torch: the graph is not
    lrn-core's kernel but ONNX LRN or a float32 window sum, as exact as the native op is."""
    name = str(x.dtype).removeprefix("torch.")
    assert got.dtype == x.numpy().dtype
    rtol = NATIVE[name]
    want = lrn_ref(x.double().numpy(), size, **p)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=FLOOR[name])
    native = F.local_response_norm(x, size, **p).numpy()
    np.testing.assert_allclose(got, native, rtol=2 * rtol, atol=FLOOR[name])


@pytest.mark.parametrize("size", [1, 2, 4, 5])
@pytest.mark.parametrize("route", ["functional", "converted", "LRNFunction"])
@pytest.mark.parametrize("exporter", ["default", "dynamo", "torchscript"])
def test_export_with_default_arguments_matches_native(tmp_path, exporter, route, size):
    """``torch.onnx.export(model, (x,), path)``: nothing else, as for the native module."""
    kwargs = _exporter_kwargs(exporter)
    torch.manual_seed(0)
    x = torch.randn(2, 7, 5, 4) * 2
    f = tmp_path / "m.onnx"
    kinds = _export(_model(route, size, **P), x, f, **kwargs)
    assert ("LRN" in kinds) == (size % 2 == 1), kinds
    assert not any("lrn_core" in n.domain for n in onnx.load(str(f)).graph.node)
    _check_native(_run(f, x), x, size, **P)


@pytest.mark.parametrize(
    "shape, dtype, size, p",
    [
        ((2, 7, 6), torch.float32, 5, P),  # 3-D: onnxruntime's LRN takes 4-D only
        ((2, 7, 3, 2, 3), torch.float32, 4, P),  # 5-D
        ((2, 7, 3, 3), torch.float64, 5, P),  # no float64 LRN in onnxruntime
        ((2, 7, 3, 3), torch.float64, 4, P),
        ((2, 7, 3, 3), torch.float32, 3, {"alpha": 1, "beta": 1, "k": 2}),  # int parameters
        ((2, 7, 3, 3), torch.float32, 9, P),  # window wider than the channels
    ],
)
@pytest.mark.parametrize("exporter", ["default", "torchscript"])
def test_export_other_ranks_and_dtypes(tmp_path, exporter, shape, dtype, size, p):
    """Where onnxruntime has no LRN kernel (rank other than 4, float64) the window sum is
    emitted instead, for odd sizes too; float64 keeps float64 constants (no float32 rounding)."""
    kwargs = _exporter_kwargs(exporter)
    torch.manual_seed(1)
    x = torch.randn(*shape, dtype=dtype) * 2
    f = tmp_path / "m.onnx"
    kinds = _export(_model("converted", size, **p), x, f, **kwargs)
    lrn_ok = len(shape) == 4 and dtype == torch.float32
    assert ("LRN" in kinds) == (size % 2 == 1 and lrn_ok), kinds
    got = _run(f, x)
    _check_native(got, x, size, **p)
    if dtype == torch.float64:  # as close as lrn-core's own float64 result
        want = lrn_ref(x.numpy(), size, **p)
        np.testing.assert_allclose(got, want, rtol=REFERENCE["float64"], atol=FLOOR["float64"])


@pytest.mark.parametrize("size", [4, 5])
@pytest.mark.parametrize("exporter", ["default", "torchscript"])
def test_export_float16_computes_in_float32(tmp_path, exporter, size):
    """Native torch has no CPU float16 LRN: the file must give lrn-core's result (computed in
    float32, rounded once), within one float16 rounding of it."""
    kwargs = _exporter_kwargs(exporter)
    torch.manual_seed(2)
    x = (torch.randn(2, 7, 3, 3) * 2).half()
    f = tmp_path / "m.onnx"
    _export(_model("functional", size, **P), x, f, **kwargs)
    got = _run(f, x)
    assert got.dtype == np.float16
    want = lrn_ref(x.double().numpy(), size, **P)
    np.testing.assert_allclose(got, want, rtol=2 * REFERENCE["float16"], atol=FLOOR["float16"])


def test_dynamo_export_with_dynamic_batch(tmp_path):
    _need_dynamo()
    torch.manual_seed(3)
    x = torch.randn(2, 6, 4, 4)
    f = tmp_path / "m.onnx"
    for size in (4, 5):
        model = _model("converted", size, **P)
        batch = torch.export.Dim("batch")
        _export(model, x, f, dynamo=True, dynamic_shapes=({0: batch},))
        for xx in (x, torch.randn(5, 6, 4, 4)):
            _check_native(_run(f, xx), xx, size, **P)


class _RawOp(torch.nn.Module):
    def __init__(self, size):
        super().__init__()
        self.size = size

    def forward(self, x):
        return torch.ops.lrn_core.lrn_forward(x, self.size, 0.5, 0.75, 1.3, self.size // 2)


@pytest.mark.parametrize("size", [4, 5])
def test_raw_op_under_dynamo_needs_the_translation_table(tmp_path, size):
    """A graph holding the op itself (the raw op; a program from torch.export.export) has no
    default translation: the exporter says so, naming the op; with onnx_translation_table() (and
    a table of the user's own merged in) it exports, to the same graphs."""
    if not HAS_ONNXSCRIPT:
        pytest.skip("the dynamo ONNX exporter needs onnxscript")
    torch.manual_seed(4)
    x = torch.randn(2, 7, 3, 3)
    f = tmp_path / "m.onnx"
    with pytest.raises(Exception, match="lrn_core"):
        _export(_RawOp(size), x, f, dynamo=True)
    mine = {torch.ops.aten.relu.default: lambda t: t}  # a table of the user's own, merged in
    table = {**lt.onnx_translation_table(), **mine}
    ep = torch.export.export(lt.LocalResponseNorm(size, **P), (x,))
    assert any("lrn_core" in str(n.target) for n in ep.graph.nodes)
    for model in (_RawOp(size), ep):
        kinds = _export(model, x, f, dynamo=True, custom_translation_table=table)
        assert ("LRN" in kinds) == (size % 2 == 1), kinds
        _check_native(_run(f, x), x, size, **P)


@pytest.mark.parametrize("shape, dtype", [((2, 7, 6), torch.float32), ((2, 7, 3), torch.float64)])
def test_translation_table_other_ranks_and_dtypes(tmp_path, shape, dtype):
    if not HAS_ONNXSCRIPT:
        pytest.skip("the dynamo ONNX exporter needs onnxscript")
    x = torch.randn(*shape, dtype=dtype)
    f = tmp_path / "m.onnx"
    kinds = _export(
        _RawOp(5), x, f, dynamo=True, custom_translation_table=lt.onnx_translation_table()
    )
    assert "LRN" not in kinds
    _check_native(_run(f, x), x, 5, **P)


class _Recorder(TorchDispatchMode):
    """Any dispatch mode: the adapter leaves its fast path for the op."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def test_real_tensors_during_an_export_get_the_kernel(monkeypatch):
    """The export flags are process-wide: a call on real tensors while they are set (another
    thread) must compute, never take torch.onnx.ops.symbolic, whose eager result is zeros."""
    monkeypatch.setattr(lt._routes, "_in_dynamo_onnx_export", lambda: True)
    x = torch.randn(2, 7, 3, 3)
    for size in (4, 5):
        with _Recorder():
            y = lt.local_response_norm(x, size, **P)
            z = lt.LRNFunction.apply(x, size, P["alpha"], P["beta"], P["k"])
        want = F.local_response_norm(x, size, **P)
        torch.testing.assert_close(y, want, rtol=NATIVE["float32"], atol=FLOOR["float32"])
        torch.testing.assert_close(z, want, rtol=NATIVE["float32"], atol=FLOOR["float32"])


def test_outside_onnx_export_torch_export_and_compile_keep_the_op():
    """Only torch.onnx.export replaces the op: torch.export and torch.compile still see it."""
    m = lt.LocalResponseNorm(5, **P)
    x = torch.randn(2, 7, 3, 3)
    ep = torch.export.export(m, (x,))
    assert any("lrn_core" in str(n.target) for n in ep.graph.nodes)
    graphs = []

    def backend(gm, inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    torch.compile(m, backend=backend, fullgraph=True)(x)
    assert any("lrn_core" in str(n.target) for g in graphs for n in g.graph.nodes)
