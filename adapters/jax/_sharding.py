"""How a sharded array stays sharded: the kernels' custom calls partitioned along every axis but
the channels.

XLA partitions an FFI custom call it knows nothing about by gathering its operands on every
device: a batch-sharded input would run whole on each one. LRN mixes values along the channel
axis only, so each device can run the kernels on its own block of every other axis. The custom
call is wrapped in ``jax.experimental.custom_partitioning`` with that rule (a Shardy sharding rule
and the GSPMD callbacks): any sharding of the other axes is kept, a sharded channel axis is
gathered (that axis only: the window crosses the shards) before the kernels run. The wrapper takes
any function returning the custom call's result (:func:`._ffi.ffi_call`), whichever way its
handler is written. The pure-XLA implementation needs none of this: XLA partitions
``reduce_window`` itself. ``docs/sharding.rst`` tells the user's side.
"""

from __future__ import annotations

import functools
import math

import jax
import numpy as np
from jax.experimental.custom_partitioning import custom_partitioning
from jax.extend.sharding import GSPMDSharding
from jax.interpreters import mlir
from jax.sharding import NamedSharding, PartitionSpec

from . import _compat

__all__ = ["lower_partitioned", "device_marker"]


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


def lower_partitioned(ctx, call, args, axis):
    """Lower ``call(*args)`` partitioned as ``_partitioned`` says where the program is sharded."""
    devices, num_devices = _compat.lowering_devices(ctx)
    if devices is None or num_devices == 1:
        # one device, or jax gave the lowering no devices (custom_partitioning needs them): the
        # plain custom call, which XLA runs on gathered operands where the program is sharded
        return mlir.lower_fun(call, multiple_results=False)(ctx, *args)
    fn = _partitioned(call, ctx.avals_in[0].ndim, axis, len(args))
    return mlir.lower_fun(fn, multiple_results=False)(ctx, *args)


# The device marker. jax.jit hands a program's lowering the device assignment custom_partitioning
# needs only if it finds a custom_partitioning call in the program, the jaxprs in its equations'
# parameters included (``jax.extend.core.subjaxprs``); without it the lowering above must fall back
# to the plain custom call. A primitive whose operand is typed on a mesh of several devices
# therefore carries, as its parameter ``partitioning`` (:func:`device_marker`), a jaxpr holding one
# such call (of the identity; it is never lowered or run). Its cost: like custom_partitioning
# itself, such a program cannot be lowered without concrete devices (``jax.export`` with an
# ``AbstractMesh``), where ``implementation="native"`` is the way out; on one device the parameter
# is None and changes nothing.
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


def device_marker(x):
    """The ``partitioning`` parameter of a primitive bound on ``x``: ``_NEEDS_DEVICES`` if ``x``
    is typed on a mesh of several devices, else None."""
    return _NEEDS_DEVICES if _on_devices(x) else None
