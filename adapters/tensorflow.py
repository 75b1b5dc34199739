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

How it is built: the forward, the input gradient and the channel window sum are lrn-core
kernels. Eagerly they are called directly on TensorFlow's buffers (DLPack, no copy); in a graph
through ``tf.py_function``, with static shapes and dtypes set, so they run inside ``tf.function``
and ``model.fit``. Each is recorded on the active tapes *and* forward accumulators with its
gradient and its Jacobian-vector product, written with TF ops around the window-sum kernel (itself
such an op), so ``tf.GradientTape`` (any order, nested) and ``tf.autodiff.ForwardAccumulator``
(and mixtures) are exact; in graphs ``tf.custom_gradient`` serves the symbolic gradients.

A Python callback cannot go everywhere: XLA cannot compile it, TFLite cannot convert it, and a
SavedModel holding one fails in any other process ("Could not find callback with key=pyfunc_N").
Hence ``implementation``:

``"auto"`` (default)
    lrn-core, except: while TensorFlow traces for a SavedModel (``tf.saved_model.save`` tracing a
    ``tf.function``, ``model.export``), TF's native LRN (float64, which TF lacks: the TF-ops
    formula below); while tracing for XLA (``jit_compile=True``), TF's LRN and LRNGrad kernels
    (float32, bfloat16 through float32) recorded with higher derivatives and JVPs in TF ops; under
    XLA in float16/float64 and inside ``tf.vectorized_map``, the same LRN written with TF ops (a
    window sum by average pooling: no running sum, nothing subtracted), which XLA compiles, TF
    differentiates to any order and ``vectorized_map`` vectorises; for small inputs in graphs
    (see ``SMALL_ELEMENTS``), where a callback costs more than the LRN, TF ops again: the forward
    and its gradient written out, window sums as products with a band (:func:`_lrn_small`).
    A function traced *earlier* with the kernel and then handed to a SavedModel (signatures from
    ``get_concrete_function``, Keras ``ExportArchive`` endpoints already called) is refused at
    save time with an error that says what to do.
``"core"``
    always lrn-core's kernel; for use in this process only (saving it raises).
``"native"``
    always TensorFlow's own op (float16, float32; bfloat16 through float32).
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf

# Private TensorFlow modules (TF 2.21): ``record`` records an op with its gradient and its JVP on
# the active tapes and forward accumulators (what tf.custom_gradient does, plus the JVP); the
# last two detect export and XLA tracing. Without them the adapter cannot be correct under every
# transform, so it refuses to load rather than guess. ``EagerTensor`` is named, not taken from
# ``type(tf.constant(0.0))``: a tensor created at import initialises TF's eager context, and users
# can no longer set threads or devices after their imports (docs/initialisation.rst).
from tensorflow.python.eager import record
from tensorflow.python.framework.ops import EagerTensor as _EagerTensor
from tensorflow.python.ops import gen_nn_ops
from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext
from tensorflow.python.saved_model.save_context import in_save_context

from .. import conventions, lrn, lrn_backward, window_sum
from .._api import kernels, output_buffer
from ..validation import check_choice, check_params, check_tf_params
from ._keras_layer import LocalResponseNormalizationBase

__all__ = ["local_response_normalization", "LocalResponseNormalization", "IMPLEMENTATIONS"]

IMPLEMENTATIONS = ("auto", "core", "native")
#: input dtypes accepted; float16 goes to the core as it is, bfloat16 through float32
DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)
#: dtypes TensorFlow's own LRN kernel computes on CPU
NATIVE_DTYPES = (tf.float16, tf.float32)


