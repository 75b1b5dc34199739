"""Flax modules around :func:`lrn_core.adapters.jax.local_response_norm` (linen and nnx).

Both take the function's parameters (PyTorch's: ``alpha`` divided by ``size``), channels last by
default as Flax's convolutions are, and have no parameters or state::

    >>> import jax, jax.numpy as jnp
    >>> from flax import linen as nn
    >>> from lrn_core.adapters.flax import LocalResponseNorm
    >>> m = LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)
    >>> x = jnp.ones((2, 8, 8, 16))
    >>> m.apply({}, x).shape
    (2, 8, 8, 16)

    >>> from lrn_core.adapters.flax import NNXLocalResponseNorm
    >>> NNXLocalResponseNorm(size=5)(x).shape
    (2, 8, 8, 16)
"""

from __future__ import annotations

from flax import linen, nnx

from ..validation import check_implementation, check_params
from .jax import local_response_norm

__all__ = ["LocalResponseNorm", "NNXLocalResponseNorm"]


def _apply(m, x):
    """The function with a module's attributes as its arguments (both modules call this)."""
    return local_response_norm(
        x,
        m.size,
        m.alpha,
        m.beta,
        m.k,
        axis=m.axis,
        before=m.before,
        implementation=m.implementation,
    )


class LocalResponseNorm(linen.Module):
    """``flax.linen`` module: :func:`~lrn_core.adapters.jax.local_response_norm` with its
    arguments as attributes (``size``, ``alpha``, ``beta``, ``k``, ``axis``, ``before``,
    ``implementation``)."""

    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0
    axis: int = -1
    before: int | None = None
    implementation: str = "auto"

    def __post_init__(self):
        check_params(self.size, self.alpha, self.beta, self.k, self.before)
        # "xla" (deprecated) warns once here and is kept as "native" (attributes may be set until
        # Module.__post_init__ ends); stacklevel: the user's line, through flax's constructor
        self.implementation = check_implementation(self.implementation, stacklevel=5)
        super().__post_init__()

    def __call__(self, x):
        return _apply(self, x)


class NNXLocalResponseNorm(nnx.Module):
    """``flax.nnx`` module: the same, constructed eagerly (``NNXLocalResponseNorm(size=5)(x)``)."""

    def __init__(
        self, size=5, alpha=1e-4, beta=0.75, k=1.0, *, axis=-1, before=None, implementation="auto"
    ):
        check_params(size, alpha, beta, k, before)
        # stacklevel: the user's line, through nnx's metaclass
        implementation = check_implementation(implementation, stacklevel=6)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.axis, self.before, self.implementation = axis, before, implementation

    def __call__(self, x):
        return _apply(self, x)
