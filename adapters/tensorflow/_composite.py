"""LRN written in TensorFlow ops: what runs where lrn-core's kernels cannot (XLA, a SavedModel,
``tf.vectorized_map``) or cost more than the LRN (small inputs in graphs).

Every formula is :mod:`lrn_core.formulas` over TF operations (:func:`tf_ops`): the window sum is an
average pool over the zero-padded channels times the window, or, for small inputs, a product with
a band; no running sum, nothing subtracted, so no cancellation (the error of a sum of at most
``size`` positive squares, as in TF's own kernel), and a non-finite input only reaches the windows
that contain it. float16 and bfloat16 are computed in float32 and rounded once, float32 and
float64 in themselves (TFLite has no float64 arithmetic). TF differentiates them (reverse and
forward mode, any order), XLA compiles them, pfor vectorises them and a SavedModel or TFLite
model stores them.

Three of them are recorded as one op each, with first derivatives as one op too and higher ones in
TF ops (:func:`_lrn_tf_ops`): TF's own LRN and LRNGrad kernels (:func:`_lrn_native`, XLA: a fused
reduce-window, no derivatives beyond the first of its own), and the band LRN of small inputs
(:func:`_lrn_small`); two ops' dispatch instead of the two dozen of TF differentiating the formula.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ... import formulas
from ._record import _op, _zeros_if_none

#: dtypes TensorFlow's own LRN kernel computes on CPU
NATIVE_DTYPES = (tf.float16, tf.float32)
#: the band is channels x channels, and a window sum costs elements x channels multiply-adds
BAND_CHANNELS = 1024
BAND_MACS = 2**23


def _widen(*tensors):
    """float16 and bfloat16 are computed in float32, as the kernels do."""
    dtype = tensors[0].dtype
    if dtype in (tf.float16, tf.bfloat16):
        return dtype, [tf.cast(t, tf.float32) for t in tensors]
    return None, list(tensors)


def _narrow(t, dtype):
    return t if dtype is None else tf.cast(t, dtype)


def tf_ops(window):
    """:class:`lrn_core.formulas.Ops` of TensorFlow around ``window(v, size, before)``."""
    return formulas.Ops(window=window, power=tf.pow, widen=_widen, narrow=_narrow)


def lrn_jvp(x, tx, p, window):
    """``d lrn(x) . tx`` (:func:`lrn_core.formulas.forward_jvp`) with the window sum ``window``."""
    return formulas.forward_jvp(tf_ops(window), x, tx, *p)


def lrn_backward_jvp(dy, x, tdy, tx, p, window):
    """The derivative of the input gradient along ``(tdy, tx)``
    (:func:`lrn_core.formulas.backward_jvp`): differentiable again, so gradients of any order
    compose."""
    return formulas.backward_jvp(tf_ops(window), dy, x, tdy, tx, *p)


def backward_rules(p, window):
    """``(grad, jvp)`` of an op computing the input gradient ``dx(dy, x)``, for :func:`_op`.

    ``dx`` is linear in ``dy`` (its derivative there is the forward's JVP) and, along ``x``, the
    Hessian of ``<dy, lrn(x)>``, which is symmetric: so the gradient of ``<ddx, dx>`` is
    ``(lrn_jvp(x, ddx), d_x dx . ddx)``, and no tape is needed (a tape inside a symbolic
    gradient records nothing)."""

    def grad(inputs, ddx):
        dy, x = inputs
        return [
            lrn_jvp(x, ddx, p, window),
            lrn_backward_jvp(dy, x, tf.zeros_like(dy), ddx, p, window),
        ]

    def jvp(inputs, tdy, tx):
        dy, x = inputs
        return lrn_backward_jvp(dy, x, _zeros_if_none(tdy, dy), _zeros_if_none(tx, x), p, window)

    return grad, jvp


def _lrn_tf_ops(name, x, p, forward, backward):
    """``forward(x)`` with the gradient ``backward(dy, x)``, TF ops, as one differentiable op."""

    def grad(xs, dy):
        return [_lrn_tf_ops_grad(name + "_grad", dy, xs[0], p, backward)]

    return _op(
        name,
        None,
        [x],
        grad,
        lambda xs, tx: lrn_jvp(xs[0], _zeros_if_none(tx, xs[0]), p, _window_sum_tf),
        tf_fn=forward,
    )


def _lrn_tf_ops_grad(name, dy, x, p, backward):
    """``backward(dy, x)`` as an op of (dy, x), with derivatives of every order in TF ops."""
    grad, jvp = backward_rules(p, _window_sum_tf)
    return _op(name, None, [dy, x], grad, jvp, tf_fn=backward)


def _lrn_native(x, tfp, p):
    """TF's LRN (float32) with TF's LRNGrad as gradient (``y = lrn(x)`` recomputed for it)."""

    def forward(x):
        return tf.nn.local_response_normalization(x, *tfp)

    def backward(dy, x):
        return tf.raw_ops.LRNGrad(
            input_grads=dy,
            input_image=x,
            output_image=forward(x),
            depth_radius=tfp[0],
            bias=tfp[1],
            alpha=tfp[2],
            beta=tfp[3],
        )

    return _lrn_tf_ops("lrn_core_native_lrn", x, p, forward, backward)


def _lrn_small(x, p):
    """LRN of a small float32/float64 input in a graph, as fast as TF's own op (no callback).

    ``y = x / d``, ``d = s**beta``, ``s = k + alpha / size * W(x**2)``, and the gradient
    ``dy / d - 2 beta * x * alpha / size * W'(dy * y / s)``, written directly (TF
    differentiating the formula builds two dozen ops), with the window sums ``alpha / size * W``
    as products with a band (:func:`_window_sum_band`); the gradient reuses the forward's ``s``,
    ``d`` and ``y`` when it is built in the same graph. Inputs whose channels are unknown or wider
    than ``BAND_CHANNELS`` (only when a test forces this route) take the TF-ops formula.
    """
    size, alpha, beta, k, before = p
    if x.shape[-1] is None or x.shape[-1] > BAND_CHANNELS:
        return _lrn_composite(x, p)
    forwards = {}  # x.ref() -> (s, d, y) of the forward

    def forward(x):
        s = k + _window_sum_band(x * x, alpha / size, size, before)
        d = _power(s, beta)
        forwards[x.ref()] = s, d, x / d
        return forwards[x.ref()][2]

    def backward(dy, x):
        if x.ref() not in forwards:  # built in another graph: computed again there
            forward(x)
        s, d, y = forwards[x.ref()]
        w = _window_sum_band(dy * y / s, alpha / size, size, size - 1 - before)
        return dy / d - (2 * beta) * x * w

    return _lrn_tf_ops("lrn_core_small_lrn", x, p, forward, backward)


def _power(s, beta):
    """``s**beta``; for beta 1, 0.5 and 0.75 with square roots, each rounded correctly (under
    2 ulp in all): TF's float32 ``Pow`` is a scalar loop, on 32768 elements it alone takes longer
    than TF's whole LRN op."""
    if beta == 1:
        return s
    if beta == 0.5:
        return tf.sqrt(s)
    if beta == 0.75:
        r = tf.sqrt(s)
        return r * tf.sqrt(r)
    return tf.pow(s, beta)


