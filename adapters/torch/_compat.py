"""Every private PyTorch name the torch adapter uses, in one place, each with why.

torch 2.6 (the oldest supported) has no public API for any of these; a torch release that
renames one breaks this file only, and ``tests/test_torch_routes.py`` checks that every name in
``__all__`` resolves (CI runs it on the oldest and the newest torch). The rest of the adapter
uses public APIs only. Names whose module is costly or optional to import (the fake tensor,
Inductor, the TorchScript ONNX helpers) are looked up when first called, as before the split.
"""

from __future__ import annotations

import sys

import torch
import torch.autograd.forward_ad as _fwAD

# no public "is any torch.func transform (grad, vjp, jvp, vmap) active?"
functorch_transforms_active = torch._C._are_functorch_transforms_active

# no public way to call an op's next kernel past the Autograd key (an op's autograd kernel's job)
AutoDispatchBelowAutograd = torch._C._AutoDispatchBelowAutograd

# torch.func's single-level Functions switch forward grad back on this way; no public switch
set_fwd_grad_enabled = _fwAD._set_fwd_grad_enabled

# a tensor wrapped by a torch.func layer (grad/jvp) or legacy-batched: no public predicate
is_functorch_wrapped_tensor = torch._C._functorch.is_functorch_wrapped_tensor
is_legacy_batchedtensor = torch._C._functorch.is_legacy_batchedtensor

# is a __torch_dispatch__ mode (FakeTensorMode, FunctionalTensorMode, ...) on the stack? The
# public torch.utils._python_dispatch helpers are private too; this is the C++ counter they read.
len_torch_dispatch_stack = torch._C._len_torch_dispatch_stack

# is a __torch_function__ mode active? torch.overrides has no public query
is_torch_function_mode_enabled = torch._C._is_torch_function_mode_enabled

# the functorch interpreter stack and its transform types: what tells a jvp layer from a grad
# layer (jacfwd(jacfwd(f)) needs the composite); torch.func exposes no query
from torch._functorch.pyfunctorch import (  # noqa: E402
    TransformType,
    retrieve_all_functorch_interpreters,
)

# the switch (and base class) that lets an autograd.Function run as an op's Autograd kernel
# under torch.func, as torch.func's own Functions do; torch.func has no public equivalent
from torch._functorch.utils import enable_single_level_autograd_function  # noqa: E402
from torch.autograd.function import _SingleLevelFunction as SingleLevelFunction  # noqa: E402

__all__ = [
    "functorch_transforms_active",
    "AutoDispatchBelowAutograd",
    "set_fwd_grad_enabled",
    "current_fwd_level",
    "is_functorch_wrapped_tensor",
    "is_legacy_batchedtensor",
    "len_torch_dispatch_stack",
    "is_torch_function_mode_enabled",
    "TransformType",
    "retrieve_all_functorch_interpreters",
    "enable_single_level_autograd_function",
    "SingleLevelFunction",
    "python_dispatch",
    "is_fake",
    "aot_compiling",
    "onnx_const",
    "onnx_tensor_rank",
]


def current_fwd_level():
    """The innermost ``torch.autograd.forward_ad.dual_level`` (-1: none); no public getter."""
    return _fwAD._current_level


def python_dispatch(t):
    """Is ``t`` a ``__torch_dispatch__`` subclass (DTensor, nested jagged, masked, wrappers)?

    Its dispatch keys say so; ``torch.overrides`` tells only ``__torch_function__`` apart, and a
    ``__torch_dispatch__`` method can be inherited or absent on the instance's own class.
    """
    return torch._C._dispatch_keys(t).has(torch._C.DispatchKey.Python)


def is_fake(t):
    """Is ``t`` a FakeTensor (a traced input)? No public API tells traced from real tensors."""
    from torch._subclasses.fake_tensor import is_fake as fake

    return fake(t)


def aot_compiling():
    """Is AOTInductor compiling (``V.aot_compilation``)? No public flag; never imports Inductor."""
    inductor = sys.modules.get("torch._inductor.virtualized")
    return inductor is not None and inductor.V.aot_compilation is True


def onnx_const(value, desc, name):
    """A TorchScript ONNX symbolic's constant argument as a Python value (``desc`` 'i', 'f'):
    ``register_custom_op_symbolic`` hands symbolics graph values, and torch.onnx offers no public
    helper to read them."""
    from torch.onnx import symbolic_helper

    return symbolic_helper._get_const(value, desc, name)


def onnx_tensor_rank(value):
    """The rank of a TorchScript ONNX graph value, or None; private for the same reason."""
    from torch.onnx import symbolic_helper

    return symbolic_helper._get_tensor_rank(value)
