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
- Three ``torch.library`` custom ops, so ``torch.compile(..., fullgraph=True)`` sees one op:
  ``torch.ops.lrn_core.lrn_forward(x, size, alpha, beta, k, before)``,
  ``torch.ops.lrn_core.lrn_backward(dy, x, size, alpha, beta, k, before)`` and the linear
  ``torch.ops.lrn_core.window_sum(v, size, before)``. The channel dimension is 1.

What autograd keeps between forward and backward: the input ``x`` only (by reference, no copy; in
its own dtype). The backward kernel recomputes the window sums from ``x``, which costs less than
reading a saved ``y`` or ``s``; native torch keeps three more tensors of about the input's size.

Double backward: with ``create_graph=True`` the input gradient is composed of differentiable torch
ops and the ``window_sum`` op (whose gradient is the window with ``before`` and ``after``
swapped), so gradients of any order work; otherwise the fused backward kernel runs.

Devices and dtypes: CPU tensors of dtype float32 and float64, and float16 and bfloat16 computed in
float32 and rounded once. CPU tensors are handed to the core without a copy (bfloat16, which NumPy
lacks, goes through a float32 copy); any strides, so channels_last stays channels_last. Tensors on
another device (CUDA, ...) are never copied to the host: :func:`local_response_norm` and
:class:`LocalResponseNorm` pass them to ``torch.nn.functional.local_response_norm`` (the native op),
while :class:`LRNFunction` and the custom ops raise a ``RuntimeError``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import handle_torch_function, has_torch_function_unary

import lrn_core

from .. import _buffers, conventions
from .._api import check_params

__all__ = ["local_response_norm", "LocalResponseNorm", "LRNFunction",
           "convert_local_response_norm"]

#: dtypes the custom ops accept; the last two are computed in float32
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


# --- hand-off to the core ----------------------------------------------------------------------

def _check(op, *tensors):
    """Dtype, device and rank checks shared by the real and the fake kernels of the ops."""
    for t in tensors:
        if t.dtype not in DTYPES:
            raise TypeError(f"{op}: tensors must have dtype float32, float64, float16 or bfloat16, "
                            f"got {t.dtype}")
        if t.device.type not in ("cpu", "meta"):
            raise RuntimeError(
                f"{op}: lrn-core computes on the CPU only, got a tensor on {t.device}. Use "
                f"torch.nn.functional.local_response_norm there (lrn_core.adapters.torch."
                f"local_response_norm and LocalResponseNorm do so themselves); lrn-core never "
                f"copies a tensor to the host behind your back.")
        if t.dim() < 2:
            raise ValueError(f"{op}: tensors must have the channel dimension 1, got a "
                             f"{t.dim()}-D tensor")


def _numpy(t):
    """A NumPy view of a CPU tensor, sharing its memory; bfloat16 goes through float32."""
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.detach().numpy()


def _run(op, fn, *tensors, **params):
    """``fn(*arrays, axis=1, out=..., **params)`` into a new tensor laid out like the last input."""
    _check(op, *tensors)
    arrays = list(map(_numpy, tensors))
    x = tensors[-1]
    # The output is allocated by the core, laid out like the input (channels_last stays
    # channels_last), and handed to torch without a copy. Large outputs reuse blocks no tensor
    # references any more (lrn_core._buffers): faulting in fresh pages costs more than the LRN.
    out = _buffers.empty_like(arrays[-1])
    fn(*arrays, axis=1, out=out, **params)
    out = torch.from_numpy(out)
    return out.to(x.dtype) if x.dtype == torch.bfloat16 else out


def _fake(op, *tensors):
    _check(op, *tensors)
    return torch.empty_like(tensors[-1], memory_format=torch.preserve_format)


# --- the custom ops ----------------------------------------------------------------------------

@torch.library.custom_op("lrn_core::lrn_forward", mutates_args=())
def _forward_op(x: Tensor, size: int, alpha: float, beta: float, k: float, before: int) -> Tensor:
    """LRN over dim 1 of ``x``; the window of channel c is [c - before, c - before + size - 1]."""
    return _run("lrn_forward", lrn_core.lrn, x, size=size, alpha=alpha, beta=beta, k=k,
                before=before)


@torch.library.custom_op("lrn_core::lrn_backward", mutates_args=())
def _backward_op(dy: Tensor, x: Tensor, size: int, alpha: float, beta: float, k: float,
                 before: int) -> Tensor:
    """The input gradient of ``lrn_forward`` (the fused kernel, recomputing s from x)."""
    return _run("lrn_backward", lrn_core.lrn_backward, dy, x, size=size, alpha=alpha, beta=beta,
                k=k, before=before)


