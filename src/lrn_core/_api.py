"""The NumPy face of the core, and the one door into it for the adapters and the harness.

Everything a user passes is checked here with :mod:`lrn_core.validation` (the checks every
adapter shares); the compiled kernels trust what they receive.

The adapters (``lrn_core.adapters``) and the benchmark harness use the public functions, or the
few names of the section "kernels on caller-provided buffers" below: nothing else of the core's
internals (``_buffers``, ``_dispatch``, the kernel modules). ``tests/test_imports.py`` checks it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import _buffers
from ._dispatch import kernels
from .conventions import default_before
from .validation import (
    NATIVE_DTYPES,
    as_array,
    check_axis,
    check_int,
    check_like,
    check_out,
    check_params,
)

__all__ = ["lrn", "lrn_backward", "window_sum", "kernels", "output_buffer", "output_buffer_like"]

# --- views -------------------------------------------------------------------------------------


def _collapse(shape, strides):
    """(n, stride) for dims that can be walked as one strided axis without a copy, else None."""
    dims = [(n, s) for n, s in zip(shape, strides, strict=True) if n != 1]
    if not dims:
        return math.prod(shape), 0
    for (_, s0), (n1, s1) in zip(dims[:-1], dims[1:], strict=True):
        if s0 != s1 * n1:
            return None
    return math.prod(shape), dims[-1][1]


def _view3(a, axis):
    """A 3-D (outer, C, inner) view of ``a`` around ``axis``, or None if strides forbid one.

    When the channels are the last non-trivial axis (NHWC, 2-D, 1-D batches) the outer
    positions are walked as the inner axis, (1, C, outer), so tiles still hold many positions.
    """
    shape = a.shape
    if a.flags.c_contiguous:  # the common case, without stride arithmetic
        v = a.reshape(math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :]))
    else:
        outer = _collapse(shape[:axis], a.strides[:axis])
        inner = _collapse(shape[axis + 1 :], a.strides[axis + 1 :])
        if outer is None or inner is None:
            return None
        (no, so), (ni, si) = outer, inner
        v = as_strided(
            a,
            shape=(no, shape[axis], ni),
            strides=(so, a.strides[axis], si),
            writeable=a.flags.writeable,
        )
    if v.shape[2] == 1 and v.shape[0] > 1:
        v = v[:, :, 0].T[None]
    return v


def _compute_dtype(dtype):
    return dtype if dtype in NATIVE_DTYPES else np.dtype(np.float32)


def _inputs3(arrays, axis, dtype):
    """3-D views of the inputs in the compute dtype (copies only where unavoidable)."""
    views = []
    for a in arrays:
        if a.dtype != dtype:
            a = a.astype(dtype)
        v = _view3(a, axis)
        if v is None:
            v = _view3(np.ascontiguousarray(a), axis)
        views.append(v)
    return views


def _run(kernel, arrays, axis, out, params):
    """Call ``kernel(*inputs3, out3, *params)`` honouring ``out``, dtype policy and aliasing."""
    x = arrays[-1]
    dtype = _compute_dtype(x.dtype)
    if x.size == 0:
        return out if out is not None else np.empty_like(x)
    ins = _inputs3(arrays, axis, dtype)
    direct = (
        out is not None
        and out.dtype == dtype
        and not any(np.may_share_memory(out, a) for a in arrays)
    )
    if direct:
        o3 = _view3(out, axis)
        if o3 is None:
            direct = False
    if not direct:
        work = _buffers.empty_like(x, dtype)  # same memory layout as x
        o3 = _view3(work, axis)
        if o3 is None:  # empty_like(order='K') of an odd layout
            work = _buffers.empty(x.shape, dtype)
            o3 = _view3(work, axis)
    kernel(*ins, o3, *params)
    if direct:
        return out
    if out is None:
        return work if work.dtype == x.dtype else work.astype(x.dtype)
    np.copyto(out, work, casting="same_kind")
    return out


# --- kernels on caller-provided buffers (the door for adapters) -------------------------------
# ``kernels()`` is the compiled module for this CPU: ``lrn_forward(x3, out3, size, before, alpha,
# beta, k)``, ``lrn_backward(dy3, x3, out3, ...)``, ``window_sum(v3, out3, size, before)`` on 3-D
# (outer, C, inner) views of one dtype (float32 or float64), any strides (channels last is
# (1, C, positions), as ``_view3`` makes it), nothing checked; ``max_threads()``; the C driver
# table for the XLA FFI handlers and the TF op (``xla_ffi_handlers()``, ``driver_table()``).
# ``output_buffer``
# gives an uninitialised C-contiguous, 64-byte aligned array from the output cache (see
# ``LRN_CORE_OUTPUT_CACHE_MB``), which the framework may then own without a copy.

output_buffer = _buffers.empty
#: like ``np.empty_like(a, dtype)`` (the axes keep ``a``'s memory order), from the output cache
output_buffer_like = _buffers.empty_like


# --- public functions --------------------------------------------------------------------------


def lrn(x, size=5, alpha=1e-4, beta=0.75, k=1.0, *, axis=1, before=None, out=None):
    """Cross-channel Local Response Normalization.

    ``y[c] = x[c] * (k + alpha / size * sum(x[j] ** 2 for j in window(c))) ** -beta``

    where ``window(c) = [c - before, c - before + size - 1]`` clipped to the channel axis.
    alpha is divided by ``size`` (PyTorch, Caffe and ONNX convention); see
    :mod:`lrn_core.conventions` for TensorFlow's and others'.

    Parameters
    ----------
    x : array_like of float16, float32 or float64, at least 1-D
        Input. float16 is computed in float32 and rounded once at the end.
    size : int >= 1
        Number of channels in the window (may exceed the number of channels).
    alpha, beta, k : float
        Scale, exponent and additive constant; alpha is divided by ``size``.
    axis : int, keyword-only
        Channel axis: 1 for NCHW (the default), -1 for NHWC. Negative values count from the end.
    before : int in [0, size - 1], keyword-only
        Channels before the centre; default ``size // 2`` (PyTorch). ``(size - 1) // 2`` gives
        the ONNX/cuDNN window for even sizes. The window has ``size - 1 - before`` channels after.
    out : ndarray, keyword-only
        Where to write the result: same shape and dtype as ``x``. May be ``x`` itself.

    Returns
    -------
    ndarray
        Same shape and dtype as ``x``.

    Examples
    --------
    >>> import numpy as np, lrn_core
    >>> x = np.arange(6, dtype=np.float32).reshape(1, 3, 2)
    >>> lrn_core.lrn(x, size=3, alpha=3.0, beta=1.0, k=1.0)[0, :, 0]
    array([0.       , 0.0952381, 0.1904762], dtype=float32)
    """
    x = as_array("x", x)
    size, alpha, beta, k, before = check_params(size, alpha, beta, k, before)
    axis = check_axis(axis, x.ndim)
    out = check_out(out, x.shape, x.dtype)
    return _run(kernels().lrn_forward, [x], axis, out, (size, before, alpha, beta, k))


def lrn_backward(
    dy, x, size=5, alpha=1e-4, beta=0.75, k=1.0, *, axis=1, before=None, y=None, out=None
):
    """Gradient of :func:`lrn` with respect to ``x``, given the upstream gradient ``dy``.

    ``dx[i] = dy[i] * s[i] ** -beta
    - 2 * alpha * beta / size * x[i] * sum(dy[j] * x[j] * s[j] ** (-beta - 1) for j with i in
    window(j))``

    The second sum runs over the *transposed* window (``before`` and ``after`` swapped), which
    matters for even sizes.

    Parameters
    ----------
    dy : array_like
        Upstream gradient, same shape and dtype as ``x``.
    x : array_like of float16, float32 or float64
        The forward input.
    size, alpha, beta, k, axis, before
        As for :func:`lrn`.
    y : array_like, optional
        The forward output. Accepted so callers that keep it can pass it; it is checked for shape
        and dtype but the kernel recomputes ``s`` from ``x`` (cheaper than reading ``y``), so the
        result is identical with or without it.
    out : ndarray, optional
        Where to write ``dx``: same shape and dtype as ``x``.

    Returns
    -------
    ndarray
        ``dx``, same shape and dtype as ``x``.

    Examples
    --------
    >>> import numpy as np, lrn_core
    >>> x = np.array([[1.0, 2.0, 3.0]])
    >>> lrn_core.lrn_backward(np.ones_like(x), x, size=3, alpha=3.0, beta=1.0, k=1.0, axis=1)
    array([[ 0.09333333, -0.14122449, -0.0737415 ]])
    """
    x = as_array("x", x)
    dy = check_like("dy", dy, x, "x")
    if y is not None:
        check_like("y", y, x, "x")
    size, alpha, beta, k, before = check_params(size, alpha, beta, k, before)
    axis = check_axis(axis, x.ndim)
    out = check_out(out, x.shape, x.dtype)
    return _run(kernels().lrn_backward, [dy, x], axis, out, (size, before, alpha, beta, k))


def window_sum(v, size, *, axis=1, before=None, out=None):
    """Sum of ``v`` over the LRN channel window: ``out[c] = sum(v[j] for j in window(c))``.

    The linear building block of LRN; its adjoint is the window with ``before`` and
    ``after = size - 1 - before`` swapped. Same dtype, axis and ``out`` rules as :func:`lrn`.

    Examples
    --------
    >>> import numpy as np, lrn_core
    >>> lrn_core.window_sum(np.arange(4.0), 3, axis=0)
    array([1., 3., 6., 5.])
    """
    v = as_array("v", v)
    size = check_int("size", size, minimum=1)
    before = default_before(size) if before is None else check_int("before", before, 0, size - 1)
    axis = check_axis(axis, v.ndim)
    out = check_out(out, v.shape, v.dtype)
    return _run(kernels().window_sum, [v], axis, out, (size, before))
