"""One problem, every implementation: NumPy (lrn_core.lrn and the numpy adapter), the PyTorch and
TensorFlow adapters, and the frameworks' own ops give the same numbers.

Each problem is stated once in lrn-core's parameters (alpha divided by the window); the layouts
(NCHW for torch and the core, NHWC for TF) and the parameter conventions are converted with
:mod:`lrn_core.conventions`. Needs both frameworks; the torch adapter's tests skip if it is absent.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import TOL  # noqa: E402

import lrn_core  # noqa: E402
from lrn_core import conventions  # noqa: E402
from lrn_core.adapters import numpy as lrn_np  # noqa: E402
from lrn_core.tolerances import NATIVE  # noqa: E402

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
lrn_tf = pytest.importorskip("lrn_core.adapters.tensorflow")

#: odd, centred windows: expressible in every framework (size, alpha, beta, k in core terms)
PROBLEMS = [
    conventions.LRNParams(5, 1e-4 * 5, 0.75, 2.0, 2),  # AlexNet
    conventions.LRNParams(3, 1.5, 0.5, 1.0, 1),
    conventions.LRNParams(1, 0.7, 1.0, 0.5, 0),
    conventions.LRNParams(11, 2.0, 0.6, 1.0, 5),  # TF's default radius
]
SHAPE_NCHW = (2, 9, 4, 3)
#: the natives are not exact: float32 sums in float32, float16 (TF) computed in float16
NATIVE_RTOL = {np.dtype(name).type: NATIVE[name] for name in ("float64", "float32", "float16")}


def _inputs(dtype, seed):
    rng = np.random.default_rng(seed)
    x = (2 * rng.standard_normal(SHAPE_NCHW)).astype(dtype)
    return x, rng.standard_normal(SHAPE_NCHW).astype(dtype)


def _nhwc(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def _nchw(a):
    return np.ascontiguousarray(np.moveaxis(np.asarray(a), -1, 1))


def _torch_kwargs(p):
    return dict(size=p.size, alpha=p.alpha, beta=p.beta, k=p.k)


# --- each implementation: (y, dx) in NCHW for an NCHW problem -------------------------------------


def _core(x, dy, p):
    return lrn_core.lrn(x, **p._asdict(), axis=1), lrn_core.lrn_backward(dy, x, **p._asdict())


def _numpy_adapter_tf_signature(x, dy, p):
    y = lrn_np.local_response_normalization(_nhwc(x), **conventions.to_tensorflow(p))
    return _nchw(y), None


def _numpy_adapter_torch_signature(x, dy, p):
    return lrn_np.local_response_norm(x, **_torch_kwargs(p)), None


def _tensorflow(fn):
    def run(x, dy, p):
        xt = tf.constant(_nhwc(x))
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = fn(xt, **conventions.to_tensorflow(p))
        g = tape.gradient(y, xt, output_gradients=tf.constant(_nhwc(dy)))
        return _nchw(y.numpy()), _nchw(g.numpy())

    return run


def _torch(fn):
    def run(x, dy, p):
        xt = torch.from_numpy(x).requires_grad_(True)
        y = fn(xt, **_torch_kwargs(p))
        y.backward(torch.from_numpy(dy))
        return y.detach().numpy(), xt.grad.numpy()

    return run


@pytest.fixture
def torch_adapter():
    return pytest.importorskip("lrn_core.adapters.torch")


def _compare(ours, expected, dtype, rtol=None):
    """Forward elementwise; the gradient relative to its largest value (its terms can cancel)."""
    rtol = 2 * TOL[np.dtype(dtype)][0] if rtol is None else rtol
    (y, g), (ye, ge) = ours, expected
    np.testing.assert_allclose(np.asarray(y, np.float64), ye, rtol=rtol, atol=1e-30)
    if g is not None:
        np.testing.assert_allclose(
            np.asarray(g, np.float64), ge, rtol=0, atol=rtol * np.abs(ge).max()
        )


def _expected(x, dy, p):
    y, g = _core(x, dy, p)
    return y.astype(np.float64), g.astype(np.float64)


# --- adapters agree with each other (and with the core) ------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("p", PROBLEMS, ids=lambda p: f"size{p.size}")
def test_numpy_and_tensorflow_adapters_agree(dtype, p):
    x, dy = _inputs(dtype, p.size)
    expected = _expected(x, dy, p)
    for impl in (
        _numpy_adapter_tf_signature,
        _numpy_adapter_torch_signature,
        _tensorflow(lrn_tf.local_response_normalization),
    ):
        ours = impl(x, dy, p)
        assert ours[0].dtype == dtype
        _compare(ours, expected, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("p", PROBLEMS, ids=lambda p: f"size{p.size}")
def test_torch_adapter_agrees(torch_adapter, dtype, p):
    x, dy = _inputs(dtype, p.size)
    ours = _torch(torch_adapter.local_response_norm)(x, dy, p)
    assert ours[0].dtype == dtype
    _compare(ours, _expected(x, dy, p), dtype)
    _compare(ours, _tensorflow(lrn_tf.local_response_normalization)(x, dy, p), dtype)


@pytest.mark.parametrize("size", [2, 4, 6])
def test_even_windows_numpy_and_torch_adapter(torch_adapter, size):
    """Even windows exist only in torch's convention (extra channel before the centre)."""
    p = conventions.from_torch(size, 1.2, 0.75, 1.0)
    x, dy = _inputs(np.float64, size)
    expected = _expected(x, dy, p)
    _compare(_torch(torch_adapter.local_response_norm)(x, dy, p), expected, np.float64)
    _compare(_numpy_adapter_torch_signature(x, dy, p), expected, np.float64)
    _compare(
        _torch(torch.nn.functional.local_response_norm)(x, dy, p),
        expected,
        np.float64,
        NATIVE_RTOL[np.float64],
    )


