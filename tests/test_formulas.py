"""lrn_core.formulas, on NumPy operations, against the independent reference and finite differences.

Every framework's composite is these formulas over its own operations (tested in the framework's
own files against its native op); here the formulas themselves are held to the float64
reference (forward, backward) and to central differences (the JVPs and the VJP of the backward),
for odd and even sizes, both windows of even sizes, and a window wider than the channels.
"""

import numpy as np
import pytest
from reference import band, lrn_grad_ref, lrn_ref

from lrn_core import formulas


def _window(v, size, before):
    """The channel (last) axis window sum with the band of the reference's ``band``."""
    return v @ band(v.shape[-1], size, before).T


OPS = formulas.Ops(window=_window)

CASES = [(5, 2), (4, 2), (4, 1), (1, 0), (9, 4), (2, 0)]
PARAMS = dict(alpha=0.7, beta=0.75, k=1.3)


def _inputs(seed, n=4):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((3, 2, 7)) for _ in range(n)]


@pytest.mark.parametrize(("size", "before"), CASES)
def test_forward_and_backward_equal_the_reference(size, before):
    x, dy = _inputs(size + before, 2)
    p = dict(size=size, **PARAMS, before=before)
    y = formulas.forward(OPS, x, **p)
    dx = formulas.backward(OPS, dy, x, **p)
    np.testing.assert_allclose(y, lrn_ref(x, **p, axis=-1), rtol=1e-13, atol=0)
    np.testing.assert_allclose(dx, lrn_grad_ref(dy, x, **p, axis=-1), rtol=1e-12, atol=1e-14)


def _central(f, x, t, h=1e-6):
    return (f(x + h * t) - f(x - h * t)) / (2 * h)


@pytest.mark.parametrize(("size", "before"), CASES)
def test_jvps_and_vjp_equal_finite_differences(size, before):
    x, dy, tx, tdy = _inputs(10 + size + before)
    p = dict(size=size, **PARAMS, before=before)

    def fwd(v):
        return formulas.forward(OPS, v, **p)

    def bwd(d, v):
        return formulas.backward(OPS, d, v, **p)

    jvp = formulas.forward_jvp(OPS, x, tx, **p)
    np.testing.assert_allclose(jvp, _central(fwd, x, tx), rtol=1e-7, atol=1e-9)

    # the backward's tangent along (tdy, tx): dy enters linearly, x through the Hessian
    fd = _central(lambda h: bwd(dy + h * tdy, x + h * tx), 0.0, 1.0)
    bjvp = formulas.backward_jvp(OPS, dy, x, tdy, tx, **p)
    np.testing.assert_allclose(bjvp, fd, rtol=1e-6, atol=1e-8)

    # the VJP is the transpose of that JVP: <g, J (tdy, tx)> = <gdy, tdy> + <gx, tx>
    g = np.random.default_rng(size).standard_normal(x.shape)
    gdy, gx = formulas.backward_vjp(OPS, dy, x, g, **p)
    lhs = np.sum(g * bjvp)
    np.testing.assert_allclose(np.sum(gdy * tdy) + np.sum(gx * tx), lhs, rtol=1e-12)
    # and the forward's JVP is the adjoint of the backward in dy: <g, J tx> = <backward(g), tx>
    np.testing.assert_allclose(np.sum(bwd(g, x) * tx), np.sum(g * jvp), rtol=1e-12)


def test_widen_narrow_and_const_are_applied():
    """A framework's widening, rounding and constants reach every result."""
    seen = []

    def widen(*ts):
        seen.append("widen")
        return np.float16, [t.astype(np.float64) for t in ts]

    def narrow(t, dtype):
        seen.append("narrow")
        return t.astype(dtype)

    def const(value, like):
        return np.asarray(value, like.dtype)

    ops = formulas.Ops(window=_window, widen=widen, narrow=narrow, const=const)
    x, dy = (a.astype(np.float16) for a in _inputs(3, 2))
    y = formulas.forward(ops, x, 5, **PARAMS, before=2)
    assert y.dtype == np.float16 and seen == ["widen", "narrow"]
    expected = lrn_ref(x.astype(np.float64), 5, **PARAMS, axis=-1).astype(np.float16)
    np.testing.assert_array_equal(y, expected)
    gdy, gx = formulas.backward_vjp(ops, dy, x, dy, 5, **PARAMS, before=2)
    assert gdy.dtype == gx.dtype == np.float16
