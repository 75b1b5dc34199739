"""LRN composed of torch ops: :mod:`lrn_core.formulas` over two window sums.

- ``TORCH``: the window sum is the ``window_sum`` custom op (linear, with its own vjp, jvp and
  vmap rules), so every composite is differentiable in every mode. The derivatives beyond the
  fused first-order kernels (the forward's JVP, the backward's JVP and VJP) and the forward and
  backward under a torch.func jvp layer are these.
- ``ATEN``: the window sum written with ATen ops only (zero padding and shifted slices): the
  decompositions for torch.export/AOTInductor, the ONNX exporter's composite, and what tensor
  subclasses without a rule for the ops compute.

float16/bfloat16 are computed in float32 and rounded once, as the kernels do.
"""

from __future__ import annotations

import torch

from ... import formulas
from ._ops import _window_op


def _widen(*tensors):
    """float16/bfloat16 are computed in float32, as the kernels do."""
    dtype = tensors[-1].dtype
    if dtype in (torch.float16, torch.bfloat16):
        return dtype, [t.float() for t in tensors]
    return dtype, list(tensors)


def _narrow(t, dtype):
    return t.to(dtype)


def _aten_window_sum(v, size, before):
    """The channel window sum with torch ops only: zero padding and ``size`` shifted slices."""
    after = size - 1 - before
    channels = v.shape[1]
    parts = [
        v.new_zeros((v.shape[0], before, *v.shape[2:])),
        v,
        v.new_zeros((v.shape[0], after, *v.shape[2:])),
    ]
    padded = torch.cat(parts, 1)
    out = padded.narrow(1, 0, channels)
    for i in range(1, size):
        out = out + padded.narrow(1, i, channels)
    return out


#: the differentiable composite: the window is the window_sum op
TORCH = formulas.Ops(window=_window_op, power=torch.pow, widen=_widen, narrow=_narrow)
#: the ATen composite: no lrn_core op in it
ATEN = formulas.Ops(window=_aten_window_sum, power=torch.pow, widen=_widen, narrow=_narrow)


def _forward_jvp(x, dx, size, alpha, beta, k, before):
    """Tangent of ``lrn_forward(x)`` along ``dx``."""
    return formulas.forward_jvp(TORCH, x, dx, size, alpha, beta, k, before)


def _backward_jvp(dy, x, ddy, dx, size, alpha, beta, k, before):
    """Tangent of ``dx = lrn_backward(dy, x)`` for tangents ``ddy`` (of dy) and ``dx`` (of x)."""
    return formulas.backward_jvp(TORCH, dy, x, ddy, dx, size, alpha, beta, k, before)


def _backward_vjp(dy, x, g, size, alpha, beta, k, before):
    """(grad wrt dy, grad wrt x) of ``<g, lrn_backward(dy, x)>``."""
    return formulas.backward_vjp(TORCH, dy, x, g, size, alpha, beta, k, before)


def _composite_forward(x, size, alpha, beta, k, before):
    """lrn_forward written with torch ops and window_sum: differentiable in every mode."""
    return formulas.forward(TORCH, x, size, alpha, beta, k, before)


def _composite_backward(dy, x, size, alpha, beta, k, before):
    """lrn_backward written with torch ops and window_sum: differentiable in every mode."""
    return formulas.backward(TORCH, dy, x, size, alpha, beta, k, before)


def _aten_forward(x, size, alpha, beta, k, before):
    """lrn_forward with ATen ops only."""
    return formulas.forward(ATEN, x, size, alpha, beta, k, before)


def _aten_backward(dy, x, size, alpha, beta, k, before):
    """lrn_backward with ATen ops only."""
    return formulas.backward(ATEN, dy, x, size, alpha, beta, k, before)
