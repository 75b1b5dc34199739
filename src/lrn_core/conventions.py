"""The one place that maps each framework's LRN parameters onto lrn-core's.

lrn-core's own convention is PyTorch's, Caffe's and ONNX's: ``alpha`` is divided by ``size``,
and the window of channel ``c`` is ``[c - before, c - before + size - 1]``.

=========================================  ==========================  =======  ===================
framework                                  parameters                  alpha/n  before
=========================================  ==========================  =======  ===================
PyTorch ``F.local_response_norm``          size, alpha, beta, k        yes      ``size // 2``
TF ``tf.nn.local_response_normalization``  r, bias, alpha, beta        no       ``r``
ONNX ``LRN``, cuDNN                        size, alpha, beta, bias     yes      ``(size - 1) // 2``
Caffe ``ACROSS_CHANNELS``, MXNet           local_size, alpha, beta, k  yes      ``size // 2``
=========================================  ==========================  =======  ===================

TensorFlow's window is ``r = depth_radius`` channels either side (size ``2r+1``); Caffe's
``local_size`` is odd. For odd sizes PyTorch and ONNX place the window identically; for even sizes
PyTorch puts the extra channel before the centre, ONNX after it.
"""

from __future__ import annotations

from typing import NamedTuple


def default_before(size: int) -> int:
    """Channels before the centre of a ``size``-channel window when ``before`` is not given:
    ``size // 2``, PyTorch's window (Caffe's for its odd sizes), lrn-core's default everywhere.

    >>> default_before(5), default_before(4)
    (2, 2)
    """
    return size // 2


def onnx_before(size: int) -> int:
    """ONNX's (and cuDNN's) placement: ``(size - 1) // 2``, the extra channel of an even window
    after the centre.

    >>> onnx_before(5), onnx_before(4)
    (2, 1)
    """
    return (size - 1) // 2


class LRNParams(NamedTuple):
    """lrn-core's parameters: pass as ``lrn(x, **params._asdict())``."""

    size: int
    alpha: float
    beta: float
    k: float
    before: int


def from_torch(size, alpha=1e-4, beta=0.75, k=1.0):
    """``torch.nn.functional.local_response_norm(input, size, alpha, beta, k)``."""
    return LRNParams(size, alpha, beta, k, default_before(size))


def from_onnx(size, alpha=1e-4, beta=0.75, bias=1.0):
    """ONNX ``LRN`` (and cuDNN): the extra channel of an even window goes after the centre."""
    return LRNParams(size, alpha, beta, bias, onnx_before(size))


def from_caffe(local_size=5, alpha=1.0, beta=0.75, k=1.0):
    """Caffe ``LRN`` with ``norm_region: ACROSS_CHANNELS`` (odd ``local_size``)."""
    return LRNParams(local_size, alpha, beta, k, default_before(local_size))


def from_tensorflow(depth_radius=5, bias=1.0, alpha=1.0, beta=0.5):
    """``tf.nn.local_response_normalization``: window ``2r+1``, alpha *not* divided by it."""
    size = 2 * depth_radius + 1
    return LRNParams(size, alpha * size, beta, bias, depth_radius)


def to_onnx(params):
    """ONNX ``LRN`` attributes for ``params``: odd sizes with the centred window only.

    ONNX's even windows put the extra channel after the centre, torch's before it, and
    onnxruntime refuses even sizes altogether; those need a decomposition instead.
    """
    size, alpha, beta, k, before = params
    if size % 2 != 1 or before != onnx_before(size):
        raise ValueError(
            f"ONNX LRN (as onnxruntime runs it) has only odd, centred windows; got size={size}, "
            f"before={before}"
        )
    return {"size": size, "alpha": alpha, "beta": beta, "bias": k}


def to_tensorflow(params):
    """Inverse of :func:`from_tensorflow` (odd, centred windows only)."""
    size, alpha, beta, k, before = params
    if size % 2 != 1 or before != size // 2:
        raise ValueError(
            f"TensorFlow's LRN has only odd, centred windows; got size={size}, before={before}"
        )
    return {"depth_radius": size // 2, "bias": k, "alpha": alpha / size, "beta": beta}
