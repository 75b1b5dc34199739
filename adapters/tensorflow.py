"""TensorFlow adapter: ``tf.nn.local_response_normalization`` and a Keras 3 layer on lrn-core.

Drop-in replacements for TensorFlow's LRN (same signature, same NHWC semantics, same defaults)::

    >>> import tensorflow as tf
    >>> from lrn_core.adapters.tensorflow import local_response_normalization
    >>> x = tf.random.normal((2, 8, 8, 16))                          # NHWC
    >>> y = local_response_normalization(x, depth_radius=2, bias=1.0, alpha=1e-4, beta=0.75)
    >>> y.shape
    TensorShape([2, 8, 8, 16])

    >>> import keras
    >>> from lrn_core.adapters.tensorflow import LocalResponseNormalization
    >>> model = keras.Sequential([
    ...     keras.Input((8, 8, 3)), keras.layers.Conv2D(16, 3),
    ...     LocalResponseNormalization(depth_radius=2, alpha=1e-4, beta=0.75)])

Semantics are TensorFlow's: 4-D input, channels last, window of ``2 * depth_radius + 1`` channels
centred on each channel, ``alpha`` *not* divided by the window (lrn-core's own convention divides
it; the mapping lives in :func:`lrn_core.conventions.from_tensorflow`).

Beyond the native op (TF 2.21 on CPU): float64 and bfloat16 inputs, float16 computed in float32
and rounded once, and gradients of any order (TF's ``LRNGrad`` has no gradient).

How it is built: the forward and the input gradient are lrn-core kernels called through
``tf.numpy_function`` inside ``tf.custom_gradient``, with static shapes and dtypes set, so it
runs eagerly, inside ``tf.function`` and inside ``model.fit``. The gradient op has its own
custom gradient: the same input-gradient formula written with TensorFlow ops around a channel
window sum, itself a custom-gradient op whose gradient is the transposed window sum. So nested
``tf.GradientTape``s differentiate through it to any order.

Export: a ``numpy_function`` calls back into this Python process. It cannot be compiled by XLA,
and a SavedModel that contains one loads but fails when called in any other process
("Could not find callback with key=pyfunc_N"). Hence ``implementation``:

``"auto"`` (default)
    lrn-core, except while TensorFlow traces a graph for a SavedModel (``tf.saved_model.save``,
    ``model.export``) or an XLA-compiled function (``jit_compile=True``): there the native
    ``tf.nn.local_response_normalization`` is used (bfloat16 through float32). float64 cannot be
    exported (TensorFlow has no float64 LRN): a clear error says so.
``"core"``
    always lrn-core; for use in this process only.
``"native"``
    always TensorFlow's own op (float16, float32; bfloat16 through float32).
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf

from .. import _buffers, conventions
from .._api import _check_int, _check_real, check_params, lrn, lrn_backward, window_sum

try:  # private TensorFlow modules, used only to detect export and XLA tracing
    from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext
    from tensorflow.python.saved_model.save_context import in_save_context
except ImportError:  # pragma: no cover - moved in a future TensorFlow: "auto" means "core"
    GraphOrParentsInXlaContext = in_save_context = None

__all__ = ["local_response_normalization", "LocalResponseNormalization", "IMPLEMENTATIONS"]

IMPLEMENTATIONS = ("auto", "core", "native")
#: input dtypes accepted; float16 goes to the core as it is, bfloat16 through float32
DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)
#: dtypes TensorFlow's own LRN kernel computes on CPU
NATIVE_DTYPES = (tf.float16, tf.float32)


# --- the public function ------------------------------------------------------------------------

@tf.autograph.experimental.do_not_convert
def local_response_normalization(input, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, name=None,
                                 *, implementation="auto"):
    """``tf.nn.local_response_normalization`` computed by lrn-core.

    ``sqr_sum[a, b, c, d] = sum(input[a, b, c, d - depth_radius : d + depth_radius + 1] ** 2)``
    ``output = input / (bias + alpha * sqr_sum) ** beta``

    Parameters
    ----------
    input : 4-D tensor (NHWC) of float16, bfloat16, float32 or float64
    depth_radius : int >= 0
        Half-width of the window: ``2 * depth_radius + 1`` channels.
    bias, alpha, beta : float
        As in TensorFlow: ``alpha`` multiplies the plain sum of squares (not divided by the
        window).
    name : str, optional
        Name scope of the ops.
    implementation : {"auto", "core", "native"}, keyword-only
        See the module docstring: "auto" uses lrn-core and falls back to the native op while
        tracing for a SavedModel or XLA.

    Returns
    -------
    Tensor of the shape and dtype of ``input``.

    Examples
    --------
    >>> x = tf.reshape(tf.range(6, dtype=tf.float64), (1, 1, 2, 3))   # float64: not in native TF
    >>> local_response_normalization(x, depth_radius=1, alpha=1.0, beta=1.0)[0, 0, 0].numpy()
    array([0.        , 0.16666667, 0.33333333])
    """
    params = _tf_params(depth_radius, bias, alpha, beta)
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    with tf.name_scope(name or "local_response_normalization"):
        x = tf.convert_to_tensor(input)
        if x.dtype not in DTYPES:
            raise TypeError("input must have dtype float16, bfloat16, float32 or float64, got "
                            f"{x.dtype.name}")
        x = _check_rank(x)
        if implementation == "native" or implementation == "auto" and _exporting():
            return _native(x, *params)
        core = conventions.LRNParams(*check_params(*conventions.from_tensorflow(*params)))
        if x.dtype == tf.bfloat16:  # the core has no bfloat16: compute in float32, round once
            return tf.cast(_lrn(tf.cast(x, tf.float32), core), tf.bfloat16)
        return _lrn(x, core)


def _tf_params(depth_radius, bias, alpha, beta):
    """Validate TensorFlow's parameters: (depth_radius, bias, alpha, beta) as int and floats."""
    return (_check_int("depth_radius", depth_radius, minimum=0), _check_real("bias", bias),
            _check_real("alpha", alpha), _check_real("beta", beta))


