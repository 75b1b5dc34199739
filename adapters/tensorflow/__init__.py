"""TensorFlow adapter: ``tf.nn.local_response_normalization`` on lrn-core, and the Keras layer.

Drop-in replacement for TensorFlow's LRN (same signature, same NHWC semantics, same defaults)::

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
it; the mapping lives in :func:`lrn_core.conventions.from_tensorflow`). Beyond the native op (TF
2.21 on CPU): float64 and bfloat16 inputs, float16 computed in float32 and rounded once, and
gradients of any order (TF's ``LRNGrad`` has no gradient). ``LocalResponseNormalization`` is the
Keras adapter's layer (:mod:`lrn_core.adapters.keras`), re-exported under its old name.

Where each call goes (``implementation``, and the one decision in ``_routes.py``):

``"auto"`` (default)
    lrn-core's kernels: eagerly on TensorFlow's buffers, in a ``tf.function`` as lrn-core's
    compiled TF op (``_compiled.py``: C, no Python in the call). Where they cannot go, TF ops
    (``_composite.py``): TF's own LRN while TensorFlow traces for a SavedModel (``model.export``,
    ``tf.saved_model.save``; float64 in TF ops) or for XLA (``jit_compile=True``), the formula
    in TF ops under ``tf.vectorized_map`` and, for small inputs in graphs, the band formula.
    A function traced *earlier* with the kernels and then handed to a SavedModel is refused at
    save time with an error that says what to do.
``"core"``
    always lrn-core's kernels; for use in this process only (saving it raises).
``"native"``
    always TensorFlow's own op (float16, float32; bfloat16 through float32).

The package: ``_routes.py`` (the decision), ``_record.py`` (kernels recorded as TF ops: tapes,
forward accumulators, the callback, the save guard), ``_kernel_ops.py`` (the three kernels as
ops), ``_compiled.py`` (the compiled op), ``_composite.py`` (LRN in TF ops), ``_compat.py`` (the
private TensorFlow names).
"""

from __future__ import annotations

import functools

import tensorflow as tf

from ... import conventions
from ...validation import IMPLEMENTATIONS, check_implementation, check_params, check_tf_params
from ..keras import LocalResponseNormalization
from . import _record
from ._compat import EagerTensor
from ._composite import BAND_CHANNELS, BAND_MACS, NATIVE_DTYPES  # noqa: F401 (the module's face)
from ._kernel_ops import _lrn
from ._routes import ROUTES, SMALL_ELEMENTS, choose  # noqa: F401

__all__ = ["local_response_normalization", "LocalResponseNormalization", "IMPLEMENTATIONS"]

#: input dtypes accepted; float16 goes to the core as it is, bfloat16 through float32
DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def _eager_route(function):
    """The public function, with eager calls on float32/float64 tensors sent straight to the kernel.

    An eager call of ``"auto"`` or ``"core"`` computes lrn-core's kernel whatever else holds
    (export, XLA and ``vectorized_map`` only exist in graphs), so the name scope, conversions and
    dtype checks of ``function`` are skipped there: the parameters are checked once (memoised,
    raising the same errors), and :func:`_lrn` records the op on the active tapes and forward
    accumulators as always. Anything else (graphs, other dtypes and ranks, empty or non-eager
    inputs, ``"native"``, bad arguments) goes to ``function`` unchanged.
    """

    # functools.wraps also copies the autograph mark of ``do_not_convert``: autograph calls this
    # unconverted, without the per-call cost of do_not_convert's own wrapper
    @functools.wraps(function)
    def local_response_normalization(
        input, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, name=None, *, implementation="auto"
    ):
        if (
            type(input) is EagerTensor
            and (implementation == "auto" or implementation == "core")
            and input.dtype in _record._KERNEL_DTYPES
            and len(input._shape_tuple()) == 4
            and tf.executing_eagerly()
        ):
            return _lrn(input, _cached(_core_params_of_tf, depth_radius, bias, alpha, beta))
        return function(input, depth_radius, bias, alpha, beta, name, implementation=implementation)

    return local_response_normalization


@_eager_route
@tf.autograph.experimental.do_not_convert
def local_response_normalization(
    input, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, name=None, *, implementation="auto"
):
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
        See the module docstring: "auto" uses lrn-core's kernels (in graphs its compiled op),
        TF's native op while tracing for a SavedModel or XLA (with derivatives of every order
        under XLA), and the LRN written in TF ops under ``tf.vectorized_map`` and for small
        inputs in graphs.

    Returns
    -------
    Tensor of the shape and dtype of ``input``.

    Examples
    --------
    >>> x = tf.reshape(tf.range(6, dtype=tf.float64), (1, 1, 2, 3))   # float64: not in native TF
    >>> local_response_normalization(x, depth_radius=1, alpha=1.0, beta=1.0)[0, 0, 0].numpy()
    array([0.        , 0.16666667, 0.33333333])
    """
    params = _cached(check_tf_params, depth_radius, bias, alpha, beta)
    implementation = check_implementation(implementation)
    with tf.name_scope(name or "local_response_normalization"):
        x = tf.convert_to_tensor(input)
        if x.dtype not in DTYPES:
            raise TypeError(
                f"input must have dtype float16, bfloat16, float32 or float64, got {x.dtype.name}"
            )
        x = _check_rank(x)
        route = choose(x, implementation)
        core = _cached(_core_params, *params) if route != "native" else None
        return ROUTES[route](x, params, core)


def _cached(fn, *args):
    """``fn(*args)``, memoised on the arguments' types and values (checks cost more than a
    tiny LRN); arguments that cannot be hashed, and errors, are not cached."""
    key = (fn, *((type(a), a) for a in args))
    try:
        return _CACHE[key]
    except KeyError:
        pass
    except TypeError:  # unhashable
        return fn(*args)
    if len(_CACHE) >= 256:  # bounded; clear() is safe if other threads use it meanwhile
        _CACHE.clear()
    out = _CACHE[key] = fn(*args)
    return out


_CACHE = {}


def _core_params(depth_radius, bias, alpha, beta):
    """lrn-core's normalised parameters for TensorFlow's."""
    return conventions.LRNParams(
        *check_params(*conventions.from_tensorflow(depth_radius, bias, alpha, beta))
    )


def _core_params_of_tf(depth_radius, bias, alpha, beta):
    """lrn-core's normalised parameters for TensorFlow's, with TensorFlow's checks and errors."""
    return _core_params(*check_tf_params(depth_radius, bias, alpha, beta))


def _check_rank(x):
    """TensorFlow's LRN takes 4-D input only; checked at trace time, or at run time if unknown."""
    rank = x.shape.rank
    if rank is None:
        with tf.control_dependencies([tf.debugging.assert_rank(x, 4, message="input must be 4-D")]):
            return tf.identity(x)
    if rank != 4:
        raise ValueError(
            f"input must be 4-dimensional (NHWC, channels last), got rank {rank} with "
            f"shape {x.shape}"
        )
    return x
