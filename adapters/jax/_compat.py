"""The JAX adapter's uses of jax internals, in one place (each: why no public API serves).

Everything else in :mod:`lrn_core.adapters.jax` uses public jax: ``jax.extend.core.Primitive``,
``jax.interpreters.ad``/``batching``/``mlir`` (the documented interface for primitives),
``jax.ffi``, ``jax.experimental.custom_partitioning``. When a jax release moves one of the names
below, this file is the one to change; ``tests/test_jax.py`` checks that each resolves.
"""

from __future__ import annotations

__all__ = ["apply_primitive", "lowering_platforms", "lowering_for_export", "lowering_devices"]

try:
    # the eager path of a primitive: compile it alone, cached (what jax's own primitives do); jax
    # has no public eager dispatch for a jax.extend Primitive (jax.jit of bind compiles per call)
    from jax._src.dispatch import apply_primitive
except ImportError:  # pragma: no cover - moved in a future jax
    apply_primitive = None


def lowering_platforms(ctx):
    """The platforms a lowering rule emits code for (``("cpu",)``, ``("cuda",)``, ...).

    A lowering rule's context (``jax.interpreters.mlir.LoweringRuleContext``) is public, its
    ``module_context`` fields are not documented: jax has no public query for the platform."""
    return tuple(ctx.module_context.platforms)


def lowering_for_export(ctx):
    """Whether the lowering is for ``jax.export`` (no public flag tells a rule so)."""
    return bool(ctx.module_context.lowering_parameters.for_export)


def lowering_devices(ctx):
    """``(device_assignment, num_devices)`` of the program being lowered: ``device_assignment`` is
    None when jax gives the lowering no concrete devices (``jax.export`` on an abstract mesh).

    ``custom_partitioning`` needs concrete devices and the rule must know beforehand whether it
    has them; the axis context that carries them has no public accessor."""
    axis_context = ctx.module_context.axis_context
    return getattr(axis_context, "device_assignment", ()), getattr(axis_context, "num_devices", 2)
