"""The LRN in jnp/lax: :mod:`lrn_core.formulas` over a JAX window sum.

Two window sums serve the formulas here: ``lax.reduce_window`` with ``add`` (the pure-XLA one,
``implementation="native"``: every window summed afresh, no running subtraction), and the
``lrn_core_window_sum`` primitive of :mod:`._primitives` (kernels or XLA, chosen when lowered),
through which the derivatives of the JVP/VJP primitives compose to any order. Each is bound to
the channel ``axis`` (and the primitive to its ``implementation``) as a :class:`formulas.Ops`.

The primitives hand the formulas float32 or float64 only (the public function widens float16 and
bfloat16 first), so the Ops keep the default ``widen``/``narrow`` (unchanged), ``power``
(``**``) and ``const`` (Python floats, weakly typed in jnp).
"""

from __future__ import annotations

import numpy as np
from jax import lax

from ... import formulas

__all__ = ["reduce_window_sum", "ops", "NATIVE"]


def reduce_window_sum(v, size, before, *, axis):
    """Window sum with ``lax.reduce_window``: each window summed afresh, no subtraction."""
    window = [1] * v.ndim
    window[axis] = size
    padding = [(0, 0)] * v.ndim
    padding[axis] = (before, formulas.transposed(size, before))
    return lax.reduce_window(v, np.array(0, v.dtype), lax.add, window, (1,) * v.ndim, padding)


def ops(window, **bound):
    """:class:`formulas.Ops` whose window sum is ``window(v, size, before, **bound)``."""

    def w(v, size, before):
        return window(v, size, before, **bound)

    return formulas.Ops(window=w)


def _forward(x, *, size, alpha, beta, k, before, axis):
    """``y``: the forward pass."""
    return formulas.forward(ops(reduce_window_sum, axis=axis), x, size, alpha, beta, k, before)


def _jvp(x, t, *, size, alpha, beta, k, before, axis):
    """``J(x) t``: linear in ``t``."""
    o = ops(reduce_window_sum, axis=axis)
    return formulas.forward_jvp(o, x, t, size, alpha, beta, k, before)


def _vjp(x, g, *, size, alpha, beta, k, before, axis):
    """``J(x)^T g``: the backward pass for the upstream gradient ``g``."""
    o = ops(reduce_window_sum, axis=axis)
    return formulas.backward(o, g, x, size, alpha, beta, k, before)


def _window(v, *, size, before, axis):
    return reduce_window_sum(v, size, before, axis=axis)


#: primitive name -> its pure jnp/lax implementation (keyword arguments: the primitive's params)
NATIVE = {
    "lrn_core_lrn": _forward,
    "lrn_core_lrn_jvp": _jvp,
    "lrn_core_lrn_vjp": _vjp,
    "lrn_core_window_sum": _window,
}
