"""Export: ONNX (dynamo and TorchScript exporters) and ATen decompositions (torch.export, AOTI).

Odd sizes (torch's window is centred) become ONNX LRN, the parameters mapped through
lrn_core.conventions.to_onnx; even sizes (ONNX's even window differs from torch's, and
onnxruntime refuses even LRN) become the window sum written with Pad, Slice and Add.

Three routes, so that torch.onnx.export needs no extra argument:

- dynamo=True (the default from torch 2.9): the functional, the module and LRNFunction.apply
  see torch.onnx.is_in_onnx_export() while torch.export captures them (torch >= 2.8) and emit
  ONNX LRN through torch.onnx.ops.symbolic, or the ATen composite; the lrn_core op never
  reaches the graph, so the exporter's registry needs no entry for it (it has no public hook).
- dynamo=False: the TorchScript symbolic, registered on import.
- the raw op (or a program captured by torch.export.export beforehand) under dynamo=True:
  custom_translation_table=onnx_translation_table().

A CompositeImplicitAutograd kernel on the op would also make the dynamo exporter decompose it
by default, but torch.compile (AOTAutograd) would then trace the composite instead of the
fused kernels, and register_fake refuses an op that has one.

For ``torch.export``/AOTInductor without lrn-core's Python registration: :func:`decompositions`
(the ops as ATen composites, :mod:`._composite`).
"""

from __future__ import annotations

import torch

from ... import conventions, formulas
from . import _compat, _composite
from ._ops import _backward_op, _forward_op, _window_op

__all__ = ["decompositions", "onnx_translation_table", "register_onnx_symbolic"]


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


def _tensor_const(value, like):
    return torch.tensor(value, dtype=like.dtype)


#: the ATen composite with its scalars as tensors of the computing dtype
_ONNX_ATEN = _composite.ATEN._replace(const=_tensor_const)


def _onnx_composite(x, size, alpha, beta, k, before):
    """:func:`_aten_forward` with its scalars as tensors of the computing dtype: the dynamo
    exporter rounds Python scalars through float32 (k = 1.3 becomes 1.29999995 in a float64
    graph), the exact result of a float64 LRN by 1e-8 relative."""
    return formulas.forward(_ONNX_ATEN, x, size, alpha, beta, k, before)


def _onnx_forward(x, size, alpha, beta, k, before):
    """``lrn_forward`` as the dynamo ONNX exporter should record it: ONNX LRN where it computes
    the same window and onnxruntime runs it, the exact ATen composite everywhere else."""
    # torch.onnx.ops.symbolic computes zeros on real tensors: only a traced (fake) input may
    # leave the op; a real one (another thread calling while an export runs) gets the kernel.
    if not _compat.is_fake(x):
        return _forward_op(x, size, alpha, beta, k, before)
    attrs = _onnx_lrn_params(size, alpha, beta, k, before)
    symbolic = getattr(getattr(torch.onnx, "ops", None), "symbolic", None)  # torch >= 2.8
    dtype, (x,) = _composite._widen(
        x
    )  # float16/bfloat16: in float32, rounded once, as the kernels do
    if attrs is None or symbolic is None or not _onnx_runs_lrn(x.dim(), x.dtype == torch.float32):
        return _onnx_composite(x, size, alpha, beta, k, before).to(dtype)
    attrs = {
        "size": int(attrs["size"]),
        "alpha": float(attrs["alpha"]),
        "beta": float(attrs["beta"]),
        "bias": float(attrs["bias"]),
    }
    return symbolic("LRN", (x,), attrs, dtype=x.dtype, shape=x.shape).to(dtype)


class _Graph:
    """An ONNX graph value with Python arithmetic, so that :mod:`lrn_core.formulas` builds graphs.

    ``+ - * / **`` and unary ``-`` emit Add, Sub, Mul, Div, Pow and Neg through
    ``emit(op_type, *values)`` (onnxscript's ``op.<Type>`` or TorchScript's ``g.op``); a Python
    float becomes ``const(value, like)``, a double constant CastLike'd to the other operand (one
    rounding, exact for float64: a float attribute would round it through float32 first).
    """

    __slots__ = ("value", "emit", "const")

    def __init__(self, value, emit, const):
        self.value, self.emit, self.const = value, emit, const

    def _of(self, other):
        return other.value if isinstance(other, _Graph) else self.const(float(other), self.value)

    def _op(self, op_type, *values):
        return _Graph(self.emit(op_type, *values), self.emit, self.const)

    def __add__(self, other):
        return self._op("Add", self.value, self._of(other))

    def __radd__(self, other):
        return self._op("Add", self._of(other), self.value)

    def __sub__(self, other):
        return self._op("Sub", self.value, self._of(other))

    def __rsub__(self, other):
        return self._op("Sub", self._of(other), self.value)

    def __mul__(self, other):
        return self._op("Mul", self.value, self._of(other))

    def __rmul__(self, other):
        return self._op("Mul", self._of(other), self.value)

    def __truediv__(self, other):
        return self._op("Div", self.value, self._of(other))

    def __rtruediv__(self, other):
        return self._op("Div", self._of(other), self.value)

    def __pow__(self, other):
        return self._op("Pow", self.value, self._of(other))

    def __neg__(self):
        return self._op("Neg", self.value)


