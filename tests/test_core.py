"""The NumPy API of the core against the independent float64 reference (tests/reference.py)."""

import itertools

import numpy as np
import pytest
from conftest import TOL, assert_close
from reference import band, lrn_grad_ref, lrn_ref

import lrn_core
from lrn_core.check import finite_difference as numerical_grad

DTYPES = [np.float32, np.float64]
# (shape, axis): NCHW, NHWC, 1-D, 2-D, 3-D, 5-D, a channel axis in the middle of many
SHAPES = [
    ((2, 7, 5, 3), 1),
    ((2, 5, 3, 7), -1),
    ((9,), 0),
    ((4, 6), 1),
    ((6, 4), 0),
    ((3, 8, 10), 1),
    ((2, 3, 4, 2, 3), 2),
    ((1, 1, 1, 1), 1),
]
SIZES = [1, 2, 3, 4, 5, 7, 10, 25]


def _befores(size):
    return sorted({size // 2, (size - 1) // 2, 0, size - 1})


def _params(rng):
    return {
        "alpha": float(rng.uniform(0.1, 3.0)),
        "beta": float(rng.choice([0.75, 0.5, 1.0, 0.6])),
        "k": float(rng.uniform(0.5, 2.0)),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", SHAPES)
def test_forward_and_backward_match_reference(rng, dtype, shape, axis):
    for size in SIZES:
        for before in _befores(size):
            p = _params(rng)
            x = rng.standard_normal(shape).astype(dtype)
            dy = rng.standard_normal(shape).astype(dtype)
            y = lrn_core.lrn(x, size, **p, axis=axis, before=before)
            assert y.dtype == dtype and y.shape == x.shape
            assert_close(y, lrn_ref(x, size, **p, axis=axis, before=before))
            dx = lrn_core.lrn_backward(dy, x, size, **p, axis=axis, before=before)
            assert dx.dtype == dtype and dx.shape == x.shape
            ref = lrn_grad_ref(dy, x, size, **p, axis=axis, before=before)
            # dx is a difference of two terms; its error is relative to the terms
            assert_close(dx, ref, scale=np.abs(dy).max() * np.abs(x).max() + np.abs(ref).max())


def test_defaults_are_pytorchs(rng):
    x = rng.standard_normal((2, 6, 3, 3))
    assert_close(lrn_core.lrn(x), lrn_ref(x, 5, 1e-4, 0.75, 1.0, axis=1, before=2))


@pytest.mark.parametrize("size,before", [(4, 2), (4, 1), (4, 0), (4, 3), (6, 3), (2, 1), (2, 0)])
def test_backward_matches_finite_differences(rng, size, before):
    """The gradient is checked against the forward itself, not only against a formula."""
    x = rng.standard_normal((2, 7, 3))
    dy = rng.standard_normal((2, 7, 3))
    p = dict(alpha=2.0, beta=0.75, k=1.0)  # large alpha: the cross terms matter

    def f(z):
        return lrn_core.lrn(z, size, **p, before=before)

    num = numerical_grad(f, x, dy)
    dx = lrn_core.lrn_backward(dy, x, size, **p, before=before)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("beta", [0.75, 0.5, 1.0, 0.0, 0.6, -0.5, 2.3])
def test_beta_paths_finite_differences(rng, beta):
    x = rng.standard_normal((3, 6, 2))
    dy = rng.standard_normal((3, 6, 2))
    num = numerical_grad(lambda z: lrn_core.lrn(z, 3, 1.5, beta, 0.8), x, dy)
    np.testing.assert_allclose(
        lrn_core.lrn_backward(dy, x, 3, 1.5, beta, 0.8), num, rtol=1e-6, atol=1e-8
    )
    assert_close(lrn_core.lrn(x, 3, 1.5, beta, 0.8), lrn_ref(x, 3, 1.5, beta, 0.8))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size,before", [(5, 2), (4, 2), (4, 1), (1, 0), (30, 3)])
def test_window_sum_matches_band_matrix(rng, dtype, size, before):
    v = rng.standard_normal((3, 11, 4)).astype(dtype)
    expected = np.einsum("cj,ojh->och", band(11, size, before), v.astype(np.float64))
    got = lrn_core.window_sum(v, size, before=before)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=TOL[np.dtype(dtype)][0] * size, atol=1e-6)


def test_window_sum_adjoint_is_the_swapped_window(rng):
    u, v = rng.standard_normal((2, 2, 9, 3))
    for size in (2, 4, 5):
        for before in range(size):
            lhs = np.sum(u * lrn_core.window_sum(v, size, before=before))
            rhs = np.sum(lrn_core.window_sum(u, size, before=size - 1 - before) * v)
            assert lhs == pytest.approx(rhs, rel=1e-12)


# --- layouts, strides, out= ---------------------------------------------------------------------


def _layouts(rng):
    base = rng.standard_normal((4, 6, 5, 7))
    yield "contiguous", base, 1
    yield "fortran", np.asfortranarray(base), 1
    yield "nhwc view", base.transpose(0, 2, 3, 1), -1
    yield "channels_last", np.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2), 1
    yield "negative strides", base[::-1, ::-1, :, ::-1], 1
    yield "step slices", base[:, ::2, 1::2, ::3], 1
    yield "broadcast", np.broadcast_to(base[:1], (3, 6, 5, 7)), 1
    yield "non-collapsible", base[:, :, ::2, :][:, :, :, 1:6].transpose(0, 1, 3, 2), 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_any_strides(rng, dtype):
    for name, x, axis in _layouts(rng):
        x = x.astype(dtype, copy=False) if x.dtype != dtype else x
        dy = np.ones_like(x)
        y = lrn_core.lrn(x, 3, 0.5, 0.75, 1.0, axis=axis)
        assert_close(y, lrn_ref(x, 3, 0.5, 0.75, 1.0, axis=axis)), name
        dx = lrn_core.lrn_backward(dy, x, 3, 0.5, 0.75, 1.0, axis=axis)
        assert_close(dx, lrn_grad_ref(dy, x, 3, 0.5, 0.75, 1.0, axis=axis), scale=1.0)


def test_output_keeps_the_input_layout(rng):
    x = np.ascontiguousarray(rng.standard_normal((2, 3, 4, 5)).transpose(0, 2, 3, 1))
    x = x.transpose(0, 3, 1, 2)  # NCHW shape, channels-last memory
    y = lrn_core.lrn(x, 3)
    assert y.strides == x.strides


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
def test_out_argument(rng, layout):
    x = rng.standard_normal((3, 5, 4))
    buf = np.full((3, 5, 8), np.nan)
    out = {
        "contiguous": np.empty_like(x),
        "transposed": np.empty((4, 5, 3)).transpose(2, 1, 0),
        "strided": buf[:, :, ::2],
    }[layout]
    res = lrn_core.lrn(x, 3, 1.0, 0.75, 1.0, out=out)
    assert res is out
    assert_close(out, lrn_ref(x, 3, 1.0, 0.75, 1.0))
    if layout == "strided":
        assert np.isnan(buf[:, :, 1::2]).all()  # nothing written between the strides
    dx = lrn_core.lrn_backward(np.ones_like(x), x, 3, 1.0, 0.75, 1.0, out=out)
    assert dx is out
    assert_close(out, lrn_grad_ref(np.ones_like(x), x, 3, 1.0, 0.75, 1.0), scale=1.0)


def test_in_place_and_overlapping_out(rng):
    x = rng.standard_normal((2, 9, 6))
    expected = lrn_ref(x, 5, 1.0, 0.75, 1.0)
    a = x.copy()
    assert lrn_core.lrn(a, 5, 1.0, 0.75, 1.0, out=a) is a
    assert_close(a, expected)
    # out overlapping the input shifted by one channel
    big = np.concatenate([x, x[:, :1]], axis=1)
    res = lrn_core.lrn(big[:, :9], 5, 1.0, 0.75, 1.0, out=big[:, 1:])
    assert_close(res, expected)
    dy = rng.standard_normal(x.shape)
    g = dy.copy()
    assert lrn_core.lrn_backward(g, x, 5, 1.0, 0.75, 1.0, out=g) is g
    assert_close(g, lrn_grad_ref(dy, x, 5, 1.0, 0.75, 1.0), scale=10.0)


def test_inputs_are_not_mutated_and_read_only_inputs_work(rng):
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    dy = rng.standard_normal((2, 6, 3)).astype(np.float32)
    x0, dy0 = x.copy(), dy.copy()
    x.flags.writeable = False
    dy.flags.writeable = False
    y = lrn_core.lrn(x, 5)
    lrn_core.lrn_backward(dy, x, 5, y=y)
    lrn_core.window_sum(x, 5)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)


