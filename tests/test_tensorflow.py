"""The TensorFlow adapter against native TF, the float64 reference and finite differences.

Native TF (2.21, CPU) computes LRN in float32 and float16 only, and its gradient has no gradient;
the adapter adds float64, bfloat16 and gradients of any order, and falls back to the native op
where a Python callback cannot go (SavedModel export, XLA).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import TOL, assert_close  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from reference import lrn_grad_ref, lrn_ref  # noqa: E402

from lrn_core import conventions  # noqa: E402

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
lrn_tf = pytest.importorskip("lrn_core.adapters.tensorflow")
from lrn_core.adapters.tensorflow import (  # noqa: E402
    LocalResponseNormalization,
    local_response_normalization,
)

#: bfloat16 is computed in float32 and rounded once: half an ulp (2**-8) plus a little
BF16_RTOL = 1.25 * 2.0**-8
#: native TF against the exact result: float32 sums in float32; float16 is computed in float16
NATIVE_RTOL = {"float32": 1e-5, "float16": 1e-2}

PARAMS = [  # (bias, alpha, beta), TF's convention
    (1.0, 1.0, 0.5),        # TF's defaults
    (2.0, 1e-4, 0.75),      # AlexNet
    (0.5, 0.3, 1.0),
    (1.0, 0.05, 0.6),       # a beta without a closed form
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

@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("r", [0, 1, 2, 5, 7])
@pytest.mark.parametrize("channels", [1, 3, 8, 33])
def test_matches_native_and_reference(dtype, r, channels):
    for i, (bias, alpha, beta) in enumerate(PARAMS):
        kw = dict(depth_radius=r, bias=bias, alpha=alpha, beta=beta)
        x, dy = _inputs((2, 3, 4, channels), dtype, seed=100 * r + channels + i)
        y, g = _forward_and_grad(local_response_normalization, x, dy, **kw)
        yn, gn = _forward_and_grad(tf.nn.local_response_normalization, x, dy, **kw)
        yr, gr = _reference(x, dy, **kw)
        assert y.dtype == g.dtype == dtype and y.shape == g.shape == x.shape
        assert_close(y.numpy(), yr, dtype)
        assert_close(g.numpy(), gr, dtype, scale=gr)
        rtol = NATIVE_RTOL[dtype]
        np.testing.assert_allclose(y.numpy().astype(np.float64), yn.numpy(), rtol=rtol, atol=1e-6)
        np.testing.assert_allclose(g.numpy().astype(np.float64), gn.numpy(), rtol=0,
                                   atol=rtol * np.abs(gr).max())


@pytest.mark.parametrize("r", [0, 2, 5])
def test_float64_against_reference(r):
    for i, (bias, alpha, beta) in enumerate(PARAMS):
        x, dy = _inputs((2, 5, 3, 13), "float64", seed=r + i)
        y, g = _forward_and_grad(local_response_normalization, x, dy, depth_radius=r, bias=bias,
                                 alpha=alpha, beta=beta)
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
        yr, gr = _reference(tf.cast(xb, tf.float64).numpy(), tf.cast(dyb, tf.float64).numpy(),
                            r, bias, alpha, beta)
        np.testing.assert_allclose(tf.cast(y, tf.float64).numpy(), yr, rtol=BF16_RTOL, atol=1e-30)
        np.testing.assert_allclose(tf.cast(g, tf.float64).numpy(), gr, rtol=BF16_RTOL,
                                   atol=BF16_RTOL * np.abs(gr).max())


@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(st.integers(0, 3), st.integers(1, 4), st.integers(1, 4),
                       st.integers(1, 20)),
       r=st.integers(0, 12), bias=st.floats(0.1, 3.0), alpha=st.floats(0.0, 5.0),
       beta=st.sampled_from([0.5, 0.75, 1.0, 0.3, 2.0]), seed=st.integers(0, 2**16))
def test_property_float64(shape, r, bias, alpha, beta, seed):
    """Any shape (an empty batch too), radius larger than the channels, any parameters."""
    x, dy = _inputs(shape, "float64", seed)
    y, g = _forward_and_grad(local_response_normalization, x, dy, depth_radius=r, bias=bias,
                             alpha=alpha, beta=beta)
    yr, gr = _reference(x, dy, r, bias, alpha, beta)
    assert_close(y.numpy(), yr)
    assert_close(g.numpy(), gr, scale=gr)


def test_accepts_numpy_and_lists_like_native():
    x = np.random.default_rng(0).standard_normal((1, 2, 2, 5)).astype(np.float32)
    for inp in (x, x.tolist()):
        y = local_response_normalization(inp, 1, 1.0, 0.5, 0.75)
        np.testing.assert_allclose(y.numpy(),
                                   tf.nn.local_response_normalization(inp, 1, 1.0, 0.5, 0.75),
                                   rtol=1e-6)


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
        tf.TensorSpec(None, tf.float32))
    x = np.ones((1, 2, 2, 3), np.float32)
    np.testing.assert_allclose(f(tf.constant(x)), tf.nn.local_response_normalization(x, 1))
    with pytest.raises(tf.errors.InvalidArgumentError, match="input must be 4-D"):
        f(tf.ones((2, 2, 3)))


@pytest.mark.parametrize("dtype", [tf.int32, tf.int64, tf.uint8, tf.complex64, tf.bool])
def test_other_dtypes_are_refused(dtype):
    with pytest.raises(TypeError, match=f"float16, bfloat16, float32 or float64, got {dtype.name}"):
        local_response_normalization(tf.zeros((1, 2, 2, 3), dtype))


@pytest.mark.parametrize("kw,error,match", [
    (dict(depth_radius=-1), ValueError, "depth_radius must be an integer >= 0, got -1"),
    (dict(depth_radius=1.5), TypeError, "depth_radius must be an integer"),
    (dict(depth_radius=True), TypeError, "depth_radius must be an integer"),
    (dict(bias="1"), TypeError, "bias must be a real number"),
    (dict(alpha=float("nan")), ValueError, "alpha must be finite"),
    (dict(beta=float("inf")), ValueError, "beta must be finite"),
    (dict(implementation="fast"), ValueError, "implementation must be one of"),
])
def test_bad_parameters(kw, error, match):
    with pytest.raises(error, match=match):
        local_response_normalization(tf.ones((1, 2, 2, 3)), **kw)
    with pytest.raises(error, match=match):
        LocalResponseNormalization(**kw)


# --- graphs --------------------------------------------------------------------------------------

def test_tf_function_static_shapes_and_same_results():
    @tf.function
    def fwd_grad(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = local_response_normalization(x, 2, 1.0, 0.3, 0.75, name="my_lrn")
        return y, tape.gradient(y, x, output_gradients=dy)

    spec = tf.TensorSpec([None, 4, 5, 7], tf.float32)
    concrete = fwd_grad.get_concrete_function(spec, spec)
    for out in concrete.structured_outputs:
        assert out.shape.as_list() == [None, 4, 5, 7] and out.dtype == tf.float32
    ops = {op.name for op in concrete.graph.get_operations()}
    assert any(name.startswith("my_lrn/") for name in ops)
    x, dy = _inputs((3, 4, 5, 7), "float32", 0)
    y, g = concrete(tf.constant(x), tf.constant(dy))
    ye, ge = _forward_and_grad(local_response_normalization, x, dy, depth_radius=2, bias=1.0,
                               alpha=0.3, beta=0.75)
    np.testing.assert_array_equal(y, ye)
    np.testing.assert_array_equal(g, ge)


def test_xla_auto_falls_back_to_native():
    x, dy = _inputs((2, 3, 4, 9), "float32", 1)
    native = tf.nn.local_response_normalization(x, 2, 1.0, 0.3, 0.75)

    def fwd_grad(x, implementation):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = local_response_normalization(x, 2, 1.0, 0.3, 0.75, implementation=implementation)
        return y, tape.gradient(y, x, output_gradients=dy)

    y, g = tf.function(lambda x: fwd_grad(x, "auto"), jit_compile=True)(tf.constant(x))
    _, gn = _forward_and_grad(tf.nn.local_response_normalization, x, dy, depth_radius=2, bias=1.0,
                              alpha=0.3, beta=0.75)
    np.testing.assert_allclose(y, native, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, gn, rtol=1e-5, atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="PyFunc"):
        tf.function(lambda x: fwd_grad(x, "core"), jit_compile=True)(tf.constant(x))
    with pytest.raises(TypeError, match="no float64 LRN"):
        tf.function(lambda x: fwd_grad(x, "auto"), jit_compile=True)(tf.constant(x, tf.float64))


@pytest.mark.parametrize("dtype", [tf.float32, tf.float16, tf.bfloat16])
def test_native_implementation(dtype):
    x = tf.cast(_inputs((2, 3, 4, 9), "float32", 2)[0], dtype)
    y = local_response_normalization(x, 3, 1.0, 0.3, 0.75, implementation="native")
    ours = local_response_normalization(x, 3, 1.0, 0.3, 0.75)
    assert y.dtype == dtype
    rtol = {tf.float32: 1e-5, tf.float16: 1e-2, tf.bfloat16: 2 * BF16_RTOL}[dtype]
    np.testing.assert_allclose(tf.cast(y, tf.float64), tf.cast(ours, tf.float64), rtol=rtol,
                               atol=1e-6)
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
        return lrn_grad_ref(np.cos(lrn_ref(x, size, alpha, beta, k, -1, before)), x, size, alpha,
                            beta, k, -1, before)
    return (grad(x + eps * v) - grad(x - eps * v)) / (2 * eps)


@pytest.mark.parametrize("in_function", [False, True])
@pytest.mark.parametrize("r,bias,alpha,beta", [(2, 1.0, 0.5, 0.75), (1, 0.5, 2.0, 0.5),
                                                (4, 2.0, 0.1, 1.3)])
def test_hessian_vector_product_vs_finite_differences(in_function, r, bias, alpha, beta):
    x, v = _inputs((2, 3, 2, 9), "float64", r)

    def fn(x):
        return local_response_normalization(x, r, bias, alpha, beta)

    hvp = tf.function(lambda x, v: _hvp(fn, x, v)) if in_function else lambda x, v: _hvp(fn, x, v)
    h = hvp(tf.constant(x), tf.constant(v)).numpy()
    fd = _fd_hvp(x, v, **conventions.from_tensorflow(r, bias, alpha, beta)._asdict())
    np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


@pytest.mark.parametrize("size,before", [(4, 2), (4, 1), (4, 0), (3, 2), (6, 5)])
def test_hessian_vector_product_uneven_windows(size, before):
    """The transposed window (TF's centred windows never need it): the core op directly."""
    p = conventions.LRNParams(size, 1.5, 0.75, 1.0, before)
    x, v = _inputs((2, 2, 3, 7), "float64", size + before)
    h = _hvp(lambda x: lrn_tf._lrn(x, p), tf.constant(x), tf.constant(v)).numpy()
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
            y = local_response_normalization(xt, 2, 1.0, 0.4, 0.75)
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
        return local_response_normalization(x, 1, 1.0, 0.7, 0.75)

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


@pytest.mark.parametrize("dtype,rtol", [(tf.float32, 1e-6), (tf.float16, 8e-4),
                                        (tf.bfloat16, 8e-3)])
def test_second_order_in_lower_precisions(dtype, rtol):
    """float16 and bfloat16 compute in float32 too: about an ulp (float16 compute: 3 ulps)."""
    x, v = _inputs((2, 2, 2, 9), "float32", 8, scale=1.0)
    x, v = tf.cast(x, dtype), tf.cast(v, dtype)

    def fn(x):
        return local_response_normalization(x, 2, 1.0, 0.5, 0.75)

    h = _hvp(fn, x, v)
    assert h.dtype == dtype
    exact = _hvp(fn, tf.cast(x, tf.float64), tf.cast(v, tf.float64)).numpy()
    np.testing.assert_allclose(tf.cast(h, tf.float64), exact, rtol=0,
                               atol=rtol * np.abs(exact).max())


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
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(6, 3, activation="relu"),
        lrn_layer,
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3),
    ])


