"""Which computation runs a call: the one routing decision of the TensorFlow adapter.

:func:`choose` reads the call's context and returns a route of :data:`ROUTES`; ``"auto"``:

=========================================  ==================================================
context                                    route
=========================================  ==================================================
tracing for a SavedModel                   ``native``: TF's LRN (float64: ``composite``)
tracing for XLA (``jit_compile=True``)     ``native_xla``: TF's LRN/LRNGrad kernels, float32
                                           and bfloat16 (float16, float64: ``composite``)
inside ``tf.vectorized_map``               ``composite``: the formula in TF ops
a small input in a graph (:func:`_small`)  ``small``: the band formula in TF ops
any other graph (``tf.function``)          ``compiled``: lrn-core's compiled op, no Python
                                           (``kernel`` if the op library did not load)
eager                                      ``kernel``: the kernels on TF's buffers
=========================================  ==================================================

``"core"`` is ``compiled`` in graphs (``kernel`` under XLA, which refuses both, under
``tf.vectorized_map`` and where the op library did not load) and ``kernel`` eagerly;
``"native"`` is ``native``. The eager fast path of the public function
(``__init__._eager_route``) is the ``kernel`` route taken before any of this.
"""

from __future__ import annotations

import tensorflow as tf

from . import _compiled
from ._compat import GraphOrParentsInXlaContext, in_save_context
from ._composite import (
    BAND_CHANNELS,
    BAND_MACS,
    _lrn_composite,
    _lrn_native,
    _lrn_small,
    _native,
)
from ._kernel_ops import _lrn


def _in_xla():
    """True while tracing a function for XLA (``jit_compile=True``): no Python callbacks there."""
    return not tf.executing_eagerly() and GraphOrParentsInXlaContext(
        tf.compat.v1.get_default_graph()
    )


def _in_pfor():
    """True while ``tf.vectorized_map`` (pfor) traces its loop body.

    pfor vectorises the ops it has converters for; a Python callback it can only run in a
    ``while_loop`` fallback, whose gradient replays ``EagerPyFunc``'s own gradient and fails. pfor
    traces the body under a name scope ``loop_body`` holding its loop variable
    ``loop_body/PlaceholderWithDefault`` (TF 2.21, parallel_for/control_flow_ops.py).
    """
    if tf.executing_eagerly():
        return False
    graph = tf.compat.v1.get_default_graph()
    parts = graph.get_name_scope().split("/")
    for i, part in enumerate(parts):
        if part.startswith("loop_body"):
            try:
                graph.get_operation_by_name("/".join(parts[: i + 1]) + "/PlaceholderWithDefault")
                return True
            except KeyError:
                continue
    return False


#: in a graph, "auto" computes inputs of at most this many elements (static shapes, at most
#: BAND_CHANNELS channels and BAND_MACS multiply-adds per window sum) with the band formula in TF
#: ops: there one small TF op costs less than any call into the kernels (BENCHMARKS.md, "Small
#: inputs in tf.function")
SMALL_ELEMENTS = 65536


def _small(x):
    """Graphs only (eagerly the kernel is called directly, cheaper than any TF op)."""
    n, c = x.shape.num_elements(), x.shape[-1]
    return (
        not tf.executing_eagerly()
        and n is not None
        and n <= SMALL_ELEMENTS
        and c <= BAND_CHANNELS
        and n * c <= BAND_MACS
    )


def choose(x, implementation):
    """The name of the route of :data:`ROUTES` for the checked tensor ``x``."""
    if implementation == "native":
        return "native"
    graph = not tf.executing_eagerly()
    if implementation == "auto":
        if in_save_context():  # a SavedModel: TF's own op, float64 in TF ops
            return "native" if x.dtype != tf.float64 else "composite"
        if _in_xla():
            return "native_xla" if x.dtype in (tf.float32, tf.bfloat16) else "composite"
        if _in_pfor():
            return "composite"
        if _small(x):
            return "small"
    if graph and not _in_xla() and not _in_pfor() and _compiled.load() is not None:
        return "compiled"
    return "kernel"


def _in_float32(route):
    """``route`` on float32 for float16 and bfloat16 inputs (computed in float32, rounded once)."""

    def run(x, params, core):
        if x.dtype in (tf.float32, tf.float64):
            return route(x, params, core)
        return tf.cast(route(tf.cast(x, tf.float32), params, core), x.dtype)

    return run


#: route name -> ``fn(x, tf_params, core_params)``
ROUTES = {
    "native": lambda x, params, core: _native(x, *params),
    "native_xla": _in_float32(lambda x, params, core: _lrn_native(x, params, core)),
    "composite": lambda x, params, core: _lrn_composite(x, core),
    "small": _in_float32(lambda x, params, core: _lrn_small(x, core)),
    "compiled": _in_float32(lambda x, params, core: _compiled.route(x, core)),
    # the core has no bfloat16 (float16 it widens itself)
    "kernel": lambda x, params, core: (
        tf.cast(_lrn(tf.cast(x, tf.float32), core), tf.bfloat16)
        if x.dtype == tf.bfloat16
        else _lrn(x, core)
    ),
}
