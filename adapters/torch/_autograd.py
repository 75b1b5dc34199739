"""The Autograd kernels of the custom ops, and what they run under torch.func.

First order: the fused kernels (``lrn_forward``'s backward is ``lrn_backward``). Beyond: the
derivatives of :mod:`._composite` (torch ops and ``window_sum``), so that derivatives of any
order and mode compose, under ``torch.autograd`` and ``torch.func`` alike. Under a torch.func
jvp layer the ops run as the composites themselves (see :func:`._routes._under_functorch_jvp`).
"""

from __future__ import annotations

import functools

import torch

from . import _compat, _composite, _distributed
from ._kernels import _backward_kernel, _forward_kernel
from ._ops import _backward_op, _forward_op, _lib, _window_op
from ._routes import _functorch_or_forward_ad, _plain, _under_functorch_jvp


def _below_autograd(op, *args):
    """``op(*args)`` past the Autograd key: the kernels, or the next torch.func layer down.

    Under torch.func the layers below record their own derivatives, so grad and forward grad are
    switched back on for them, as torch.func's own single-level Functions do.
    """
    if _compat.functorch_transforms_active():
        with (
            _compat.AutoDispatchBelowAutograd(),
            torch.enable_grad(),
            _compat.set_fwd_grad_enabled(True),
        ):
            return op(*args)
    with _compat.AutoDispatchBelowAutograd():
        return op(*args)


# --- derivatives: the fused kernels at first order, composites of window_sum beyond -------------
#
# With a = alpha/n, c = 2 alpha beta/n, W the window sum (``before``), W' its adjoint (``before``
# and ``after`` swapped), s = k + a W(x^2), t = s^-beta, u = t / s:
#   forward   y  = x t                         jvp  y' = x' t - c x u W(x x')
#   backward  dx = dy t - c x W'(dy x u)       its jvp and vjp: lrn_core.formulas.
# Everything beyond the first-order kernels is lrn_core.formulas over torch ops and the
# window_sum op (linear, with its own vjp/jvp/vmap; _composite.TORCH), so that derivatives of
# any order and mode compose.


def _input_grad(dy, x, size, alpha, beta, k, before):
    """dx for upstream ``dy``: always the fused kernel; its own derivatives are registered."""
    if not torch.is_grad_enabled() and _plain(dy, x):
        return _backward_kernel(dy, x, size, alpha, beta, k, before)
    return _distributed._placed_like(_backward_op(dy, x, size, alpha, beta, k, before), x)


class _BackwardFunction(torch.autograd.Function):
    """Autograd kernel of ``lrn_backward``: what double backward and forward-over-reverse use."""

    generate_vmap_rule = True

    @staticmethod
    def forward(dy, x, size, alpha, beta, k, before):
        return _below_autograd(_backward_op, dy, x, size, alpha, beta, k, before)

    @staticmethod
    def setup_context(ctx, inputs, output):
        dy, x, *ctx.params = inputs
        ctx.save_for_backward(dy, x)
        ctx.save_for_forward(dy, x)

    @staticmethod
    def backward(ctx, g):
        dy, x = ctx.saved_tensors
        gdy, gx = _composite._backward_vjp(dy, x, g, *ctx.params)
        gdy, gx = _distributed._placed_like(gdy, dy), _distributed._placed_like(gx, x)
        need = ctx.needs_input_grad
        return (gdy if need[0] else None), (gx if need[1] else None), None, None, None, None, None

    @staticmethod
    def jvp(ctx, ddy, dx, *_):
        dy, x = ctx.saved_tensors
        ddy = torch.zeros_like(dy) if ddy is None else ddy
        dx = torch.zeros_like(x) if dx is None else dx
        return _composite._backward_jvp(dy, x, ddy, dx, *ctx.params)