# --- the public function ------------------------------------------------------------------------


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
            type(input) is _EagerTensor
            and (implementation == "auto" or implementation == "core")
            and input.dtype in _KERNEL_DTYPES
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
        See the module docstring: "auto" uses lrn-core's kernel, TF's native op while tracing
        for a SavedModel or XLA (with derivatives of every order under XLA), and the LRN written
        in TF ops under ``tf.vectorized_map`` and for small inputs in graphs.

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
    check_choice("implementation", implementation, IMPLEMENTATIONS)
    with tf.name_scope(name or "local_response_normalization"):
        x = tf.convert_to_tensor(input)
        if x.dtype not in DTYPES:
            raise TypeError(
                f"input must have dtype float16, bfloat16, float32 or float64, got {x.dtype.name}"
            )
        x = _check_rank(x)
        if implementation == "native":
            return _native(x, *params)
        core = _cached(_core_params, *params)
        if implementation == "auto":
            if in_save_context():  # a SavedModel: TF's own op, float64 in TF ops
                return _native(x, *params) if x.dtype != tf.float64 else _lrn_composite(x, core)
            if _in_xla() and x.dtype in (tf.float32, tf.bfloat16):  # TF's kernels, bf16 via f32
                return tf.cast(_lrn_native(tf.cast(x, tf.float32), params, core), x.dtype)
            if _in_xla() or _in_pfor():
                return _lrn_composite(x, core)
            if _small(x):  # TF ops, as fast as TF's LRN here; float16, bfloat16 through float32
                xc = x if x.dtype in (tf.float32, tf.float64) else tf.cast(x, tf.float32)
                return tf.cast(_lrn_small(xc, core), x.dtype)
        if x.dtype == tf.bfloat16:  # the core has no bfloat16: compute in float32, round once
            return tf.cast(_lrn(tf.cast(x, tf.float32), core), tf.bfloat16)
        return _lrn(x, core)


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


def _in_xla():
    """True while tracing a function for XLA (``jit_compile=True``): no Python callbacks there."""
    return not tf.executing_eagerly() and GraphOrParentsInXlaContext(
        tf.compat.v1.get_default_graph()
    )


def _in_pfor():
    """True while ``tf.vectorized_map`` (pfor) traces its loop body.

    pfor vectorises the ops it has converters for; a Python callback it can only run in a
    ``while_loop`` fallback, whose gradient replays ``EagerPyFunc``'s own gradient and fails. pfor
    traces the body under a name scope ``loop_body`` holding its loop variable
    ``loop_body/PlaceholderWithDefault`` (TF 2.21, parallel_for/control_flow_ops.py).
    """
    if tf.executing_eagerly():
        return False
    graph = tf.compat.v1.get_default_graph()
    parts = graph.get_name_scope().split("/")
    for i, part in enumerate(parts):
        if part.startswith("loop_body"):
            try:
                graph.get_operation_by_name("/".join(parts[: i + 1]) + "/PlaceholderWithDefault")
                return True
            except KeyError:
                continue
    return False


#: in a graph, "auto" computes inputs of at most this many elements (with static shapes, at most
#: BAND_CHANNELS channels and BAND_MACS multiply-adds per window sum) with TF ops, the window sums
#: as products with a band: there that takes native LRN's time or less, and the kernel's Python
#: callbacks cost more (tf.function, 2 threads, BENCHMARKS.md "Small inputs in tf.function": at
#: 65536 elements and 32 channels, forward 0.51 ms against native's 0.60 and the callback's 0.71,
#: forward+backward 0.73 against 1.40 and 1.04; at 131072 the callback is the faster of the two)
SMALL_ELEMENTS = 65536
#: the band is channels x channels, and a window sum costs elements x channels multiply-adds
BAND_CHANNELS = 1024
BAND_MACS = 2**23


def _small(x):
    """Graphs only (eagerly the kernel is called directly, cheaper than any TF op)."""
    n, c = x.shape.num_elements(), x.shape[-1]
    return (
        not tf.executing_eagerly()
        and n is not None
        and n <= SMALL_ELEMENTS
        and c <= BAND_CHANNELS
        and n * c <= BAND_MACS
    )


class _CallbackInSavedModelError(ValueError):
    """A function holding lrn-core's Python callback is being written into a SavedModel."""


