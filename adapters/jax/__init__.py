"""JAX adapter: ``local_response_norm`` for JAX arrays, on lrn-core's kernels or on pure XLA.

JAX has no LRN of its own (neither ``jax.lax``, ``jax.nn`` nor Flax). This one is channels last by
default, as Flax's convolutions are, with PyTorch's parameters (``alpha`` divided by ``size``, the
window of channel ``c`` is ``[c - before, c - before + size - 1]``, ``before = size // 2``)::

    >>> import jax, jax.numpy as jnp
    >>> from lrn_core.adapters.jax import local_response_norm
    >>> x = jax.random.normal(jax.random.key(0), (2, 8, 8, 16))     # NHWC
    >>> y = local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=1.0)
    >>> y.shape
    (2, 8, 8, 16)

Other conventions map through :mod:`lrn_core.conventions`, e.g. TensorFlow's
``local_response_norm(x, **conventions.from_tensorflow(r, bias, alpha, beta)._asdict())``.
Flax modules wrapping it are in :mod:`lrn_core.adapters.flax`.

How it is built: four JAX primitives, each with its own abstract evaluation, batching rule,
differentiation rules and lowering:

- ``lrn_core_lrn(x)``: the forward pass.
- ``lrn_core_lrn_jvp(x, t)``: the Jacobian-vector product ``J(x) t`` (linear in ``t``): what
  forward mode (``jax.jvp``, ``jax.jacfwd``) computes. Its transpose is ``lrn_core_lrn_vjp``.
- ``lrn_core_lrn_vjp(x, g)``: ``J(x)^T g``, the fused backward kernel ``lrn_core.lrn_backward``
  (linear in ``g``; its transpose is ``lrn_core_lrn_jvp``). ``jax.grad`` reaches it by
  transposing the forward mode, so the first-order reverse pass is one kernel call.
- ``lrn_core_window_sum(v)``: the channel window sum, linear; its transpose is the window with
  ``before`` and ``after`` swapped. ``lrn_core_lrn_jvp`` is composed of it and elementwise jnp
  ops, and the derivatives of the two middle primitives are those of such compositions, so
  ``jax.hessian`` and higher orders work in any mix of forward and reverse mode.

Batching (``jax.vmap``): a mapped axis becomes one more outer axis, and the kernels run once on
the whole batch (no per-example loop). ``jax.jit`` traces the primitives like any other.

Where the kernels run, ``implementation``:

``"auto"`` (default)
    lrn-core's Cython kernels on the CPU, as XLA FFI custom calls whose handlers read and write
    XLA's buffers in place (:mod:`lrn_core.adapters.jax._ffi`; ``jax.pure_callback`` with
    another jaxlib); the pure-XLA implementation when lowered for another platform (GPU, TPU) or
    for ``jax.export`` (a call into this Python process cannot be serialised). The choice is made
    when XLA code is emitted, so it follows the device a jitted function is compiled for.
``"core"``
    always the kernels; raises for other platforms than the CPU (lrn-core never copies a device
    array to the host) and under ``jax.export``.
``"native"``
    always the pure jnp/lax implementation (JAX has no LRN op: "native" is what a JAX user writes):
    :mod:`lrn_core.formulas` with ``lax.reduce_window`` and ``add`` for the window sum (every
    window summed afresh, no running subtraction). ``"xla"``, its old name, is accepted with a
    ``DeprecationWarning``.

dtypes: float32, float64 (with ``jax_enable_x64``), and float16 and bfloat16 computed in float32
and rounded once.

The package, by job (all private but this module):

- ``_primitives.py``: the four primitives, their abstract evaluation, batching, JVP and transpose
  rules;
- ``_lowering.py``: what runs under ``jax.jit``: kernels or pure XLA per platform, the FFI custom
  call or the ``jax.pure_callback`` fallback;
- ``_composite.py``: the jnp/lax formulas (:mod:`lrn_core.formulas` over ``lax.reduce_window``);
- ``_ffi.py``: the C handlers registered as XLA FFI targets, and their custom call;
- ``_sharding.py``: how a sharded array stays sharded (``custom_partitioning`` of the custom
  calls, the device marker);
- ``_compat.py``: the few jax internals used, each with why.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ...validation import IMPLEMENTATIONS, check_axis, check_implementation, check_params
from ._primitives import lrn_p

__all__ = ["local_response_norm", "IMPLEMENTATIONS"]

#: input dtypes accepted; the last two are computed in float32 and rounded once
DTYPES = (
    jnp.dtype(jnp.float32),
    jnp.dtype(jnp.float64),
    jnp.dtype(jnp.float16),
    jnp.dtype(jnp.bfloat16),
)
_WIDENED = DTYPES[2:]


# --- the public function ------------------------------------------------------------------------


def local_response_norm(
    x, size=5, alpha=1e-4, beta=0.75, k=1.0, *, axis=-1, before=None, implementation="auto"
):
    """Cross-channel Local Response Normalization of a JAX array (channels last by default).

    ``y[..., c] = x[..., c] * (k + alpha / size * sum(x[..., j] ** 2 for j in window(c))) ** -beta``
    with ``window(c) = [c - before, c - before + size - 1]`` clipped to the channels.

    Parameters
    ----------
    x : array of float16, bfloat16, float32 or float64, at least 1-D
    size : int >= 1
        Channels in the window.
    alpha, beta, k : float
        alpha is divided by ``size`` (PyTorch's convention; :mod:`lrn_core.conventions` maps
        TensorFlow's and others').
    axis : int, keyword-only
        The channel axis: -1 (default, NHWC as in Flax) or 1 for NCHW, any other axis too.
    before : int in [0, size - 1], keyword-only
        Channels before the centre; default ``size // 2`` (PyTorch), ``(size - 1) // 2`` is ONNX's.
    implementation : {"auto", "core", "native"}, keyword-only
        See the module docstring (``"xla"``, its old name for ``"native"``, is accepted with a
        ``DeprecationWarning``).

    Returns
    -------
    Array of the shape and dtype of ``x``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> x = jnp.arange(6.0).reshape(2, 3)
    >>> local_response_norm(x, size=3, alpha=3.0, beta=1.0, k=1.0)
    Array([[0.        , 0.16666667, 0.33333334],
           [0.11538462, 0.07843138, 0.11904762]], dtype=float32)
    """
    size, alpha, beta, k, before = check_params(size, alpha, beta, k, before)
    implementation = check_implementation(implementation)
    if not isinstance(x, jax.Array):
        try:
            x = jnp.asarray(x)
        except Exception as exc:
            raise TypeError(f"x must be array_like, got {type(x).__name__}") from exc
    if x.dtype not in DTYPES:
        raise TypeError(f"x must have dtype float16, bfloat16, float32 or float64, got {x.dtype}")
    if x.ndim == 0:
        raise ValueError("x must have at least 1 dimension (the channel axis), got a 0-d array")
    axis = check_axis(axis, x.ndim)
    params = dict(
        size=size,
        alpha=alpha,
        beta=beta,
        k=k,
        before=before,
        axis=axis,
        implementation=implementation,
    )
    if x.dtype in _WIDENED:  # the kernels have no half precision: compute in float32, round once
        return lrn_p.bind(x.astype(jnp.float32), **params).astype(x.dtype)
    return lrn_p.bind(x, **params)