def test_y_argument_does_not_change_the_result(rng):
    x = rng.standard_normal((2, 6, 3))
    dy = rng.standard_normal((2, 6, 3))
    y = lrn_core.lrn(x, 4, 2.0, 0.75, 1.0)
    np.testing.assert_array_equal(
        lrn_core.lrn_backward(dy, x, 4, 2.0, 0.75, 1.0, y=y),
        lrn_core.lrn_backward(dy, x, 4, 2.0, 0.75, 1.0),
    )


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (2, 3, 0, 4), (0,)])
def test_empty_arrays(shape):
    x = np.zeros(shape, dtype=np.float32)
    axis = 0 if len(shape) == 1 else 1
    y = lrn_core.lrn(x, 5, axis=axis)
    assert y.shape == shape and y.dtype == np.float32
    dx = lrn_core.lrn_backward(x, x, 5, axis=axis)
    assert dx.shape == shape and dx.dtype == np.float32


def test_array_likes_are_accepted():
    y = lrn_core.lrn([[1.0, 2.0, 3.0]], size=3, alpha=3.0, beta=1.0, k=1.0)
    assert y.dtype == np.float64
    assert_close(y, lrn_ref(np.array([[1.0, 2.0, 3.0]]), 3, 3.0, 1.0, 1.0))


