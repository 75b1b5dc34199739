"""An independent float64 LRN reference for the tests: a dense band matrix, as in TF's CPU kernel.

Written without looking at the package's own reference (``lrn_core.reference``, direct window
loops) so that the two cannot share a mistake. ``M[c, j] = 1`` when channel ``j`` lies in the
window of output ``c``; then ``s = k + alpha/n * M @ x**2``, and the input gradient follows from
the chain rule with ``M`` transposed, written out term by term.
"""

import numpy as np


def band(C, size, before):
    """M[c, j] = 1 if c - before <= j <= c - before + size - 1."""
    c = np.arange(C)[:, None]
    j = np.arange(C)[None, :]
    return ((j >= c - before) & (j <= c - before + size - 1)).astype(np.float64)


def _apply(v, M):
    """out[..., c] = sum of v[..., j] over the j with M[c, j] set (masked: inf * 0 never occurs)."""
    out = np.zeros_like(v)
    for c in range(M.shape[0]):
        out[..., c] = v[..., M[c] != 0].sum(axis=-1)
    return out


def _setup(x, size, before, axis):
    # PyTorch's window, spelled out here rather than taken from lrn_core.conventions.default_before:
    # the tests pin the package's default instead of sharing it
    before = size // 2 if before is None else before
    xm = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    return xm, band(xm.shape[-1], size, before)


def lrn_ref(x, size, alpha=1e-4, beta=0.75, k=1.0, axis=1, before=None):
    xm, M = _setup(x, size, before, axis)
    s = k + (alpha / size) * _apply(xm * xm, M)
    with np.errstate(all="ignore"):
        y = xm * np.power(s, -beta)
    return np.moveaxis(y, -1, axis)


def lrn_grad_ref(dy, x, size, alpha=1e-4, beta=0.75, k=1.0, axis=1, before=None):
    """d/dx of sum(dy * lrn(x)): dy_i s_i^-b - 2ab/n x_i sum_j M[j,i] dy_j x_j s_j^(-b-1)."""
    xm, M = _setup(x, size, before, axis)
    dym = np.moveaxis(np.asarray(dy, dtype=np.float64), axis, -1)
    s = k + (alpha / size) * _apply(xm * xm, M)
    with np.errstate(all="ignore"):
        diag = dym * np.power(s, -beta)
        g = dym * xm * np.power(s, -beta - 1.0)
        dx = diag - (2.0 * alpha * beta / size) * xm * _apply(g, M.T)
    return np.moveaxis(dx, -1, axis)