@torch.library.custom_op("lrn_core::window_sum", mutates_args=())
def _window_op(v: Tensor, size: int, before: int) -> Tensor:
    """Sum of ``v`` over the channel window (dim 1); linear, the adjoint swaps before/after."""
    return _run("window_sum", lrn_core.window_sum, v, size=size, before=before)


@_forward_op.register_fake
def _(x, size, alpha, beta, k, before):
    return _fake("lrn_forward", x)


@_backward_op.register_fake
def _(dy, x, size, alpha, beta, k, before):
    return _fake("lrn_backward", dy, x)


@_window_op.register_fake
def _(v, size, before):
    return _fake("window_sum", v)


def _input_grad(dy, x, size, alpha, beta, k, before):
    """dx for upstream ``dy``: the fused kernel, or differentiable ops under ``create_graph``."""
    if not torch.is_grad_enabled():
        return _backward_op(dy, x, size, alpha, beta, k, before)
    # dx = dy s^-b - 2ab/n x W^T(dy x s^(-b-1)),  s = k + a/n W(x^2),  W^T = window, before/after
    # swapped. Written with torch ops and window_sum (which has its own gradient) so that autograd
    # can differentiate it again; float16/bfloat16 in float32, as the kernels do.
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):
        dy, x = dy.float(), x.float()
    s = k + alpha / size * _window_op(x * x, size, before)
    t = s.pow(-beta)
    r = _window_op(dy * x * t / s, size, size - 1 - before)
    return (dy * t - (2.0 * alpha * beta / size) * x * r).to(dtype)


def _setup_forward(ctx, inputs, output):
    ctx.params = inputs[1:]  # size, alpha, beta, k, before
    ctx.save_for_backward(inputs[0])  # x, the only tensor kept: no y, no s


def _backward_forward(ctx, dy):
    (x,) = ctx.saved_tensors
    return _input_grad(dy, x, *ctx.params), None, None, None, None, None


def _setup_window(ctx, inputs, output):
    ctx.size, ctx.before = inputs[1:]


def _backward_window(ctx, g):
    return _window_op(g, ctx.size, ctx.size - 1 - ctx.before), None, None


_forward_op.register_autograd(_backward_forward, setup_context=_setup_forward)
_window_op.register_autograd(_backward_window, setup_context=_setup_window)


# --- public API --------------------------------------------------------------------------------

def _params(size, alpha, beta, k, before=None):
    """Checked (size, alpha, beta, k, before), the ops' argument order; PyTorch's window if None."""
    if not torch.compiler.is_compiling():
        # The core's checks. Dynamo cannot trace them (they use NumPy); while compiling they are
        # left to the kernels, which repeat them when the op runs.
        size, alpha, beta, k, checked = check_params(size, alpha, beta, k, before)
        before = None if before is None else checked
    if before is None:
        before = conventions.from_torch(size, alpha, beta, k).before
    return size, alpha, beta, k, before


class LRNFunction(torch.autograd.Function):
    """LRN over dim 1 as a ``torch.autograd.Function`` over the ``lrn_core`` custom ops.

    ``LRNFunction.apply(input, size, alpha=1e-4, beta=0.75, k=1.0, before=None)``: alpha is
    divided by ``size``; ``before`` channels precede the centre of the window (default
    ``size // 2``, PyTorch's; ``(size - 1) // 2`` is ONNX's for even sizes). Unlike
    :func:`local_response_norm` it takes 2-D inputs too, and refuses non-CPU tensors.

    >>> import torch
    >>> x = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    >>> y = LRNFunction.apply(x, 4, 1e-2, 0.75, 1.0, 1)     # ONNX's window for size 4
    >>> torch.autograd.gradcheck(lambda t: LRNFunction.apply(t, 4, 1e-2, 0.75, 1.0, 1), x)
    True
    """

    @staticmethod
    def forward(input, size, alpha=1e-4, beta=0.75, k=1.0, before=None):
        return _forward_op(input, *_params(size, alpha, beta, k, before))

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, *params = inputs
        ctx.params = _params(*params)
        ctx.save_for_backward(input)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return _input_grad(dy, x, *ctx.params), None, None, None, None, None


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Tensor:
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
    if has_torch_function_unary(input):
        return handle_torch_function(local_response_norm, (input,), input, size, alpha=alpha,
                                     beta=beta, k=k)
    if input.dim() < 3 or input.device.type != "cpu":
        # < 3-D: native raises its own ValueError, word for word. Other devices: the native op
        # (documented), never a host copy.
        return F.local_response_norm(input, size, alpha, beta, k)
    return _forward_op(input, *_params(size, alpha, beta, k))


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
