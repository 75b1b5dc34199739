"""The four JAX primitives and their rules: abstract evaluation, eager execution, batching,
differentiation (JVP and transpose). Their lowerings (what runs under ``jax.jit``) are in
:mod:`._lowering`.

- ``lrn_core_lrn(x)``: the forward pass.
- ``lrn_core_lrn_jvp(x, t)``: ``J(x) t``, linear in ``t``; its transpose is ``lrn_core_lrn_vjp``.
- ``lrn_core_lrn_vjp(x, g)``: ``J(x)^T g``, the fused backward kernel; its transpose is
  ``lrn_core_lrn_jvp``. ``jax.grad`` reaches it by transposing the forward mode.
- ``lrn_core_window_sum(v)``: the channel window sum, linear; its transpose is the window with
  ``before`` and ``after`` swapped.

The JVPs of the two middle primitives are forward mode through their formulas
(:mod:`lrn_core.formulas`) over the window-sum primitive, so derivatives of any order compose.
Each primitive takes the parameters ``size, alpha, beta, k, before, axis, implementation`` (the
window sum: ``size, before, axis, implementation``) and ``partitioning``
(:func:`._sharding.device_marker`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from ... import formulas
from . import _compat, _composite, _lowering, _sharding

__all__ = ["lrn_p", "jvp_p", "vjp_p", "window_p"]


class _Primitive(Primitive):
    def bind(self, *args, **params):
        if "partitioning" not in params:  # rules binding again pass on the first choice
            params["partitioning"] = _sharding.device_marker(args[0])
        return super().bind(*args, **params)


def _primitive(name, core_impl):
    p = _Primitive(name)
    if _compat.apply_primitive is not None:
        p.def_impl(functools.partial(_compat.apply_primitive, p))
    else:  # pragma: no cover - correct but compiles on every eager call
        p.def_impl(lambda *args, **params: jax.jit(functools.partial(p.bind, **params))(*args))
    # the input's type, sharding included: under an explicitly sharded mesh
    # (jax.sharding.AxisType.Explicit) the result keeps it instead of being typed replicated
    p.def_abstract_eval(lambda *avals, **params: avals[0].update(weak_type=False))
    mlir.register_lowering(p, _lowering.lowering(name, core_impl))

    def batch(args, dims, *, axis, **params):
        # the mapped axis goes in front, as one more outer axis: one kernel call for the batch
        n = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)
        args = [
            jnp.broadcast_to(a, (n, *a.shape)) if d is None else jnp.moveaxis(a, d, 0)
            for a, d in zip(args, dims, strict=True)
        ]
        return p.bind(*args, axis=axis + 1, **params), 0

    batching.primitive_batchers[p] = batch
    return p


# --- the formulas over the window-sum primitive ---------------------------------------------------


def _window(v, size, before, *, axis, implementation):
    return window_p.bind(v, size=size, before=before, axis=axis, implementation=implementation)


def _tangent(x, t, *, size, alpha, beta, k, before, axis, implementation, partitioning=None):
    """``J(x) t`` over the window-sum primitive."""
    ops = _composite.ops(_window, axis=axis, implementation=implementation)
    return formulas.forward_jvp(ops, x, t, size, alpha, beta, k, before)


def _cotangent(x, g, *, size, alpha, beta, k, before, axis, implementation, partitioning=None):
    """``J(x)^T g`` over the window-sum primitive."""
    ops = _composite.ops(_window, axis=axis, implementation=implementation)
    return formulas.backward(ops, g, x, size, alpha, beta, k, before)


def _core_jvp(x, t, **params):
    """``lrn_core_lrn_jvp`` on the kernels: the formula over the kernels' window sum."""
    return _tangent(x, t, **params, implementation="core")


lrn_p = _primitive("lrn_core_lrn", _lowering.CALLBACKS["lrn_core_lrn"])
jvp_p = _primitive("lrn_core_lrn_jvp", _core_jvp)
vjp_p = _primitive("lrn_core_lrn_vjp", _lowering.CALLBACKS["lrn_core_lrn_vjp"])
window_p = _primitive("lrn_core_window_sum", _lowering.CALLBACKS["lrn_core_window_sum"])


# --- differentiation ------------------------------------------------------------------------------


def _instantiate(tangents):
    return [ad.instantiate_zeros(t) for t in tangents]


def _lrn_jvp_rule(primals, tangents, **params):
    (x,), (t,) = primals, tangents
    y = lrn_p.bind(x, **params)
    if type(t) is ad.Zero:
        return y, ad.Zero.from_primal_value(y)
    return y, jvp_p.bind(x, t, **params)


def _composite_jvp_rule(formula):
    """JVP of ``J t`` or ``J^T g`` in both arguments: forward mode through the composition."""

    def rule(primals, tangents, **params):
        f = functools.partial(formula, **params)
        return jax.jvp(f, tuple(primals), tuple(_instantiate(tangents)))

    return rule


def _linear_transpose(other, name):
    """Transpose in the second argument of a primitive linear in it (``x`` stays a primal)."""

    def rule(ct, x, v, **params):
        if ad.is_undefined_primal(x):
            raise NotImplementedError(
                f"{name} is linear in its second argument only; it cannot be transposed in x"
            )
        if type(ct) is ad.Zero:
            return None, ad.Zero(v.aval)
        return None, other.bind(x, ct, **params)

    return rule


def _window_jvp_rule(primals, tangents, *, size, before, axis, implementation, partitioning=None):
    (v,), (t,) = primals, tangents
    params = dict(size=size, before=before, axis=axis, implementation=implementation)
    y = window_p.bind(v, **params)
    if type(t) is ad.Zero:
        return y, ad.Zero.from_primal_value(y)
    return y, window_p.bind(t, **params)


def _window_transpose(ct, v, *, size, before, axis, implementation, partitioning=None):
    if type(ct) is ad.Zero:
        return (ad.Zero(v.aval),)
    after = formulas.transposed(size, before)
    return (window_p.bind(ct, size=size, before=after, axis=axis, implementation=implementation),)


ad.primitive_jvps[lrn_p] = _lrn_jvp_rule
ad.primitive_jvps[jvp_p] = _composite_jvp_rule(_tangent)
ad.primitive_jvps[vjp_p] = _composite_jvp_rule(_cotangent)
ad.primitive_transposes[jvp_p] = _linear_transpose(vjp_p, "lrn_core_lrn_jvp")
ad.primitive_transposes[vjp_p] = _linear_transpose(jvp_p, "lrn_core_lrn_vjp")
ad.primitive_jvps[window_p] = _window_jvp_rule
ad.primitive_transposes[window_p] = _window_transpose
