"""The compiled TF ops (``LrnCoreLrn``, ``LrnCoreLrnGrad``: _simd/lrn_tf_op.c) as TF tests its
own ops: against TF's LRN and LRNGrad, the float64 reference, TF's gradient checker (first and
second order), in eager and tf.function, and with bad inputs (TF's errors naming the argument,
never a crash). Loading is lazy and a missing library is reported, in fresh interpreters."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from reference import lrn_grad_ref, lrn_ref

tf = pytest.importorskip("tensorflow")

from lrn_core.adapters.tensorflow import _compiled as _tf_op  # noqa: E402

pytestmark = pytest.mark.skipif(_tf_op.load() is None, reason=f"TF op: {_tf_op.status()}")

# (size, alpha, beta, k, before) in lrn-core's convention
PARAMS = [
    (5, 0.7, 0.75, 1.3, 2),
    (4, 0.3, 0.5, 2.0, 2),
    (4, 0.3, 0.5, 2.0, 1),
    (1, 1.0, 1.0, 1.0, 0),
]
SHAPES = [(2, 3, 4, 7), (5, 9), (13,), (1, 2, 2, 2, 6), (3, 4)]


def _x(shape, dtype, seed=0):
    return tf.constant(np.random.default_rng(seed).standard_normal(shape), dtype)


@pytest.mark.parametrize("p", PARAMS)
@pytest.mark.parametrize("shape", SHAPES)
def test_float64_forward_and_gradient_equal_the_reference(p, shape):
    size, alpha, beta, k, before = p
    x, dy = _x(shape, tf.float64), _x(shape, tf.float64, 1)
    kw = dict(size=size, alpha=alpha, beta=beta, k=k, before=before, axis=-1)
    np.testing.assert_allclose(_tf_op.lrn(x, p), lrn_ref(x.numpy(), **kw), rtol=1e-14)
    dx = _tf_op.lrn_grad(dy, x, p)
    np.testing.assert_allclose(
        dx, lrn_grad_ref(dy.numpy(), x.numpy(), **kw), rtol=1e-12, atol=1e-14
    )


@pytest.mark.parametrize("depth_radius", [0, 2, 5])
def test_float32_equals_tf_lrn_and_lrngrad(depth_radius):
    bias, alpha, beta = 1.5, 1e-2, 0.75
    x, dy = _x((4, 9, 9, 16), tf.float32), _x((4, 9, 9, 16), tf.float32, 1)
    size = 2 * depth_radius + 1
    p = (size, alpha * size, beta, bias, depth_radius)
    y = tf.nn.local_response_normalization(x, depth_radius, bias, alpha, beta)
    np.testing.assert_allclose(_tf_op.lrn(x, p), y, rtol=2e-6, atol=1e-7)
    native = tf.raw_ops.LRNGrad(
        input_grads=dy,
        input_image=x,
        output_image=y,
        depth_radius=depth_radius,
        bias=bias,
        alpha=alpha,
        beta=beta,
    )
    np.testing.assert_allclose(_tf_op.lrn_grad(dy, x, p), native, rtol=1e-4, atol=1e-6)


def test_gradient_checker_first_and_second_order():
    p = (4, 0.6, 0.75, 1.2, 1)
    x = _x((2, 3, 5), tf.float64)

    theoretical, numerical = tf.test.compute_gradient(lambda v: _tf_op.lrn(v, p), [x], delta=1e-5)
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-6, atol=1e-8)

    def gradient(v):  # the first-order gradient as a function: its Jacobian is second order
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = _tf_op.lrn(v, p)
        return tape.gradient(y, v, output_gradients=tf.sin(v))

    theoretical, numerical = tf.test.compute_gradient(gradient, [x], delta=1e-5)
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-6, atol=1e-8)


def test_tf_function_runs_the_op_and_no_python():
    p = PARAMS[0]
    x = _x((2, 4, 4, 8), tf.float32)

    @tf.function(autograph=False)
    def fb(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = _tf_op.lrn(v, p)
        return y, tape.gradient(y, v, output_gradients=tf.cos(v))

    y, dx = fb(x)
    np.testing.assert_array_equal(y, _tf_op.lrn(x, p))
    np.testing.assert_array_equal(dx, _tf_op.lrn_grad(tf.cos(x), x, p))
    ops = {op.type for op in fb.get_concrete_function(x).graph.get_operations()}
    assert {"LrnCoreLrn", "LrnCoreLrnGrad"} <= ops
    assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}, ops


def test_empty_input():
    y = _tf_op.lrn(tf.zeros((0, 5), tf.float32), PARAMS[0])
    assert y.shape == (0, 5) and y.dtype == tf.float32


def test_bad_inputs_raise_tf_errors_naming_the_argument():
    p = PARAMS[0]
    x = _x((2, 3), tf.float64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="LrnCoreLrnGrad: dy must have"):
        _tf_op.lrn_grad(_x((3, 2), tf.float64), x, p)
    with pytest.raises(tf.errors.InvalidArgumentError, match="'before' must be in"):
        _tf_op.lrn(x, (3, 1.0, 0.5, 1.0, 3))
    with pytest.raises(tf.errors.InvalidArgumentError, match="rank >= 1"):
        _tf_op.lrn(tf.constant(1.0, tf.float64), p)
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError)):
        _tf_op.lrn(tf.constant([[1, 2]], tf.int32), p)


def _child(code):
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stdout + out.stderr


def test_loading_is_lazy_and_leaves_tf_configurable():
    _child(
        """
        import tensorflow as tf
        from lrn_core.adapters.tensorflow import _compiled as _tf_op
        assert _tf_op.status() == "not loaded yet", _tf_op.status()
        tf.config.threading.set_intra_op_parallelism_threads(1)  # TF not initialised yet
        assert _tf_op.load() is not None and _tf_op.status() == "", _tf_op.status()
        print("OK")
        """
    )


def test_a_missing_library_is_reported():
    _child(
        """
        from lrn_core.adapters.tensorflow import _compiled as _tf_op
        _tf_op._library = lambda: None
        assert _tf_op.load() is None
        assert "without its TF op library" in _tf_op.status(), _tf_op.status()
        print("OK")
        """
    )


def test_lrn_core_info_reports_the_op():
    out = subprocess.run(
        [sys.executable, "-m", "lrn_core", "info"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(None, 1) for line in out.stdout.splitlines() if line.strip())
    assert lines["tf_op_library"].startswith("_lrn_tf_op"), out.stdout
    assert lines["tf_op"].strip() == "loaded", out.stdout
