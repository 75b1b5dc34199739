"""PyTorch adapter: drop-in ``local_response_norm`` and ``LocalResponseNorm`` on lrn-core's kernels.

>>> import torch
>>> from lrn_core.adapters.torch import LocalResponseNorm, local_response_norm
>>> x = torch.randn(8, 16, 12, 12, requires_grad=True)
>>> y = local_response_norm(x, size=5)            # same as torch.nn.functional's
>>> y.sum().backward()
>>> LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)   # same as torch.nn.LocalResponseNorm
LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=1.0)

Layers, from the top:

- :func:`local_response_norm`, :class:`LocalResponseNorm`: the native signatures, semantics and
  errors. :func:`convert_local_response_norm` swaps the module into an existing model.
- :class:`LRNFunction`: a ``torch.autograd.Function`` (``LRNFunction.apply(x, size, alpha, beta,
  k, before=None)``) whose forward and backward call the custom ops; ``before`` picks the window
  (default ``size // 2``, PyTorch's).
- Three ``torch.library`` ops, so ``torch.compile(..., fullgraph=True)`` sees one op:
  ``torch.ops.lrn_core.lrn_forward(x, size, alpha, beta, k, before)``,
  ``torch.ops.lrn_core.lrn_backward(dy, x, size, alpha, beta, k, before)`` and the linear
  ``torch.ops.lrn_core.window_sum(v, size, before)``. The channel dimension is 1. Each has a
  fake kernel, an autograd kernel with a JVP rule, and a batching rule for ``vmap``.
- :func:`decompositions` (ATen composites, for AOTInductor and other runtimes),
  :func:`onnx_translation_table` (``torch.onnx.export(dynamo=True)``); the symbolic for
  ``dynamo=False`` is registered on import.

What autograd keeps between forward and backward: the input ``x`` only (by reference, no copy; in
its own dtype). The backward kernel recomputes the window sums from ``x``, which costs less than
reading a saved ``y`` or ``s``; native torch keeps three more tensors of about the input's size.

Higher derivatives: the first-order backward is always the fused kernel; the derivatives of the
backward (VJP, JVP) and the JVP of the forward are composed of torch ops and the ``window_sum``
op (whose gradient is the window with ``before`` and ``after`` swapped), so derivatives of any
order and mode work, under ``torch.autograd`` and ``torch.func`` alike.

Devices and dtypes: CPU tensors of dtype float32 and float64, and float16 and bfloat16 computed in
float32 and rounded once. CPU tensors are handed to the core without a copy (bfloat16, which NumPy
lacks, goes through a float32 copy); any strides, so channels_last stays channels_last. Tensors on
another device (CUDA, ...) are never copied to the host: :func:`local_response_norm` and
:class:`LocalResponseNorm` pass them to ``torch.nn.functional.local_response_norm`` (the native op),
while :class:`LRNFunction` and the custom ops raise a ``RuntimeError``.

This module holds the public entry points only; the package's other modules, one job each:
``_routes`` (which path a call takes), ``_ops`` (the custom ops, fake kernels, vmap rules),
``_kernels`` (the hand-off to the core), ``_autograd`` (the ops' derivatives), ``_composite``
(:mod:`lrn_core.formulas` over torch ops), ``_distributed`` (DTensor, tensor subclasses),
``export`` (ONNX, ATen decompositions) and ``_compat`` (the private torch names used).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import handle_torch_function, has_torch_function_unary

from ... import conventions
from ...validation import check_params
from . import _autograd, _composite, _distributed, _kernels, _ops, _routes, export
from .export import decompositions, onnx_translation_table, register_onnx_symbolic

__all__ = [
    "local_response_norm",
    "LocalResponseNorm",
    "LRNFunction",
    "convert_local_response_norm",
    "decompositions",
    "onnx_translation_table",
    "register_onnx_symbolic",
]

#: dtypes the custom ops accept; the last two are computed in float32
DTYPES = _ops.DTYPES


@functools.lru_cache(maxsize=256, typed=True)
def _checked(size, alpha, beta, k, before):
    return check_params(size, alpha, beta, k, before)  # before=None: PyTorch's window


def _params(size, alpha, beta, k, before=None):
    """Checked (size, alpha, beta, k, before), the ops' argument order; PyTorch's window if None.

    The checks are cached per parameter tuple (``typed``: ``True`` is not taken for ``1``);
    unhashable arguments are checked each time, and raise the core's errors.
    """
    if torch.compiler.is_compiling():
        # Dynamo cannot trace the core's checks (they use NumPy); while compiling they are left
        # to the kernels, which repeat them when the op runs.
        before = conventions.default_before(size) if before is None else before
        return size, alpha, beta, k, before
    try:
        hash((size, alpha, beta, k, before))
    except TypeError:
        return _checked.__wrapped__(size, alpha, beta, k, before)
    return _checked(size, alpha, beta, k, before)


def _forward(input, params, subclass):
    """LRN of ``input`` along :func:`._routes.route`'s route; ``subclass(input, *params)`` for
    a tensor subclass the ops have no rule for."""
    where = _routes.route(input)
    if where == _routes.KERNELS:  # the kernels and autograd.Function, without the dispatcher
        if torch.is_grad_enabled() and input.requires_grad:
            return _autograd._apply(_autograd._LRNForward, input, *params)
        return _kernels._forward_kernel(input, *params)
    if where == _routes.COMPOSITE:
        return _composite._composite_forward(input, *params)
    if where == _routes.ONNX:
        return export._onnx_forward(input, *params)
    if where == _routes.SUBCLASS:
        return subclass(input, *params)
    return _distributed._placed_like(_ops._forward_op(input, *params), input)  # DTensor: placed


def _native(input, size, alpha, beta, k, before):
    return F.local_response_norm(input, size, alpha, beta, k)


class LRNFunction(torch.autograd.Function):
    """LRN over dim 1 as a ``torch.autograd.Function`` over the ``lrn_core`` custom ops.

    ``LRNFunction.apply(input, size, alpha=1e-4, beta=0.75, k=1.0, before=None)``: alpha is
    divided by ``size``; ``before`` channels precede the centre of the window (default
    ``size // 2``, PyTorch's; ``(size - 1) // 2`` is ONNX's for even sizes). Unlike
    :func:`local_response_norm` it takes 2-D inputs too, and refuses non-CPU tensors.

    ``apply`` checks the parameters and calls ``torch.ops.lrn_core.lrn_forward``, whose
    autograd kernel has ``setup_context``, ``backward``, ``jvp`` and a vmap rule: so
    ``torch.func`` transforms (``grad``, ``vjp``, ``jacrev``, ``jvp``, ``jacfwd``, ``hessian``,
    ``vmap``) and ``torch.autograd.forward_ad`` work on it. ``torch.compile`` traces
    ``forward``/``backward`` below (Dynamo does not trace a custom ``jvp``), one op each way.

    >>> import torch
    >>> x = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    >>> y = LRNFunction.apply(x, 4, 1e-2, 0.75, 1.0, 1)     # ONNX's window for size 4
    >>> torch.autograd.gradcheck(lambda t: LRNFunction.apply(t, 4, 1e-2, 0.75, 1.0, 1), x)
    True
    """

    @classmethod
    def apply(cls, input, size, alpha=1e-4, beta=0.75, k=1.0, before=None):
        params = _params(size, alpha, beta, k, before)
        return _forward(input, params, _distributed._subclass_composite)

    @staticmethod
    def forward(input, size, alpha=1e-4, beta=0.75, k=1.0, before=None):
        return _ops._forward_op(input, *_params(size, alpha, beta, k, before))

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, *params = inputs
        ctx.params = _params(*params)
        ctx.save_for_backward(input)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return _autograd._input_grad(dy, x, *ctx.params), None, None, None, None, None


def local_response_norm(
    input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> Tensor:
    """``torch.nn.functional.local_response_norm`` on lrn-core's kernels: a drop-in replacement.

    ``y[:, c] = x[:, c] * (k + alpha / size * sum(x[:, j] ** 2 for j in window(c))) ** -beta``
    with ``window(c) = [c - size // 2, c + (size - 1) // 2]`` clipped to the channels (dim 1).

    Same signature, results and errors as the native function, for every size (even ones
    included), any input of 3 or more dimensions and any strides (channels_last in,
    channels_last out, no copy). Also float16 and bfloat16 (computed in float32), which native
    torch lacks on the CPU. Inputs of fewer than 3 dimensions, and tensors on other devices than
    the CPU, are handed to the native function: the first get its own error, the second its result.

    >>> import torch
    >>> x = torch.randn(4, 8, 5, 5).to(memory_format=torch.channels_last)
    >>> y = local_response_norm(x, 4, alpha=1e-3)
    >>> torch.allclose(y, torch.nn.functional.local_response_norm(x, 4, alpha=1e-3))
    True
    >>> y.is_contiguous(memory_format=torch.channels_last)
    True
    """
    if torch.jit.is_scripting():
        return _scripted_local_response_norm(input, size, alpha, beta, k)
    return _eager_local_response_norm(input, size, alpha, beta, k)


@torch.jit.unused
def _eager_local_response_norm(
    input: Tensor, size: int, alpha: float, beta: float, k: float
) -> Tensor:
    if has_torch_function_unary(input):
        return handle_torch_function(
            local_response_norm, (input,), input, size, alpha=alpha, beta=beta, k=k
        )
    if input.dim() < 3 or input.device.type != "cpu" or not input.is_floating_point():
        # < 3-D: native raises its own ValueError, word for word. Other devices: the native op
        # (documented), never a host copy. Integer, bool and complex inputs: the native op too,
        # so results and errors are its own (int64 gives float32, computed with an integer
        # average of the squares; int32, bool, complex raise NotImplementedError).
        return F.local_response_norm(input, size, alpha, beta, k)
    # a subclass the ops have no rule for (nested, masked, ...): native's results and errors
    return _forward(input, _params(size, alpha, beta, k), _native)


def _scripted_local_response_norm(
    input: Tensor, size: int, alpha: float, beta: float, k: float
) -> Tensor:
    """The TorchScript body of :func:`local_response_norm`: the same routing, the same op.

    TorchScript typing checks the parameter types; the kernel checks their values (the core's
    errors). The scripted program calls ``lrn_core::lrn_forward``, so running it, here or after
    ``torch.jit.save``/``load``, needs the op registered (``import lrn_core.adapters.torch``).
    """
    if input.dim() < 3 or input.device.type != "cpu" or not input.is_floating_point():
        return F.local_response_norm(input, size, alpha, beta, k)
    if size < 1:
        raise ValueError("size must be an integer >= 1, got {}".format(size))  # noqa: UP032
    return torch.ops.lrn_core.lrn_forward(
        input, size, alpha, beta, k, conventions.default_before(size)
    )


class LocalResponseNorm(torch.nn.LocalResponseNorm):
    """``torch.nn.LocalResponseNorm`` whose forward runs lrn-core: a drop-in replacement.

    A subclass of the native module: same constructor, attributes, ``extra_repr`` and (empty)
    ``state_dict``; ``isinstance(m, torch.nn.LocalResponseNorm)`` holds. Only the speed changes.

    >>> import torch
    >>> m = LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    >>> m
    LocalResponseNorm(5, alpha=0.0001, beta=0.75, k=2.0)
    >>> m(torch.randn(2, 16, 8, 8)).shape
    torch.Size([2, 16, 8, 8])
    """

    def forward(self, input: Tensor) -> Tensor:
        return local_response_norm(input, self.size, self.alpha, self.beta, self.k)


def convert_local_response_norm(module: torch.nn.Module) -> torch.nn.Module:
    """Replace every ``torch.nn.LocalResponseNorm`` in ``module`` by :class:`LocalResponseNorm`.

    Works in place on the submodules and returns ``module`` (or the replacement if ``module``
    itself is one), like ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``. Parameters and
    state dict are untouched: LRN has none.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.LocalResponseNorm(5))
    >>> net = convert_local_response_norm(net)
    >>> type(net[1]).__module__
    'lrn_core.adapters.torch'
    """
    if type(module) is torch.nn.LocalResponseNorm:
        new = LocalResponseNorm(module.size, module.alpha, module.beta, module.k)
        new.train(module.training)
        return new
    for name, child in module.named_children():
        new = convert_local_response_norm(child)
        if new is not child:
            setattr(module, name, new)
    return module


#: doctest.testmod(lrn_core.adapters.torch) runs the examples of the re-exported functions too
__test__ = {f.__name__: f for f in (decompositions, onnx_translation_table, register_onnx_symbolic)}