def _data(n=32):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 8, 8, 3)).astype(np.float32), rng.integers(0, 3, n)


def test_keras_fit_gives_the_native_losses():
    x, labels = _data()
    histories, weights = [], []
    for layer in (LocalResponseNormalization(**LAYER_KW), NativeLRN(**LAYER_KW)):
        model = _model(layer)
        model.compile(keras.optimizers.SGD(0.1),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        h = model.fit(x, labels, batch_size=8, epochs=3, shuffle=False, verbose=0)
        histories.append(h.history["loss"])
        weights.append(model.get_weights())
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    assert histories[0][-1] < histories[0][0]
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("policy", ["float64", "mixed_float16", "mixed_bfloat16"])
def test_keras_dtype_policies(policy):
    x, labels = _data(16)
    layer = LocalResponseNormalization(**LAYER_KW, dtype=policy)
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8, 8, 3)),
                              keras.layers.Conv2D(4, 3, dtype=policy), layer,
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, dtype="float32")])
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    h = model.fit(x, labels, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(h.history["loss"]))
    assert layer.compute_dtype == keras.mixed_precision.Policy(policy).compute_dtype
    # the layer alone, in its compute dtype, against the reference
    y = layer(tf.constant(x))
    assert y.dtype == layer.compute_dtype
    yr, _ = _reference(tf.cast(tf.cast(x, layer.compute_dtype), tf.float64).numpy(), x,
                       **LAYER_KW)
    rtol = {"float64": 1e-12, "float16": TOL[np.dtype(np.float16)][0],
            "bfloat16": BF16_RTOL}[layer.compute_dtype]
    np.testing.assert_allclose(tf.cast(y, tf.float64), yr, rtol=rtol, atol=1e-6)


