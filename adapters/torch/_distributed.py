"""Tensor subclasses: DTensor's sharding rules, torch's ops for the others.

DTensor runs the ops on each rank's local shard under the sharding rules below. LRN is
pointwise in every dimension but the channel dimension 1, whose window crosses shards: every
rule leaves dim 1 unsharded, so DTensor runs batch- or spatially-sharded inputs as they are
(no communication) and gathers a channel-sharded input along the channels first; the public
entry points shard the result again like the input (_placed_like), as native torch does, and
every gradient is placed like its input. The rules are registered when the first DTensor
meets the adapter (or on import, if torch.distributed.tensor is loaded already): importing
the adapter never imports torch.distributed, which may be missing from a build.

Other ``__torch_dispatch__`` subclasses (nested jagged, masked, user wrappers) do not know the
ops: in eager code (no dispatch mode, which is how FakeTensor and FunctionalTensor come, not
compiling) local_response_norm hands them to the native function and LRNFunction to the ATen
composite, so the subclass sees only ATen ops; a raw op call is the subclass's to handle, and
one that passes the op down to the kernels gets the ATen composite on its data
(_subclass_kernel), never a ``.numpy()`` error. ``__torch_function__``-only subclasses hold
plain memory and take the kernels.
"""

from __future__ import annotations

import sys
import warnings

import torch
from torch import Tensor

from ...validation import check_params
from . import _compat
from ._composite import _aten_backward, _aten_forward, _aten_window_sum
from ._ops import _backward_op, _forward_op, _window_op

#: None: rules not registered yet; True: registered; False: register_sharding is missing
_sharding = None


def _dtensor_type():
    """DTensor if torch.distributed.tensor is loaded, else None: then no DTensor can exist."""
    return getattr(sys.modules.get("torch.distributed.tensor"), "DTensor", None)


def _note_dtensors(*tensors):
    """Register the sharding rules if one of ``tensors`` is a DTensor; cheap when none is."""
    if _sharding is None and any(type(t) is not Tensor for t in tensors):
        cls = _dtensor_type()
        if cls is not None and any(isinstance(t, cls) for t in tensors):
            _register_sharding_rules()


def _register_sharding_rules():
    global _sharding
    try:
        from torch.distributed.tensor import Replicate, Shard

        with warnings.catch_warnings():
            # Newer torch warns on importing the experimental package that its APIs may
            # change: a note for whoever calls them (this adapter, tested on every torch it
            # supports), not for the user whose DTensor reached it.
            warnings.simplefilter("ignore", UserWarning)
            from torch.distributed.tensor.experimental import register_sharding
    except ImportError:
        # register_sharding is public from torch 2.5 on; the oldest torch supported (2.6) has
        # it. Without it local_response_norm hands DTensors to the native function (_foreign),
        # and the raw ops raise DTensor's "no sharding strategy" error.
        _sharding = False
        return

    def rules(ndim, tensors, scalars):
        """All replicated, or every tensor sharded alike along one dimension other than 1.

        Per mesh dimension; DTensor combines them for meshes of more dimensions and filters
        out the dimensions too short to shard.
        """
        out = [([Replicate()], [Replicate()] * tensors + [None] * scalars)]
        for d in range(ndim):
            if d != 1:
                out.append(([Shard(d)], [Shard(d)] * tensors + [None] * scalars))
        return out

    @register_sharding(_forward_op)
    def _(x, size, alpha, beta, k, before):
        return rules(x.ndim, 1, 5)

    @register_sharding(_backward_op)
    def _(dy, x, size, alpha, beta, k, before):
        return rules(x.ndim, 2, 5)

    @register_sharding(_window_op)
    def _(v, size, before):
        return rules(v.ndim, 1, 2)

    _sharding = True


def _foreign(t):
    """Is ``t`` a ``__torch_dispatch__`` subclass the ops have no rule for, in eager code?"""
    if type(t) is Tensor or torch.compiler.is_compiling() or _compat.len_torch_dispatch_stack():
        return False
    if not _compat.python_dispatch(t):
        return False  # a __torch_function__ subclass: plain memory, the kernels serve it
    cls = _dtensor_type()
    if cls is not None and isinstance(t, cls):
        _note_dtensors(t)
        return not _sharding
    return True


def _placed_like(t, like):
    """``t`` redistributed to the placements of ``like`` if both are DTensors and they differ.

    Only a channel-sharded (dim 1) ``like`` leads here (or one whose dimensions are too short
    to shard): the rules leave dim 1 unsharded, and sharding a replicated result again is a
    local slice. Partial placements (a pending sum is no layout for LRN's input) stay as is.
    """
    if type(t) is Tensor or type(like) is Tensor:
        return t
    cls = _dtensor_type()
    if cls is None or not isinstance(t, cls) or not isinstance(like, cls):
        return t
    if tuple(t.placements) == tuple(like.placements) or any(
        p.is_partial() for p in like.placements
    ):
        return t
    return t.redistribute(like.device_mesh, like.placements)


def _subclass_composite(input, size, alpha, beta, k, before):
    """LRNFunction on a subclass the ops have no rule for: the ATen composite, or a clear error."""
    try:
        return _aten_forward(input, size, alpha, beta, k, before)
    except Exception as e:  # the subclass refused an ATen op: say which route, and the way out
        name = type(input).__name__
        raise RuntimeError(
            f"LRNFunction: {type(input).__module__}.{name} is a __torch_dispatch__ tensor "
            f"subclass lrn-core's ops have no rule for, so LRN ran on it as torch's ATen ops "
            f"(lrn_core.adapters.torch.decompositions()), and {name} refused one "
            f"({type(e).__name__}: {e}). Convert the input to a plain tensor first (a nested "
            f"tensor with to_padded_tensor, a masked one with get_data, ...)."
        ) from e


def _subclass_kernel(op, *tensors, **params):
    """A ``__torch_dispatch__`` subclass passed the op down to the kernels: the ATen composite.

    Its data is no NumPy array (``.numpy()`` refuses subclasses); the composite computes the
    same function with ATen ops, which run on the subclass's data as its kernels would.
    """
    size, before = params["size"], params["before"]
    if op == "window_sum":
        check_params(size, 0.0, 0.0, 0.0, before)
        return _aten_window_sum(*tensors, size, before)
    size, alpha, beta, k, before = check_params(
        size, params["alpha"], params["beta"], params["k"], before
    )
    composite = _aten_forward if op == "lrn_forward" else _aten_backward
    return composite(*tensors, size, alpha, beta, k, before)


if _dtensor_type() is not None:  # DTensors may exist already (raw ops in inference mode)
    _register_sharding_rules()
