"""lrn-core's kernels as TensorFlow ops: the recording machinery every kernel route shares.

:func:`op` computes a kernel (or a TF-ops function) and records it once on every active tape
*and* forward accumulator, with its gradient and its Jacobian-vector product
(``record_operation`` with ``forward_function``), so ``tf.GradientTape`` (any order) and
``tf.autodiff.ForwardAccumulator`` are exact. Eagerly the kernel runs on TensorFlow's buffers
(DLPack, no copy); in a graph through ``tf.py_function`` (the callback route), wrapped in
``tf.custom_gradient`` so that symbolic gradients find the same gradient. A graph holding the
callback refuses to be written into a SavedModel (:func:`save_guard`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..._api import kernels, output_buffer
from ._compat import EagerTensor, in_save_context, record


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
    if type(x) is not EagerTensor or x.dtype not in _KERNEL_DTYPES:
        return None
    a = np.from_dlpack(x)
    if a.size == 0:
        return None
    c = a.shape[-1]
    views = []
    for t in tensors[:-1]:  # dy of the backward: like x
        if type(t) is not EagerTensor:
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
