"""The TensorFlow adapter against native TF, the float64 reference and finite differences.

Native TF (2.21, CPU) computes LRN in float32 and float16 only, and its gradient has no gradient;
the adapter adds float64, bfloat16 and gradients of any order, and falls back to the native op
where a Python callback cannot go (SavedModel export, XLA).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import functools  # noqa: E402
import importlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import assert_close  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from reference import lrn_grad_ref, lrn_ref  # noqa: E402

from lrn_core import conventions  # noqa: E402
from lrn_core.tolerances import NATIVE, REFERENCE  # noqa: E402

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
lrn_tf = pytest.importorskip("lrn_core.adapters.tensorflow")
from lrn_core.adapters.tensorflow import (  # noqa: E402
    LocalResponseNormalization,
    local_response_normalization,
)

#: bfloat16 is computed in float32 and rounded once, like float16 (lrn_core.tolerances)
BF16_RTOL = REFERENCE["bfloat16"]

#: the ops through which a graph runs lrn-core's kernels: the compiled op where its library
#: loads (tests/test_tensorflow_op.py), else the Python callback
KERNEL_OPS = {"LrnCoreLrn", "LrnCoreLrnGrad", "EagerPyFunc", "PyFunc", "PyFuncStateless"}


def _holds_kernel(op_types):
    """Does a graph with these op types run lrn-core's kernels (an op another process cannot
    run: a SavedModel, TFLite or XLA must hold none)?"""
    return bool(KERNEL_OPS & set(op_types))


PARAMS = [  # (bias, alpha, beta), TF's convention
    (1.0, 1.0, 0.5),  # TF's defaults
    (2.0, 1e-4, 0.75),  # AlexNet
    (0.5, 0.3, 1.0),
    (1.0, 0.05, 0.6),  # a beta without a closed form
]


def _inputs(shape, dtype, seed, scale=2.0):
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, dy


def _forward_and_grad(fn, x, dy, **kw):
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = fn(xt, **kw)
    return y, tape.gradient(y, xt, output_gradients=tf.constant(dy))


def _reference(x, dy, depth_radius, bias, alpha, beta):
    p = conventions.from_tensorflow(depth_radius, bias, alpha, beta)._asdict()
    x64, dy64 = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    return lrn_ref(x64, axis=-1, **p), lrn_grad_ref(dy64, x64, axis=-1, **p)


# --- forward and gradient against native TF and the reference -----------------------------------

#: "core": lrn-core's kernel; "auto": the default (the kernel here, TF's LRN in SavedModels, the
#: TF-ops formula under XLA, vectorized_map and for small inputs in graphs); "tf_ops": "auto" with
#: the TF-ops formula forced everywhere, eagerly too (see the fixture below)
IMPLS = ["core", "auto", "tf_ops"]
IMPL_ARG = {"core": "core", "auto": "auto", "tf_ops": "auto"}


@pytest.fixture(autouse=True)
def _tf_ops_formula(request, monkeypatch):
    """Tests parametrized with impl="tf_ops" run the TF-ops formula at every size and mode."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("impl") == "tf_ops":
        monkeypatch.setattr(lrn_tf._routes, "_small", lambda x: True)
        # eager calls of "auto" go straight to the kernel (lrn_tf._eager_route): not here
        monkeypatch.setattr(lrn_tf._record, "_KERNEL_DTYPES", ())


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("r", [0, 1, 2, 5, 7])
@pytest.mark.parametrize("channels", [1, 3, 8, 33])
def test_matches_native_and_reference(dtype, r, channels, impl):
    for i, (bias, alpha, beta) in enumerate(PARAMS):
        kw = dict(depth_radius=r, bias=bias, alpha=alpha, beta=beta)
        x, dy = _inputs((2, 3, 4, channels), dtype, seed=100 * r + channels + i)
        y, g = _forward_and_grad(
            local_response_normalization, x, dy, **kw, implementation=IMPL_ARG[impl]
        )
        yn, gn = _forward_and_grad(tf.nn.local_response_normalization, x, dy, **kw)
        yr, gr = _reference(x, dy, **kw)
        assert y.dtype == g.dtype == dtype and y.shape == g.shape == x.shape
        assert_close(y.numpy(), yr, dtype)
        assert_close(g.numpy(), gr, dtype, scale=gr)
        rtol = NATIVE[dtype]  # native TF sums float32 in float32, computes float16 in float16
        np.testing.assert_allclose(y.numpy().astype(np.float64), yn.numpy(), rtol=rtol, atol=1e-6)
        np.testing.assert_allclose(
            g.numpy().astype(np.float64), gn.numpy(), rtol=0, atol=rtol * np.abs(gr).max()
        )


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("r", [0, 2, 5])
def test_float64_against_reference(r, impl):
    for i, (bias, alpha, beta) in enumerate(PARAMS):
        x, dy = _inputs((2, 5, 3, 13), "float64", seed=r + i)
        y, g = _forward_and_grad(
            local_response_normalization,
            x,
            dy,
            depth_radius=r,
            bias=bias,
            alpha=alpha,
            beta=beta,
            implementation=IMPL_ARG[impl],
        )
        yr, gr = _reference(x, dy, r, bias, alpha, beta)
        assert y.dtype == g.dtype == tf.float64
        assert_close(y.numpy(), yr)
        assert_close(g.numpy(), gr, scale=gr)


@pytest.mark.parametrize("r", [0, 2, 5])
def test_bfloat16_against_reference(r):
    for i, (bias, alpha, beta) in enumerate(PARAMS):
        x, dy = _inputs((2, 5, 3, 13), "float32", seed=r + i)
        xb, dyb = tf.cast(x, tf.bfloat16), tf.cast(dy, tf.bfloat16)
        with tf.GradientTape() as tape:
            tape.watch(xb)
            y = local_response_normalization(xb, r, bias, alpha, beta)
        g = tape.gradient(y, xb, output_gradients=dyb)
        assert y.dtype == g.dtype == tf.bfloat16
        # the reference sees the bfloat16-rounded inputs exactly
        yr, gr = _reference(
            tf.cast(xb, tf.float64).numpy(), tf.cast(dyb, tf.float64).numpy(), r, bias, alpha, beta
        )
        np.testing.assert_allclose(tf.cast(y, tf.float64).numpy(), yr, rtol=BF16_RTOL, atol=1e-30)
        np.testing.assert_allclose(
            tf.cast(g, tf.float64).numpy(), gr, rtol=BF16_RTOL, atol=BF16_RTOL * np.abs(gr).max()
        )


@settings(max_examples=30, deadline=None)
@given(
    shape=st.tuples(st.integers(0, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 20)),
    r=st.integers(0, 12),
    bias=st.floats(0.1, 3.0),
    alpha=st.floats(0.0, 5.0),
    beta=st.sampled_from([0.5, 0.75, 1.0, 0.3, 2.0]),
    seed=st.integers(0, 2**16),
    impl=st.sampled_from(["core", "auto"]),
)
def test_property_float64(shape, r, bias, alpha, beta, seed, impl):
    """Any shape (an empty batch too), radius larger than the channels, any parameters."""
    x, dy = _inputs(shape, "float64", seed)
    y, g = _forward_and_grad(
        local_response_normalization,
        x,
        dy,
        depth_radius=r,
        bias=bias,
        alpha=alpha,
        beta=beta,
        implementation=IMPL_ARG[impl],
    )
    yr, gr = _reference(x, dy, r, bias, alpha, beta)
    assert_close(y.numpy(), yr)
    assert_close(g.numpy(), gr, scale=gr)