_SAVE_MESSAGE = (
    "lrn-core: a tf.function traced earlier with lrn-core's Python kernel is being saved to a "
    "SavedModel (e.g. tf.saved_model.save(..., signatures=f.get_concrete_function(...)) with f "
    "called or traced before saving, or keras ExportArchive.add_endpoint of a function already "
    "called). The saved graph would call back into this Python process and fail in any other "
    "('Could not find callback with key=pyfunc_N'). Ways out: let the save trace the function "
    "(pass the tf.function itself, or its input_signature, and do not trace it beforehand; "
    "model.export(path)), or use implementation='native' (TensorFlow's LRN op) in the function "
    "or layer being saved."
)


def _native(x, depth_radius, bias, alpha, beta):
    """TensorFlow's own op, serialisable and XLA-compatible (float16, float32; bfloat16 via f32)."""
    if x.dtype == tf.float64:
        raise TypeError(
            "implementation='native': TensorFlow has no float64 LRN op; use "
            "implementation='auto' (lrn-core; TF ops for export and XLA)"
        )
    nx = x if x.dtype in NATIVE_DTYPES else tf.cast(x, tf.float32)  # bfloat16
    y = tf.nn.local_response_normalization(nx, depth_radius, bias, alpha, beta)
    return tf.cast(y, x.dtype)


# --- the ops: lrn-core kernels with custom gradients and forward-mode derivatives ---------------
# ``p`` is a normalised lrn_core.conventions.LRNParams (size, alpha, beta, k, before); the channel
# axis is the last one. These work for any rank, window size and placement (the tests use even
# windows to exercise the transposed window, which TensorFlow's centred windows never need).
#
# Each op is computed with tape recording stopped, then recorded once on every active tape *and*
# forward accumulator with its gradient and its Jacobian-vector product (``record_operation``
# with ``forward_function``). So a ``tf.autodiff.ForwardAccumulator`` never replays the
# gradient of the Python callback (``EagerPyFunc``'s gradient knows nothing of the kernel and
# gives a scalar 0.0): it gets the JVP written below. In a graph the op is also wrapped by
# ``tf.custom_gradient`` so that symbolic gradients (a ``tf.function`` differentiated from the
# outside, ``tf.gradients``) find the same gradient.

#: dtypes the kernels compute in as they are (float16 goes through lrn_core's checked API)
_KERNEL_DTYPES = (tf.float32, tf.float64)


def _eager_kernel(kernel, params, tensors):
    """``kernels().<kernel>(*views, out_view, *params)`` on eager tensors; None if not applicable.

    The lean eager route: the parameters were validated once (memoised), and eager tensors are
    dense and row-major, so each (1, C, positions) view the kernels take is a reshape and a
    transpose of TF's own buffer (DLPack, no copy), and the checks of lrn_core's NumPy API, which
    cost more than a tiny LRN, are not needed. Returns None when the tensors are not such (not
    eager, float16 or bfloat16, empty, or of different shapes or dtypes): the caller then takes
    the checked route, :func:`_numpy_call`.
    """
    x = tensors[-1]
    if type(x) is not _EagerTensor or x.dtype not in _KERNEL_DTYPES:
        return None
    a = np.from_dlpack(x)
    if a.size == 0:
        return None
    c = a.shape[-1]
    views = []
    for t in tensors[:-1]:  # dy of the backward: like x
        if type(t) is not _EagerTensor:
            return None
        b = np.from_dlpack(t)
        if b.shape != a.shape or b.dtype != a.dtype:
            return None
        views.append(b.reshape(-1, c).T[None])
    # 64-byte aligned, as TF (Eigen) needs to adopt it; _block: no shape and dtype normalisation
    out = output_buffer(a.shape, a.dtype)
    getattr(kernels(), kernel)(
        *views, a.reshape(-1, c).T[None], out.reshape(-1, c).T[None], *params
    )
    return tf.experimental.dlpack.from_dlpack(out.__dlpack__())


