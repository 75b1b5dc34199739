"""The ``torch.library`` custom ops: their schemas, fake kernels and vmap (batching) rules.

``torch.ops.lrn_core.lrn_forward``, ``lrn_backward`` and ``window_sum`` (channel dimension 1).
Their CPU kernels are registered by :mod:`._kernels`, their Autograd kernels by
:mod:`._autograd`; the sharding rules for DTensor by :mod:`._distributed`.
"""

from __future__ import annotations

import torch

from . import _compat

#: dtypes the custom ops accept; the last two are computed in float32
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _check(op, *tensors):
    """Dtype, device and rank checks shared by the real and the fake kernels of the ops."""
    for t in tensors:
        if t.dtype not in DTYPES:
            raise TypeError(
                f"{op}: tensors must have dtype float32, float64, float16 or bfloat16, "
                f"got {t.dtype}"
            )
        if t.device.type not in ("cpu", "meta"):
            raise RuntimeError(
                f"{op}: lrn-core computes on the CPU only, got a tensor on {t.device}. Use "
                f"torch.nn.functional.local_response_norm there (lrn_core.adapters.torch."
                f"local_response_norm and LocalResponseNorm do so themselves); lrn-core never "
                f"copies a tensor to the host behind your back."
            )
        if t.dim() < 2:
            raise ValueError(
                f"{op}: tensors must have the channel dimension 1, got a {t.dim()}-D tensor"
            )


def _fake(op, *tensors):
    _check(op, *tensors)
    if _compat.aot_compiling():
        # AOTInductor would call back into Python for this op: a package that fails to load
        # wherever lrn-core's Python registration is absent. Say so at compile time instead.
        raise RuntimeError(
            f"lrn_core::{op} is a Python custom op: an AOTInductor package calling it could run "
            f"only where lrn-core's Python registration is loaded. Decompose it to ATen before "
            f"compiling: ep = ep.run_decompositions(lrn_core.adapters.torch.decompositions()) "
            f"(the same numbers, computed by torch's own ops)."
        )
    return torch.empty_like(tensors[-1], memory_format=torch.preserve_format)


# --- the custom ops ----------------------------------------------------------------------------
#
# Defined with ``torch.library.Library`` (``define`` + ``impl``) rather than
# ``torch.library.custom_op``: the custom_op autograd wrapper has neither a forward-mode (JVP)
# rule nor ``setup_context`` (so ``torch.func`` refuses it), and it skips autograd altogether when
# no input requires grad, which silently drops forward-mode tangents. Here each op's Autograd
# kernel is an ``autograd.Function`` with ``setup_context``, ``backward``, ``jvp`` and a
# generated vmap rule, and each op has a real batching rule (``register_vmap``), so the raw ops,
# :class:`LRNFunction` and the functional behave the same under every transform.

_lib = torch.library.Library("lrn_core", "DEF")
_lib.define(
    "lrn_forward(Tensor x, int size, float alpha, float beta, float k, int before) -> Tensor"
)
_lib.define(
    "lrn_backward(Tensor dy, Tensor x, int size, float alpha, float beta, float k, "
    "int before) -> Tensor"
)
_lib.define("window_sum(Tensor v, int size, int before) -> Tensor")
_ops = torch.ops.lrn_core
_forward_op = _ops.lrn_forward.default
_backward_op = _ops.lrn_backward.default
_window_op = _ops.window_sum.default


@torch.library.register_fake("lrn_core::lrn_forward", lib=_lib)
def _(x, size, alpha, beta, k, before):
    return _fake("lrn_forward", x)


@torch.library.register_fake("lrn_core::lrn_backward", lib=_lib)
def _(dy, x, size, alpha, beta, k, before):
    return _fake("lrn_backward", dy, x)


@torch.library.register_fake("lrn_core::window_sum", lib=_lib)
def _(v, size, before):
    return _fake("window_sum", v)


# --- batching rules (vmap): vmapped dims become more "outer" rows of the kernels ---------------


def _batched(op, tensors, in_dims):
    """Move each vmapped dim to the front, fold it into dim 0, call ``op`` once, unfold."""
    batch = next(t.shape[d] for t, d in zip(tensors, in_dims, strict=True) if d is not None)
    flat = []
    for t, d in zip(tensors, in_dims, strict=True):
        t = t.movedim(d, 0) if d is not None else t.unsqueeze(0).expand(batch, *t.shape)
        if t.dim() < 3:  # the per-sample tensor must have a channel dim 1, as the op demands
            _check(op.__name__.split(".")[0], t[0])
        flat.append(t.reshape(-1, *t.shape[2:]))
    return flat, lambda out: out.reshape(batch, -1, *out.shape[1:])


def _vmap_forward(info, in_dims, x, size, alpha, beta, k, before):
    if in_dims[0] is None:
        return _forward_op(x, size, alpha, beta, k, before), None
    (x,), unfold = _batched(_forward_op, (x,), in_dims[:1])
    return unfold(_forward_op(x, size, alpha, beta, k, before)), 0


def _vmap_backward(info, in_dims, dy, x, size, alpha, beta, k, before):
    if in_dims[0] is None and in_dims[1] is None:
        return _backward_op(dy, x, size, alpha, beta, k, before), None
    (dy, x), unfold = _batched(_backward_op, (dy, x), in_dims[:2])
    return unfold(_backward_op(dy, x, size, alpha, beta, k, before)), 0


def _vmap_window(info, in_dims, v, size, before):
    if in_dims[0] is None:
        return _window_op(v, size, before), None
    (v,), unfold = _batched(_window_op, (v,), in_dims[:1])
    return unfold(_window_op(v, size, before)), 0


torch.library.register_vmap("lrn_core::lrn_forward", _vmap_forward, lib=_lib)
torch.library.register_vmap("lrn_core::lrn_backward", _vmap_backward, lib=_lib)
torch.library.register_vmap("lrn_core::window_sum", _vmap_window, lib=_lib)