def test_accepts_numpy_and_lists_like_native():
    x = np.random.default_rng(0).standard_normal((1, 2, 2, 5)).astype(np.float32)
    for inp in (x, x.tolist()):
        y = local_response_normalization(inp, 1, 1.0, 0.5, 0.75)
        np.testing.assert_allclose(
            y.numpy(), tf.nn.local_response_normalization(inp, 1, 1.0, 0.5, 0.75), rtol=1e-6
        )


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (2, 5), (2, 3, 5), (1, 2, 3, 4, 5)])
def test_rank_other_than_4_is_refused_like_native(shape):
    x = tf.ones(shape)
    with pytest.raises(Exception, match="4-dimensional"):
        tf.nn.local_response_normalization(x)  # native refuses too
    with pytest.raises(ValueError, match=r"input must be 4-dimensional .*got rank"):
        local_response_normalization(x)


def test_unknown_rank_is_checked_at_run_time():
    f = tf.function(lambda x: local_response_normalization(x, 1)).get_concrete_function(
        tf.TensorSpec(None, tf.float32)
    )
    x = np.ones((1, 2, 2, 3), np.float32)
    np.testing.assert_allclose(f(tf.constant(x)), tf.nn.local_response_normalization(x, 1))
    with pytest.raises(tf.errors.InvalidArgumentError, match="input must be 4-D"):
        f(tf.ones((2, 2, 3)))


@pytest.mark.parametrize("dtype", [tf.int32, tf.int64, tf.uint8, tf.complex64, tf.bool])
def test_other_dtypes_are_refused(dtype):
    with pytest.raises(TypeError, match=f"float16, bfloat16, float32 or float64, got {dtype.name}"):
        local_response_normalization(tf.zeros((1, 2, 2, 3), dtype))


@pytest.mark.parametrize(
    "kw,error,match",
    [
        (dict(depth_radius=-1), ValueError, "depth_radius must be an integer >= 0, got -1"),
        (dict(depth_radius=1.5), TypeError, "depth_radius must be an integer"),
        (dict(depth_radius=True), TypeError, "depth_radius must be an integer"),
        (dict(bias="1"), TypeError, "bias must be a real number"),
        (dict(alpha=float("nan")), ValueError, "alpha must be finite"),
        (dict(beta=float("inf")), ValueError, "beta must be finite"),
        (dict(implementation="fast"), ValueError, "implementation must be one of"),
    ],
)
def test_bad_parameters(kw, error, match):
    with pytest.raises(error, match=match):
        local_response_normalization(tf.ones((1, 2, 2, 3)), **kw)
    with pytest.raises(error, match=match):
        LocalResponseNormalization(**kw)


# --- small and eager inputs: the routes without a Python callback ------------------------------
# Eagerly, float32/float64 calls go straight to the kernels (lrn_tf._eager_route, _eager_kernel);
# in graphs, small inputs (at most SMALL_ELEMENTS elements, BAND_CHANNELS channels and BAND_MACS
# multiply-adds per window sum) take TF ops with window sums as band products, larger ones the
# kernel in a py_function. Pinned here at sizes on both sides of each of those limits.

#: tiny; one channel; one position; SMALL_ELEMENTS - 1, SMALL_ELEMENTS and one over; at
#: BAND_MACS and over it; BAND_CHANNELS and one over
ROUTE_SHAPES = [
    (1, 2, 2, 8),
    (3, 2, 1, 1),
    (1, 1, 1, 9),
    (1, 1, 3855, 17),
    (1, 32, 32, 64),
    (1, 1, 65537, 1),
    (2, 16, 16, 128),
    (1, 16, 16, 256),
    (1, 1, 1, 1024),
    (1, 1, 1, 1025),
]


def _band_route(shape):
    n, c = int(np.prod(shape)), shape[-1]
    return n <= lrn_tf.SMALL_ELEMENTS and c <= lrn_tf.BAND_CHANNELS and n * c <= lrn_tf.BAND_MACS


def _op_types(concrete):
    """Types of the ops of a concrete function, those of its nested functions (tf.cond) too."""
    graph_def = concrete.graph.as_graph_def()
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    return {n.op for n in nodes}


def test_route_shapes_straddle_the_limits():
    sizes = sorted(int(np.prod(s)) for s in ROUTE_SHAPES)
    n = lrn_tf.SMALL_ELEMENTS
    assert n - 1 in sizes and n in sizes and n + 1 in sizes
    macs = {int(np.prod(s)) * s[-1] for s in ROUTE_SHAPES}
    assert lrn_tf.BAND_MACS in macs and any(m > lrn_tf.BAND_MACS for m in macs)
    channels = {s[-1] for s in ROUTE_SHAPES}
    assert {lrn_tf.BAND_CHANNELS, lrn_tf.BAND_CHANNELS + 1} <= channels
    assert [_band_route(s) for s in ROUTE_SHAPES] == [True] * 5 + [False, True] * 2 + [False]


def _no_checked_route(*args):
    raise AssertionError("the eager call took lrn_core's checked NumPy route")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", ROUTE_SHAPES)