# --- dtypes ---------------------------------------------------------------------------------------


def test_float16_is_computed_in_float32_and_rounded_once(rng):
    x = (rng.standard_normal((2, 8, 5)) * 30).astype(np.float16)
    y = lrn_core.lrn(x, 5, 1e-2, 0.75, 1.0)
    assert y.dtype == np.float16
    # x**2 overflows float16 for |x| >= 256; computed in float32 it must not
    x[0, 3, 0] = 300.0
    y = lrn_core.lrn(x, 5, 1e-2, 0.75, 1.0)
    assert np.isfinite(y).all()
    expected = lrn_ref(x, 5, 1e-2, 0.75, 1.0)
    np.testing.assert_array_equal(
        y, lrn_core.lrn(x.astype(np.float32), 5, 1e-2, 0.75, 1.0).astype(np.float16)
    )
    assert_close(y, expected)
    dy = rng.standard_normal(x.shape).astype(np.float16)
    dx = lrn_core.lrn_backward(dy, x, 5, 1e-2, 0.75, 1.0)
    assert dx.dtype == np.float16
    ref = lrn_grad_ref(dy, x, 5, 1e-2, 0.75, 1.0)
    assert_close(dx, ref, scale=np.abs(ref).max())
    out = np.empty_like(x)
    assert lrn_core.lrn(x, 5, 1e-2, 0.75, 1.0, out=out) is out
    np.testing.assert_array_equal(out, y)


@pytest.mark.parametrize(
    "dtype",
    [np.int32, np.int64, np.bool_, np.complex64, np.uint8, object, "datetime64[s]", np.longdouble],
)
def test_unsupported_dtypes_raise_type_error(dtype):
    x = np.zeros((1, 3, 2), dtype=dtype)
    with pytest.raises(TypeError, match=r"x must have dtype float16, float32 or float64, got"):
        lrn_core.lrn(x, 3)
    with pytest.raises(TypeError, match=r"x must have dtype float16, float32 or float64"):
        lrn_core.lrn_backward(np.zeros((1, 3, 2)), x, 3)


# --- numerics -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_channel_next_to_tiny_ones(dtype):
    """No cancellation: a running sum that subtracts the leaving square would lose the tiny ones."""
    C = 40
    x = np.full((1, C, 3), 1e-3, dtype=dtype)
    big = np.sqrt(np.finfo(dtype).max) / 8
    x[0, 10] = big
    for k in (1.0, 0.0):
        y = lrn_core.lrn(x, 5, 1.0, 0.75, k)
        assert_close(y, lrn_ref(x, 5, 1.0, 0.75, k))
        dx = lrn_core.lrn_backward(np.ones_like(x), x, 5, 1.0, 0.75, k)
        ref = lrn_grad_ref(np.ones_like(x), x, 5, 1.0, 0.75, k)
        far = np.r_[0:8, 13:C]  # channels whose windows do not reach channel 10
        assert_close(dx[:, far], ref[:, far])


