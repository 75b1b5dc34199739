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
    XLA's buffers in place (:mod:`lrn_core.adapters._jax_ffi`; ``jax.pure_callback`` with
    another jaxlib); the pure-XLA implementation when lowered for another platform (GPU, TPU) or
    for ``jax.export`` (a call into this Python process cannot be serialised). The choice is made
    when XLA code is emitted, so it follows the device a jitted function is compiled for.
``"core"``
    always the kernels; raises for other platforms than the CPU (lrn-core never copies a device
    array to the host) and under ``jax.export``.
``"xla"``
    always the pure jnp/lax implementation: ``lax.reduce_window`` with ``add`` for the window sum
    (every window summed afresh, no running subtraction), the same formulas otherwise.

dtypes: float32, float64 (with ``jax_enable_x64``), and float16 and bfloat16 computed in float32
and rounded once.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.extend.core import Primitive
from jax.extend.sharding import GSPMDSharding
from jax.interpreters import ad, batching, mlir
from jax.sharding import NamedSharding, PartitionSpec

from .. import lrn, lrn_backward, window_sum
from ..validation import check_axis, check_choice, check_params
from . import _jax_ffi as _ffi

try:  # the eager path of a primitive: compile it alone, cached (what jax's own primitives do)
    from jax._src.dispatch import apply_primitive as _apply_primitive
except ImportError:  # pragma: no cover - moved in a future jax
    _apply_primitive = None

__all__ = ["local_response_norm", "IMPLEMENTATIONS"]

IMPLEMENTATIONS = ("auto", "core", "xla")
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
    implementation : {"auto", "core", "xla"}, keyword-only
        See the module docstring.

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
    check_choice("implementation", implementation, IMPLEMENTATIONS)
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
        return _lrn_p.bind(x.astype(jnp.float32), **params).astype(x.dtype)
    return _lrn_p.bind(x, **params)


# --- the formulas, written once for both window sums --------------------------------------------
# ``W(v, before)`` is a channel window sum of ``size`` channels along ``axis``: the primitive
# (kernels or XLA, chosen when lowered) or the plain XLA one.


def _s(x, W, size, alpha, k, before):
    return k + (alpha / size) * W(x * x, before)


def _forward(x, W, size, alpha, beta, k, before):
    return x * _s(x, W, size, alpha, k, before) ** -beta


def _tangent(x, t, W, size, alpha, beta, k, before):
    """``J(x) t = t s^-b - 2ab/n x s^(-b-1) W(x t)``: linear in ``t``."""
    s = _s(x, W, size, alpha, k, before)
    u = s**-beta
    return t * u - (2.0 * alpha * beta / size) * x * (u / s) * W(x * t, before)


def _cotangent(x, g, W, size, alpha, beta, k, before):
    """``J(x)^T g = g s^-b - 2ab/n x W'(g x s^(-b-1))``, ``W'`` the transposed window."""
    s = _s(x, W, size, alpha, k, before)
    u = s**-beta
    return g * u - (2.0 * alpha * beta / size) * x * W(g * x * u / s, size - 1 - before)


def _xla_window(v, before, *, size, axis):
    """Window sum with ``lax.reduce_window``: each window summed afresh, no subtraction."""
    window = [1] * v.ndim
    window[axis] = size
    padding = [(0, 0)] * v.ndim
    padding[axis] = (before, size - 1 - before)
    return lax.reduce_window(v, np.array(0, v.dtype), lax.add, window, (1,) * v.ndim, padding)


def _prim_window(v, before, *, size, axis, implementation):
    return _window_p.bind(v, size=size, before=before, axis=axis, implementation=implementation)


def _composite(
    formula, *args, size, alpha, beta, k, before, axis, implementation, partitioning=None
):
    """``formula`` around the window-sum primitive: differentiable to any order."""
    W = functools.partial(_prim_window, size=size, axis=axis, implementation=implementation)
    return formula(*args, W, size, alpha, beta, k, before)


# --- the kernels through jax.pure_callback (if the FFI targets could not be registered) ------


def _callback(fn, like, *args):
    """``fn(*arrays)`` on the host through ``jax.pure_callback`` (used when the direct route below
    is unavailable; it copies the operands to new jax Arrays first)."""

    def call(*arrays):
        return np.asarray(fn(*map(np.asarray, arrays)))

    return jax.pure_callback(call, jax.ShapeDtypeStruct(like.shape, like.dtype), *args)