def test_eager_route_numbers(shape, dtype, monkeypatch):
    """Eager float32/float64: the lean kernel route (never the checked one), forward and
    gradient against the float64 reference, the checked route (bit for bit) and native TF."""
    for i, (bias, alpha, beta) in enumerate(PARAMS):
        kw = dict(depth_radius=i + 1, bias=bias, alpha=alpha, beta=beta)
        x, dy = _inputs(shape, dtype, seed=sum(shape) + i)
        with monkeypatch.context() as m:
            m.setattr(lrn_tf._record, "_numpy_call", _no_checked_route)
            y, g = _forward_and_grad(local_response_normalization, x, dy, **kw)
        yr, gr = _reference(x, dy, **kw)
        assert y.dtype == g.dtype == dtype and y.shape == g.shape == shape
        assert_close(y.numpy(), yr, dtype)
        assert_close(g.numpy(), gr, dtype, scale=gr)
        with monkeypatch.context() as m:  # the checked route: lrn_core's NumPy API
            m.setattr(lrn_tf._record, "_KERNEL_DTYPES", ())
            yc, gc = _forward_and_grad(local_response_normalization, x, dy, **kw)
        np.testing.assert_array_equal(y, yc)
        np.testing.assert_array_equal(g, gc)
        if dtype == "float32":
            yn, gn = _forward_and_grad(tf.nn.local_response_normalization, x, dy, **kw)
            rtol = NATIVE[dtype]
            np.testing.assert_allclose(y, yn, rtol=rtol, atol=1e-6)
            np.testing.assert_allclose(g, gn, rtol=0, atol=rtol * np.abs(gr).max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", ROUTE_SHAPES)
def test_graph_route_numbers(shape, dtype):
    """In tf.function: TF ops (no callback) for small inputs, the kernel for the others; forward
    and gradient against the float64 reference and native TF."""

    @tf.function
    def fwd_grad(x, dy, **kw):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = local_response_normalization(x, **kw)
        return y, tape.gradient(y, x, output_gradients=dy)

    for i, (bias, alpha, beta) in enumerate(PARAMS):
        kw = dict(depth_radius=i + 1, bias=bias, alpha=alpha, beta=beta)
        x, dy = _inputs(shape, dtype, seed=sum(shape) + i)
        f = fwd_grad.get_concrete_function(tf.constant(x), tf.constant(dy), **kw)
        types = _op_types(f)
        small = _band_route(shape)
        assert _holds_kernel(types) is not small and ("MatMul" in types) is small
        y, g = f(tf.constant(x), tf.constant(dy))
        yr, gr = _reference(x, dy, **kw)
        assert_close(y.numpy(), yr, dtype)
        assert_close(g.numpy(), gr, dtype, scale=gr)
        if dtype == "float32":
            yn, gn = _forward_and_grad(tf.nn.local_response_normalization, x, dy, **kw)
            rtol = NATIVE[dtype]
            np.testing.assert_allclose(y, yn, rtol=rtol, atol=1e-6)
            np.testing.assert_allclose(g, gn, rtol=0, atol=rtol * np.abs(gr).max())


@pytest.mark.parametrize("size,before", [(5, 2), (4, 2), (4, 1), (4, 0), (3, 2), (6, 5), (1, 0)])
def test_band_route_uneven_windows(size, before):
    """The band products with any window placement (the transposed band in the gradient; TF's
    centred windows never need it), in tf.function: forward, gradient, and the Hessian-vector
    product against finite differences."""
    p = conventions.LRNParams(size, 1.5, 0.75, 1.0, before)
    x, dy = _inputs((2, 2, 3, 7), "float64", size + before)
    lrn = tf.autograph.experimental.do_not_convert(lambda x: lrn_tf._composite._lrn_small(x, p))

    @tf.function
    def fwd_grad_hvp(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = lrn(x)
        return y, tape.gradient(y, x, output_gradients=dy), _hvp(lrn, x, dy)

    f = fwd_grad_hvp.get_concrete_function(tf.constant(x), tf.constant(dy))
    assert "MatMul" in _op_types(f)
    y, g, h = f(tf.constant(x), tf.constant(dy))
    assert_close(y.numpy(), lrn_ref(x, **p._asdict(), axis=-1))
    assert_close(g.numpy(), lrn_grad_ref(dy, x, **p._asdict(), axis=-1))
    np.testing.assert_allclose(h, _fd_hvp(x, dy, *p), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_band_route_keeps_non_finite_values_local(dtype):
    """0 * inf is nan, so a product with the band would spread an inf or a nan to every
    channel of its row: the band route sums such inputs with the average pool instead. Forward
    and gradient (also for a nan in dy) in tf.function: equal to the kernel's, and outputs whose
    window holds no non-finite value stay finite."""
    kw = dict(depth_radius=2, bias=1.0, alpha=1e-4, beta=0.75)
    x, dy = _inputs((1, 2, 2, 16), dtype, 7)
    x[0, 0, 0, 3], x[0, 1, 1, 12], dy[0, 0, 1, 8] = np.inf, np.nan, np.nan

    def run(implementation):
        @tf.function
        def f(x, dy):
            xt = tf.identity(x)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                y = local_response_normalization(xt, **kw, implementation=implementation)
            return y, tape.gradient(y, xt, output_gradients=dy)

        assert ("MatMul" in _op_types(f.get_concrete_function(x, dy))) is (implementation == "auto")
        return [t.numpy() for t in f(x, dy)]

    (y, g), (yk, gk) = run("auto"), run("core")
    for got, kernel in [(y, yk), (g, gk)]:
        np.testing.assert_array_equal(np.isnan(got), np.isnan(kernel))
        scale = np.nanmax(np.abs(kernel))
        np.testing.assert_allclose(got, kernel, rtol=0, atol=REFERENCE[dtype] * scale)
    for (i, j, c), out in [((0, 0, 3), y), ((1, 1, 12), y), ((0, 0, 3), g), ((0, 1, 8), g)]:
        window = np.abs(np.arange(16) - c) <= 2
        assert np.isnan(out[0, i, j, c]) and np.isfinite(out[0, i, j, ~window]).all()
    assert np.isfinite(y[0, 0, 1]).all() and np.isfinite(y[0, 1, 0]).all()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda x: tf.Variable(x), id="variable"),
        pytest.param(lambda x: tf.cast(x, tf.float16), id="float16"),
        pytest.param(lambda x: tf.cast(x, tf.bfloat16), id="bfloat16"),
        pytest.param(lambda x: x[:0], id="empty"),
        pytest.param(lambda x: x.numpy(), id="numpy"),
    ],
)
def test_eager_inputs_the_lean_route_leaves_to_the_checked_one(make):
    """What the lean eager route does not take gives the same numbers as before (the checked
    route, or the lean one after conversion), against the float64 reference."""
    x, _ = _inputs((2, 2, 3, 7), "float32", seed=5)
    inp = make(tf.constant(x))
    x64 = tf.cast(inp, tf.float64).numpy()
    y = local_response_normalization(inp, 2, 1.0, 0.3, 0.75)
    yr = _reference(x64, x64, 2, 1.0, 0.3, 0.75)[0]
    assert y.shape == x64.shape and y.dtype == tf.convert_to_tensor(inp).dtype
    rtol = {
        tf.float32: REFERENCE["float32"],
        tf.float16: REFERENCE["float16"],
        tf.bfloat16: BF16_RTOL,
    }[y.dtype]
    np.testing.assert_allclose(tf.cast(y, tf.float64).numpy(), yr, rtol=rtol, atol=1e-30)


