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
"""

from __future__ import annotations

import functools
import sys
import warnings

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import Tensor
from torch._functorch.pyfunctorch import TransformType, retrieve_all_functorch_interpreters
from torch._functorch.utils import enable_single_level_autograd_function
from torch.autograd.function import _SingleLevelFunction
from torch.overrides import handle_torch_function, has_torch_function_unary

import lrn_core

from .. import conventions
from .._api import output_buffer_like
from ..validation import check_params

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
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


# --- hand-off to the core ----------------------------------------------------------------------


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


def _numpy(t):
    """A NumPy view of a CPU tensor, sharing its memory; bfloat16 goes through float32."""
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.detach().numpy()


def _run(op, fn, *tensors, **params):
    """``fn(*arrays, axis=1, out=..., **params)`` into a new tensor laid out like the last input."""
    _check(op, *tensors)
    if type(tensors[0]) is not Tensor or type(tensors[-1]) is not Tensor:
        if any(map(_python_dispatch, tensors)):
            return _subclass_kernel(op, *tensors, **params)
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


def _fake(op, *tensors):
    _check(op, *tensors)
    inductor = sys.modules.get("torch._inductor.virtualized")
    if inductor is not None and inductor.V.aot_compilation is True:
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


# CompositeExplicitAutograd: every backend reaches the kernel, which refuses non-CPU tensors
# with its own message; the fake kernels below serve meta/fake tensors (compile, export).
_lib.impl("lrn_forward", _forward_kernel, "CompositeExplicitAutograd")
_lib.impl("lrn_backward", _backward_kernel, "CompositeExplicitAutograd")
_lib.impl("window_sum", _window_kernel, "CompositeExplicitAutograd")


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


def _below_autograd(op, *args):
    """``op(*args)`` past the Autograd key: the kernels, or the next torch.func layer down.

    Under torch.func the layers below record their own derivatives, so grad and forward grad are
    switched back on for them, as torch.func's own single-level Functions do.
    """
    if torch._C._are_functorch_transforms_active():
        with (
            torch._C._AutoDispatchBelowAutograd(),
            torch.enable_grad(),
            fwAD._set_fwd_grad_enabled(True),
        ):
            return op(*args)
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args)


# --- derivatives: the fused kernels at first order, composites of window_sum beyond -------------
#
# With a = alpha/n, c = 2 alpha beta/n, W the window sum (``before``), W' its adjoint (``before``
# and ``after`` swapped), s = k + a W(x^2), t = s^-beta, u = t / s:
#   forward   y  = x t                         jvp  y' = x' t - c x u W(x x')
#   backward  dx = dy t - c x W'(dy x u)       its jvp and vjp are below.
# Everything beyond the first-order kernels is written with torch ops and the window_sum op
# (linear, with its own vjp/jvp/vmap), so that derivatives of any order and mode compose.


def _widen(*tensors):
    """float16/bfloat16 are computed in float32, as the kernels do."""
    dtype = tensors[-1].dtype
    if dtype in (torch.float16, torch.bfloat16):
        return dtype, [t.float() for t in tensors]
    return dtype, list(tensors)


def _s_t_u(x, size, alpha, beta, k, before):
    s = k + alpha / size * _window_op(x * x, size, before)
    t = s.pow(-beta)
    return s, t, t / s


def _forward_jvp(x, dx, size, alpha, beta, k, before):
    dtype, (x, dx) = _widen(x, dx)
    s, t, u = _s_t_u(x, size, alpha, beta, k, before)
    c = 2.0 * alpha * beta / size
    return (dx * t - c * x * u * _window_op(x * dx, size, before)).to(dtype)


def _backward_jvp(dy, x, ddy, dx, size, alpha, beta, k, before):
    """Tangent of ``dx = lrn_backward(dy, x)`` for tangents ``ddy`` (of dy) and ``dx`` (of x)."""
    dtype, (dy, x, ddy, dx) = _widen(dy, x, ddy, dx)
    after = size - 1 - before
    s, t, u = _s_t_u(x, size, alpha, beta, k, before)
    a, c = alpha / size, 2.0 * alpha * beta / size
    r = _window_op(dy * x * u, size, after)
    ds = 2.0 * a * _window_op(x * dx, size, before)
    dt = -beta * u * ds
    du = -(beta + 1.0) * u / s * ds
    dr = _window_op(ddy * x * u + dy * dx * u + dy * x * du, size, after)
    return (ddy * t + dy * dt - c * (dx * r + x * dr)).to(dtype)


def _backward_vjp(dy, x, g, size, alpha, beta, k, before):
    """(grad wrt dy, grad wrt x) of ``<g, lrn_backward(dy, x)>``."""
    dtype, (dy, x, g) = _widen(dy, x, g)
    after = size - 1 - before
    s, t, u = _s_t_u(x, size, alpha, beta, k, before)
    a, c = alpha / size, 2.0 * alpha * beta / size
    r = _window_op(dy * x * u, size, after)
    h = _window_op(g * x, size, before)
    gdy = g * t - c * h * x * u
    m = -beta * g * dy * u + c * (beta + 1.0) * h * dy * x * u / s
    gx = -c * g * r - c * h * dy * u + 2.0 * a * x * _window_op(m, size, after)
    return gdy.to(dtype), gx.to(dtype)


def _composite_forward(x, size, alpha, beta, k, before):
    """lrn_forward written with torch ops and window_sum: differentiable in every mode."""
    dtype, (x,) = _widen(x)
    s, t, u = _s_t_u(x, size, alpha, beta, k, before)
    return (x * t).to(dtype)


def _composite_backward(dy, x, size, alpha, beta, k, before):
    """lrn_backward written with torch ops and window_sum: differentiable in every mode."""
    dtype, (dy, x) = _widen(dy, x)
    s, t, u = _s_t_u(x, size, alpha, beta, k, before)
    r = _window_op(dy * x * u, size, size - 1 - before)
    return (dy * t - (2.0 * alpha * beta / size) * x * r).to(dtype)


def _under_functorch_jvp():
    """Is a torch.func forward-mode layer (jvp, jacfwd, hessian) on the stack?

    An autograd.Function's ``jvp`` rule is not itself differentiated by an enclosing torch.func
    jvp layer (jacfwd(jacfwd(f)) would silently miss terms), so under any such layer the ops
    run as the composites above, whose every op is differentiable in every mode. Reverse mode
    (grad, vjp, jacrev) and ``torch.autograd.forward_ad`` (one level) keep the fused kernels.
    """
    return torch._C._are_functorch_transforms_active() and any(
        i.key() == TransformType.Jvp for i in retrieve_all_functorch_interpreters()
    )


def _plain(*tensors):
    """Nothing around the call (transform, tracer, mode, compiler) and plain CPU tensors: the
    kernels can be called without the dispatcher, which costs tens of microseconds a call."""
    if torch.compiler.is_compiling():  # first: Dynamo must not trace the checks below
        return False
    for t in tensors:
        if (
            t.device.type != "cpu"
            or torch._C._functorch.is_legacy_batchedtensor(t)
            or torch._C._functorch.is_functorch_wrapped_tensor(t)
            or (type(t) is not Tensor and _python_dispatch(t))  # DTensor, ...: see _foreign
        ):
            return False
    return not (
        torch._C._are_functorch_transforms_active()
        or fwAD._current_level >= 0
        or torch._C._len_torch_dispatch_stack()
        or torch._C._is_torch_function_mode_enabled()
        or torch._C._get_tracing_state() is not None
    )


def _input_grad(dy, x, size, alpha, beta, k, before):
    """dx for upstream ``dy``: always the fused kernel; its own derivatives are registered."""
    if not torch.is_grad_enabled() and _plain(dy, x):
        return _backward_kernel(dy, x, size, alpha, beta, k, before)
    return _placed_like(_backward_op(dy, x, size, alpha, beta, k, before), x)


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
        gdy, gx = _backward_vjp(dy, x, g, *ctx.params)
        gdy, gx = _placed_like(gdy, dy), _placed_like(gx, x)
        need = ctx.needs_input_grad
        return (gdy if need[0] else None), (gx if need[1] else None), None, None, None, None, None

    @staticmethod
    def jvp(ctx, ddy, dx, *_):
        dy, x = ctx.saved_tensors
        ddy = torch.zeros_like(dy) if ddy is None else ddy
        dx = torch.zeros_like(x) if dx is None else dx
        return _backward_jvp(dy, x, ddy, dx, *ctx.params)


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


# --- ATen decompositions (AOTInductor, ONNX, anything without the Python op) -----------------


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


def _aten_forward(x, size, alpha, beta, k, before):
    dtype, (x,) = _widen(x)
    s = k + alpha / size * _aten_window_sum(x * x, size, before)
    return (x * s.pow(-beta)).to(dtype)


def _aten_backward(dy, x, size, alpha, beta, k, before):
    dtype, (dy, x) = _widen(dy, x)
    s = k + alpha / size * _aten_window_sum(x * x, size, before)
    t = s.pow(-beta)
    r = _aten_window_sum(dy * x * t / s, size, size - 1 - before)
    return (dy * t - (2.0 * alpha * beta / size) * x * r).to(dtype)


def decompositions():
    """``{op: ATen composite}`` for the three ``lrn_core`` ops, for ``run_decompositions``.

    For programs that must run without lrn-core's Python registration (AOTInductor packages,
    other runtimes): ``ep.run_decompositions(decompositions())`` replaces the ops by torch ops
    computing the same function (float32 sums, as native torch; float16/bfloat16 in float32).

    >>> import torch
    >>> m = LocalResponseNorm(4).eval()
    >>> ep = torch.export.export(m, (torch.randn(2, 6, 5, 5),))
    >>> ep = ep.run_decompositions(decompositions())
    >>> any("lrn_core" in str(n.target) for n in ep.graph.nodes)
    False
    """
    return {_forward_op: _aten_forward, _backward_op: _aten_backward, _window_op: _aten_window_sum}


# --- tensor subclasses: DTensor's sharding rules, torch's ops for the others -------------------
#
# DTensor runs the ops on each rank's local shard under the sharding rules below. LRN is
# pointwise in every dimension but the channel dimension 1, whose window crosses shards: every
# rule leaves dim 1 unsharded, so DTensor runs batch- or spatially-sharded inputs as they are
# (no communication) and gathers a channel-sharded input along the channels first; the public
# entry points shard the result again like the input (_placed_like), as native torch does, and
# every gradient is placed like its input. The rules are registered when the first DTensor
# meets the adapter (or on import, if torch.distributed.tensor is loaded already): importing
# the adapter never imports torch.distributed, which may be missing from a build.
#
# Other ``__torch_dispatch__`` subclasses (nested jagged, masked, user wrappers) do not know the
# ops: in eager code (no dispatch mode, which is how FakeTensor and FunctionalTensor come, not
# compiling) local_response_norm hands them to the native function and LRNFunction to the ATen
# composite, so the subclass sees only ATen ops; a raw op call is the subclass's to handle, and
# one that passes the op down to the kernels gets the ATen composite on its data
# (_subclass_kernel), never a ``.numpy()`` error. ``__torch_function__``-only subclasses hold
# plain memory and take the kernels.

#: None: rules not registered yet; True: registered; False: register_sharding is missing
_sharding = None


def _python_dispatch(t):
    """Is ``t`` a ``__torch_dispatch__`` subclass (DTensor, nested jagged, masked, wrappers)?"""
    return torch._C._dispatch_keys(t).has(torch._C.DispatchKey.Python)


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
    if type(t) is Tensor or torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack():
        return False
    if not _python_dispatch(t):
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


# --- ONNX export -------------------------------------------------------------------------------
#
# Odd sizes (torch's window is centred) become ONNX LRN, the parameters mapped through
# lrn_core.conventions.to_onnx; even sizes (ONNX's even window differs from torch's, and
# onnxruntime refuses even LRN) become the window sum written with Pad, Slice and Add.
#
# Three routes, so that torch.onnx.export needs no extra argument:
# - dynamo=True (the default from torch 2.9): the functional, the module and LRNFunction.apply
#   see torch.onnx.is_in_onnx_export() while torch.export captures them (torch >= 2.8) and emit
#   ONNX LRN through torch.onnx.ops.symbolic, or the ATen composite; the lrn_core op never
#   reaches the graph, so the exporter's registry needs no entry for it (it has no public hook).
# - dynamo=False: the TorchScript symbolic, registered on import.
# - the raw op (or a program captured by torch.export.export beforehand) under dynamo=True:
#   custom_translation_table=onnx_translation_table().
# A CompositeImplicitAutograd kernel on the op would also make the dynamo exporter decompose it
# by default, but torch.compile (AOTAutograd) would then trace the composite instead of the
# fused kernels, and register_fake refuses an op that has one.

_INT64_MAX = 2**63 - 1


def _onnx_lrn_params(size, alpha, beta, k, before):
    try:
        return conventions.to_onnx(conventions.LRNParams(size, alpha, beta, k, before))
    except ValueError:
        return None


def _onnx_runs_lrn(rank, float32):
    """Does onnxruntime run ONNX LRN on such an input? Its CPU kernel takes 4-D float32 only
    (the ONNX spec allows any rank >= 3 and double); other inputs get the exact window sum."""
    return rank == 4 and float32


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


def _onnx_composite(x, size, alpha, beta, k, before):
    """:func:`_aten_forward` with its scalars as tensors of the computing dtype: the dynamo
    exporter rounds Python scalars through float32 (k = 1.3 becomes 1.29999995 in a float64
    graph), the exact result of a float64 LRN by 1e-8 relative."""
    dtype, (x,) = _widen(x)

    def const(value):
        return torch.tensor(value, dtype=x.dtype)

    s = const(k) + const(alpha / size) * _aten_window_sum(x * x, size, before)
    return (x * s.pow(const(-beta))).to(dtype)


def _onnx_forward(x, size, alpha, beta, k, before):
    """``lrn_forward`` as the dynamo ONNX exporter should record it: ONNX LRN where it computes
    the same window and onnxruntime runs it, the exact ATen composite everywhere else."""
    # torch.onnx.ops.symbolic computes zeros on real tensors: only a traced (fake) input may
    # leave the op; a real one (another thread calling while an export runs) gets the kernel.
    # is_fake is private: no public API tells a traced tensor from a real one.
    from torch._subclasses.fake_tensor import is_fake

    if not is_fake(x):
        return _forward_op(x, size, alpha, beta, k, before)
    attrs = _onnx_lrn_params(size, alpha, beta, k, before)
    symbolic = getattr(getattr(torch.onnx, "ops", None), "symbolic", None)  # torch >= 2.8
    dtype, (x,) = _widen(x)  # float16/bfloat16: in float32, rounded once, as the kernels do
    if attrs is None or symbolic is None or not _onnx_runs_lrn(x.dim(), x.dtype == torch.float32):
        return _onnx_composite(x, size, alpha, beta, k, before).to(dtype)
    attrs = {
        "size": int(attrs["size"]),
        "alpha": float(attrs["alpha"]),
        "beta": float(attrs["beta"]),
        "bias": float(attrs["bias"]),
    }
    return symbolic("LRN", (x,), attrs, dtype=x.dtype, shape=x.shape).to(dtype)


def onnx_translation_table():
    """``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``.

    ``torch.onnx.export`` needs no table for :func:`local_response_norm`,
    :class:`LocalResponseNorm` and ``LRNFunction.apply`` (torch >= 2.8: they emit ONNX operators
    themselves while the exporter captures them). The table is for graphs that hold the
    ``lrn_core::lrn_forward`` op itself: models calling ``torch.ops.lrn_core.lrn_forward``,
    programs captured by ``torch.export.export`` before ``torch.onnx.export``, torch < 2.8. It can
    be merged with tables of your own (``{**onnx_translation_table(), **mine}``).

    >>> import torch                                                    # doctest: +SKIP
    >>> torch.onnx.export(model, (x,), "m.onnx", dynamo=True,           # doctest: +SKIP
    ...                   custom_translation_table=onnx_translation_table())

    Needs ``onnxscript`` (the ``onnx`` extra). ``torch.onnx.export(..., dynamo=False)`` needs
    nothing: the TorchScript exporter's symbolic for the op is registered by
    :func:`register_onnx_symbolic`, called when this module is imported.
    """
    import onnx
    from onnxscript import ir
    from onnxscript import opset18 as op

    def const(value, like):
        # a double constant cast like x: one rounding, exact for float64 (value_float is float32)
        return op.CastLike(op.Constant(value=onnx.helper.make_tensor("c", 11, [], [value])), like)

    def ints(*values):
        return op.Constant(value_ints=list(values))

    def lrn_forward(x, size: int, alpha: float, beta: float, k: float, before: int):
        attrs = _onnx_lrn_params(size, alpha, beta, k, before)
        narrow = x.dtype in (ir.DataType.FLOAT16, ir.DataType.BFLOAT16)
        y = op.Cast(x, to=ir.DataType.FLOAT) if narrow else x  # in float32, as the kernels
        rank = None if x.shape is None else len(x.shape)
        if attrs is not None and _onnx_runs_lrn(rank, narrow or x.dtype == ir.DataType.FLOAT):
            y = op.LRN(y, **attrs)
        else:
            padded = op.Pad(op.Mul(y, y), ints(before, size - 1 - before), None, ints(1))
            total = None
            for i in range(size):
                end = i - (size - 1) if i < size - 1 else _INT64_MAX
                part = op.Slice(padded, ints(i), ints(end), ints(1))
                total = part if total is None else op.Add(total, part)
            s = op.Add(const(k, y), op.Mul(const(alpha / size, y), total))
            y = op.Div(y, op.Pow(s, const(beta, y)))
        return op.Cast(y, to=x.dtype) if narrow else y

    return {_forward_op: lrn_forward}


def _symbolic_lrn_forward(g, x, size, alpha, beta, k, before):
    from torch.onnx import symbolic_helper as sh

    size, before = sh._get_const(size, "i", "size"), sh._get_const(before, "i", "before")
    alpha, beta, k = (
        sh._get_const(v, "f", n) for v, n in ((alpha, "alpha"), (beta, "beta"), (k, "k"))
    )
    attrs = _onnx_lrn_params(size, alpha, beta, k, before)
    rank = sh._get_tensor_rank(x)
    scalar = x.type().scalarType()  # "Float", "Half", ...; None when the trace lost it
    narrow = {"Half": 10, "BFloat16": 16}.get(scalar)  # ONNX element types of the input
    y = g.op("Cast", x, to_i=1) if narrow else x  # in float32 (ONNX FLOAT = 1), as the kernels
    if attrs is not None and (rank is None or _onnx_runs_lrn(rank, narrow or scalar == "Float")):
        # rank unknown: LRN is the only graph that needs none (onnxruntime wants 4-D float32)
        y = g.op(
            "LRN",
            y,
            size_i=attrs["size"],
            alpha_f=attrs["alpha"],
            beta_f=attrs["beta"],
            bias_f=attrs["bias"],
        )
        return g.op("Cast", y, to_i=narrow) if narrow else y
    if rank is None:
        raise RuntimeError(
            "lrn_core::lrn_forward ONNX export (dynamo=False) with an even size "
            "needs the input rank; export with dynamo=True and "
            "custom_translation_table=onnx_translation_table()"
        )

    def ints(*values):
        return g.op("Constant", value_t=torch.tensor(values, dtype=torch.int64))

    def const(value):
        # a double constant cast like y: one rounding, exact for float64
        value = torch.tensor(float(value), dtype=torch.float64)
        return g.op("CastLike", g.op("Constant", value_t=value), y)

    pads = [0] * (2 * rank)
    pads[1], pads[rank + 1] = before, size - 1 - before
    padded = g.op("Pad", g.op("Mul", y, y), ints(*pads))
    total = None
    for i in range(size):
        end = i - (size - 1) if i < size - 1 else _INT64_MAX
        part = g.op("Slice", padded, ints(i), ints(end), ints(1))
        total = part if total is None else g.op("Add", total, part)
    s = g.op("Add", const(k), g.op("Mul", const(alpha / size), total))
    y = g.op("Div", y, g.op("Pow", s, const(beta)))
    return g.op("Cast", y, to_i=narrow) if narrow else y


def register_onnx_symbolic(opset_version=17):
    """Register the symbolic of ``lrn_core::lrn_forward`` for ``torch.onnx.export(dynamo=False)``.

    Called on import (opset 17, which later opsets inherit).
    """
    torch.onnx.register_custom_op_symbolic(
        "lrn_core::lrn_forward", _symbolic_lrn_forward, opset_version
    )


register_onnx_symbolic()


# --- public API --------------------------------------------------------------------------------


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
        return _forward_jvp(x, dx, *ctx.params)


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
        if _under_functorch_jvp():  # see _under_functorch_jvp
            return _composite_forward(input, *params)
        if _plain(input):  # the same as the op, without the dispatcher's cost
            if torch.is_grad_enabled() and input.requires_grad:
                return _apply(_LRNForward, input, *params)
            return _forward_kernel(input, *params)
        if _in_dynamo_onnx_export():  # see "ONNX export"
            return _onnx_forward(input, *params)
        if _foreign(input):  # a subclass the ops have no rule for: torch's ops, torch's autograd
            return _subclass_composite(input, *params)
        return _placed_like(_forward_op(input, *params), input)

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


def _functorch_or_forward_ad():
    return torch._C._are_functorch_transforms_active() or fwAD._current_level >= 0


@functools.cache
def _single_level(fn):
    """A ``_SingleLevelFunction`` with ``fn``'s forward, setup_context, backward and jvp.

    torch >= 2.15 routes ``apply`` of every ``torch.autograd.Function`` subclass to the
    ``custom_function_call`` higher-order op while torch.func transforms are active, whatever
    the single-level switch says; a single-level class takes the plain C++ path on every version.
    """
    names = ("forward", "setup_context", "backward", "jvp")
    body = {name: staticmethod(getattr(fn, name)) for name in names}
    return type(fn.__name__ + "SingleLevel", (_SingleLevelFunction,), body)


def _apply(fn, *args):
    """``fn.apply`` as the Autograd kernel of an op: the C++ autograd.Function path.

    ``autograd.Function.apply`` under torch.func goes to the ``custom_function_call`` higher-order
    op, which has no kernel at the Autograd key an op's kernel runs at; the plain path is the one
    torch.func's grad and jvp layers expect there: a single-level Function, the way an ATen
    op's autograd kernel records its node on the wrappers of the current layer (vmap reaches
    the batching rules first).
    """
    if torch._C._are_functorch_transforms_active():
        with enable_single_level_autograd_function():
            return _single_level(fn).apply(*args)
    return _single_level(fn).apply(*args)


def _autograd_forward(x, size, alpha, beta, k, before):
    if _sharding is None:
        _note_dtensors(x)
    if _under_functorch_jvp():
        return _composite_forward(x, size, alpha, beta, k, before)
    if (torch.is_grad_enabled() and x.requires_grad) or _functorch_or_forward_ad():
        return _apply(_LRNForward, x, size, alpha, beta, k, before)
    with torch._C._AutoDispatchBelowAutograd():
        return _forward_op(x, size, alpha, beta, k, before)


def _autograd_backward(dy, x, size, alpha, beta, k, before):
    if _sharding is None:
        _note_dtensors(dy, x)
    if _under_functorch_jvp():
        return _composite_backward(dy, x, size, alpha, beta, k, before)
    if (
        torch.is_grad_enabled()
        and (dy.requires_grad or x.requires_grad)
        or _functorch_or_forward_ad()
    ):
        return _apply(_BackwardFunction, dy, x, size, alpha, beta, k, before)
    with torch._C._AutoDispatchBelowAutograd():
        return _backward_op(dy, x, size, alpha, beta, k, before)


def _autograd_window(v, size, before):
    if _sharding is None:
        _note_dtensors(v)
    if (torch.is_grad_enabled() and v.requires_grad) or _functorch_or_forward_ad():
        return _apply(_WindowFunction, v, size, before)
    with torch._C._AutoDispatchBelowAutograd():
        return _window_op(v, size, before)


_lib.impl("lrn_forward", _autograd_forward, "Autograd")
_lib.impl("lrn_backward", _autograd_backward, "Autograd")
_lib.impl("window_sum", _autograd_window, "Autograd")


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
    params = _params(size, alpha, beta, k)
    if _plain(input):  # the same kernels and autograd.Function, without the dispatcher's cost
        if torch.is_grad_enabled() and input.requires_grad:
            return _apply(_LRNForward, input, *params)
        return _forward_kernel(input, *params)
    if _in_dynamo_onnx_export():  # see "ONNX export"
        return _onnx_forward(input, *params)
    if _foreign(input):  # a subclass the ops have no rule for (nested, masked, ...): native's
        return F.local_response_norm(input, size, alpha, beta, k)  # results and errors
    return _placed_like(_forward_op(input, *params), input)  # DTensor: placed like the input


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