def _numpy_call(fn, tensors):
    """``fn(*arrays, out=out)`` on eager tensors, zero-copy through DLPack both ways."""
    arrays = [np.from_dlpack(t) if t.shape.num_elements() else t.numpy() for t in tensors]
    if arrays[-1].size == 0:
        return tf.convert_to_tensor(fn(*arrays))
    out = output_buffer(arrays[-1].shape, arrays[-1].dtype)  # 64-byte aligned, for Eigen
    fn(*arrays, out=out)
    return tf.experimental.dlpack.from_dlpack(out.__dlpack__())


def _numpy_op(fn, inputs, like, name, guard):
    """``fn`` as a graph op on NumPy arrays, with the static shape and dtype of ``like``.

    ``tf.py_function`` with DLPack both ways: the kernels read TensorFlow's buffers and TensorFlow
    adopts the NumPy result, with no copy either way (``tf.numpy_function`` copies the inputs
    and the output, which costs more than the LRN itself on large tensors).
    """

    def body(*tensors):
        out = _numpy_call(fn, tensors)
        if record.could_possibly_record():  # EagerPyFunc's own tape: its gradient must not be 0
            record.record_operation(name, [out], list(tensors), _replayed_gradient(name))
        return out

    with tf.control_dependencies(_save_guard() if guard else []):
        out = tf.py_function(body, inputs, Tout=like.dtype, name=name)
    out.set_shape(like.shape)
    return out


def _replayed_gradient(name):
    """Gradient of the callback's inner tape: used only where TF bypasses the custom gradient.

    TF differentiates a ``py_function`` by replaying the tape recorded inside it; the kernel
    records nothing there, so TF would return a scalar 0.0 as the gradient. Routes that do that
    (e.g. ``tf.vectorized_map``'s while-loop fallback around ``implementation="core"``) get this
    error instead of a silent zero.
    """

    def grad(*unused):
        raise NotImplementedError(
            f"lrn-core: TensorFlow differentiated the Python callback {name!r} by replaying its "
            "inner tape, bypassing lrn-core's gradient (this happens when TF copies the op out "
            "of its graph, e.g. tf.vectorized_map's while-loop fallback). Use "
            "implementation='auto' (TF ops under vectorized_map) or 'native'."
        )

    return grad


def _save_guard():
    """A value the enclosing ``tf.function`` fetches from Python at every call, and at save time.

    ``FuncGraph.capture_call_time_value`` (a "by-ref" capture) evaluates its closure whenever the
    function runs, and also when ``tf.saved_model.save`` maps the captures of a concrete function
    it writes (in the save context), whatever way the function was traced or handed to it
    (signatures, Keras ``ExportArchive`` endpoints, attributes of a ``tf.Module``). So a function
    holding the Python callback cannot be written into a SavedModel: the save raises at once.
    """
    graph = tf.compat.v1.get_default_graph()
    outermost, g = None, graph
    while hasattr(g, "capture_call_time_value"):  # FuncGraphs, up to the function being called
        outermost, g = g, getattr(g, "outer_graph", None)
    if outermost is None:  # a TF1 Graph: no saving through tf.function
        return []
    # The by-ref capture lives on the outermost function: nested graphs (cond and while bodies,
    # a tf.function called in another) do not feed their own; they capture its placeholder.
    with outermost.as_default():
        guard = outermost.capture_call_time_value(
            _guard_value, tf.TensorSpec([], tf.bool), key="lrn_core_save_guard"
        )
    return [guard if outermost is graph else tf.identity(guard)]


_GUARD = None


def _guard_value():
    global _GUARD
    if in_save_context():
        raise _CallbackInSavedModelError(_SAVE_MESSAGE)
    if _GUARD is None:
        _GUARD = tf.constant(True)
    return _GUARD