def _core_lrn(x, *, size, alpha, beta, k, before, axis):
    fn = functools.partial(lrn, size=size, alpha=alpha, beta=beta, k=k, before=before, axis=axis)
    return _callback(fn, x, x)


def _core_vjp(x, g, *, size, alpha, beta, k, before, axis):
    def fn(x, g):
        return lrn_backward(g, x, size, alpha, beta, k, axis=axis, before=before)

    return _callback(fn, x, x, g)


def _core_window(v, *, size, before, axis):
    fn = functools.partial(window_sum, size=size, before=before, axis=axis)
    return _callback(fn, v, v)


def _core_jvp(x, t, *, size, alpha, beta, k, before, axis):
    W = functools.partial(_prim_window, size=size, axis=axis, implementation="core")
    return _tangent(x, t, W, size, alpha, beta, k, before)


def _xla(formula):
    def impl(*args, size, alpha, beta, k, before, axis):
        W = functools.partial(_xla_window, size=size, axis=axis)
        return formula(*args, W, size, alpha, beta, k, before)

    return impl


def _xla_window_impl(v, *, size, before, axis):
    return _xla_window(v, before, size=size, axis=axis)


# --- sharding: the kernels' custom calls partitioned along every axis but the channels ----------
# XLA partitions an FFI custom call it knows nothing about by gathering its operands on every
# device: a batch-sharded input would run whole on each one. LRN mixes values along the channel
# axis only, so each device can run the kernels on its own block of every other axis. The custom
# call is wrapped in ``jax.experimental.custom_partitioning`` with that rule (a Shardy sharding
# rule and the GSPMD callbacks): any sharding of the other axes is kept, a sharded channel axis is
# gathered (that axis only: the window crosses the shards) before the kernels run. The wrapper takes
# any function returning the custom call's result, whichever way its handler is written.


@functools.cache
def _ffi_call(target, attrs):
    """The kernels' custom call on operands of any shape (the result has the first one's); one
    function per target and attributes (``attrs``: sorted ``(name, value)`` pairs), so that
    ``_partitioned`` builds each wrapper once."""

    def call(*args):
        return jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(args[0].shape, args[0].dtype))(
            *args, **dict(attrs)
        )

    return call


def _keep_all_but(sharding, ndim, axis):
    """``sharding`` with the channel axis ``axis`` replicated (the other axes as they are)."""
    if isinstance(sharding, NamedSharding):
        spec = list(sharding.spec) + [None] * (ndim - len(sharding.spec))
        if spec[axis] is None:
            return sharding
        spec[axis] = None
        return NamedSharding(sharding.mesh, PartitionSpec(*spec), memory_kind=sharding.memory_kind)
    if sharding.is_fully_replicated:
        return sharding
    # a sharding without a mesh (no NamedSharding in the program): keep it if it leaves the
    # channel axis whole, or else run replicated (correct; the gather is what XLA does anyway)
    shape = (sharding.num_devices,) * ndim  # divisible by any split of the devices
    if sharding.shard_shape(shape)[axis] == shape[axis]:
        return sharding
    return GSPMDSharding.get_replicated(tuple(sharding.device_set))


@functools.cache
def _partitioned(call, ndim, axis, nargs):
    """``call`` under ``custom_partitioning``: operands and result sharded alike, every axis but
    ``axis`` as the operand's, ``axis`` whole on each device."""
    factors = [f"d{i}" for i in range(ndim)]
    operand = " ".join(factors)

    def sharding(arg_shapes):
        return _keep_all_but(arg_shapes[0].sharding, ndim, axis)

    def partition(mesh, arg_shapes, result_shape):
        s = sharding(arg_shapes)
        return mesh, call, s, (s,) * nargs

    def infer_sharding_from_operands(mesh, arg_shapes, result_shape):
        return sharding(arg_shapes)

    def propagate_user_sharding(mesh, user_shape):
        return _keep_all_but(user_shape.sharding, ndim, axis)

    fn = custom_partitioning(call)
    fn.def_partition(
        partition,
        infer_sharding_from_operands=infer_sharding_from_operands,
        propagate_user_sharding=propagate_user_sharding,
        sharding_rule=f"{', '.join([operand] * nargs)} -> {operand}",
        need_replication_factors=(factors[axis],),
    )
    return fn