def test_eager_route_is_recorded_once_on_nested_tapes_and_accumulators():
    """The lean route under a tape inside an accumulator: second order and JVP stay exact."""
    x, v = _inputs((1, 2, 3, 9), "float64", seed=8)
    x, v = tf.constant(x), tf.constant(v)
    p = conventions.from_tensorflow(2, 1.0, 0.3, 0.75)
    with tf.autodiff.ForwardAccumulator(x, v) as acc:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = local_response_normalization(x, 2, 1.0, 0.3, 0.75)
            loss = tf.reduce_sum(y)
        g = tape.gradient(loss, x)
    np.testing.assert_allclose(
        g, lrn_grad_ref(np.ones(x.shape), x.numpy(), axis=-1, **p._asdict()), rtol=1e-12, atol=1e-15
    )
    ref = functools.partial(lrn_ref, axis=-1, **p._asdict())
    grad_ref = functools.partial(lrn_grad_ref, np.ones(x.shape), axis=-1, **p._asdict())
    np.testing.assert_allclose(acc.jvp(y), _fd(ref, x.numpy(), v.numpy()), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(
        acc.jvp(g), _fd(grad_ref, x.numpy(), v.numpy()), rtol=1e-6, atol=1e-9
    )


def _fd(f, x, v, eps=1e-6):
    """Central difference of ``f`` at ``x`` along ``v``."""
    return (f(x + eps * v) - f(x - eps * v)) / (2 * eps)


# --- graphs --------------------------------------------------------------------------------------


def test_tf_function_static_shapes_and_same_results():
    @tf.function
    def fwd_grad(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = local_response_normalization(
                x, 2, 1.0, 0.3, 0.75, name="my_lrn", implementation="core"
            )
        return y, tape.gradient(y, x, output_gradients=dy)

    spec = tf.TensorSpec([None, 4, 5, 7], tf.float32)
    concrete = fwd_grad.get_concrete_function(spec, spec)
    for out in concrete.structured_outputs:
        assert out.shape.as_list() == [None, 4, 5, 7] and out.dtype == tf.float32
    ops = {op.name for op in concrete.graph.get_operations()}
    assert any(name.startswith("my_lrn/") for name in ops)
    x, dy = _inputs((3, 4, 5, 7), "float32", 0)
    y, g = concrete(tf.constant(x), tf.constant(dy))
    ye, ge = _forward_and_grad(
        local_response_normalization,
        x,
        dy,
        depth_radius=2,
        bias=1.0,
        alpha=0.3,
        beta=0.75,
        implementation="core",
    )
    np.testing.assert_array_equal(y, ye)
    np.testing.assert_array_equal(g, ge)


def test_xla_auto_uses_tf_ops():
    """Under jit_compile "auto" is TF's kernels (float32) or the TF-ops formula (float64)."""
    x, dy = _inputs((2, 3, 4, 9), "float32", 1)
    native = tf.nn.local_response_normalization(x, 2, 1.0, 0.3, 0.75)

    def fwd_grad(x, implementation):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = local_response_normalization(x, 2, 1.0, 0.3, 0.75, implementation=implementation)
        return y, tape.gradient(y, x, output_gradients=tf.cast(dy, x.dtype))

    f = tf.function(lambda x: fwd_grad(x, "auto"), jit_compile=True)
    y, g = f(tf.constant(x))
    graph = f.get_concrete_function(tf.constant(x)).graph
    assert not _holds_kernel(op.type for op in graph.get_operations())
    _, gn = _forward_and_grad(
        tf.nn.local_response_normalization, x, dy, depth_radius=2, bias=1.0, alpha=0.3, beta=0.75
    )
    np.testing.assert_allclose(y, native, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, gn, rtol=1e-5, atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="PyFunc"):
        tf.function(lambda x: fwd_grad(x, "core"), jit_compile=True)(tf.constant(x))
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    y64, g64 = tf.function(lambda x: fwd_grad(x, "auto"), jit_compile=True)(tf.constant(x64))
    yr, gr = _reference(x64, dy64, 2, 1.0, 0.3, 0.75)
    assert_close(y64.numpy(), yr)
    assert_close(g64.numpy(), gr, scale=gr)


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_second_order_inside_xla(big, dtype):
    """Native LRNGrad has no gradient; under XLA "auto" records its own (TF ops)."""
    x, v = _inputs((2, 3, 2, 9) if not big else (2, 8, 8, 300), "float64", 11)
    fn = lambda x: local_response_normalization(x, 2, 1.0, 0.5, 0.75)  # noqa: E731
    h = tf.function(lambda x, v: _hvp(fn, x, v), jit_compile=True)(
        tf.constant(x.astype(dtype)), tf.constant(v.astype(dtype))
    )
    p = conventions.from_tensorflow(2, 1.0, 0.5, 0.75)._asdict()
    fd = _fd_hvp(x.astype(dtype).astype(np.float64), v.astype(dtype).astype(np.float64), **p)
    tol = 1e-8 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(h.numpy(), fd, rtol=0, atol=tol * np.abs(fd).max())
    with pytest.raises(Exception, match="LRNGrad"):  # what native does
        tf.function(lambda x, v: _hvp(tf.nn.local_response_normalization, x, v), jit_compile=True)(
            tf.constant(x, tf.float32), tf.constant(v, tf.float32)
        )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forward_accumulator_inside_xla(dtype):
    x, v = _inputs((2, 3, 4, 9), dtype, 12)

    @tf.function(jit_compile=True)
    def jvp(x, v):
        with tf.autodiff.ForwardAccumulator(x, v) as acc:
            y = local_response_normalization(x, 2, 1.0, 0.3, 0.75)
        return acc.jvp(y)

    j = jvp(tf.constant(x), tf.constant(v)).numpy()
    x64, v64 = x.astype(np.float64), v.astype(np.float64)
    p = conventions.from_tensorflow(2, 1.0, 0.3, 0.75)._asdict()
    eps = 1e-6
    fd = (lrn_ref(x64 + eps * v64, axis=-1, **p) - lrn_ref(x64 - eps * v64, axis=-1, **p)) / (
        2 * eps
    )
    tol = 1e-8 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(j, fd, rtol=0, atol=tol * np.abs(fd).max())


@pytest.mark.parametrize("dtype", [tf.float32, tf.float16, tf.bfloat16])
def test_native_implementation(dtype):
    x = tf.cast(_inputs((2, 3, 4, 9), "float32", 2)[0], dtype)
    y = local_response_normalization(x, 3, 1.0, 0.3, 0.75, implementation="native")
    ours = local_response_normalization(x, 3, 1.0, 0.3, 0.75)
    assert y.dtype == dtype
    # bfloat16: native through float32 as ours, two results each within BF16_RTOL of the exact one
    rtol = {
        tf.float32: NATIVE["float32"],
        tf.float16: NATIVE["float16"],
        tf.bfloat16: 2 * BF16_RTOL,
    }[dtype]
    np.testing.assert_allclose(
        tf.cast(y, tf.float64), tf.cast(ours, tf.float64), rtol=rtol, atol=1e-6
    )
    with pytest.raises(TypeError, match="no float64 LRN"):
        local_response_normalization(tf.cast(x, tf.float64), implementation="native")


# --- second and higher order ----------------------------------------------------------------------


def _loss(y):
    return tf.reduce_sum(tf.sin(y))  # nonlinear, so the upstream gradient depends on x too


def _hvp(fn, x, v):
    """Hessian-vector product of sum(sin(fn(x))) through nested tapes."""
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            loss = _loss(fn(x))
        g = inner.gradient(loss, x)
    return outer.gradient(g, x, output_gradients=v)


def _fd_hvp(x, v, size, alpha, beta, k, before, eps=1e-5):
    """Central differences of the reference gradient of sum(sin(lrn(x))) along v."""

    def grad(x):
        return lrn_grad_ref(
            np.cos(lrn_ref(x, size, alpha, beta, k, -1, before)),
            x,
            size,
            alpha,
            beta,
            k,
            -1,
            before,
        )

    return (grad(x + eps * v) - grad(x - eps * v)) / (2 * eps)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("in_function", [False, True])
@pytest.mark.parametrize(
    "r,bias,alpha,beta", [(2, 1.0, 0.5, 0.75), (1, 0.5, 2.0, 0.5), (4, 2.0, 0.1, 1.3)]
)
def test_hessian_vector_product_vs_finite_differences(in_function, r, bias, alpha, beta, impl):
    x, v = _inputs((2, 3, 2, 9), "float64", r)

    def fn(x):
        return local_response_normalization(x, r, bias, alpha, beta, implementation=IMPL_ARG[impl])

    hvp = tf.function(lambda x, v: _hvp(fn, x, v)) if in_function else lambda x, v: _hvp(fn, x, v)
    h = hvp(tf.constant(x), tf.constant(v)).numpy()
    fd = _fd_hvp(x, v, **conventions.from_tensorflow(r, bias, alpha, beta)._asdict())
    np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


@pytest.mark.parametrize("size,before", [(4, 2), (4, 1), (4, 0), (3, 2), (6, 5)])
def test_hessian_vector_product_uneven_windows(size, before):
    """The transposed window (TF's centred windows never need it): the core op directly."""
    p = conventions.LRNParams(size, 1.5, 0.75, 1.0, before)
    x, v = _inputs((2, 2, 3, 7), "float64", size + before)
    h = _hvp(lambda x: lrn_tf._kernel_ops._lrn(x, p), tf.constant(x), tf.constant(v)).numpy()
    np.testing.assert_allclose(h, _fd_hvp(x, v, *p), rtol=1e-6, atol=1e-9)


def test_second_order_with_respect_to_upstream_gradient():
    """d/dw <J^T w, u> = J u: the Jacobian-vector product of the forward."""
    x, w = _inputs((2, 3, 2, 8), "float64", 3)
    u = np.random.default_rng(4).standard_normal(x.shape)
    xt, wt = tf.constant(x), tf.constant(w)
    with tf.GradientTape() as outer:
        outer.watch(wt)
        with tf.GradientTape() as inner:
            inner.watch(xt)
            y = local_response_normalization(xt, 2, 1.0, 0.4, 0.75, implementation="core")
        g = inner.gradient(y, xt, output_gradients=wt)
    jvp = outer.gradient(g, wt, output_gradients=tf.constant(u)).numpy()
    p = conventions.from_tensorflow(2, 1.0, 0.4, 0.75)._asdict()
    eps = 1e-6
    fd = (lrn_ref(x + eps * u, axis=-1, **p) - lrn_ref(x - eps * u, axis=-1, **p)) / (2 * eps)
    np.testing.assert_allclose(jvp, fd, rtol=1e-7, atol=1e-9)


def test_third_order_vs_finite_differences():
    x, v = _inputs((1, 2, 2, 6), "float64", 5)
    u = np.random.default_rng(6).standard_normal(x.shape)

    def fn(x):
        return local_response_normalization(x, 1, 1.0, 0.7, 0.75, implementation="core")

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        h = _hvp(fn, xt, tf.constant(v))
    third = tape.gradient(h, xt, output_gradients=tf.constant(u)).numpy()
    eps = 1e-4

    def inner(x):
        return np.sum(u * _hvp(fn, tf.constant(x), tf.constant(v)).numpy())

    fd = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        fd[i] = (inner(x + e) - inner(x - e)) / (2 * eps)
    np.testing.assert_allclose(third, fd, rtol=1e-6, atol=1e-7 * np.abs(fd).max())


@pytest.mark.parametrize(
    "dtype,rtol", [(tf.float32, 1e-6), (tf.float16, 8e-4), (tf.bfloat16, 8e-3)]
)
def test_second_order_in_lower_precisions(dtype, rtol):
    """float16 and bfloat16 compute in float32 too: about an ulp (float16 compute: 3 ulps)."""
    x, v = _inputs((2, 2, 2, 9), "float32", 8, scale=1.0)
    x, v = tf.cast(x, dtype), tf.cast(v, dtype)

    def fn(x):
        return local_response_normalization(x, 2, 1.0, 0.5, 0.75, implementation="core")

    h = _hvp(fn, x, v)
    assert h.dtype == dtype
    exact = _hvp(fn, tf.cast(x, tf.float64), tf.cast(v, tf.float64)).numpy()
    np.testing.assert_allclose(
        tf.cast(h, tf.float64), exact, rtol=0, atol=rtol * np.abs(exact).max()
    )


# --- forward mode (tf.autodiff.ForwardAccumulator) ------------------------------------------------


def _jvp(fn, x, v, mode):
    """acc.jvp(fn(x)) along v: eagerly, inside a tf.function, or around a traced tf.function."""
    xt, vt = tf.constant(x), tf.constant(v)
    if mode == "eager":
        with tf.autodiff.ForwardAccumulator(xt, vt) as acc:
            y = fn(xt)
        return acc.jvp(y)
    if mode == "in_function":

        @tf.function
        def jvp(xt, vt):
            with tf.autodiff.ForwardAccumulator(xt, vt) as acc:
                y = fn(xt)
            return acc.jvp(y)

        return jvp(xt, vt)
    traced = tf.function(fn)
    traced(xt)  # traced before any accumulator exists: TF differentiates the graph
    with tf.autodiff.ForwardAccumulator(xt, vt) as acc:
        y = traced(xt)
    return acc.jvp(y)


JVP_MODES = ["eager", "in_function", "around_function"]


@pytest.mark.parametrize("mode", JVP_MODES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", [(2, 3, 4, 9), (2, 8, 8, 300)])  # the latter: core in "auto"
def test_forward_accumulator_float64(shape, impl, mode):
    """The JVP is the tensor J v (never a scalar 0.0): finite differences and reverse mode."""
    x, v = _inputs(shape, "float64", 21)
    kw = dict(depth_radius=2, bias=1.0, alpha=0.3, beta=0.75)
    fn = functools.partial(local_response_normalization, **kw, implementation=IMPL_ARG[impl])
    jvp = _jvp(fn, x, v, mode)
    assert jvp is not None and jvp.shape == x.shape and jvp.dtype == tf.float64
    p = conventions.from_tensorflow(**kw)._asdict()
    eps = 1e-6
    fd = (lrn_ref(x + eps * v, axis=-1, **p) - lrn_ref(x - eps * v, axis=-1, **p)) / (2 * eps)
    assert np.abs(fd).max() > 0.1
    np.testing.assert_allclose(jvp.numpy(), fd, rtol=1e-7, atol=1e-9 * np.abs(fd).max())
    if x.size < 500:  # against the full Jacobian from reverse mode: J @ v
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = local_response_normalization(xt, **kw, implementation=IMPL_ARG[impl])
        jac = tape.jacobian(y, xt).numpy().reshape(x.size, x.size)
        np.testing.assert_allclose(jvp.numpy().ravel(), jac @ v.ravel(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", JVP_MODES)
@pytest.mark.parametrize("impl", IMPLS)
def test_forward_accumulator_float32_against_native_jacobian(impl, mode):
    """Native TF has no forward mode (LookupError); its reverse-mode Jacobian gives J v."""
    x, v = _inputs((1, 2, 3, 11), "float32", 22)
    kw = dict(depth_radius=3, bias=2.0, alpha=0.2, beta=0.6)
    fn = functools.partial(local_response_normalization, **kw, implementation=IMPL_ARG[impl])
    jvp = _jvp(fn, x, v, mode)
    assert jvp.shape == x.shape and jvp.dtype == tf.float32
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = tf.nn.local_response_normalization(xt, **kw)
    jac = tape.jacobian(y, xt).numpy().reshape(x.size, x.size).astype(np.float64)
    expected = jac @ v.ravel().astype(np.float64)
    np.testing.assert_allclose(
        jvp.numpy().ravel(), expected, rtol=0, atol=1e-5 * np.abs(expected).max()
    )
    with pytest.raises(LookupError):  # what native does: loud
        _jvp(lambda x: tf.nn.local_response_normalization(x, **kw), x, v, "eager")


@pytest.mark.parametrize("impl", IMPLS)
def test_forward_over_reverse_hessian_vector_product(impl):
    """acc around a tape: the JVP of the gradient op itself (lrn-core's backward kernel)."""
    x, v = _inputs((2, 3, 2, 9), "float64", 23)
    xt, vt = tf.constant(x), tf.constant(v)
    with tf.autodiff.ForwardAccumulator(xt, vt) as acc:
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = _loss(
                local_response_normalization(xt, 2, 1.0, 0.5, 0.75, implementation=IMPL_ARG[impl])
            )
        g = tape.gradient(loss, xt)
    fd = _fd_hvp(x, v, **conventions.from_tensorflow(2, 1.0, 0.5, 0.75)._asdict())
    np.testing.assert_allclose(acc.jvp(g).numpy(), fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


@pytest.mark.parametrize("impl", IMPLS)
def test_forward_over_forward(impl):
    """Nested accumulators: the second directional derivative, against a mixed difference."""
    x, v = _inputs((2, 3, 4, 9), "float64", 25)
    u = np.random.default_rng(26).standard_normal(x.shape)
    xt = tf.constant(x)
    with tf.autodiff.ForwardAccumulator(xt, tf.constant(u)) as outer:
        with tf.autodiff.ForwardAccumulator(xt, tf.constant(v)) as inner:
            y = local_response_normalization(xt, 2, 1.0, 0.3, 0.75, implementation=IMPL_ARG[impl])
        jvp = inner.jvp(y)
    p = conventions.from_tensorflow(2, 1.0, 0.3, 0.75)._asdict()
    h = 1e-4

    def f(a, b):
        return lrn_ref(x + a * h * u + b * h * v, axis=-1, **p)

    fd = (f(1, 1) - f(1, -1) - f(-1, 1) + f(-1, -1)) / (4 * h * h)
    np.testing.assert_allclose(outer.jvp(jvp).numpy(), fd, rtol=0, atol=1e-6 * np.abs(fd).max())


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype,rtol", [(tf.float16, 2e-3), (tf.bfloat16, 1.6e-2)])
def test_forward_accumulator_lower_precisions(dtype, rtol, impl):
    x, v = _inputs((2, 3, 4, 9), "float32", 27, scale=1.0)
    xt, vt = tf.cast(x, dtype), tf.cast(v, dtype)
    with tf.autodiff.ForwardAccumulator(xt, vt) as acc:
        y = local_response_normalization(xt, 2, 1.0, 0.3, 0.75, implementation=IMPL_ARG[impl])
    jvp = acc.jvp(y)
    assert jvp.dtype == dtype and jvp.shape == x.shape
    x64, v64 = tf.cast(xt, tf.float64), tf.cast(vt, tf.float64)  # the rounded inputs, exactly
    with tf.autodiff.ForwardAccumulator(x64, v64) as acc64:
        y64 = local_response_normalization(x64, 2, 1.0, 0.3, 0.75, implementation="core")
    exact = acc64.jvp(y64).numpy()
    np.testing.assert_allclose(
        tf.cast(jvp, tf.float64), exact, rtol=0, atol=rtol * np.abs(exact).max()
    )


# --- vectorized_map, map_fn ---------------------------------------------------------------------


def _mapped_fwd_grad(mapper, impl, x, dy, in_function):
    fn = functools.partial(
        local_response_normalization,
        depth_radius=2,
        bias=1.0,
        alpha=0.3,
        beta=0.75,
        implementation=IMPL_ARG[impl],
    )

    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = mapper(fn, x)
        return y, tape.gradient(y, x, output_gradients=dy)

    return (tf.function(run) if in_function else run)(tf.constant(x))


MAPPERS = {"vectorized_map": tf.vectorized_map, "map_fn": lambda fn, x: tf.map_fn(fn, x)}


@pytest.mark.parametrize("in_function", [False, True])
@pytest.mark.parametrize("shape", [(3, 1, 2, 3, 9), (2, 1, 8, 8, 300)])  # TF ops / core in "auto"
@pytest.mark.parametrize("mapper", list(MAPPERS))
def test_mapped_forward_and_gradient(mapper, shape, in_function):
    x, dy = _inputs(shape, "float32", 41)
    impls = ["auto", "core"] if mapper == "map_fn" else ["auto"]
    for impl in impls:
        y, g = _mapped_fwd_grad(MAPPERS[mapper], impl, x, dy, in_function)
        xr, dyr = x.reshape((-1,) + shape[2:]), dy.reshape((-1,) + shape[2:])
        yr, gr = _reference(xr, dyr, 2, 1.0, 0.3, 0.75)
        assert_close(y.numpy().reshape(yr.shape), yr, "float32")
        assert_close(g.numpy().reshape(gr.shape), gr, "float32", scale=gr)


def test_vectorized_map_gradient_of_core_is_loud():
    """ "core" keeps the callback, which pfor runs in a while loop; TF then differentiates the
    callback itself: an error naming the way out, never EagerPyFunc's scalar 0.0."""
    x, dy = _inputs((2, 1, 2, 3, 9), "float32", 42)
    with pytest.raises(tf.errors.UnimplementedError, match="implementation='auto'"):
        _mapped_fwd_grad(tf.vectorized_map, "core", x, dy, False)


# --- Keras ----------------------------------------------------------------------------------------


class NativeLRN(keras.layers.Layer):
    """The same model with TensorFlow's own op, for comparison."""

    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def call(self, x):
        return tf.nn.local_response_normalization(x, **self.kw)


LAYER_KW = dict(depth_radius=2, bias=1.0, alpha=0.05, beta=0.75)


def _model(lrn_layer, seed=1):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(6, 3, activation="relu"),
            lrn_layer,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )


def _data(n=32):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 8, 8, 3)).astype(np.float32), rng.integers(0, 3, n)


def test_keras_fit_gives_the_native_losses():
    x, labels = _data()
    histories, weights = [], []
    for layer in (LocalResponseNormalization(**LAYER_KW), NativeLRN(**LAYER_KW)):
        model = _model(layer)
        model.compile(
            keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        h = model.fit(x, labels, batch_size=8, epochs=3, shuffle=False, verbose=0)
        histories.append(h.history["loss"])
        weights.append(model.get_weights())
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    assert histories[0][-1] < histories[0][0]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("policy", ["float64", "mixed_float16", "mixed_bfloat16"])
def test_keras_dtype_policies(policy):
    x, labels = _data(16)
    layer = LocalResponseNormalization(**LAYER_KW, dtype=policy)
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, dtype=policy),
            layer,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, dtype="float32"),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    h = model.fit(x, labels, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(h.history["loss"]))
    assert layer.compute_dtype == keras.mixed_precision.Policy(policy).compute_dtype
    # the layer alone, in its compute dtype, against the reference
    y = layer(tf.constant(x))
    assert y.dtype == layer.compute_dtype
    yr, _ = _reference(tf.cast(tf.cast(x, layer.compute_dtype), tf.float64).numpy(), x, **LAYER_KW)
    rtol = REFERENCE[layer.compute_dtype]
    np.testing.assert_allclose(tf.cast(y, tf.float64), yr, rtol=rtol, atol=1e-6)


def test_layer_config_round_trip():
    layer = LocalResponseNormalization(
        depth_radius=3, bias=2.0, alpha=1e-4, beta=0.75, implementation="native", name="lrn"
    )
    config = layer.get_config()
    assert {
        k: config[k] for k in ("depth_radius", "bias", "alpha", "beta", "implementation")
    } == dict(depth_radius=3, bias=2.0, alpha=1e-4, beta=0.75, implementation="native")
    clone = LocalResponseNormalization.from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is LocalResponseNormalization and revived.get_config() == config


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras' own
def test_keras_save_and_load(tmp_path):
    x, _ = _data(4)
    model = _model(LocalResponseNormalization(**LAYER_KW))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[1], LocalResponseNormalization)
    assert loaded.layers[1].get_config() == model.layers[1].get_config()
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", JVP_MODES)
def test_forward_accumulator_through_a_model(impl, mode):
    """conv -> LRN -> pool -> dense: acc.jvp against the native model's reverse-mode Jacobian."""
    x, _ = _data(2)
    v = np.random.default_rng(24).standard_normal(x.shape).astype(np.float32)
    model = _model(LocalResponseNormalization(**LAYER_KW, implementation=IMPL_ARG[impl]))
    native = _model(NativeLRN(**LAYER_KW))
    native.set_weights(model.get_weights())
    jvp = _jvp(model, x, v, mode)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = native(xt)
    jac = tape.jacobian(out, xt).numpy().reshape(out.shape.num_elements(), x.size)
    expected = (jac.astype(np.float64) @ v.ravel()).reshape(out.shape)
    assert jvp.shape == out.shape
    np.testing.assert_allclose(jvp.numpy(), expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("module", ["tensorflow", "keras"])
def test_keras_jit_compile_keeps_xla(module):
    """The layer supports XLA ("auto" computes TF ops there): Keras keeps jit_compile=True. Both
    layers: this module's, and lrn_core.adapters.keras's (any backend) on the TF backend."""
    Layer = importlib.import_module(f"lrn_core.adapters.{module}").LocalResponseNormalization
    x, labels = _data(16)
    losses = []
    for layer in (Layer(**LAYER_KW), NativeLRN(**LAYER_KW)):
        model = _model(layer)
        model.compile(
            keras.optimizers.SGD(0.1),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=True,
        )
        assert model.jit_compile is True
        losses.append(
            model.fit(x, labels, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
        )
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    core = _model(Layer(**LAYER_KW, implementation="core"))
    with pytest.warns(UserWarning, match="jit_compile=False"):  # Keras turns XLA off, says so
        core.compile("sgd", "mse", jit_compile=True)
    assert core.jit_compile is False


# --- export ---------------------------------------------------------------------------------------


def _saved_ops(path):
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / "saved_model.pb").read_bytes())
    ops = set()
    for graph in sm.meta_graphs:
        ops |= {n.op for n in graph.graph_def.node}
        for f in graph.graph_def.library.function:
            ops |= {n.op for n in f.node_def}
    return ops


LOAD_AND_RUN = """
import sys, numpy as np, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
np.save(sys.argv[3], m.serve(x).numpy() if hasattr(m, "serve") else m(x).numpy())
assert "lrn_core" not in sys.modules
"""


def test_keras_export_uses_the_native_op(tmp_path):
    """model.export writes TF's LRN, not a Python callback, so another process can run it."""
    x, _ = _data(4)
    model = _model(LocalResponseNormalization(**LAYER_KW))
    expected = np.asarray(model(x))
    model.export(tmp_path / "sm", format="tf_saved_model", verbose=False)
    ops = _saved_ops(tmp_path / "sm")
    assert "LRN" in ops and not _holds_kernel(ops)
    np.save(tmp_path / "x.npy", x)
    subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_AND_RUN,
            str(tmp_path / "sm"),
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npy"),
        ],
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-6)


