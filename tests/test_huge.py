"""Arrays of more than 2**31 elements (64-bit indexing). Opt-in: ``pytest -m huge`` (needs about
18 GiB of memory)."""

import numpy as np
import pytest

import lrn_core
from lrn_core import reference

pytestmark = pytest.mark.huge


def test_more_than_2_to_the_31_elements():
    # (outer, C, inner) = (1, 2, 2**30 + 8) float32: 2**31 + 16 elements, the second channel
    # ending past element 2**31 (and past byte 2**33)
    n = 2**30 + 8
    x = np.empty((1, 2, n), np.float32)
    x[0, 0].fill(1.0)
    x[0, 1].fill(2.0)
    x[0, 1, -1] = np.nan  # one non-finite value at the very end stays local
    y = lrn_core.lrn(x, 3, 3.0, 1.0, 1.0)
    expected = reference.lrn(x[:, :, :2].astype(np.float64), 3, 3.0, 1.0, 1.0)
    np.testing.assert_allclose(y[:, :, :2], expected, rtol=1e-6)
    np.testing.assert_allclose(y[:, :, -3:-1], expected, rtol=1e-6)
    assert np.isnan(y[0, :, -1]).all()  # both outputs' windows contain the nan
    del y
    dx = lrn_core.lrn_backward(x, x, 3, 3.0, 1.0, 1.0)
    g = reference.lrn_backward(x[:, :, :2], x[:, :, :2], 3, 3.0, 1.0, 1.0)
    np.testing.assert_allclose(dx[:, :, -3:-1], g, rtol=1e-5)