def _onnxscript_emit(op):
    return lambda op_type, *values: getattr(op, op_type)(*values)


def _graph_forward(y, emit, const, pad, ints, size, alpha, beta, k, before):
    """:func:`lrn_core.formulas.forward` as an ONNX graph of ``y`` (in the computing dtype):
    the window sum is ``pad(v, before, after)`` along the channels (dim 1) and ``size``
    shifted Slices added up (onnxruntime's LRN refuses even sizes, and ONNX's even window is not
    torch's)."""

    def window(v, size, before):
        padded = pad(v.value, before, size - 1 - before)
        total = None
        for i in range(size):
            end = i - (size - 1) if i < size - 1 else _INT64_MAX
            part = emit("Slice", padded, ints(i), ints(end), ints(1))
            total = part if total is None else emit("Add", total, part)
        return _Graph(total, emit, const)

    ops = formulas.Ops(window=window)
    return formulas.forward(ops, _Graph(y, emit, const), size, alpha, beta, k, before).value


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

            def pad(v, before, after):
                return op.Pad(v, ints(before, after), None, ints(1))

            y = _graph_forward(
                y, _onnxscript_emit(op), const, pad, ints, size, alpha, beta, k, before
            )
        return op.Cast(y, to=x.dtype) if narrow else y

    return {_forward_op: lrn_forward}


def _symbolic_lrn_forward(g, x, size, alpha, beta, k, before):
    const = _compat.onnx_const
    size, before = const(size, "i", "size"), const(before, "i", "before")
    alpha, beta, k = (const(v, "f", n) for v, n in ((alpha, "alpha"), (beta, "beta"), (k, "k")))
    attrs = _onnx_lrn_params(size, alpha, beta, k, before)
    rank = _compat.onnx_tensor_rank(x)
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

    def const(value, like):
        # a double constant cast like y: one rounding, exact for float64
        value = torch.tensor(float(value), dtype=torch.float64)
        return g.op("CastLike", g.op("Constant", value_t=value), like)

    def pad(v, before, after):
        pads = [0] * (2 * rank)
        pads[1], pads[rank + 1] = before, after
        return g.op("Pad", v, ints(*pads))

    y = _graph_forward(y, g.op, const, pad, ints, size, alpha, beta, k, before)
    return g.op("Cast", y, to_i=narrow) if narrow else y


def register_onnx_symbolic(opset_version=17):
    """Register the symbolic of ``lrn_core::lrn_forward`` for ``torch.onnx.export(dynamo=False)``.

    Called on import (opset 17, which later opsets inherit).
    """
    torch.onnx.register_custom_op_symbolic(
        "lrn_core::lrn_forward", _symbolic_lrn_forward, opset_version
    )


register_onnx_symbolic()


def decompositions():
    """``{op: ATen composite}`` for the three ``lrn_core`` ops, for ``run_decompositions``.

    For programs that must run without lrn-core's Python registration (AOTInductor packages,
    other runtimes): ``ep.run_decompositions(decompositions())`` replaces the ops by torch ops
    computing the same function (float32 sums, as native torch; float16/bfloat16 in float32).

    >>> import torch
    >>> from lrn_core.adapters.torch import LocalResponseNorm
    >>> m = LocalResponseNorm(4).eval()
    >>> ep = torch.export.export(m, (torch.randn(2, 6, 5, 5),))
    >>> ep = ep.run_decompositions(decompositions())
    >>> any("lrn_core" in str(n.target) for n in ep.graph.nodes)
    False
    """
    return {
        _forward_op: _composite._aten_forward,
        _backward_op: _composite._aten_backward,
        _window_op: _composite._aten_window_sum,
    }
