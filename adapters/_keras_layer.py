"""What the two Keras LRN layers share: parameters, their checks, config and XLA support.

:class:`lrn_core.adapters.keras.LocalResponseNormalization` (any backend) and
:class:`lrn_core.adapters.tensorflow.LocalResponseNormalization` (TensorFlow backend) both derive
from :class:`LocalResponseNormalizationBase`, which imports neither adapter. So the dependency goes
one way: the Keras adapter calls the TensorFlow adapter's function on the TF backend, and the
TensorFlow adapter never imports the Keras adapter (no import cycle).
"""

from __future__ import annotations

import keras

from .. import conventions
from ..validation import check_choice, check_params, check_tf_params

IMPLEMENTATIONS = ("auto", "core", "native")


class LocalResponseNormalizationBase(keras.layers.Layer):
    """TensorFlow's LRN parameters, checked once; subclasses provide ``call``."""

    def __init__(
        self, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, implementation="auto", **kwargs
    ):
        super().__init__(**kwargs)
        self.implementation = check_choice("implementation", implementation, IMPLEMENTATIONS)
        self.depth_radius, self.bias, self.alpha, self.beta = check_tf_params(
            depth_radius, bias, alpha, beta
        )
        #: lrn-core's parameters (alpha divided by the window), checked once
        self.core_params = conventions.LRNParams(
            *check_params(
                *conventions.from_tensorflow(self.depth_radius, self.bias, self.alpha, self.beta)
            )
        )
        # under XLA "auto" computes TF ops: the model keeps XLA
        if keras.backend.backend() == "tensorflow":
            self.supports_jit = self.implementation != "core"

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
