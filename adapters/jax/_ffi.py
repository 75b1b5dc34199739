"""XLA FFI targets for the JAX adapter: lrn-core's C handlers, registered with ``jax.ffi``, and
the custom call that runs them.

The handlers are C (``src/lrn_core/_simd/lrn_xla_ffi.c``), compiled into the core's kernel
extensions against a vendored copy of the XLA FFI C API declarations (API version 0.1), so the
core builds without JAX. XLA calls a handler with its call frame; the handler checks it (struct
sizes, operand dtypes and shapes, attributes) and runs the core's driver on XLA's buffers in place:
no Python, no GIL, no copy. Errors come back as XLA errors naming the target and the argument.
How it is built and versioned: ``docs/jax-ffi.rst``.

When XLA registers a handler it asks for the API version the handler was built for. A jaxlib
whose XLA does not accept that version refuses the registration; :func:`register` then registers
nothing, says so once with a ``RuntimeWarning`` naming both versions, and the adapter falls back
to ``jax.pure_callback`` (same results, slower).
"""

from __future__ import annotations

import functools
import re
import warnings

import jax

from ..._api import kernels

__all__ = ["register", "HANDLERS", "ffi_call"]

#: JAX target name -> the kernel module's handler (``xla_ffi_handlers()`` key)
HANDLERS = {
    "lrn_core_lrn_cpu": "lrn",
    "lrn_core_lrn_vjp_cpu": "lrn_vjp",
    "lrn_core_window_sum_cpu": "window_sum",
}

_warned = False


def _framework_version(message):
    """The framework's API version quoted in XLA's refusal, else None."""
    found = re.search(r"framework's API version \((\d+)\.(\d+)\)", message)
    return f"{found.group(1)}.{found.group(2)}" if found else None


def _warn_once(message):
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def register(names):
    """Register the C handlers for the target ``names`` (keys of :data:`HANDLERS`) on the CPU;
    the names registered: all, or none if this jax has no ``jax.ffi`` or its XLA refuses the
    handlers' API version (the adapter then uses ``jax.pure_callback``)."""
    if not hasattr(jax, "ffi"):
        return frozenset()
    unknown = set(names) - set(HANDLERS)
    if unknown:
        raise ValueError(f"no lrn-core XLA FFI handler for {sorted(unknown)}; known: {HANDLERS}")
    module = kernels()
    capsules = module.xla_ffi_handlers()
    built = "{}.{}".format(*module.xla_ffi_api_version)
    registered = set()
    for name in names:
        try:
            jax.ffi.register_ffi_target(name, capsules[HANDLERS[name]], platform="cpu")
        except Exception as exc:
            framework = _framework_version(str(exc))
            what = (
                f"this jaxlib's XLA FFI API is {framework}, lrn-core's handlers are built for "
                f"{built}"
                if framework
                else f"registering XLA FFI target {name!r} failed ({exc}); lrn-core's handlers "
                f"are built for XLA FFI API {built}"
            )
            _warn_once(
                f"lrn_core.adapters.jax: {what}. The JAX adapter runs lrn-core's kernels through "
                "jax.pure_callback instead (same results, slower per call); "
                "implementation='native' avoids the callback."
            )
            return frozenset()  # all or nothing: one route for every primitive
        registered.add(name)
    return frozenset(registered)


@functools.cache
def ffi_call(target, attrs):
    """The kernels' custom call ``target`` on operands of any shape (the result has the first
    one's); one function per target and attributes (``attrs``: sorted ``(name, value)`` pairs), so
    that :mod:`._sharding` wraps each once."""

    def call(*args):
        return jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(args[0].shape, args[0].dtype))(
            *args, **dict(attrs)
        )

    return call
