import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from lrn_core.tolerances import FLOOR, REFERENCE

# Hypothesis profiles: "ci" (the default) and "thorough". Choose with HYPOTHESIS_PROFILE=thorough
# (tox passes it through) or pytest's --hypothesis-profile=thorough, which wins over the variable.
# Tests with their own @settings(max_examples=...) keep that count under either profile.
settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "ci")

#: dtype -> (rtol, atol) for comparisons against the float64 reference: lrn_core.tolerances'
#: table, shared with ``lrn-core check`` (each bound is justified there, in units of roundoff)
TOL = {np.dtype(name): (REFERENCE[name], FLOOR[name]) for name in ("float64", "float32", "float16")}


def assert_close(actual, expected, dtype=None, scale=None):
    """Compare against a float64 reference with the tolerance of ``dtype``.

    ``scale`` adds an absolute tolerance relative to a magnitude (for gradients, whose two terms
    can cancel: their error is relative to the terms, not to the difference).
    """
    dtype = np.dtype(dtype or np.asarray(actual).dtype)
    rtol, atol = TOL[dtype]
    if scale is not None:
        atol = max(atol, rtol * float(np.max(np.abs(scale))) if np.size(scale) else 0.0)
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64), expected, rtol=rtol, atol=atol, equal_nan=True
    )


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