def _op(name, fn, inputs, grad, jvp, tf_fn=None, kernel=None):
    """The kernel ``fn`` on ``inputs`` (last one shaped like the output) as a differentiable op.

    ``grad(inputs, dy)`` returns the list of input gradients, ``jvp(inputs, *tangents)`` the
    output tangent (tangents of unwatched inputs may be ``None``). With ``tf_fn`` (TF ops on the
    inputs) instead of a kernel, the op is TF's own: no callback, saved and compiled as it is.
    ``kernel`` (name, params) is the same computation for :func:`_eager_kernel`, tried first
    eagerly; ``fn`` is then a function of no arguments returning the checked callable.
    """
    if tf_fn is not None:
        if not tf.executing_eagerly():
            graph = tf.compat.v1.get_default_graph()
            inputs = [
                t if tf.is_symbolic_tensor(t) and t.graph is graph else tf.identity(t)
                for t in inputs
            ]

        @tf.custom_gradient
        def tf_op(*xs):
            return tf_fn(*xs), lambda dy: grad(xs, dy)

        with record.stop_recording():
            y = tf_op(*inputs)
    elif tf.executing_eagerly():  # no py_function eagerly: call the kernel on the buffers directly
        y = _eager_kernel(*kernel, inputs) if kernel else None  # runs no TF op: records nothing
        if y is None:
            with record.stop_recording():
                y = _numpy_call(fn(), inputs)
    else:
        # Inputs from an enclosing graph (a gradient built in its own FuncGraph uses tensors of
        # the forward one) are captured here first, so that the gradient and JVP closures only
        # hold tensors of this graph and can themselves be differentiated from any other.
        graph = tf.compat.v1.get_default_graph()
        inputs = [
            t if tf.is_symbolic_tensor(t) and t.graph is graph else tf.identity(t) for t in inputs
        ]

        @tf.custom_gradient
        def graph_op(*xs):
            return (
                _numpy_op(fn(), list(xs), xs[-1], name, guard=name == "lrn_core_lrn"),
                _graph_gradient(grad, xs),
            )

        with record.stop_recording():
            y = graph_op(*inputs)
    if record.could_possibly_record():
        record.record_operation(
            name,
            [y],
            list(inputs),
            lambda dy: grad(inputs, dy),
            forward_function=lambda *tangents: [jvp(inputs, *tangents)],
        )
    return y


def _graph_gradient(grad, inputs):
    """The symbolic gradient of a graph op; refuses to be traced for a SavedModel (see below)."""

    def graph_grad(dy):
        if in_save_context():
            raise _CallbackInSavedModelError(_SAVE_MESSAGE)
        return grad(inputs, dy)

    return graph_grad


def _zeros_if_none(t, like):
    return tf.zeros_like(like) if t is None else t


def _lrn(x, p):
    """LRN forward (lrn-core kernel); its gradient is :func:`_lrn_backward`."""
    size, alpha, beta, k, before = p
    return _op(
        "lrn_core_lrn",
        lambda: functools.partial(lrn, **p._asdict(), axis=-1),
        [x],
        lambda xs, dy: [_lrn_backward(dy, xs[0], p)],
        lambda xs, tx: _lrn_jvp(xs[0], _zeros_if_none(tx, xs[0]), p),
        kernel=("lrn_forward", (size, before, alpha, beta, k)),
    )


def _lrn_jvp(x, tx, p, ws=None):
    """``d lrn(x) . tx = tx * s**-beta - 2 alpha beta / size * x * s**(-beta-1) * W(x * tx)``."""
    size, alpha, beta, k, before = p
    ws = ws or _window_sum
    x, tx, dtype = _compute_dtype(x, tx)
    s = k + (alpha / size) * ws(x * x, size, before)
    t = tf.pow(s, -beta)
    out = tx * t - (2 * alpha * beta / size) * x * (t / s) * ws(x * tx, size, before)
    return tf.cast(out, dtype)


