"""Where a call goes: the one routing decision of the public entry points, and its predicates.

:func:`route` answers, for an input of ``local_response_norm``, ``LocalResponseNorm`` or
``LRNFunction.apply``: the kernels directly (nothing around the call), the differentiable
composite (a torch.func jvp layer), the ONNX graph (``torch.onnx.export(dynamo=True)`` is
capturing), torch's own ops (a tensor subclass the ops have no rule for), or the custom op
through the dispatcher (everything else: torch.compile, torch.export, vmap, grad, DTensor, modes).
What the op then does under torch.func and autograd is :mod:`._autograd`'s.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _compat
from ._distributed import _foreign

#: the routes of :func:`route`
KERNELS, COMPOSITE, ONNX, SUBCLASS, OP = "kernels", "composite", "onnx", "subclass", "op"


def route(input):
    """The route of a public entry point for ``input`` (one of the constants above)."""
    if _plain(input):  # the same as the op, without the dispatcher's cost
        return KERNELS
    if _under_functorch_jvp():  # see _under_functorch_jvp
        return COMPOSITE
    if _in_dynamo_onnx_export():  # see lrn_core.adapters.torch.export
        return ONNX
    if _foreign(input):  # a subclass the ops have no rule for: torch's ops, torch's autograd
        return SUBCLASS
    return OP  # DTensor included: the entry points place the result like the input


def _under_functorch_jvp():
    """Is a torch.func forward-mode layer (jvp, jacfwd, hessian) on the stack?

    An autograd.Function's ``jvp`` rule is not itself differentiated by an enclosing torch.func
    jvp layer (jacfwd(jacfwd(f)) would silently miss terms), so under any such layer the ops
    run as the composites (:mod:`._composite`), whose every op is differentiable in every
    mode. Reverse mode (grad, vjp, jacrev) and ``torch.autograd.forward_ad`` (one level) keep
    the fused kernels.
    """
    return _compat.functorch_transforms_active() and any(
        i.key() == _compat.TransformType.Jvp for i in _compat.retrieve_all_functorch_interpreters()
    )


def _plain(*tensors):
    """Nothing around the call (transform, tracer, mode, compiler) and plain CPU tensors: the
    kernels can be called without the dispatcher, which costs tens of microseconds a call."""
    if torch.compiler.is_compiling():  # first: Dynamo must not trace the checks below
        return False
    for t in tensors:
        if (
            t.device.type != "cpu"
            or _compat.is_legacy_batchedtensor(t)
            or _compat.is_functorch_wrapped_tensor(t)
            or (type(t) is not Tensor and _compat.python_dispatch(t))  # DTensor, ...: see _foreign
        ):
            return False
    return not (
        _compat.functorch_transforms_active()
        or _compat.current_fwd_level() >= 0
        or _compat.len_torch_dispatch_stack()
        or _compat.is_torch_function_mode_enabled()
        or torch.jit.is_tracing()
    )


def _in_dynamo_onnx_export():
    """Is ``torch.onnx.export(dynamo=True)`` capturing the caller with ``torch.export``?

    ``torch.onnx.is_in_onnx_export()`` says so under that exporter from torch 2.8 on (before, it
    is False there: the op stays in the graph and needs :func:`onnx_translation_table`). Under
    ``dynamo=False`` it is True too, but that exporter traces with ``torch.jit``, and the op with
    its registered symbolic is what it needs. Dynamo folds ``is_in_onnx_export`` to False, so
    ``torch.compile`` always keeps the op.
    """
    return (
        torch.onnx.is_in_onnx_export()
        and not torch.jit.is_tracing()
        and getattr(torch.compiler, "is_exporting", bool)()
    )


def _functorch_or_forward_ad():
    return _compat.functorch_transforms_active() or _compat.current_fwd_level() >= 0