def _check_rank(x):
    """TensorFlow's LRN takes 4-D input only; checked at trace time, or at run time if unknown."""
    rank = x.shape.rank
    if rank is None:
        with tf.control_dependencies([tf.debugging.assert_rank(x, 4, message="input must be 4-D")]):
            return tf.identity(x)
    if rank != 4:
        raise ValueError(f"input must be 4-dimensional (NHWC, channels last), got rank {rank} with "
                         f"shape {x.shape}")
    return x


def _exporting():
    """True while tracing for a SavedModel or an XLA-compiled function (no Python callbacks)."""
    if in_save_context is None:
        return False
    if in_save_context():
        return True
    graph = tf.compat.v1.get_default_graph()
    return not tf.executing_eagerly() and GraphOrParentsInXlaContext(graph)


def _native(x, depth_radius, bias, alpha, beta):
    """TensorFlow's own op, serialisable and XLA-compatible (float16, float32; bfloat16 via f32)."""
    if x.dtype == tf.float64:
        raise TypeError(
            "TensorFlow has no float64 LRN op, so a float64 lrn-core LRN cannot be exported to a "
            "SavedModel or compiled with XLA (lrn-core calls Python). Cast to float32 around the "
            "layer for export, or save with model.save('model.keras') and run it from Python.")
    nx = x if x.dtype in NATIVE_DTYPES else tf.cast(x, tf.float32)  # bfloat16
    y = tf.nn.local_response_normalization(nx, depth_radius, bias, alpha, beta)
    return tf.cast(y, x.dtype)


# --- the ops: lrn-core kernels with custom gradients --------------------------------------------
# ``p`` is a normalised lrn_core.conventions.LRNParams (size, alpha, beta, k, before); the channel
# axis is the last one. These work for any rank, window size and placement (the tests use even
# windows to exercise the transposed window, which TensorFlow's centred windows never need).

def _numpy_op(fn, inputs, like, name):
    """``fn`` as a graph op on NumPy arrays, with the static shape and dtype of ``like``.

    ``tf.py_function`` with DLPack both ways: the kernels read TensorFlow's buffers and TensorFlow
    adopts the NumPy result, with no copy either way (``tf.numpy_function`` copies the inputs
    and the output, which costs more than the LRN itself on large tensors).
    """
    def call(*tensors):
        arrays = [np.from_dlpack(t) if t.shape.num_elements() else t.numpy() for t in tensors]
        if arrays[-1].size == 0:
            return tf.convert_to_tensor(fn(*arrays))
        out = _buffers.empty(arrays[-1].shape, arrays[-1].dtype)  # 64-byte aligned, for Eigen
        fn(*arrays, out=out)
        return tf.experimental.dlpack.from_dlpack(out.__dlpack__())

    out = tf.py_function(call, inputs, Tout=like.dtype, name=name)
    out.set_shape(like.shape)
    return out