def _window_sum_band(v, scale, size, before):
    """``scale * sum(v[..., c - before : c - before + size])`` as the product with a band.

    One MatMul, the quickest TF op on a small input (an average pool and its gradient take about
    twice native LRN's time), and nothing subtracted. But ``0 * inf`` is nan: a non-finite value
    would reach every channel of its row. So when ``v``'s sum is not finite, the average pool
    (whose windows keep it local) computes the sums instead (one ``tf.cond``).
    """
    c = v.shape[-1]
    band = tf.constant(scale * _band(c, size, before), v.dtype)
    shape = v.shape if v.shape.is_fully_defined() else tf.shape(v)

    def product():
        return tf.reshape(tf.matmul(tf.reshape(v, (-1, c)), band), shape)

    def pool():
        return scale * _window_sum_tf(v, size, before)

    return tf.cond(tf.math.is_finite(tf.reduce_sum(v)), product, pool)


def _band(c, size, before):
    """``band[j, i] = 1`` where channel ``j`` is in the window of channel ``i``, else 0."""
    d = np.arange(c)[:, None] - np.arange(c)
    return ((d >= -before) & (d < size - before)).astype(np.float64)


def _window_sum_tf(v, size, before):
    return size * _window_mean_tf(v, size, before)


def _window_mean_tf(v, size, before):
    """``mean(v[..., c - before : c - before + size])`` (zeros outside count), TF ops.

    An average pool of the zero-padded channels: one reduce-window, which XLA compiles to a
    fused loop (a convolution with ones is ten times slower there). Static shapes when known
    (fewer ops per call in a graph).
    """
    shape = v.shape.as_list() if v.shape.is_fully_defined() else tf.shape(v)
    rows = [-1, 1, shape[-1], 1] if isinstance(shape, list) else tf.stack([-1, 1, shape[-1], 1])
    flat = tf.pad(tf.reshape(v, rows), [[0, 0], [0, 0], [before, size - 1 - before], [0, 0]])
    return tf.reshape(tf.nn.avg_pool2d(flat, (1, size), 1, "VALID"), shape)


def _lrn_composite(x, p):
    """LRN with TensorFlow ops (:func:`lrn_core.formulas.forward`, the average-pool window sum)."""
    return formulas.forward(tf_ops(_window_sum_tf), x, *p)


def _native(x, depth_radius, bias, alpha, beta):
    """TensorFlow's own op, serialisable and XLA-compatible (float16, float32; bfloat16 via f32)."""
    if x.dtype == tf.float64:
        raise TypeError(
            "implementation='native': TensorFlow has no float64 LRN op; use "
            "implementation='auto' (lrn-core; TF ops for export and XLA)"
        )
    nx = x if x.dtype in NATIVE_DTYPES else tf.cast(x, tf.float32)  # bfloat16
    y = tf.nn.local_response_normalization(nx, depth_radius, bias, alpha, beta)
    return tf.cast(y, x.dtype)
