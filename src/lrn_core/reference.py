"""The plain-NumPy float64 reference: direct window sums, no tricks, no speed.

``lrn-core check`` compares the kernels (and the adapters) against it. The test suite has its own,
independently written reference (``tests/reference.py``).
"""

from __future__ import annotations

import numpy as np

from .conventions import default_before


def _window_sum(v, size, before):
    """Channel axis last; out[..., c] = sum(v[..., j] for j in [c - before, c + after])."""
    after = size - 1 - before
    C = v.shape[-1]
    out = np.zeros_like(v)
    for c in range(C):
        lo, hi = max(0, c - before), min(C - 1, c + after)
        if lo <= hi:
            out[..., c] = v[..., lo : hi + 1].sum(axis=-1)
    return out


def lrn(x, size, alpha, beta, k, axis=1, before=None):
    """float64 LRN forward."""
    before = default_before(size) if before is None else before
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    s = k + alpha / size * _window_sum(x * x, size, before)
    with np.errstate(all="ignore"):
        y = x * s**-beta
    return np.moveaxis(y, -1, axis)


def lrn_backward(dy, x, size, alpha, beta, k, axis=1, before=None):
    """float64 LRN input gradient (the transposed window in the second term)."""
    before = default_before(size) if before is None else before
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    dy = np.moveaxis(np.asarray(dy, dtype=np.float64), axis, -1)
    s = k + alpha / size * _window_sum(x * x, size, before)
    with np.errstate(all="ignore"):
        t = s**-beta
        r = dy * x * t / s
        dx = dy * t - 2 * alpha * beta / size * x * _window_sum(r, size, size - 1 - before)
    return np.moveaxis(dx, -1, axis)