def _lrn(x, p):
    """LRN forward (lrn-core kernel); its gradient is :func:`_lrn_backward`."""
    @tf.custom_gradient
    def lrn_op(x):
        fn = functools.partial(lrn, **p._asdict(), axis=-1)
        return _numpy_op(fn, [x], x, "lrn_core_lrn"), lambda dy: _lrn_backward(dy, x, p)
    return lrn_op(x)


def _lrn_backward(dy, x, p):
    """Input gradient (lrn-core kernel); its gradient differentiates :func:`_lrn_backward_tf`."""
    @tf.custom_gradient
    def lrn_backward_op(dy, x):
        fn = functools.partial(lrn_backward, **p._asdict(), axis=-1)
        dx = _numpy_op(fn, [dy, x], x, "lrn_core_lrn_backward")

        def grad(ddx):
            with tf.GradientTape() as tape:
                tape.watch([dy, x])
                dx_tf = _lrn_backward_tf(dy, x, p)
            return tape.gradient(dx_tf, [dy, x], output_gradients=ddx)
        return dx, grad
    return lrn_backward_op(dy, x)


def _lrn_backward_tf(dy, x, p):
    """The input gradient written with TF ops and :func:`_window_sum`: differentiable to any order.

    ``dx = dy * s**-beta - 2 * alpha * beta / size * x * W'(dy * x * s**(-beta - 1))`` with
    ``s = k + alpha / size * W(x**2)``, ``W`` the window sum and ``W'`` its transpose.
    """
    size, alpha, beta, k, before = p
    dtype = x.dtype
    if dtype == tf.float16:  # as the core does: compute in float32, round at the end
        dy, x = tf.cast(dy, tf.float32), tf.cast(x, tf.float32)
    s = k + (alpha / size) * _window_sum(x * x, size, before)
    t = tf.pow(s, -beta)
    dx = dy * t - (2 * alpha * beta / size) * x * _window_sum(dy * x * t / s, size,
                                                              size - 1 - before)
    return tf.cast(dx, dtype)


def _window_sum(v, size, before):
    """Channel window sum (lrn-core kernel); linear, its gradient is the transposed window sum."""
    @tf.custom_gradient
    def window_sum_op(v):
        fn = functools.partial(window_sum, size=size, axis=-1, before=before)
        return (_numpy_op(fn, [v], v, "lrn_core_window_sum"),
                lambda g: _window_sum(g, size, size - 1 - before))
    return window_sum_op(v)


# --- the Keras layer ----------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="lrn_core")
class LocalResponseNormalization(keras.layers.Layer):
    """Keras 3 layer (TensorFlow backend) applying :func:`local_response_normalization`.

    Parameters are TensorFlow's (``alpha`` not divided by the window ``2 * depth_radius + 1``);
    input 4-D, channels last. The layer has no weights; it computes in its dtype policy's compute
    dtype (float16, bfloat16, float32 or float64). ``get_config``/``from_config`` round-trip, and
    models save and load with ``model.save("m.keras")`` / ``keras.models.load_model`` once this
    module is imported. ``model.export(path)`` writes a SavedModel with TensorFlow's native op
    (``implementation="auto"``, see the module docstring).

    Examples
    --------
    >>> import keras
    >>> model = keras.Sequential([
    ...     keras.Input((32, 32, 3)),
    ...     keras.layers.Conv2D(16, 3, activation="relu"),
    ...     LocalResponseNormalization(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """

    def __init__(self, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, implementation="auto",
                 **kwargs):
        super().__init__(**kwargs)
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError("lrn_core.adapters.tensorflow.LocalResponseNormalization needs the "
                               f"TensorFlow backend of Keras, got {keras.backend.backend()!r}")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
        self.depth_radius, self.bias, self.alpha, self.beta = _tf_params(depth_radius, bias,
                                                                         alpha, beta)
        self.implementation = implementation
        self.supports_jit = False  # keep Keras' jit_compile="auto" off XLA (the core calls Python)

    def call(self, inputs):
        return local_response_normalization(inputs, self.depth_radius, self.bias, self.alpha,
                                            self.beta, implementation=self.implementation)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "depth_radius": self.depth_radius, "bias": self.bias,
                "alpha": self.alpha, "beta": self.beta, "implementation": self.implementation}