def _compute_dtype(*tensors):
    """float16 is computed in float32 (as the core does), the rest as it is; and the dtype."""
    dtype = tensors[0].dtype
    if dtype == tf.float16:
        return (*(tf.cast(t, tf.float32) for t in tensors), dtype)
    return (*tensors, dtype)


def _lrn_backward(dy, x, p):
    """Input gradient (lrn-core kernel); its own derivatives are written out with TF ops.

    ``dx(dy, x)`` is the gradient of ``f(x) = <dy, lrn(x)>``: linear in ``dy`` (its derivative
    along ``dy`` is the JVP of the forward) and, along ``x``, the Hessian of ``f``, which is
    symmetric: so the gradient of ``<ddx, dx>`` is ``(lrn_jvp(x, ddx), d_x dx . ddx)``, and no
    tape is needed (a tape inside a symbolic gradient records nothing).
    """
    size, alpha, beta, k, before = p

    def fn():
        return functools.partial(lrn_backward, **p._asdict(), axis=-1)

    def grad(inputs, ddx):
        dy, x = inputs
        return [_lrn_jvp(x, ddx, p), _lrn_backward_jvp(dy, x, tf.zeros_like(dy), ddx, p)]

    def jvp(inputs, tdy, tx):
        dy, x = inputs
        return _lrn_backward_jvp(dy, x, _zeros_if_none(tdy, dy), _zeros_if_none(tx, x), p)

    return _op(
        "lrn_core_lrn_backward",
        fn,
        [dy, x],
        grad,
        jvp,
        kernel=("lrn_backward", (size, before, alpha, beta, k)),
    )


def _lrn_backward_jvp(dy, x, tdy, tx, p, ws=None):
    """Derivative of the input gradient along ``(tdy, tx)``, with TF ops and :func:`_window_sum`.

    ``dx = dy * t - c * x * W'(u)``, ``u = dy * x * t / s``, ``t = s**-beta``,
    ``s = k + alpha / size * W(x**2)``, ``c = 2 alpha beta / size``; ``W'`` is the transposed
    window. Differentiable again (every piece is), so gradients of any order compose.
    """
    size, alpha, beta, k, before = p
    ws = ws or _window_sum
    dy, x, tdy, tx, dtype = _compute_dtype(dy, x, tdy, tx)
    c = 2 * alpha * beta / size
    s = k + (alpha / size) * ws(x * x, size, before)
    ds = (2 * alpha / size) * ws(x * tx, size, before)
    t = tf.pow(s, -beta)
    u = dy * x * t / s
    du = (tdy * x + dy * tx) * t / s - (beta + 1) * u * ds / s
    after = size - 1 - before
    out = (
        tdy * t - beta * dy * t * ds / s - c * tx * ws(u, size, after) - c * x * ws(du, size, after)
    )
    return tf.cast(out, dtype)


def _window_sum(v, size, before):
    """Channel window sum (lrn-core kernel); linear, its gradient is the transposed window sum."""
    return _op(
        "lrn_core_window_sum",
        lambda: functools.partial(window_sum, size=size, axis=-1, before=before),
        [v],
        lambda vs, g: [_window_sum(g, size, size - 1 - before)],
        lambda vs, t: _window_sum(_zeros_if_none(t, vs[0]), size, before),
        kernel=("window_sum", (size, before)),
    )


# --- LRNs made of TF ops, with derivatives of every order (XLA, small inputs in graphs) ----------
# Two forward/gradient pairs of TF ops: TF's own LRN and LRNGrad kernels, which XLA compiles well
# (a fused reduce-window) but which have no derivatives beyond the first; and, for small inputs
# in graphs, the formula written with window sums as matrix products (below). Each pair is
# recorded like the ops above, its higher derivatives written with the TF-ops window sum. As one
# op each, first derivatives cost two ops' dispatch, not the two dozen of TF differentiating the
# formula, which is what makes them as fast as TF's LRN in a graph.