def _lower_partitioned(ctx, call, args, axis):
    """Lower ``call(*args)`` partitioned as ``_partitioned`` says where the program is sharded."""
    axis_context = ctx.module_context.axis_context
    devices = getattr(axis_context, "device_assignment", ())
    if devices is None or getattr(axis_context, "num_devices", 2) == 1:
        # one device, or jax gave the lowering no devices (custom_partitioning needs them): the
        # plain custom call, which XLA runs on gathered operands where the program is sharded
        return mlir.lower_fun(call, multiple_results=False)(ctx, *args)
    fn = _partitioned(call, ctx.avals_in[0].ndim, axis, len(args))
    return mlir.lower_fun(fn, multiple_results=False)(ctx, *args)


# jax.jit hands a program's lowering the device assignment custom_partitioning needs only if it
# finds a custom_partitioning call in the program, the jaxprs in its equations' parameters
# included (``jax.extend.core.subjaxprs``); without it the lowering above must fall back to the
# plain custom call. A primitive below whose operand is typed on a mesh of several devices
# therefore carries, as its parameter ``partitioning``, a jaxpr holding one such call (of the
# identity; it is never lowered or run). Its cost: like custom_partitioning itself, such a program
# cannot be lowered without concrete devices (``jax.export`` with an ``AbstractMesh``), where
# ``implementation="xla"`` is the way out; on one device the parameter is None and changes nothing.
def _identity(v):
    return v


_identity_partitioned = custom_partitioning(_identity)
_identity_partitioned.def_partition(
    lambda mesh, arg_shapes, result_shape: (
        mesh,
        _identity,
        result_shape.sharding,
        (arg_shapes[0].sharding,),
    ),
    infer_sharding_from_operands=lambda mesh, arg_shapes, result_shape: arg_shapes[0].sharding,
    sharding_rule="... -> ...",
)
_NEEDS_DEVICES = jax.make_jaxpr(_identity_partitioned)(np.float32(0))


def _on_devices(x):
    """Whether ``x`` is typed on a mesh of more than one device (see ``_NEEDS_DEVICES``)."""
    mesh = getattr(jax.typeof(x).sharding, "mesh", None)
    return mesh is not None and not mesh.empty and math.prod(mesh.axis_sizes) > 1


class _Primitive(Primitive):
    def bind(self, *args, **params):
        if "partitioning" not in params:  # rules binding again pass on the first choice
            params["partitioning"] = _NEEDS_DEVICES if _on_devices(args[0]) else None
        return super().bind(*args, **params)


# --- the primitives -----------------------------------------------------------------------------


def _primitive(name, core_impl, xla_impl):
    p = _Primitive(name)
    if _apply_primitive is not None:
        p.def_impl(functools.partial(_apply_primitive, p))
    else:  # pragma: no cover - correct but compiles on every eager call
        p.def_impl(lambda *args, **params: jax.jit(functools.partial(p.bind, **params))(*args))
    # the input's type, sharding included: under an explicitly sharded mesh
    # (jax.sharding.AxisType.Explicit) the result keeps it instead of being typed replicated
    p.def_abstract_eval(lambda *avals, **params: avals[0].update(weak_type=False))

    def lowering(ctx, *args, implementation, partitioning, **params):
        platforms = tuple(ctx.module_context.platforms)
        exporting = ctx.module_context.lowering_parameters.for_export
        if implementation == "core":
            if exporting:
                raise ValueError(
                    f"{name}: implementation='core' runs lrn-core's kernels in this Python "
                    "process (an XLA FFI target registered from Python), which jax.export cannot "
                    "serialise. Use implementation='auto' (the default: pure XLA under export) "
                    "or 'xla'."
                )
            if platforms != ("cpu",):
                raise RuntimeError(
                    f"{name}: implementation='core' runs lrn-core's kernels on the CPU only, got "
                    f"platforms {platforms}. Use implementation='auto' or 'xla' (pure XLA on the "
                    "device); lrn-core never copies a device array to the host behind your back."
                )
        use_core = implementation == "core" or (
            implementation == "auto" and platforms == ("cpu",) and not exporting
        )
        if use_core and f"{name}_cpu" in _FFI_TARGETS:
            # an XLA FFI custom call: the kernels read XLA's buffers and write its output in place
            attrs = {
                key: (np.int64 if key in _INT_ATTRS else np.float64)(value)
                for key, value in params.items()
            }
            call = _ffi_call(f"{name}_cpu", tuple(sorted(attrs.items())))
            return _lower_partitioned(ctx, call, args, params["axis"])
        impl = core_impl if use_core else xla_impl
        return mlir.lower_fun(functools.partial(impl, **params), multiple_results=False)(ctx, *args)

    mlir.register_lowering(p, lowering)

    def batch(args, dims, *, axis, **params):
        # the mapped axis goes in front, as one more outer axis: one kernel call for the batch
        n = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)
        args = [
            jnp.broadcast_to(a, (n, *a.shape)) if d is None else jnp.moveaxis(a, d, 0)
            for a, d in zip(args, dims, strict=True)
        ]
        return p.bind(*args, axis=axis + 1, **params), 0

    batching.primitive_batchers[p] = batch
    return p


