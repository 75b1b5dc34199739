"""The private TensorFlow names the adapter needs, in one place, each with why no public API serves.

TensorFlow 2.20 and 2.21 (the supported range, docs/versions.rst) have all of them; a TensorFlow
that moved one fails here, at import, rather than silently at run time
(tests/test_tensorflow.py checks that each resolves).
"""

from __future__ import annotations

# ``record.record_operation(..., forward_function=...)`` records one op with its gradient *and*
# its JVP on the active tapes and forward accumulators: ``tf.custom_gradient`` records the
# gradient only, and a ForwardAccumulator would then replay the Python callback's gradient.
from tensorflow.python.eager import record

# The eager tensor class, named rather than taken from ``type(tf.constant(0.0))``: a tensor
# created at import would initialise TF's runtime (threads and devices no longer configurable).
from tensorflow.python.framework.ops import EagerTensor

# Is the graph being traced for XLA (``jit_compile=True``)? No public API says, and XLA cannot
# run a Python callback or lrn-core's op.
from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext

# Is ``tf.saved_model.save`` tracing? No public API says, and a SavedModel must not hold a Python
# callback or an op another process cannot load.
from tensorflow.python.saved_model.save_context import in_save_context

__all__ = ["record", "EagerTensor", "GraphOrParentsInXlaContext", "in_save_context"]