def test_layer_config_round_trip():
    layer = LocalResponseNormalization(depth_radius=3, bias=2.0, alpha=1e-4, beta=0.75,
                                       implementation="native", name="lrn")
    config = layer.get_config()
    assert {k: config[k] for k in ("depth_radius", "bias", "alpha", "beta", "implementation")} == \
        dict(depth_radius=3, bias=2.0, alpha=1e-4, beta=0.75, implementation="native")
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
"""


def test_keras_export_uses_the_native_op(tmp_path):
    """model.export writes TF's LRN, not a Python callback, so another process can run it."""
    x, _ = _data(4)
    model = _model(LocalResponseNormalization(**LAYER_KW))
    expected = np.asarray(model(x))
    model.export(tmp_path / "sm", format="tf_saved_model", verbose=False)
    ops = _saved_ops(tmp_path / "sm")
    assert "LRN" in ops and not any("PyFunc" in op for op in ops)
    np.save(tmp_path / "x.npy", x)
    subprocess.run([sys.executable, "-c", LOAD_AND_RUN, str(tmp_path / "sm"),
                    str(tmp_path / "x.npy"), str(tmp_path / "y.npy")], check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
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
    assert "LRN" in ops and not any("PyFunc" in op for op in ops)
    np.testing.assert_allclose(tf.saved_model.load(str(tmp_path / "m"))(x), expected, rtol=1e-5)


def test_core_implementation_exports_a_python_callback(tmp_path):
    """implementation="core" keeps lrn-core in the graph: the SavedModel holds a PyFunc."""
    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2, 2, 6], tf.float32)])
        def __call__(self, x):
            return local_response_normalization(x, 1, implementation="core")

    tf.saved_model.save(Module(), str(tmp_path / "m"))
    assert any("PyFunc" in op for op in _saved_ops(tmp_path / "m"))


def test_float64_export_is_a_clear_error(tmp_path):
    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2, 2, 6], tf.float64)])
        def __call__(self, x):
            return local_response_normalization(x, 1)

    with pytest.raises(TypeError, match="no float64 LRN op"):
        tf.saved_model.save(Module(), str(tmp_path / "m"))