_FFI_TARGETS = _ffi.register(
    ("lrn_core_lrn_cpu", "lrn_core_lrn_vjp_cpu", "lrn_core_window_sum_cpu")
)
_INT_ATTRS = ("size", "before", "axis")
_lrn_p = _primitive("lrn_core_lrn", _core_lrn, _xla(_forward))
_jvp_p = _primitive("lrn_core_lrn_jvp", _core_jvp, _xla(_tangent))
_vjp_p = _primitive("lrn_core_lrn_vjp", _core_vjp, _xla(_cotangent))
_window_p = _primitive("lrn_core_window_sum", _core_window, _xla_window_impl)


def _instantiate(tangents):
    return [ad.instantiate_zeros(t) for t in tangents]


def _lrn_jvp_rule(primals, tangents, **params):
    (x,), (t,) = primals, tangents
    y = _lrn_p.bind(x, **params)
    if type(t) is ad.Zero:
        return y, ad.Zero.from_primal_value(y)
    return y, _jvp_p.bind(x, t, **params)


def _composite_jvp_rule(formula):
    """JVP of ``J t`` or ``J^T g`` in both arguments: forward mode through the composition."""

    def rule(primals, tangents, **params):
        f = functools.partial(_composite, formula, **params)
        return jax.jvp(f, tuple(primals), tuple(_instantiate(tangents)))

    return rule


def _linear_transpose(other, name):
    """Transpose in the second argument of a primitive linear in it (``x`` stays a primal)."""

    def rule(ct, x, v, **params):
        if ad.is_undefined_primal(x):
            raise NotImplementedError(
                f"{name} is linear in its second argument only; it cannot be transposed in x"
            )
        if type(ct) is ad.Zero:
            return None, ad.Zero(v.aval)
        return None, other.bind(x, ct, **params)

    return rule


def _window_jvp_rule(primals, tangents, *, size, before, axis, implementation, partitioning=None):
    (v,), (t,) = primals, tangents
    params = dict(size=size, before=before, axis=axis, implementation=implementation)
    y = _window_p.bind(v, **params)
    if type(t) is ad.Zero:
        return y, ad.Zero.from_primal_value(y)
    return y, _window_p.bind(t, **params)


def _window_transpose(ct, v, *, size, before, axis, implementation, partitioning=None):
    if type(ct) is ad.Zero:
        return (ad.Zero(v.aval),)
    return (
        _window_p.bind(
            ct, size=size, before=size - 1 - before, axis=axis, implementation=implementation
        ),
    )


ad.primitive_jvps[_lrn_p] = _lrn_jvp_rule
ad.primitive_jvps[_jvp_p] = _composite_jvp_rule(_tangent)
ad.primitive_jvps[_vjp_p] = _composite_jvp_rule(_cotangent)
ad.primitive_transposes[_jvp_p] = _linear_transpose(_vjp_p, "lrn_core_lrn_jvp")
ad.primitive_transposes[_vjp_p] = _linear_transpose(_jvp_p, "lrn_core_lrn_vjp")
ad.primitive_jvps[_window_p] = _window_jvp_rule
ad.primitive_transposes[_window_p] = _window_transpose