# --- against the frameworks' own ops --------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("p", PROBLEMS, ids=lambda p: f"size{p.size}")
def test_native_ops_agree(dtype, p):
    """torch native: float32/float64 (no float16 on CPU); TF native: float32/float16."""
    x, dy = _inputs(dtype, p.size)
    expected = _expected(x, dy, p)
    natives = []
    if dtype != np.float16:
        natives.append(_torch(torch.nn.functional.local_response_norm))
    if dtype != np.float64:
        natives.append(_tensorflow(tf.nn.local_response_normalization))
    for impl in natives:
        _compare(impl(x, dy, p), expected, dtype, NATIVE_RTOL[dtype])


# --- second order ---------------------------------------------------------------------------------


def _hvp_tensorflow(x, v, p):
    xt, vt = tf.constant(_nhwc(x)), tf.constant(_nhwc(v))
    with tf.GradientTape() as outer:
        outer.watch(xt)
        with tf.GradientTape() as inner:
            inner.watch(xt)
            loss = tf.reduce_sum(
                tf.sin(lrn_tf.local_response_normalization(xt, **conventions.to_tensorflow(p)))
            )
        g = inner.gradient(loss, xt)
    return _nchw(outer.gradient(g, xt, output_gradients=vt).numpy())


def _hvp_torch(fn, x, v, p):
    xt = torch.from_numpy(x).requires_grad_(True)
    loss = torch.sin(fn(xt, **_torch_kwargs(p))).sum()
    (g,) = torch.autograd.grad(loss, xt, create_graph=True)
    (h,) = torch.autograd.grad(g, xt, grad_outputs=torch.from_numpy(v))
    return h.detach().numpy()


@pytest.mark.parametrize("p", PROBLEMS, ids=lambda p: f"size{p.size}")
def test_hessian_vector_products_agree(p):
    """TF adapter's second order against torch's native op (an autograd composite), float64."""
    x, v = _inputs(np.float64, p.size)
    expected = _hvp_torch(torch.nn.functional.local_response_norm, x, v, p)
    np.testing.assert_allclose(
        _hvp_tensorflow(x, v, p), expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max()
    )


@pytest.mark.parametrize("p", PROBLEMS[:2], ids=lambda p: f"size{p.size}")
def test_hessian_vector_products_torch_adapter(torch_adapter, p):
    x, v = _inputs(np.float64, p.size)
    try:
        ours = _hvp_torch(torch_adapter.local_response_norm, x, v, p)
    except (RuntimeError, NotImplementedError) as exc:
        pytest.skip(f"the torch adapter has no second-order gradient: {exc}")
    expected = _hvp_torch(torch.nn.functional.local_response_norm, x, v, p)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())


def test_conventions_round_trip():
    for p in PROBLEMS:
        tf_kw = conventions.to_tensorflow(p)
        back = conventions.from_tensorflow(**tf_kw)
        assert back.size == p.size and back.before == p.before and back.k == p.k
        assert back.alpha == pytest.approx(p.alpha, rel=1e-15)
        assert conventions.from_torch(**_torch_kwargs(p)) == p
