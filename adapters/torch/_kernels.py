"""The CPU kernels of the custom ops: the hand-off of tensors to lrn-core's core, no copy.

Registered at ``CompositeExplicitAutograd``: every backend reaches them, and they refuse
non-CPU tensors with their own message (the fake kernels in :mod:`._ops` serve meta/fake tensors).
"""

from __future__ import annotations

import torch
from torch import Tensor

import lrn_core

from ..._api import output_buffer_like
from . import _compat, _distributed
from ._ops import _check, _lib


def _numpy(t):
    """A NumPy view of a CPU tensor, sharing its memory; bfloat16 goes through float32."""
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.detach().numpy()


def _run(op, fn, *tensors, **params):
    """``fn(*arrays, axis=1, out=..., **params)`` into a new tensor laid out like the last input."""
    _check(op, *tensors)
    if type(tensors[0]) is not Tensor or type(tensors[-1]) is not Tensor:
        if any(map(_compat.python_dispatch, tensors)):
            return _distributed._subclass_kernel(op, *tensors, **params)
    arrays = list(map(_numpy, tensors))
    x = tensors[-1]
    # The output is allocated by the core, laid out like the input (channels_last stays
    # channels_last), and handed to torch without a copy. Large outputs reuse blocks no tensor
    # references any more (the core's output cache): faulting in fresh pages costs more than the
    # LRN.
    out = output_buffer_like(arrays[-1])
    fn(*arrays, axis=1, out=out, **params)
    out = torch.from_numpy(out)
    return out.to(x.dtype) if x.dtype == torch.bfloat16 else out


def _forward_kernel(x, size, alpha, beta, k, before):
    """LRN over dim 1 of ``x``; the window of channel c is [c - before, c - before + size - 1]."""
    return _run(
        "lrn_forward", lrn_core.lrn, x, size=size, alpha=alpha, beta=beta, k=k, before=before
    )


def _backward_kernel(dy, x, size, alpha, beta, k, before):
    """The input gradient of ``lrn_forward`` (the fused kernel, recomputing s from x)."""
    return _run(
        "lrn_backward",
        lrn_core.lrn_backward,
        dy,
        x,
        size=size,
        alpha=alpha,
        beta=beta,
        k=k,
        before=before,
    )


def _window_kernel(v, size, before):
    """Sum of ``v`` over the channel window (dim 1); linear, the adjoint swaps before/after."""
    return _run("window_sum", lrn_core.window_sum, v, size=size, before=before)


_lib.impl("lrn_forward", _forward_kernel, "CompositeExplicitAutograd")
_lib.impl("lrn_backward", _backward_kernel, "CompositeExplicitAutograd")
_lib.impl("window_sum", _window_kernel, "CompositeExplicitAutograd")
