"""lrn-core's three kernels as TensorFlow ops: the forward, the input gradient, the window sum.

``p`` is a normalised :class:`lrn_core.conventions.LRNParams` (size, alpha, beta, k, before); the
channel axis is the last one (any rank, window size and placement: the tests use even windows to
exercise the transposed window, which TensorFlow's centred windows never need). Each is one
:func:`._record._op` with its gradient and JVP; the derivatives beyond the kernels are
:mod:`lrn_core.formulas` around the window-sum op (itself such an op), so every order composes.
"""

from __future__ import annotations

import functools

from ... import lrn, lrn_backward, window_sum
from ._composite import backward_rules, lrn_jvp
from ._record import _op, _zeros_if_none


def _lrn(x, p):
    """LRN forward (lrn-core kernel); its gradient is :func:`_lrn_backward`."""
    size, alpha, beta, k, before = p
    return _op(
        "lrn_core_lrn",
        lambda: functools.partial(lrn, **p._asdict(), axis=-1),
        [x],
        lambda xs, dy: [_lrn_backward(dy, xs[0], p)],
        lambda xs, tx: lrn_jvp(xs[0], _zeros_if_none(tx, xs[0]), p, _window_sum),
        kernel=("lrn_forward", (size, before, alpha, beta, k)),
    )


def _lrn_backward(dy, x, p):
    """Input gradient (lrn-core kernel); its own derivatives are written out with TF ops around
    the window-sum op (:func:`._composite.backward_rules`)."""
    size, alpha, beta, k, before = p

    def fn():
        return functools.partial(lrn_backward, **p._asdict(), axis=-1)

    grad, jvp = backward_rules(p, _window_sum)
    return _op(
        "lrn_core_lrn_backward",
        fn,
        [dy, x],
        grad,
        jvp,
        kernel=("lrn_backward", (size, before, alpha, beta, k)),
    )


def _window_sum(v, size, before):
    """Channel window sum (lrn-core kernel); linear, its gradient is the transposed window sum."""
    return _op(
        "lrn_core_window_sum",
        lambda: functools.partial(window_sum, size=size, axis=-1, before=before),
        [v],
        lambda vs, g: [_window_sum(g, size, size - 1 - before)],
        lambda vs, t: _window_sum(_zeros_if_none(t, vs[0]), size, before),
        kernel=("window_sum", (size, before)),
    )