def test_tf_saved_model_save_uses_the_native_op(tmp_path):
    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2, 2, 6], tf.float32)])
        def __call__(self, x):
            return local_response_normalization(x, 1, 1.0, 0.5, 0.75)

    module = Module()
    x = np.random.default_rng(0).standard_normal((1, 2, 2, 6)).astype(np.float32)
    expected = module(x)  # traced (with the core) before saving: saving traces again
    tf.saved_model.save(module, str(tmp_path / "m"))
    ops = _saved_ops(tmp_path / "m")
    assert "LRN" in ops and not _holds_kernel(ops)
    np.testing.assert_allclose(tf.saved_model.load(str(tmp_path / "m"))(x), expected, rtol=1e-5)


def _run_elsewhere(tmp_path, path, x):
    """Load the SavedModel in a fresh process that never imports lrn_core, and run it on x."""
    np.save(tmp_path / "x.npy", x)
    subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_AND_RUN,
            str(path),
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npy"),
        ],
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    return np.load(tmp_path / "y.npy")


SPEC = tf.TensorSpec([None, 8, 8, 6], tf.float32)  # unknown batch: "auto" traces lrn-core's kernel


def _pretraced_module(implementation):
    module = tf.Module()
    module.f = tf.function(
        lambda x: local_response_normalization(x, 2, 1.0, 0.3, 0.75, implementation=implementation)
    )
    return module, module.f.get_concrete_function(SPEC)  # traced before saving