def _lrn_tf_ops(name, x, p, forward, backward):
    """``forward(x)`` with the gradient ``backward(dy, x)``, TF ops, as one differentiable op."""

    def grad(xs, dy):
        return [_lrn_tf_ops_grad(name + "_grad", dy, xs[0], p, backward)]

    return _op(
        name,
        None,
        [x],
        grad,
        lambda xs, tx: _lrn_jvp(xs[0], _zeros_if_none(tx, xs[0]), p, ws=_window_sum_tf),
        tf_fn=forward,
    )


def _lrn_tf_ops_grad(name, dy, x, p, backward):
    """``backward(dy, x)`` as an op of (dy, x), with derivatives of every order in TF ops."""

    def grad(inputs, ddx):
        dy, x = inputs
        return [
            _lrn_jvp(x, ddx, p, ws=_window_sum_tf),
            _lrn_backward_jvp(dy, x, tf.zeros_like(dy), ddx, p, ws=_window_sum_tf),
        ]

    def jvp(inputs, tdy, tx):
        dy, x = inputs
        return _lrn_backward_jvp(
            dy, x, _zeros_if_none(tdy, dy), _zeros_if_none(tx, x), p, ws=_window_sum_tf
        )

    return _op(name, None, [dy, x], grad, jvp, tf_fn=backward)


def _lrn_native(x, tfp, p):
    """TF's LRN (float32) with TF's LRNGrad as gradient (``y = lrn(x)`` recomputed for it)."""

    def forward(x):
        return tf.nn.local_response_normalization(x, *tfp)

    def backward(dy, x):
        return gen_nn_ops.lrn_grad(dy, x, forward(x), *tfp)

    return _lrn_tf_ops("lrn_core_native_lrn", x, p, forward, backward)


def _lrn_small(x, p):
    """LRN of a small float32/float64 input in a graph, as fast as TF's own op (no callback).

    ``y = x / d``, ``d = s**beta``, ``s = k + alpha / size * W(x**2)``, and the gradient
    ``dy / d - 2 beta * x * alpha / size * W'(dy * y / s)``, written directly (TF
    differentiating the formula builds two dozen ops), with the window sums ``alpha / size * W``
    as products with a band (:func:`_window_sum_band`); the gradient reuses the forward's ``s``,
    ``d`` and ``y`` when it is built in the same graph. Inputs whose channels are unknown or wider
    than ``BAND_CHANNELS`` (only when a test forces this route) take the TF-ops formula.
    """
    size, alpha, beta, k, before = p
    if x.shape[-1] is None or x.shape[-1] > BAND_CHANNELS:
        return _lrn_composite(x, p)
    forwards = {}  # x.ref() -> (s, d, y) of the forward

    def forward(x):
        s = k + _window_sum_band(x * x, alpha / size, size, before)
        d = _power(s, beta)
        forwards[x.ref()] = s, d, x / d
        return forwards[x.ref()][2]

    def backward(dy, x):
        if x.ref() not in forwards:  # built in another graph: computed again there
            forward(x)
        s, d, y = forwards[x.ref()]
        w = _window_sum_band(dy * y / s, alpha / size, size, size - 1 - before)
        return dy / d - (2 * beta) * x * w

    return _lrn_tf_ops("lrn_core_small_lrn", x, p, forward, backward)


def _power(s, beta):
    """``s**beta``; for beta 1, 0.5 and 0.75 with square roots, each rounded correctly (under
    2 ulp in all): TF's float32 ``Pow`` is a scalar loop, on 32768 elements it alone takes longer
    than TF's whole LRN op."""
    if beta == 1:
        return s
    if beta == 0.5:
        return tf.sqrt(s)
    if beta == 0.75:
        r = tf.sqrt(s)
        return r * tf.sqrt(r)
    return tf.pow(s, beta)


