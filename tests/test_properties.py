"""Property-based tests (hypothesis): random rank, axis, size, window placement, parameters and
magnitudes, against the independent float64 reference."""

import os

import numpy as np
import pytest
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import lrn_grad_ref, lrn_ref

import lrn_core

# The hypothesis profiles ("ci", the default, and "thorough") are registered in conftest.py and
# chosen with HYPOTHESIS_PROFILE or --hypothesis-profile.


def test_hypothesis_profile_is_the_one_asked_for(request):
    """--hypothesis-profile wins, then HYPOTHESIS_PROFILE, then "ci"; the tests below run with
    that profile's number of examples."""
    asked = (
        request.config.getoption("hypothesis_profile", None)
        or os.environ.get("HYPOTHESIS_PROFILE")
        or "ci"
    )
    assert settings.get_profile(asked).max_examples == {"ci": 150, "thorough": 2000}[asked]
    assert settings.default.max_examples == settings.get_profile(asked).max_examples


@st.composite
def problems(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=ndim, max_size=ndim)))
    axis = draw(st.integers(-ndim, ndim - 1))
    C = shape[axis]
    size = draw(st.integers(1, C + 4))  # larger than C too
    before = draw(st.integers(0, size - 1))
    exponent = draw(st.integers(-6, 6))  # magnitudes from 1e-6 to 1e6
    x = draw(hnp.arrays(dtype, shape, elements=st.floats(-10, 10, width=32)))
    x = (x * dtype(10.0**exponent)).astype(dtype)
    params = dict(
        alpha=draw(st.floats(0.0, 5.0)),
        beta=draw(st.one_of(st.sampled_from([0.75, 0.5, 1.0]), st.floats(-1.0, 2.0))),
        k=draw(st.floats(0.1, 4.0)),
    )
    return x, size, before, axis, params


@given(problems())
def test_forward_matches_reference(problem):
    x, size, before, axis, p = problem
    y = lrn_core.lrn(x, size, **p, axis=axis, before=before)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert_close(y, lrn_ref(x, size, **p, axis=axis, before=before))


@given(problems(), st.integers(0, 2**32 - 1))
def test_backward_matches_reference(problem, seed):
    x, size, before, axis, p = problem
    dy = np.random.default_rng(seed).standard_normal(x.shape).astype(x.dtype)
    dx = lrn_core.lrn_backward(dy, x, size, **p, axis=axis, before=before)
    ref = lrn_grad_ref(dy, x, size, **p, axis=axis, before=before)
    # dx = dy * t - c * x * W(...): its error is relative to the size of the two terms
    t = np.abs(lrn_ref(np.ones_like(x), size, **p, axis=axis, before=before))
    scale = np.abs(dy).max() * t.max() + np.abs(ref).max() if x.size else 0.0
    assert_close(dx, ref, scale=scale * 4)


@given(problems())
def test_window_sum_is_linear_and_its_adjoint_swaps_the_window(problem):
    x, size, before, axis, _ = problem
    x = x.astype(np.float64)
    u = np.random.default_rng(0).standard_normal(x.shape)
    w = lrn_core.window_sum(x, size, axis=axis, before=before)
    wt = lrn_core.window_sum(u, size, axis=axis, before=size - 1 - before)
    lhs, rhs = np.sum(u * w), np.sum(wt * x)
    assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-9 * (np.abs(u).sum() * np.abs(x).max() + 1))