@pytest.mark.parametrize("dtype", DTYPES)
def test_thousands_of_channels(rng, dtype):
    x = rng.standard_normal((2, 3000, 3)).astype(dtype)
    dy = rng.standard_normal((2, 3000, 3)).astype(dtype)
    for size in (5, 64, 513):
        assert_close(lrn_core.lrn(x, size, 2.0, 0.75, 1.0), lrn_ref(x, size, 2.0, 0.75, 1.0))
        ref = lrn_grad_ref(dy, x, size, 2.0, 0.75, 1.0)
        assert_close(lrn_core.lrn_backward(dy, x, size, 2.0, 0.75, 1.0), ref, scale=10.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("size,before", [(5, 2), (4, 2), (4, 1)])
def test_non_finite_values_stay_in_their_window(dtype, bad, size, before):
    C = 20
    x = np.linspace(-1, 1, 2 * C * 3).reshape(2, C, 3).astype(dtype)
    x[1, 9, 2] = bad
    y = lrn_core.lrn(x, size, 1.0, 0.75, 1.0, before=before)
    ref = lrn_ref(x, size, 1.0, 0.75, 1.0, before=before)
    assert_close(y, ref)
    after = size - 1 - before
    hit = np.zeros(x.shape, bool)
    hit[1, max(0, 9 - after) : 9 + before + 1, 2] = True  # outputs whose window contains (9)
    assert np.isfinite(y[~hit]).all()
    dx = lrn_core.lrn_backward(np.ones_like(x), x, size, 1.0, 0.75, 1.0, before=before)
    # the gradient reaches one window further (window of a window), and no further
    reach = np.zeros(x.shape, bool)
    reach[1, max(0, 9 - size + 1) : 9 + size, 2] = True
    assert np.isfinite(dx[~reach]).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_magnitudes_and_degenerate_parameters(rng, dtype):
    info = np.finfo(dtype)
    x = rng.standard_normal((2, 9, 4)).astype(dtype)
    for scale in (float(info.tiny) * 16, 1e-20, 1.0, 1e15, float(np.sqrt(info.max)) / 4):
        xs = (x * dtype(scale)).astype(dtype)
        for k, alpha, size in [
            (1.0, 1e-4, 5),
            (0.0, 1.0, 5),
            (2.0, 0.0, 3),
            (1.0, 1.0, 1),
            (1.0, 1.0, 40),
        ]:
            with np.errstate(all="ignore"):
                ref = lrn_ref(xs, size, alpha, 0.75, k)
                y = lrn_core.lrn(xs, size, alpha, 0.75, k)
            assert_close(y, ref)


# --- errors ---------------------------------------------------------------------------------------

X = np.zeros((2, 3, 4), dtype=np.float32)
BAD_CALLS = [
    (lambda: lrn_core.lrn(X, 0), ValueError, r"size must be an integer >= 1, got 0"),
    (lambda: lrn_core.lrn(X, 2.5), TypeError, r"size must be an integer, got 2.5"),
    (lambda: lrn_core.lrn(X, True), TypeError, r"size must be an integer, got True"),
    (
        lambda: lrn_core.lrn(X, 3, before=3),
        ValueError,
        r"before must be an integer in \[0, 2\], got 3",
    ),
    (
        lambda: lrn_core.lrn(X, 3, before=-1),
        ValueError,
        r"before must be an integer in \[0, 2\], got -1",
    ),
    (lambda: lrn_core.lrn(X, 3, alpha="a"), TypeError, r"alpha must be a real number, got 'a'"),
    (lambda: lrn_core.lrn(X, 3, beta=np.nan), ValueError, r"beta must be finite, got nan"),
    (lambda: lrn_core.lrn(X, 3, k=np.inf), ValueError, r"k must be finite, got inf"),
    (lambda: lrn_core.lrn(X, 3, axis=3), np.exceptions.AxisError, r"axis 3 is out of bounds"),
    (lambda: lrn_core.lrn(X, 3, axis=-4), np.exceptions.AxisError, r"axis -4 is out of bounds"),
    (lambda: lrn_core.lrn(X, 3, axis=1.0), TypeError, r"axis must be an integer, got 1.0"),
    (lambda: lrn_core.lrn(np.float32(1.0), 3), ValueError, r"x must have at least 1 dimension"),
    (
        lambda: lrn_core.lrn(X, 3, out=np.zeros((2, 3, 5), np.float32)),
        ValueError,
        r"out must have shape \(2, 3, 4\), got \(2, 3, 5\)",
    ),
    (
        lambda: lrn_core.lrn(X, 3, out=np.zeros((2, 3, 4))),
        TypeError,
        r"out must have dtype float32, got float64",
    ),
    (lambda: lrn_core.lrn(X, 3, out=[0.0]), TypeError, r"out must be a numpy.ndarray, got list"),
    (
        lambda: lrn_core.lrn(X, 3, out=np.broadcast_to(np.float32(0), X.shape)),
        ValueError,
        r"out must be writeable",
    ),
    (
        lambda: lrn_core.lrn_backward(np.zeros((2, 3, 5), np.float32), X, 3),
        ValueError,
        r"dy must have the shape of x \(2, 3, 4\), got \(2, 3, 5\)",
    ),
    (
        lambda: lrn_core.lrn_backward(np.zeros((2, 3, 4)), X, 3),
        TypeError,
        r"dy must have the dtype of x \(float32\), got float64",
    ),
    (
        lambda: lrn_core.lrn_backward(X, X, 3, y=np.zeros((3,), np.float32)),
        ValueError,
        r"y must have the shape of x",
    ),
    (lambda: lrn_core.window_sum(X, 0), ValueError, r"size must be an integer >= 1, got 0"),
    (
        lambda: lrn_core.window_sum(X, 2, before=2),
        ValueError,
        r"before must be an integer in \[0, 1\]",
    ),
]


@pytest.mark.parametrize("call,exc,match", BAD_CALLS)
def test_bad_arguments_raise_clear_errors(call, exc, match):
    x_before = X.copy()
    with pytest.raises(exc, match=match):
        call()
    np.testing.assert_array_equal(X, x_before)


def test_failed_call_leaves_out_untouched():
    out = np.full((2, 3, 4), 7.0, np.float32)
    with pytest.raises(ValueError):
        lrn_core.lrn(X, 0, out=out)
    assert (out == 7.0).all()


# --- many sizes, exhaustively small -----------------------------------------------------------


def test_every_size_and_placement_on_small_channel_counts(rng):
    for C, size in itertools.product(range(1, 9), range(1, 11)):
        for before in range(size):
            x = rng.standard_normal((2, C, 3))
            assert_close(
                lrn_core.lrn(x, size, 1.3, 0.75, 0.9, before=before),
                lrn_ref(x, size, 1.3, 0.75, 0.9, before=before),
            )
            dy = rng.standard_normal((2, C, 3))
            assert_close(
                lrn_core.lrn_backward(dy, x, size, 1.3, 0.75, 0.9, before=before),
                lrn_grad_ref(dy, x, size, 1.3, 0.75, 0.9, before=before),
                scale=10.0,
            )


# --- accuracy in ulps ----------------------------------------------------------------------------


def _max_ulps(actual, expected, dtype):
    ulp = np.spacing(np.abs(expected).astype(dtype)).astype(np.float64)
    return float(np.max(np.abs(actual.astype(np.float64) - expected) / ulp))


# float64 against a float64 reference: both round, so the bound covers the reference too
@pytest.mark.parametrize("dtype,limit", [(np.float32, 6.0), (np.float64, 8.0)])
def test_forward_error_in_ulps_over_magnitudes(rng, dtype, limit):
    """float32 is accumulated in float on the fast path (at most 32 channels a window, s in
    [1e-20, 1e30], no subtraction): a few ulps; everything else in double."""
    worst = 0.0
    for _ in range(6):
        scale = 10.0 ** rng.uniform(-8, 12)
        x = (rng.standard_normal((2, 24, 40)) * scale).astype(dtype)
        for size in (3, 5, 16, 25, 32, 33):
            for beta in (0.75, 0.5, 1.0, 0.6):
                k, alpha = 10 ** rng.uniform(-3, 2), 10 ** rng.uniform(-5, 1)
                y = lrn_core.lrn(x, size, alpha, beta, k)
                worst = max(worst, _max_ulps(y, lrn_ref(x, size, alpha, beta, k), dtype))
    assert worst <= limit


@pytest.mark.parametrize(
    "beta,limit",
    [
        (0.75, 2.5),
        (0.5, 1.0),
        (1.0, 0.5),
        (0.6, 0.5),
        (0.333, 0.5),
        (2.3, 0.5),
        (-0.5, 0.5),
        (7.0, 0.5),
    ],
)
def test_beta_fast_paths_agree_with_pow_over_the_float_range(beta, limit):
    """x = 1, alpha = 0: y = k ** -beta, the power step alone, for k across the float32 range
    (the fast path covers [1e-20, 1e30]; outside it the double path takes over). Other betas
    take a vector 2 ** (-beta log2 s) in double: correctly rounded, and where the float result
    overflows or underflows it is inf or 0, as pow's is."""
    ks = np.float32(10.0) ** np.linspace(-37, 38, 1201, dtype=np.float32)
    x = np.ones((1, 1, 16), np.float32)
    got = np.array([lrn_core.lrn(x, 1, 0.0, beta, float(k))[0, 0, 3] for k in ks])
    with np.errstate(over="ignore"):
        expected = ks.astype(np.float64) ** -beta
        rounded = expected.astype(np.float32)
    finite = np.isfinite(rounded) & (rounded != 0)
    assert _max_ulps(got[finite], expected[finite], np.float32) <= limit
    assert np.array_equal(got[~finite], rounded[~finite])


# --- direct rows (windows <= 8) and streamed rows (9 to 32): float32, contiguous positions,
# --- beta 0.75 / 0.5 --------------------------------------------------------------------------


def _layout_functions(channels_last):
    """lrn and lrn_backward on (N, C, W) arrays, computed channels last when asked: on (N, W, C)
    copies, with the results moved back to (N, C, W)."""
    if not channels_last:
        return lrn_core.lrn, lrn_core.lrn_backward

    def lrn(x, **p):
        return np.moveaxis(
            lrn_core.lrn(np.ascontiguousarray(np.moveaxis(x, 1, -1)), **p, axis=-1), -1, 1
        )

    def lrn_backward(dy, x, **p):
        dyl, xl = (np.ascontiguousarray(np.moveaxis(a, 1, -1)) for a in (dy, x))
        return np.moveaxis(lrn_core.lrn_backward(dyl, xl, **p, axis=-1), -1, 1)

    return lrn, lrn_backward


def _check_with_a_nan(x, dy, p, nan_at, channels_last):
    """lrn and lrn_backward of (N, C, W) ``x`` against the float64 references, ``x[nan_at]``
    being a nan: the forward is nan exactly in the windows that hold it, the gradient non-finite
    exactly where the reference's is, and everything else within the float32 tolerance."""
    lrn, lrn_backward = _layout_functions(channels_last)
    y = lrn(x, **p)
    assert_close(y, lrn_ref(x, **p))
    o, c, i = nan_at
    after = p["size"] - 1 - p["before"]
    hit = np.zeros(x.shape, bool)
    hit[o, max(0, c - after) : c + p["before"] + 1, i] = True
    assert np.isnan(y[hit]).all() and np.isfinite(y[~hit]).all()
    dx = lrn_backward(dy, x, **p)
    ref = lrn_grad_ref(dy, x, **p)
    finite = np.isfinite(ref)
    assert np.array_equal(np.isfinite(dx), finite)
    assert_close(
        np.where(finite, dx, 0),
        np.where(finite, ref, 0),
        scale=np.abs(np.where(finite, ref, 0)).max(),
    )


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("beta", [0.75, 0.5])
@pytest.mark.parametrize(
    "size,before",
    [(1, 0), (2, 1), (5, 2), (5, 0), (8, 3), (8, 7), (11, 5), (11, 10), (25, 12), (25, 0)],
)
def test_direct_rows_over_tiles_with_a_tile_redone_in_double(
    rng, beta, size, before, channels_last
):
    """1100 positions a row: two full tiles of 512 and one of 76 (the 32-wide, 8-wide and scalar
    loops; streamed rows, n > 8: 384, 384 and 332, a masked last vector). One tile holds a square
    too big for the float path (its outputs and gradients are redone in double), another a nan,
    which must stay in its windows; the other tiles are unaffected and still within the float32
    tolerance. Channels last: 12 channels, one full vector and a masked one per position, same
    values."""
    x = rng.standard_normal((2, 12, 1100)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    x[0, 6, 600] = 1e20  # its square overflows float: only the double redo gets it right
    x[1, 3, 1050] = np.nan
    _check_with_a_nan(
        x,
        dy,
        dict(size=size, alpha=2.0, beta=beta, k=1.5, before=before),
        (1, 3, 1050),
        channels_last,
    )


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("beta", [0.75, 0.5])
@pytest.mark.parametrize(
    "channels,size,before",
    [
        (70, 9, 4),
        (70, 9, 0),
        (70, 9, 8),
        (70, 12, 6),
        (70, 13, 6),
        (70, 16, 15),
        (70, 23, 11),
        (70, 25, 12),
        (70, 25, 0),
        (70, 31, 15),
        (70, 32, 16),
        (70, 32, 31),
        (7, 25, 12),
        (1, 9, 4),
        (40, 32, 0),
    ],
)
def test_streamed_rows_over_many_blocks(rng, beta, channels, size, before, channels_last):
    """Streamed rows cut the padded channels into blocks of n and keep rings of n rows: many
    blocks, a last block that is partial or (n = 23, 70 channels) full, windows wider than the
    channels, every kind of window offset; 800 positions: tiles of 384, 384 and 32. A huge
    square in one tile (redone in double) and a nan in another, as above. Channels last, the
    same windows are summed per position from groups of about sqrt(size) channels."""
    x = (rng.standard_normal((2, channels, 800)) * 3).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    x[0, channels // 2, 100] = 1e20
    x[1, channels - 1, 790] = np.nan
    _check_with_a_nan(
        x,
        dy,
        dict(size=size, alpha=2.0, beta=beta, k=1.5, before=before),
        (1, channels - 1, 790),
        channels_last,
    )


# --- channels-last positions (NHWC): computed position by position for windows <= 8 ----------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size,before", [(1, 0), (4, 1), (5, 2), (8, 7), (9, 4)])
def test_channels_last_paths_match_the_channels_first_ones(rng, dtype, size, before):
    """The same numbers as NCHW, including huge/tiny neighbours, non-finite values, k = 0."""
    x = rng.standard_normal((3, 40, 7)).astype(dtype)
    x[0, 10, 3] = np.sqrt(np.finfo(dtype).max) / 8
    x[1, 20, 4] = np.nan
    x[2, 5, 1] = np.inf
    dy = rng.standard_normal(x.shape).astype(dtype)
    xl, dyl = (np.ascontiguousarray(a.transpose(0, 2, 1)) for a in (x, dy))  # (N, W, C)
    for k in (1.0, 0.0):
        p = dict(size=size, alpha=1.5, beta=0.75, k=k, before=before)
        y = lrn_core.lrn(xl, **p, axis=-1)
        assert_close(y.transpose(0, 2, 1), lrn_ref(x, **p))
        dx = lrn_core.lrn_backward(dyl, xl, **p, axis=-1)
        ref = lrn_grad_ref(dy, x, **p)
        finite = np.isfinite(ref)
        assert np.array_equal(np.isfinite(dx.transpose(0, 2, 1)), finite)
        scale = np.abs(np.where(finite, ref, 0)).max() + 10.0
        assert_close(
            np.where(finite, dx.transpose(0, 2, 1), 0), np.where(finite, ref, 0), scale=scale
        )


def test_numpy_adapter_signatures_check_like_the_core(rng):
    from lrn_core.adapters import numpy as lrn_np

    x = rng.standard_normal((2, 4, 3, 6))
    assert_close(lrn_np.local_response_norm(x, 4), lrn_ref(x, 4))
    assert_close(
        lrn_np.local_response_normalization(x, 1, 2.0, 0.5, 0.75),
        lrn_ref(x, 3, 1.5, 0.75, 2.0, axis=-1),
    )
    with pytest.raises(ValueError, match=r"depth_radius must be an integer >= 0, got -1"):
        lrn_np.local_response_normalization(x, -1)
    with pytest.raises(TypeError, match=r"depth_radius must be an integer, got 1.5"):
        lrn_np.local_response_normalization(x, 1.5)
    with pytest.raises(ValueError, match=r"Expected 3D or higher dimensionality input"):
        lrn_np.local_response_norm(x[0, 0], 3)