def _window_sum_band(v, scale, size, before):
    """``scale * sum(v[..., c - before : c - before + size])`` as the product with a band.

    One MatMul, the quickest TF op on a small input (an average pool and its gradient take about
    twice native LRN's time), and nothing subtracted. But ``0 * inf`` is nan: a non-finite value
    would reach every channel of its row. So when ``v``'s sum is not finite, the average pool
    (whose windows keep it local) computes the sums instead (one ``tf.cond``).
    """
    c = v.shape[-1]
    band = tf.constant(scale * _band(c, size, before), v.dtype)
    shape = v.shape if v.shape.is_fully_defined() else tf.shape(v)

    def product():
        return tf.reshape(tf.matmul(tf.reshape(v, (-1, c)), band), shape)

    def pool():
        return scale * _window_sum_tf(v, size, before)

    return tf.cond(tf.math.is_finite(tf.reduce_sum(v)), product, pool)


def _band(c, size, before):
    """``band[j, i] = 1`` where channel ``j`` is in the window of channel ``i``, else 0."""
    d = np.arange(c)[:, None] - np.arange(c)
    return ((d >= -before) & (d < size - before)).astype(np.float64)


def _window_sum_tf(v, size, before):
    return size * _window_mean_tf(v, size, before)


# --- the same formula in TensorFlow ops (XLA, small inputs, SavedModel in float64) --------------
# The window sum is an average pool over the zero-padded channels times the window: no running
# sum, nothing subtracted, so no cancellation (the error of a sum of at most 2r+1 positive squares,
# as in TF's own kernel); a non-finite input only reaches the windows that contain it. float16
# and bfloat16 are computed in float32 and rounded once, float32 and float64 in themselves (TFLite
# has no float64 arithmetic). TF differentiates it (reverse and forward mode, any order), XLA
# compiles it, pfor vectorises it and a SavedModel or TFLite model stores it: no Python callback.


def _window_mean_tf(v, size, before):
    """``mean(v[..., c - before : c - before + size])`` (zeros outside count), TF ops.

    An average pool of the zero-padded channels: one reduce-window, which XLA compiles to a
    fused loop (a convolution with ones is ten times slower there). Static shapes when known
    (fewer ops per call in a graph).
    """
    shape = v.shape.as_list() if v.shape.is_fully_defined() else tf.shape(v)
    rows = [-1, 1, shape[-1], 1] if isinstance(shape, list) else tf.stack([-1, 1, shape[-1], 1])
    flat = tf.pad(tf.reshape(v, rows), [[0, 0], [0, 0], [before, size - 1 - before], [0, 0]])
    return tf.reshape(tf.nn.avg_pool2d(flat, (1, size), 1, "VALID"), shape)


def _lrn_composite(x, p):
    """LRN with TensorFlow ops, in float32 for float16 and bfloat16 (rounded once)."""
    size, alpha, beta, k, before = p
    xc = x if x.dtype in (tf.float32, tf.float64) else tf.cast(x, tf.float32)
    s = k + alpha * _window_mean_tf(xc * xc, size, before)  # alpha / size * window sum
    return tf.cast(xc * tf.pow(s, -beta), x.dtype)


# --- the Keras layer ----------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="lrn_core")
class LocalResponseNormalization(LocalResponseNormalizationBase):
    """Keras 3 layer (TensorFlow backend) applying :func:`local_response_normalization`.

    :class:`lrn_core.adapters.keras.LocalResponseNormalization` (parameters, checks, config, XLA
    support: their common base) held to the TensorFlow backend, under its own registered name.

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

    def __init__(
        self, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, implementation="auto", **kwargs
    ):
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                "lrn_core.adapters.tensorflow.LocalResponseNormalization needs the "
                f"TensorFlow backend of Keras, got {keras.backend.backend()!r}"
            )
        super().__init__(depth_radius, bias, alpha, beta, implementation, **kwargs)

    def call(self, inputs):  # the function checks the rank, at run time if it is unknown
        return local_response_normalization(
            inputs,
            self.depth_radius,
            self.bias,
            self.alpha,
            self.beta,
            implementation=self.implementation,
        )
