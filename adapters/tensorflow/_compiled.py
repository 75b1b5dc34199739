"""lrn-core's compiled TensorFlow op: what runs in a ``tf.function`` graph on the CPU.

``LrnCoreLrn`` and ``LrnCoreLrnGrad`` (float32, float64, channels last).

The ops are C (``src/lrn_core/_simd/lrn_tf_op.c``), built with the core into the plain shared
library ``lrn_core/_lrn_tf_op*.so`` (no TensorFlow needed to build it: it finds TF's C API in the
process when TF loads it). :func:`load` loads it with ``tf.load_op_library`` on first use, never
at import (TF's runtime stays configurable after the imports), hands it the core's driver once,
and registers the gradients: ``LrnCoreLrnGrad`` for the op, and for ``LrnCoreLrnGrad`` itself
the formula of :mod:`lrn_core.formulas` in TF ops, so derivatives of every order compose. In a
call nothing runs in Python: TF's executor calls the C kernel, which calls the core's driver.

If the library is missing or TensorFlow refuses it, :func:`load` returns None and
:func:`status` says why (``lrn-core info`` prints it); the adapter then keeps its other routes
(docs/tensorflow.rst). :func:`route` is the adapter's graph route over the op: recorded like the
TF-ops LRNs (one op each way, higher derivatives in TF ops), and refused in a SavedModel, which
another process could not load (the portable routes are taken while TF traces for one).
"""

from __future__ import annotations

import ctypes
import pathlib
import struct
import threading

import tensorflow as tf

from ... import formulas
from ..._api import kernels
from ._composite import _lrn_tf_ops, _window_sum_tf
from ._record import _save_guard

__all__ = ["load", "status", "lrn", "lrn_grad", "route"]

_lock = threading.Lock()
_module = None
_reason = "not loaded yet"
_tried = False


def _library():
    """The op library next to the core's modules, or None."""
    import lrn_core

    found = sorted(pathlib.Path(lrn_core.__file__).parent.glob("_lrn_tf_op*.so"))
    return found[0] if found else None


def _bits(value):
    """A float64 as the int64 with its bits (the ops' alpha, beta, k attributes)."""
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


def _value(bits):
    return struct.unpack("<d", struct.pack("<q", int(bits)))[0]


def _attrs(p):
    size, alpha, beta, k, before = p
    return dict(size=size, before=before, alpha=_bits(alpha), beta=_bits(beta), k=_bits(k))


def _params_of(op):
    """(size, alpha, beta, k, before) of a recorded op."""
    get = op.get_attr
    return (
        get("size"),
        _value(get("alpha")),
        _value(get("beta")),
        _value(get("k")),
        get("before"),
    )


def _register_gradients(module):
    @tf.RegisterGradient("LrnCoreLrn")
    def _lrn_gradient(op, dy):
        return module.lrn_core_lrn_grad(dy, op.inputs[0], **_attrs(_params_of(op)))

    @tf.RegisterGradient("LrnCoreLrnGrad")
    def _lrn_grad_gradient(op, g):
        dy, x = op.inputs  # the TF-ops window sum: differentiable again
        ops = formulas.Ops(window=_window_sum_tf)
        return list(formulas.backward_vjp(ops, dy, x, g, *_params_of(op)))


def _load_now():
    path = _library()
    if path is None:
        return None, "lrn-core was built without its TF op library (_lrn_tf_op)"
    try:
        module = tf.load_op_library(str(path))
    except Exception as exc:  # noqa: BLE001 - TF raises NotFoundError, RuntimeError, ...
        return None, f"tf.load_op_library({path.name}) failed: {exc}"
    lib = ctypes.CDLL(str(path))  # the same handle TF opened: its two C entry points
    lib.lrn_tf_op_status.restype = ctypes.c_char_p
    reason = lib.lrn_tf_op_status().decode()
    if reason or not hasattr(module, "lrn_core_lrn"):
        return None, f"{path.name} registered no ops: {reason or 'unknown reason'}"
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    lib.lrn_tf_op_set_driver(ctypes.c_void_p(get(kernels().driver_table(), b"lrn_core.lrn_driver")))
    _register_gradients(module)
    return module, ""


def load():
    """The loaded op module (``lrn_core_lrn``, ``lrn_core_lrn_grad``), or None (see
    :func:`status`). Loads once per process, on the first call."""
    global _module, _reason, _tried
    if not _tried:
        with _lock:
            if not _tried:
                _module, _reason = _load_now()
                _tried = True
    return _module


def status():
    """``""`` when the ops are loaded, else why not (``"not loaded yet"`` before :func:`load`)."""
    return _reason


def lrn(x, p):
    """``LrnCoreLrn(x)``, channels last, ``p`` = (size, alpha, beta, k, before) in lrn-core's
    convention; :func:`load` must have succeeded."""
    return _module.lrn_core_lrn(x, **_attrs(p))


def lrn_grad(dy, x, p):
    """``LrnCoreLrnGrad(dy, x)``: the gradient of ``<dy, lrn(x)>`` in ``x``."""
    return _module.lrn_core_lrn_grad(dy, x, **_attrs(p))


def route(x, p):
    """LRN of ``x`` in a graph by the compiled op, with its gradient (the compiled gradient op)
    and derivatives of every order; ``x`` float32 or float64, :func:`load` succeeded."""

    def forward(v):
        with tf.control_dependencies(_save_guard()):  # never written into a SavedModel
            return lrn(v, p)

    return _lrn_tf_ops("lrn_core_compiled_lrn", x, p, forward, lambda dy, v: lrn_grad(dy, v, p))
