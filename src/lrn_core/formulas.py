"""The LRN formula, written once over the few operations each framework supplies.

Every composite LRN of lrn-core (``jnp``/``lax`` for JAX, torch ops and ATen for PyTorch and its
exporters, TensorFlow ops) is one of the functions below applied to that framework's
:class:`Ops`: a fix here (the window of even sizes, the widening of float16) reaches them all.
:mod:`lrn_core.reference` (float64 NumPy loops) stays independent on purpose: the tests compare
against it. The kernels (``_simd/lrn_kernels.c``) are the same formula in C.

With ``W`` the window sum of ``size`` channels (``before`` of them before the centre) and ``W'``
its transpose (the window with ``before`` and ``after = size - 1 - before`` swapped)::

    s = k + alpha / size * W(x * x)      t = s ** -beta      u = t / s      c = 2 alpha beta / size

    forward       y  = x t
    backward      dx = dy t - c x W'(dy x u)                  the gradient of <dy, y>
    forward_jvp   dy = tx t - c x u W(x tx)                   d y . tx
    backward_jvp  d dx . (tdy, tx)                            linear in (tdy, tx)
    backward_vjp  (g dx/d dy, g dx/d x)                        the cotangents of <g, dx(dy, x)>

``dx`` carries the factor ``beta`` in ``c`` (a common write-up drops it; DESIGN.md). The
arithmetic uses the tensors' own operators; the framework gives the rest.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = [
    "Ops",
    "forward",
    "backward",
    "forward_jvp",
    "backward_jvp",
    "backward_vjp",
    "transposed",
]


def _unchanged(*tensors):
    return None, list(tensors)


def _keep(t, dtype):
    return t


def _scalar(value, like):
    return value


class Ops(NamedTuple):
    """What a framework supplies for the formulas.

    ``window(v, size, before)``
        the channel window sum: ``out[c] = sum(v[j] for j in c - before .. c - before + size - 1)``
        (zeros outside the channels); the transposed window is ``window(v, size, size - 1 -
        before)``. The only operation that knows the channel axis.
    ``power(s, e)``
        ``s ** e`` (default ``operator.pow``).
    ``widen(*tensors)``
        ``(dtype, tensors)``: the tensors in the computing dtype (float16, bfloat16 -> float32, as
        the kernels do) and the dtype to round the result back to (default: unchanged, ``None``).
    ``narrow(t, dtype)``
        ``t`` rounded to ``dtype`` (the first item of ``widen``'s result).
    ``const(value, like)``
        a Python float as the framework wants it next to ``like`` (default: the float itself; an
        exporter that rounds Python scalars through float32 gives a tensor of ``like``'s dtype).
    """

    window: Callable[[Any, int, int], Any]
    power: Callable[[Any, Any], Any] = operator.pow
    widen: Callable[..., tuple] = _unchanged
    narrow: Callable[[Any, Any], Any] = _keep
    const: Callable[[float, Any], Any] = _scalar


def transposed(size, before):
    """``before`` of the transposed window (the adjoint of the window sum)."""
    return size - 1 - before


def _stu(ops, x, size, alpha, beta, k, before):
    """``s``, ``t = s**-beta`` and ``u = t / s`` of ``x`` (in the computing dtype)."""
    s = ops.const(k, x) + ops.const(alpha / size, x) * ops.window(x * x, size, before)
    t = ops.power(s, ops.const(-beta, x))
    return s, t, t / s


def forward(ops, x, size, alpha, beta, k, before):
    """``y = x * s**-beta``."""
    dtype, (x,) = ops.widen(x)
    _, t, _ = _stu(ops, x, size, alpha, beta, k, before)
    return ops.narrow(x * t, dtype)


def backward(ops, dy, x, size, alpha, beta, k, before):
    """``dx = dy * t - c * x * W'(dy * x * u)``: the gradient of ``<dy, forward(x)>``."""
    dtype, (dy, x) = ops.widen(dy, x)
    _, t, u = _stu(ops, x, size, alpha, beta, k, before)
    r = ops.window(dy * x * u, size, transposed(size, before))
    return ops.narrow(dy * t - ops.const(2.0 * alpha * beta / size, x) * x * r, dtype)


def forward_jvp(ops, x, tx, size, alpha, beta, k, before):
    """``d forward(x) . tx = tx * t - c * x * u * W(x * tx)``: linear in ``tx``."""
    dtype, (x, tx) = ops.widen(x, tx)
    _, t, u = _stu(ops, x, size, alpha, beta, k, before)
    c = ops.const(2.0 * alpha * beta / size, x)
    return ops.narrow(tx * t - c * x * u * ops.window(x * tx, size, before), dtype)


def backward_jvp(ops, dy, x, tdy, tx, size, alpha, beta, k, before):
    """The tangent of ``dx = backward(dy, x)`` along ``tdy`` (of ``dy``) and ``tx`` (of ``x``).

    Along ``dy`` it is ``backward(tdy, x)`` (``dx`` is linear in ``dy``); along ``x`` the Hessian
    of ``<dy, forward(x)>`` applied to ``tx``. Every piece is differentiable again, so
    derivatives of any order compose.
    """
    dtype, (dy, x, tdy, tx) = ops.widen(dy, x, tdy, tx)
    after = transposed(size, before)
    s, t, u = _stu(ops, x, size, alpha, beta, k, before)
    c = ops.const(2.0 * alpha * beta / size, x)
    r = ops.window(dy * x * u, size, after)
    ds = ops.const(2.0 * alpha / size, x) * ops.window(x * tx, size, before)
    dt = ops.const(-beta, x) * u * ds
    du = ops.const(-(beta + 1.0), x) * u / s * ds
    dr = ops.window(tdy * x * u + dy * tx * u + dy * x * du, size, after)
    return ops.narrow(tdy * t + dy * dt - c * (tx * r + x * dr), dtype)


def backward_vjp(ops, dy, x, g, size, alpha, beta, k, before):
    """``(gdy, gx)``: the cotangents of ``dy`` and ``x`` of ``<g, backward(dy, x)>``.

    ``gdy = forward_jvp(x, g)`` (the Jacobian of the forward is what ``dx`` applies to ``dy``,
    transposed); ``gx`` is the Hessian of ``<dy, forward(x)>`` applied to ``g`` (symmetric).
    """
    dtype, (dy, x, g) = ops.widen(dy, x, g)
    after = transposed(size, before)
    s, t, u = _stu(ops, x, size, alpha, beta, k, before)
    a = ops.const(alpha / size, x)
    c = ops.const(2.0 * alpha * beta / size, x)
    r = ops.window(dy * x * u, size, after)
    h = ops.window(g * x, size, before)
    gdy = g * t - c * h * x * u
    m = ops.const(-beta, x) * g * dy * u + c * ops.const(beta + 1.0, x) * h * dy * x * u / s
    gx = -(c * g * r) - c * h * dy * u + ops.const(2.0, x) * a * x * ops.window(m, size, after)
    return ops.narrow(gdy, dtype), ops.narrow(gx, dtype)
