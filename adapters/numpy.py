"""NumPy adapter: lrn-core's functions, plus PyTorch- and TensorFlow-style signatures for arrays.

``lrn``, ``lrn_backward`` and ``window_sum`` are the core's own (alpha divided by ``size``, any
channel axis). The two others let code written against a framework's signature run on NumPy
arrays unchanged:

>>> import numpy as np
>>> from lrn_core.adapters.numpy import local_response_norm, local_response_normalization
>>> x = np.ones((1, 3, 2, 2), np.float32)
>>> local_response_norm(x, size=3).shape                           # NCHW, like torch
(1, 3, 2, 2)
>>> local_response_normalization(x.transpose(0, 2, 3, 1), depth_radius=1).shape   # NHWC, like TF
(1, 2, 2, 3)
"""

from .. import conventions, lrn, lrn_backward, window_sum
from ..validation import check_int

__all__ = [
    "lrn",
    "lrn_backward",
    "window_sum",
    "local_response_norm",
    "local_response_normalization",
]


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """``torch.nn.functional.local_response_norm`` on a NumPy array (channels on axis 1, >= 3-D).

    Like torch, inputs of fewer than 3 dimensions are refused.
    """
    ndim = getattr(input, "ndim", None)
    if ndim is None or ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {ndim} dimensions)")
    return lrn(input, **conventions.from_torch(size, alpha, beta, k)._asdict(), axis=1)


def local_response_normalization(input, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5):
    """``tf.nn.local_response_normalization`` on a NumPy array: 4-D NHWC, window ``2r + 1``,
    alpha *not* divided by the window."""
    ndim = getattr(input, "ndim", None)
    if ndim != 4:
        raise ValueError(f"input must be 4-D (NHWC), got {ndim} dimensions")
    depth_radius = check_int("depth_radius", depth_radius, minimum=0)
    p = conventions.from_tensorflow(depth_radius, bias, alpha, beta)
    return lrn(input, **p._asdict(), axis=-1)
