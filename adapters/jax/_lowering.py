"""What runs under ``jax.jit``: each primitive's lowering, choosing the kernels or pure XLA.

The choice is made when XLA code is emitted, so it follows the platform a jitted function is
compiled for:

- the kernels (``implementation="core"``, or ``"auto"`` on the CPU outside ``jax.export``): an
  XLA FFI custom call to lrn-core's C handlers (:mod:`._ffi`), partitioned where the program is
  sharded (:mod:`._sharding`); if this jaxlib refused the handlers, the kernels through
  ``jax.pure_callback`` instead (below);
- pure XLA (``implementation="native"``, or ``"auto"`` on GPU/TPU and under ``jax.export``): the
  jnp/lax formulas of :mod:`._composite`.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.interpreters import mlir

from ... import lrn, lrn_backward, window_sum
from . import _compat, _composite, _ffi, _sharding

__all__ = ["lowering", "CALLBACKS"]

#: the FFI targets registered (all or none; none: the kernels run through jax.pure_callback)
_FFI_TARGETS = _ffi.register(tuple(_ffi.HANDLERS))
#: the primitives' parameters passed to the handlers as int64 attributes (the rest: float64)
_INT_ATTRS = ("size", "before", "axis")


# --- the kernels through jax.pure_callback (if the FFI targets could not be registered) ------


def _callback(fn, like, *args):
    """``fn(*arrays)`` on the host through ``jax.pure_callback`` (used when the FFI custom call is
    unavailable; it copies the operands to new jax Arrays first)."""

    def call(*arrays):
        return np.asarray(fn(*map(np.asarray, arrays)))

    return jax.pure_callback(call, jax.ShapeDtypeStruct(like.shape, like.dtype), *args)


def _core_lrn(x, *, size, alpha, beta, k, before, axis):
    fn = functools.partial(lrn, size=size, alpha=alpha, beta=beta, k=k, before=before, axis=axis)
    return _callback(fn, x, x)


def _core_vjp(x, g, *, size, alpha, beta, k, before, axis):
    def fn(x, g):
        return lrn_backward(g, x, size, alpha, beta, k, axis=axis, before=before)

    return _callback(fn, x, x, g)


def _core_window(v, *, size, before, axis):
    fn = functools.partial(window_sum, size=size, before=before, axis=axis)
    return _callback(fn, v, v)


#: primitive name -> the kernels through jax.pure_callback (``lrn_core_lrn_jvp`` has no kernel:
#: :mod:`._primitives` composes it of the window-sum primitive)
CALLBACKS = {
    "lrn_core_lrn": _core_lrn,
    "lrn_core_lrn_vjp": _core_vjp,
    "lrn_core_window_sum": _core_window,
}


# --- the lowering rule ----------------------------------------------------------------------------


def _check_core(name, platforms, exporting):
    if exporting:
        raise ValueError(
            f"{name}: implementation='core' runs lrn-core's kernels in this Python "
            "process (an XLA FFI target registered from Python), which jax.export cannot "
            "serialise. Use implementation='auto' (the default: pure XLA under export) "
            "or 'native'."
        )
    if platforms != ("cpu",):
        raise RuntimeError(
            f"{name}: implementation='core' runs lrn-core's kernels on the CPU only, got "
            f"platforms {platforms}. Use implementation='auto' or 'native' (pure XLA on the "
            "device); lrn-core never copies a device array to the host behind your back."
        )


def lowering(name, core_impl):
    """The lowering rule of the primitive ``name``: its FFI custom call, ``core_impl`` (the
    kernels without the FFI targets) or the pure-XLA composite, as ``implementation`` and the
    platform say."""
    native_impl = _composite.NATIVE[name]

    def rule(ctx, *args, implementation, partitioning, **params):
        platforms = _compat.lowering_platforms(ctx)
        exporting = _compat.lowering_for_export(ctx)
        if implementation == "core":
            _check_core(name, platforms, exporting)
        use_core = implementation == "core" or (
            implementation == "auto" and platforms == ("cpu",) and not exporting
        )
        if use_core and f"{name}_cpu" in _FFI_TARGETS:
            # an XLA FFI custom call: the kernels read XLA's buffers and write its output in place
            attrs = {
                key: (np.int64 if key in _INT_ATTRS else np.float64)(value)
                for key, value in params.items()
            }
            call = _ffi.ffi_call(f"{name}_cpu", tuple(sorted(attrs.items())))
            return _sharding.lower_partitioned(ctx, call, args, params["axis"])
        impl = core_impl if use_core else native_impl
        return mlir.lower_fun(functools.partial(impl, **params), multiple_results=False)(ctx, *args)

    return rule