def _input_8x8x6(seed=31):
    return np.random.default_rng(seed).standard_normal((3, 8, 8, 6)).astype(np.float32)


@pytest.mark.parametrize("implementation", ["auto", "core"])
def test_saving_a_pretraced_callback_raises_at_save_time(tmp_path, implementation):
    """The TF guide's pattern: signatures=f.get_concrete_function(...) traced before saving."""
    module, concrete = _pretraced_module(implementation)
    assert _holds_kernel(op.type for op in concrete.graph.get_operations())
    with pytest.raises(
        ValueError,
        match=r"lrn-core: a tf.function traced earlier .*"
        r"implementation='native'",
    ):
        tf.saved_model.save(module, str(tmp_path / "m"), signatures=concrete)
    with pytest.raises(ValueError, match="lrn-core: a tf.function traced earlier"):
        tf.saved_model.save(
            module,
            str(tmp_path / "m2"),
            signatures=concrete,  # whatever the
            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
        )
    # the tf.function attribute alone: the save traces it again, "auto" then takes TF's LRN
    if implementation == "core":
        with pytest.raises(ValueError, match="lrn-core: a tf.function traced earlier"):
            tf.saved_model.save(module, str(tmp_path / "m3"))
    else:
        tf.saved_model.save(module, str(tmp_path / "m3"))
        ops = _saved_ops(tmp_path / "m3")
        assert "LRN" in ops and not _holds_kernel(ops)


