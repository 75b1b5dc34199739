"""lrn_core.validation: the checks the core and every adapter share, and their messages."""

import numpy as np
import pytest

from lrn_core import conventions
from lrn_core.validation import (
    as_array,
    check_axis,
    check_choice,
    check_int,
    check_like,
    check_out,
    check_params,
    check_real,
    check_tf_params,
)

BAD = [
    (lambda: check_int("size", 0, minimum=1), ValueError, r"^size must be an integer >= 1, got 0$"),
    (lambda: check_int("n", 7, 0, 3), ValueError, r"^n must be an integer in \[0, 3\], got 7$"),
    (lambda: check_int("n", 2.0), TypeError, r"^n must be an integer, got 2.0 of type float$"),
    (lambda: check_int("n", np.True_), TypeError, r"^n must be an integer, got .*True"),
    (lambda: check_real("k", "1"), TypeError, r"^k must be a real number, got '1' of type str$"),
    (lambda: check_real("k", True), TypeError, r"^k must be a real number, got True of type bool$"),
    (lambda: check_real("k", np.float32(np.inf)), ValueError, r"^k must be finite, got inf$"),
    (
        lambda: check_params(3, 1.0, 0.75, 1.0, 3),
        ValueError,
        r"^before must be an integer in \[0, 2\], got 3$",
    ),
    (
        lambda: check_params(3, None, 0.75, 1.0, None),
        TypeError,
        r"^alpha must be a real number, got None of type NoneType$",
    ),
    (
        lambda: check_tf_params(-1, 1.0, 1.0, 0.5),
        ValueError,
        r"^depth_radius must be an integer >= 0, got -1$",
    ),
    (
        lambda: check_tf_params(2, float("nan"), 1.0, 0.5),
        ValueError,
        r"^bias must be finite, got nan$",
    ),
    (
        lambda: check_axis(2, 2),
        np.exceptions.AxisError,
        r"axis 2 is out of bounds for array of "
        r"dimension 2",
    ),
    (lambda: check_axis("1", 2), TypeError, r"^axis must be an integer, got '1' of type str$"),
    (
        lambda: check_choice("implementation", "fast", ("auto", "core")),
        ValueError,
        r"^implementation must be one of \('auto', 'core'\), got 'fast'$",
    ),
    (
        lambda: check_choice("implementation", np.array("core"), ("auto", "core")),
        ValueError,
        r"^implementation must be one of \('auto', 'core'\), got array\('core'",
    ),
    (
        lambda: as_array("x", np.zeros(3, np.int64)),
        TypeError,
        r"^x must have dtype float16, float32 or float64, got int64$",
    ),
    (lambda: as_array("x", [[1.0], [1.0, 2.0]]), TypeError, r"^x must be array_like, got list$"),
    (
        lambda: as_array("x", np.float64(1.0)),
        ValueError,
        r"^x must have at least 1 dimension \(the channel axis\), got a 0-d array$",
    ),
    (
        lambda: check_like("dy", np.zeros(3, np.float32), np.zeros(3), "x"),
        TypeError,
        r"^dy must have the dtype of x \(float64\), got float32$",
    ),
    (
        lambda: check_out(np.zeros(3), (3,), np.dtype(np.float32)),
        TypeError,
        r"^out must have dtype float32, got float64$",
    ),
]


@pytest.mark.parametrize("call,exc,match", BAD)
def test_messages_name_the_argument_the_value_and_what_is_allowed(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_values_are_normalised():
    assert check_int("n", np.int16(3)) == 3 and type(check_int("n", np.int16(3))) is int
    assert check_real("k", np.float32(0.5)) == 0.5 and type(check_real("k", 1)) is float
    assert check_axis(-1, 4) == 3 and check_axis(np.int64(1), 4) == 1
    assert check_choice("implementation", "core", ("auto", "core")) == "core"
    assert check_tf_params(np.int32(2), 1, 2, 0.5) == (2, 1.0, 2.0, 0.5)


def test_the_default_window_is_the_conventions_one():
    for size in range(1, 12):
        before = check_params(size, 1.0, 0.75, 1.0, None)[4]
        assert before == conventions.default_before(size) == conventions.from_torch(size).before
        assert before == size // 2  # PyTorch's, pinned here independently


def test_checks_do_not_mutate_their_arguments():
    x = np.arange(4.0)
    out = np.full(4, 7.0)
    assert as_array("x", x) is x and check_like("dy", x, x, "x") is x
    assert check_out(out, (4,), x.dtype) is out
    np.testing.assert_array_equal(x, np.arange(4.0))
    np.testing.assert_array_equal(out, 7.0)