class _WindowFunction(torch.autograd.Function):
    """Autograd kernel of the linear ``window_sum``: vjp is the adjoint window, jvp itself."""

    generate_vmap_rule = True

    @staticmethod
    def forward(v, size, before):
        return _below_autograd(_window_op, v, size, before)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.size, ctx.before = inputs[1:]

    @staticmethod
    def backward(ctx, g):
        return _window_op(g, ctx.size, ctx.size - 1 - ctx.before), None, None

    @staticmethod
    def jvp(ctx, dv, *_):
        return _window_op(dv, ctx.size, ctx.before)


class _LRNForward(torch.autograd.Function):
    """Autograd kernel of ``lrn_forward``: fused backward, JVP rule, generated vmap rule."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input, size, alpha, beta, k, before):
        if _plain(input):
            return _forward_kernel(input, size, alpha, beta, k, before)
        return _below_autograd(_forward_op, input, size, alpha, beta, k, before)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, *ctx.params = inputs
        ctx.save_for_backward(input)  # x, the only tensor kept: no y, no s
        ctx.save_for_forward(input)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return _input_grad(dy, x, *ctx.params), None, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, *_):
        (x,) = ctx.saved_tensors
        return _composite._forward_jvp(x, dx, *ctx.params)


@functools.cache
def _single_level(fn):
    """A ``_SingleLevelFunction`` with ``fn``'s forward, setup_context, backward and jvp.

    torch >= 2.15 routes ``apply`` of every ``torch.autograd.Function`` subclass to the
    ``custom_function_call`` higher-order op while torch.func transforms are active, whatever
    the single-level switch says; a single-level class takes the plain C++ path on every version.
    """
    names = ("forward", "setup_context", "backward", "jvp")
    body = {name: staticmethod(getattr(fn, name)) for name in names}
    return type(fn.__name__ + "SingleLevel", (_compat.SingleLevelFunction,), body)


def _apply(fn, *args):
    """``fn.apply`` as the Autograd kernel of an op: the C++ autograd.Function path.

    ``autograd.Function.apply`` under torch.func goes to the ``custom_function_call`` higher-order
    op, which has no kernel at the Autograd key an op's kernel runs at; the plain path is the one
    torch.func's grad and jvp layers expect there: a single-level Function, the way an ATen
    op's autograd kernel records its node on the wrappers of the current layer (vmap reaches
    the batching rules first).
    """
    if _compat.functorch_transforms_active():
        with _compat.enable_single_level_autograd_function():
            return _single_level(fn).apply(*args)
    return _single_level(fn).apply(*args)


def _autograd_forward(x, size, alpha, beta, k, before):
    if _distributed._sharding is None:
        _distributed._note_dtensors(x)
    if _under_functorch_jvp():
        return _composite._composite_forward(x, size, alpha, beta, k, before)
    if (torch.is_grad_enabled() and x.requires_grad) or _functorch_or_forward_ad():
        return _apply(_LRNForward, x, size, alpha, beta, k, before)
    with _compat.AutoDispatchBelowAutograd():
        return _forward_op(x, size, alpha, beta, k, before)


def _autograd_backward(dy, x, size, alpha, beta, k, before):
    if _distributed._sharding is None:
        _distributed._note_dtensors(dy, x)
    if _under_functorch_jvp():
        return _composite._composite_backward(dy, x, size, alpha, beta, k, before)
    if (
        torch.is_grad_enabled()
        and (dy.requires_grad or x.requires_grad)
        or _functorch_or_forward_ad()
    ):
        return _apply(_BackwardFunction, dy, x, size, alpha, beta, k, before)
    with _compat.AutoDispatchBelowAutograd():
        return _backward_op(dy, x, size, alpha, beta, k, before)


def _autograd_window(v, size, before):
    if _distributed._sharding is None:
        _distributed._note_dtensors(v)
    if (torch.is_grad_enabled() and v.requires_grad) or _functorch_or_forward_ad():
        return _apply(_WindowFunction, v, size, before)
    with _compat.AutoDispatchBelowAutograd():
        return _window_op(v, size, before)


_lib.impl("lrn_forward", _autograd_forward, "Autograd")
_lib.impl("lrn_backward", _autograd_backward, "Autograd")
_lib.impl("window_sum", _autograd_window, "Autograd")