def test_saving_a_pretraced_native_function_works(tmp_path):
    """The way out the error names: implementation="native" traces TF's own op."""
    module, concrete = _pretraced_module("native")
    tf.saved_model.save(module, str(tmp_path / "m"), signatures=concrete)
    assert "LRN" in _saved_ops(tmp_path / "m")
    x = _input_8x8x6()
    y = _run_signature_elsewhere(tmp_path / "m", x)
    np.testing.assert_allclose(
        y, tf.nn.local_response_normalization(x, 2, 1.0, 0.3, 0.75), rtol=1e-6
    )


def test_saving_a_pretraced_small_function_works(tmp_path):
    """A static shape small enough for the band route (TF ops, no callback): the pre-traced
    function saves as it is (with its gradient), and runs in a process without lrn-core."""
    module = tf.Module()
    module.f = tf.function(lambda x: local_response_normalization(x, 2, 1.0, 0.3, 0.75))
    concrete = module.f.get_concrete_function(tf.TensorSpec([3, 8, 8, 6], tf.float32))
    tf.saved_model.save(module, str(tmp_path / "m"), signatures=concrete)
    ops = _saved_ops(tmp_path / "m")
    assert "MatMul" in ops and not _holds_kernel(ops)
    x = _input_8x8x6()
    y = _run_signature_elsewhere(tmp_path / "m", x)
    yr = lrn_ref(
        x.astype(np.float64), axis=-1, **conventions.from_tensorflow(2, 1.0, 0.3, 0.75)._asdict()
    )
    assert_close(y, yr, "float32")


LOAD_SIGNATURE = """
import sys, numpy as np, tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
f = m.signatures["serving_default"]
x = np.frombuffer(sys.stdin.buffer.read(), np.float32).reshape(3, 8, 8, 6)
out = list(f(tf.constant(x)).values())[0].numpy()
assert "lrn_core" not in sys.modules
sys.stdout.buffer.write(out.astype(np.float32).tobytes())
"""


def _run_signature_elsewhere(path, x):
    """The SavedModel's serving signature on x (3, 8, 8, 6), in a process without lrn_core."""
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_SIGNATURE, str(path), "x"],
        input=x.tobytes(),
        capture_output=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    return np.frombuffer(loaded.stdout, np.float32).reshape(x.shape)


