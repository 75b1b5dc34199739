"""Keras 3 adapter: one ``LocalResponseNormalization`` layer for the tensorflow, torch and jax
backends.

    >>> import keras
    >>> from lrn_core.adapters.keras import LocalResponseNormalization
    >>> model = keras.Sequential([
    ...     keras.Input((8, 8, 3)), keras.layers.Conv2D(16, 3),
    ...     LocalResponseNormalization(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)])
    >>> model.output_shape
    (None, 6, 6, 16)

Parameters and config keys are TensorFlow's (window ``2 * depth_radius + 1`` centred on each
channel, ``alpha`` not divided by it; input 4-D, channels last). This is lrn-core's only Keras
layer: :mod:`lrn_core.adapters.tensorflow` re-exports it under its old name, and ``.keras`` files
saved with that name (``lrn_core>LocalResponseNormalization``) load as this layer. The layer
calls the adapter of the backend Keras runs on, importing only that framework:

- tensorflow: :func:`lrn_core.adapters.tensorflow.local_response_normalization`;
- torch: the torch adapter on the channels moved to dim 1 (a view, no copy: the kernels take the
  NHWC strides as they are, and the result is NHWC again);
- jax: :func:`lrn_core.adapters.jax.local_response_norm` (channels last).

``implementation``: ``"auto"`` (default: lrn-core's kernels on the CPU, the backend's own op or
pure XLA where the kernels cannot go, as each adapter decides), ``"core"`` (always the kernels;
errors where they cannot run), ``"native"`` (TensorFlow's ``tf.nn.local_response_normalization``,
torch's ``F.local_response_norm``; on jax, which has no LRN, the adapter's pure-XLA
implementation).

Saving: ``model.save("m.keras")`` stores the config only (the layer has no weights); the file loads
under any of the three backends once this module is imported (``keras.models.load_model``).
"""

from __future__ import annotations

import keras

from .. import conventions
from ..validation import IMPLEMENTATIONS, check_implementation, check_params, check_tf_params

__all__ = ["LocalResponseNormalization", "IMPLEMENTATIONS", "BACKENDS"]

BACKENDS = ("tensorflow", "torch", "jax")


def _tensorflow(x, layer):
    # imported on the first call: this module must not import TensorFlow on the other backends
    from .tensorflow import local_response_normalization

    return local_response_normalization(
        x,
        layer.depth_radius,
        layer.bias,
        layer.alpha,
        layer.beta,
        implementation=layer.implementation,
    )


def _torch(x, layer):
    import torch.nn.functional as F

    from . import torch as lrn_torch

    size, alpha, beta, k, before = layer.core_params
    x = x.movedim(-1, 1)  # NHWC -> NCHW view of the same memory
    if layer.implementation == "native":
        y = F.local_response_norm(x, size, alpha, beta, k)
    elif layer.implementation == "core":  # refuses non-CPU tensors
        y = lrn_torch.LRNFunction.apply(x, size, alpha, beta, k, before)
    else:  # the native op on other devices than the CPU
        y = lrn_torch.local_response_norm(x, size, alpha, beta, k)
    return y.movedim(1, -1)


def _jax(x, layer):
    from .jax import local_response_norm

    implementation = layer.implementation  # the same vocabulary: "native" is the jnp/lax one
    return local_response_norm(
        x, **layer.core_params._asdict(), axis=-1, implementation=implementation
    )


_CALLS = {"tensorflow": _tensorflow, "torch": _torch, "jax": _jax}


@keras.saving.register_keras_serializable(package="lrn_core.keras")
class LocalResponseNormalization(keras.layers.Layer):
    """Keras 3 layer: cross-channel LRN with TensorFlow's parameters, on any of BACKENDS.

    ``output = input / (bias + alpha * sqr_sum) ** beta`` with ``sqr_sum`` the sum of squares over
    the ``2 * depth_radius + 1`` channels centred on each channel (last axis of a 4-D input). No
    weights; computes in the dtype policy's compute dtype (float16, bfloat16, float32; float64
    where the backend has it). ``get_config``/``from_config`` round-trip.

    Examples
    --------
    >>> import keras, numpy as np
    >>> layer = LocalResponseNormalization(depth_radius=1, bias=1.0, alpha=1.0, beta=1.0)
    >>> x = np.arange(6, dtype="float32").reshape(1, 1, 2, 3)
    >>> np.round(keras.ops.convert_to_numpy(layer(x))[0, 0, 0], 6)
    array([0.      , 0.166667, 0.333333], dtype=float32)
    """

    def __init__(
        self, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, implementation="auto", **kwargs
    ):
        backend = keras.backend.backend()
        if backend not in BACKENDS:
            raise RuntimeError(
                f"lrn_core.adapters.keras.LocalResponseNormalization runs on the "
                f"Keras backends {BACKENDS}, got {backend!r}"
            )
        super().__init__(**kwargs)
        self.implementation = check_implementation(implementation)
        self.depth_radius, self.bias, self.alpha, self.beta = check_tf_params(
            depth_radius, bias, alpha, beta
        )
        #: lrn-core's parameters (alpha divided by the window), checked once
        self.core_params = conventions.LRNParams(
            *check_params(
                *conventions.from_tensorflow(self.depth_radius, self.bias, self.alpha, self.beta)
            )
        )
        if backend == "tensorflow":  # under XLA "auto" computes TF ops: the model keeps XLA
            self.supports_jit = self.implementation != "core"
        self._call = _CALLS[backend]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "depth_radius": self.depth_radius,
            "bias": self.bias,
            "alpha": self.alpha,
            "beta": self.beta,
            "implementation": self.implementation,
        }

    def call(self, inputs):
        rank = _rank(inputs)
        if rank is None:  # a TF graph of unknown rank: the TF function checks it at run time
            return self._call(inputs, self)
        if rank != 4:
            raise ValueError(
                f"input must be 4-dimensional (NHWC, channels last), got rank {rank} "
                f"with shape {tuple(inputs.shape)}"
            )
        return self._call(inputs, self)


def _rank(x):
    """The rank of ``x``, None when unknown (a TensorShape of unknown rank in a TF graph)."""
    shape = x.shape
    return shape.rank if hasattr(shape, "rank") else len(shape)


# the old name of the layer on the TensorFlow backend (lrn_core.adapters.tensorflow, before this
# was the only layer): .keras files that recorded it load as this layer
keras.saving.get_custom_objects()["lrn_core>LocalResponseNormalization"] = (
    LocalResponseNormalization
)