def test_keras_export_archive_endpoint_traced_earlier_raises(tmp_path):
    layer = LocalResponseNormalization(**LAYER_KW)
    fn = tf.function(lambda x: layer(x), input_signature=[SPEC])
    x = _input_8x8x6()
    fn(x)  # called (traced with lrn-core's kernel) before it is exported
    archive = keras.export.ExportArchive()
    archive.track(layer)
    archive.add_endpoint("serve", fn)
    with pytest.raises(ValueError, match="lrn-core: a tf.function traced earlier"):
        archive.write_out(str(tmp_path / "m"), verbose=False)


def test_keras_export_archive_endpoint_traced_by_the_archive(tmp_path):
    layer = LocalResponseNormalization(**LAYER_KW)
    layer(_input_8x8x6())  # built, and called eagerly
    archive = keras.export.ExportArchive()
    archive.track(layer)
    archive.add_endpoint("serve", layer.call, input_signature=[SPEC])
    archive.write_out(str(tmp_path / "m"), verbose=False)
    assert "LRN" in _saved_ops(tmp_path / "m")
    assert not _holds_kernel(_saved_ops(tmp_path / "m"))
    x = _input_8x8x6()
    np.testing.assert_allclose(
        _run_elsewhere(tmp_path, tmp_path / "m", x),
        tf.nn.local_response_normalization(x, **LAYER_KW),
        rtol=1e-6,
    )


def test_float64_export_uses_tf_ops(tmp_path):
    """TF has no float64 LRN: the SavedModel holds the TF-ops formula and runs anywhere."""

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2, 2, 6], tf.float64)])
        def __call__(self, x):
            return local_response_normalization(x, 1, 1.0, 0.5, 0.75)

    tf.saved_model.save(Module(), str(tmp_path / "m"))
    ops = _saved_ops(tmp_path / "m")
    assert "AvgPool" in ops and not _holds_kernel(ops)
    x = np.random.default_rng(0).standard_normal((3, 2, 2, 6))
    yr = lrn_ref(x, axis=-1, **conventions.from_tensorflow(1, 1.0, 0.5, 0.75)._asdict())
    assert_close(_run_elsewhere(tmp_path, tmp_path / "m", x), yr)


def _tflite_run(content, x):
    interpreter = tf.lite.Interpreter(model_content=content)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_tflite_from_saved_model_of_model_export(tmp_path):
    x, _ = _data(2)
    model = _model(LocalResponseNormalization(**LAYER_KW))
    expected = np.asarray(model(x))
    model.export(tmp_path / "sm", format="tf_saved_model", verbose=False)
    content = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm")).convert()
    np.testing.assert_allclose(_tflite_run(content, x), expected, rtol=1e-5, atol=1e-6)


def test_tflite_from_concrete_functions():
    """A function traced with lrn-core's kernel cannot be converted: TFLite refuses it (loudly);
    small static shapes ("auto": TF ops) and implementation="native" convert and run."""
    x = _input_8x8x6()
    expected = tf.nn.local_response_normalization(x, 2, 1.0, 0.3, 0.75).numpy()
    module, concrete = _pretraced_module("auto")
    with pytest.raises(Exception, match="EagerPyFunc|LrnCoreLrn"):
        tf.lite.TFLiteConverter.from_concrete_functions([concrete], module).convert()
    small = tf.TensorSpec((1, 8, 8, 6), tf.float32)  # <= SMALL_ELEMENTS: TF ops in a graph
    for implementation, spec in [("native", SPEC), ("auto", small)]:
        f = tf.function(
            functools.partial(
                local_response_normalization,
                depth_radius=2,
                bias=1.0,
                alpha=0.3,
                beta=0.75,
                implementation=implementation,
            )
        )
        content = tf.lite.TFLiteConverter.from_concrete_functions(
            [f.get_concrete_function(spec)], f
        ).convert()
        n = spec.shape[0] or len(x)
        np.testing.assert_allclose(_tflite_run(content, x[:n]), expected[:n], rtol=1e-5, atol=1e-6)


def _wide_model():
    """The LRN input (n, 6, 6, 64) is above SMALL_ELEMENTS: "auto" traces the kernel eagerly."""
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(64, 3),
            LocalResponseNormalization(**LAYER_KW),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )


def test_tf_saved_model_save_of_a_called_keras_model(tmp_path):
    x, _ = _data(4)
    model = _wide_model()
    model.predict(x, verbose=0)  # Keras traced its predict function with the kernel
    tf.saved_model.save(model, str(tmp_path / "m"))
    ops = _saved_ops(tmp_path / "m")
    assert "LRN" in ops and not _holds_kernel(ops)


def test_tflite_from_keras_model():
    x, _ = _data(4)
    model = _wide_model()
    expected = np.asarray(model(x))
    content = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    np.testing.assert_allclose(_tflite_run(content, x), expected, rtol=1e-5, atol=1e-6)


def test_kernel_in_cond_nested_functions_and_tf_data(tmp_path):
    """The save guard lives on the outermost function: control flow and nested tf.functions
    run (and differentiate), and saving any of them pre-traced raises."""
    x = _input_8x8x6()
    expected = tf.nn.local_response_normalization(x, 2, 1.0, 0.3, 0.75).numpy()
    lrn = functools.partial(
        local_response_normalization,
        depth_radius=2,
        bias=1.0,
        alpha=0.3,
        beta=0.75,
        implementation="core",
    )
    inner = tf.function(lrn)
    fns = {
        "cond": tf.function(lambda x: tf.cond(tf.reduce_sum(x) > -1e9, lambda: lrn(x), lambda: x)),
        "nested": tf.function(lambda x: inner(x) * 1.0),
        "map_fn": tf.function(lambda x: tf.map_fn(lambda xi: lrn(xi[None])[0], x)),
    }
    for key, fn in fns.items():
        np.testing.assert_allclose(fn(x), expected, rtol=1e-5, atol=1e-6, err_msg=key)
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = fn(xt)
        _, gn = _forward_and_grad(
            tf.nn.local_response_normalization,
            x,
            np.ones_like(x),
            depth_radius=2,
            bias=1.0,
            alpha=0.3,
            beta=0.75,
        )
        np.testing.assert_allclose(tape.gradient(y, xt), gn, rtol=1e-4, atol=1e-5, err_msg=key)
        module = tf.Module()
        module.fn = fn
        with pytest.raises(ValueError, match="lrn-core: a tf.function traced earlier"):
            tf.saved_model.save(
                module, str(tmp_path / key), signatures=fn.get_concrete_function(SPEC)
            )
    ds = tf.data.Dataset.from_tensor_slices(x).batch(2).map(lrn)
    np.testing.assert_allclose(
        np.concatenate([b.numpy() for b in ds]), expected, rtol=1e-5, atol=1e-6
    )


def test_private_tensorflow_names_are_in_compat_and_resolve():
    """Every private TensorFlow name the adapter uses comes through ``_compat`` (one module to
    update when TensorFlow moves one), and each resolves on this TensorFlow (the tf rows run the
    oldest and newest supported versions)."""
    import ast
    import pathlib

    from lrn_core.adapters.tensorflow import _compat

    for name in _compat.__all__:
        assert getattr(_compat, name) is not None, name
    assert callable(_compat.record.record_operation)
    assert callable(_compat.in_save_context) and _compat.in_save_context() is False
    root = pathlib.Path(lrn_tf.__file__).parent
    for path in root.glob("*.py"):
        if path.name == "_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("tensorflow.python"), (path.name, node.module)
