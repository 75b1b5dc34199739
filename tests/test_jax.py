"""The JAX adapter against the float64 reference, the core, finite differences and itself.

JAX has no LRN of its own: the independent reference is ``tests/reference.py`` (a dense band
matrix in NumPy float64), and the pure-XLA implementation (``implementation="native"``) is checked
against it as well as the kernels' route.
"""

import functools

import numpy as np
import pytest
from conftest import TOL, assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import lrn_grad_ref, lrn_ref

import lrn_core
from lrn_core import conventions
from lrn_core.tolerances import REFERENCE

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
lrn_jax = pytest.importorskip("lrn_core.adapters.jax")
from lrn_core.adapters.jax import local_response_norm  # noqa: E402

IMPLS = ["core", "native", "auto"]
#: (size, before): odd and even windows, both placements of an even one, a window wider than C
WINDOWS = [(5, None), (4, None), (4, 1), (1, None), (3, 0), (13, None)]
PARAMS = dict(alpha=0.7, beta=0.75, k=1.5)
BF16_RTOL = REFERENCE["bfloat16"]


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _x(shape, dtype=np.float64, seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _f(impl, size, before, axis=-1, **params):
    params = {**PARAMS, **params}
    return lambda x: local_response_norm(
        x, size, **params, axis=axis, before=before, implementation=impl
    )


# --- values --------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size,before", WINDOWS)
@pytest.mark.parametrize(
    "shape,axis", [((2, 3, 4, 9), -1), ((2, 9, 3, 4), 1), ((7, 5), 0), ((11,), 0)]
)
def test_forward_and_grad_match_reference_float64(x64, impl, size, before, shape, axis):
    x, dy = _x(shape), _x(shape, seed=1)
    f = _f(impl, size, before, axis)
    y, vjp = jax.vjp(f, jnp.asarray(x))
    assert y.dtype == jnp.float64
    assert_close(y, lrn_ref(x, size, **PARAMS, axis=axis, before=before))
    (dx,) = vjp(jnp.asarray(dy))
    ref = lrn_grad_ref(dy, x, size, **PARAMS, axis=axis, before=before)
    assert_close(dx, ref, scale=np.abs(dy))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size,before", WINDOWS[:3])
def test_float32_matches_reference_and_the_core(impl, size, before):
    x, dy = _x((3, 5, 5, 16), np.float32), _x((3, 5, 5, 16), np.float32, seed=1)
    f = jax.jit(_f(impl, size, before))
    y = f(x)
    assert y.dtype == jnp.float32
    assert_close(y, lrn_ref(x, size, **PARAMS, axis=-1, before=before))
    dx = jax.jit(lambda x, dy: jax.vjp(_f(impl, size, before), x)[1](dy)[0])(x, dy)
    assert_close(dx, lrn_grad_ref(dy, x, size, **PARAMS, axis=-1, before=before), scale=np.abs(dy))
    if impl != "native":  # the kernels themselves: the same bits as the core's functions
        core = dict(**PARAMS, axis=-1, before=before)
        np.testing.assert_array_equal(np.asarray(y), lrn_core.lrn(x, size, **core))
        np.testing.assert_array_equal(np.asarray(dx), lrn_core.lrn_backward(dy, x, size, **core))


def test_defaults_are_torchs_convention_channels_last():
    x = _x((2, 4, 4, 10), np.float32)
    ref = lrn_ref(x, 5, 1e-4, 0.75, 1.0, axis=-1, before=2)
    assert_close(local_response_norm(x), ref)
    p = conventions.from_tensorflow(2, 2.0, 1e-3, 0.5)
    assert_close(
        local_response_norm(x, **p._asdict()), lrn_ref(x, 5, 5e-3, 0.5, 2.0, axis=-1, before=2)
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_non_finite_values_stay_in_their_window(x64, impl):
    x = _x((2, 12))
    x[0, 3], x[1, 8] = np.inf, np.nan
    y = np.asarray(_f(impl, 3, None)(x))
    assert_close(y, lrn_ref(x, 3, **PARAMS, axis=-1))
    assert np.isfinite(y[0, :2]).all() and np.isfinite(y[0, 5:]).all()
    assert np.isfinite(y[1, :7]).all() and np.isfinite(y[1, 10:]).all()


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_size(impl):
    for shape in [(0, 5), (3, 0)]:
        x = jnp.zeros(shape)
        assert _f(impl, 3, None)(x).shape == shape
        assert jax.grad(lambda x: _f(impl, 3, None)(x).sum())(x).shape == shape


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "dtype,rtol", [(jnp.float16, TOL[np.dtype(np.float16)][0]), (jnp.bfloat16, BF16_RTOL)]
)
def test_half_precision_is_computed_in_float32_and_rounded_once(impl, dtype, rtol):
    x = jnp.asarray(_x((2, 3, 3, 12), np.float32), dtype)
    dy = jnp.asarray(_x((2, 3, 3, 12), np.float32, seed=1), dtype)
    xf, dyf = np.asarray(x.astype(jnp.float32)), np.asarray(dy.astype(jnp.float32))
    y, vjp = jax.vjp(_f(impl, 5, None), x)
    (dx,) = vjp(dy)
    assert y.dtype == dtype and dx.dtype == dtype
    ref = lrn_ref(xf, 5, **PARAMS, axis=-1)
    np.testing.assert_allclose(np.asarray(y.astype(jnp.float32)), ref, rtol=rtol, atol=1e-6)
    gref = lrn_grad_ref(dyf, xf, 5, **PARAMS, axis=-1)
    np.testing.assert_allclose(
        np.asarray(dx.astype(jnp.float32)), gref, rtol=rtol, atol=rtol * np.abs(dyf).max()
    )
    if impl == "core":  # exactly the float32 result, rounded once
        y32 = lrn_core.lrn(xf, 5, **PARAMS, axis=-1)
        np.testing.assert_array_equal(np.asarray(y), np.asarray(jnp.asarray(y32).astype(dtype)))


# --- differentiation -----------------------------------------------------------------------------


def _fd_grad(fun, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (fun(x + e) - fun(x - e)) / (2 * eps)
    return g


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size,before", [(4, None), (4, 1), (3, None)])
def test_grad_matches_finite_differences(x64, impl, size, before):
    x, w = _x((2, 7)), _x((2, 7), seed=2)
    f = _f(impl, size, before)

    def loss(x):
        return jnp.sum(jnp.sin(f(x)) * w)

    g = jax.jit(jax.grad(loss))(x)
    np.testing.assert_allclose(g, _fd_grad(lambda x: float(loss(x)), x), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size,before", [(4, None), (4, 1)])
def test_forward_mode_jvp_and_jacfwd(x64, impl, size, before):
    x, t = _x((3, 6)), _x((3, 6), seed=3)
    f = _f(impl, size, before)
    y, jt = jax.jvp(f, (x,), (t,))
    eps = 1e-6
    fd = (np.asarray(f(x + eps * t)) - np.asarray(f(x - eps * t))) / (2 * eps)
    np.testing.assert_allclose(jt, fd, rtol=1e-7, atol=1e-9)
    assert_close(y, lrn_ref(x, size, **PARAMS, axis=-1, before=before))
    jf, jr = jax.jacfwd(f)(x), jax.jacrev(f)(x)
    np.testing.assert_allclose(jf, jr, rtol=1e-12, atol=1e-14)
    # the reverse Jacobian against the reference gradient, row by row
    row = np.zeros_like(x)
    row[1, 2] = 1.0
    assert_close(jr[1, 2], lrn_grad_ref(row, x, size, **PARAMS, axis=-1, before=before))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size,before", [(4, None), (4, 1), (5, None)])
def test_hessian_every_mode_matches_finite_differences(x64, impl, size, before):
    x = _x((2, 6))
    f = _f(impl, size, before)

    def loss(x):
        return jnp.sum(jnp.sin(f(x)))

    grad = jax.jit(jax.grad(loss))
    fd = np.stack(
        [_fd_grad(lambda x, i=i: float(grad(x)[i]), x) for i in np.ndindex(x.shape)]
    ).reshape(x.shape * 2)
    modes = {
        "hessian": jax.hessian(loss),
        "rev-rev": jax.jacrev(jax.jacrev(loss)),
        "fwd-fwd": jax.jacfwd(jax.jacfwd(loss)),
        "rev-fwd": jax.jacrev(jax.jacfwd(loss)),
        "jit hessian": jax.jit(jax.hessian(loss)),
    }
    for name, hess in modes.items():
        np.testing.assert_allclose(hess(x), fd, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("impl", ["core", "native"])
def test_third_order_matches_finite_differences_of_the_hessian(x64, impl):
    x = _x((5,))
    f = _f(impl, 4, 1)

    def loss(x):
        return jnp.sum(f(x) ** 3)

    h = jax.hessian(loss)
    t3 = jax.jacfwd(h)(x)
    eps = 1e-5
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = eps
        fd = (np.asarray(h(x + e)) - np.asarray(h(x - e))) / (2 * eps)
        np.testing.assert_allclose(t3[..., i], fd, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(jax.jacrev(h)(x), t3, rtol=1e-10, atol=1e-12)


def _eqns(jaxpr):
    return [e.primitive.name for e in jaxpr.jaxpr.eqns]


def test_first_order_reverse_is_the_fused_kernel():
    x = _x((2, 4, 4, 8), np.float32)
    f = _f("core", 5, None)
    # jax.grad transposes the forward mode: J(x)^T g, one call of lrn_core.lrn_backward
    prims = _eqns(jax.make_jaxpr(jax.grad(lambda x: jnp.sum(f(x) * x)))(x))
    assert "lrn_core_lrn_vjp" in prims and "lrn_core_window_sum" not in prims
    hlo = jax.jit(jax.grad(lambda x: jnp.sum(f(x)))).lower(x).as_text()
    assert hlo.count("custom_call @lrn_core_lrn_vjp_cpu") == 1
    assert "lrn_core_lrn_cpu" not in hlo  # y is not needed for this gradient: XLA drops it
    # forward mode: J t from the window sum and elementwise ops
    prims = _eqns(jax.make_jaxpr(lambda x, t: jax.jvp(f, (x,), (t,)))(x, x))
    assert "lrn_core_lrn_jvp" in prims


def test_kernels_run_as_xla_ffi_targets_not_python_callbacks():
    from lrn_core.adapters.jax import _lowering

    assert _lowering._FFI_TARGETS == {
        "lrn_core_lrn_cpu",
        "lrn_core_lrn_vjp_cpu",
        "lrn_core_window_sum_cpu",
    }
    hlo = jax.jit(local_response_norm).lower(jnp.ones((2, 8))).as_text()
    assert "custom_call @lrn_core_lrn_cpu" in hlo and "python" not in hlo


_LRN_ATTRS = dict(
    size=np.int64(3),
    before=np.int64(1),
    axis=np.int64(0),
    alpha=np.float64(0.7),
    beta=np.float64(0.75),
    k=np.float64(1.5),
)


def _ffi(target, out, *operands, **attrs):
    call = jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(out.shape, out.dtype))
    return jax.block_until_ready(call(*operands, **attrs))


def test_ffi_handlers_called_directly_match_the_core():
    """The C handlers read every attribute: called straight through jax.ffi.ffi_call (no
    adapter), they give the core's numbers, for each target and both dtypes."""
    x = _x((2, 5, 3), np.float32)
    g = _x((2, 5, 3), np.float32, seed=1)
    p = dict(alpha=0.7, beta=0.75, k=1.5)
    for axis in (0, 1, 2):
        attrs = {**_LRN_ATTRS, "axis": np.int64(axis), "size": np.int64(4), "before": np.int64(3)}
        got = _ffi("lrn_core_lrn_cpu", x, x, **attrs)
        np.testing.assert_array_equal(got, lrn_core.lrn(x, 4, **p, axis=axis, before=3))
        got = _ffi("lrn_core_lrn_vjp_cpu", x, x, g, **attrs)
        want = lrn_core.lrn_backward(g, x, 4, **p, axis=axis, before=3)
        np.testing.assert_array_equal(got, want)
        got = _ffi("lrn_core_window_sum_cpu", x, x, size=np.int64(4), before=np.int64(3),
                   axis=np.int64(axis))  # fmt: skip
        np.testing.assert_array_equal(got, lrn_core.window_sum(x, 4, axis=axis, before=3))


_BAD_ATTRS = [
    ({"size": np.int64(0)}, r"attribute 'size' must be >= 1, got 0"),
    ({"before": np.int64(3)}, r"attribute 'before' must be in \[0, size - 1\] = \[0, 2\], got 3"),
    ({"before": np.int64(-1)}, r"attribute 'before' must be in"),
    ({"axis": np.int64(2)}, r"attribute 'axis' must be in \[0, 2\) for a result of rank 2, got 2"),
    ({"axis": np.int64(-1)}, r"attribute 'axis' must be in"),
    ({"size": np.int32(3)}, r"attribute 'size' must be int64, got int32"),
    ({"alpha": np.float32(0.5)}, r"attribute 'alpha' must be float64, got float32"),
    ({"k": np.float64(np.nan)}, r"attribute 'k' must be finite, got nan"),
    ({"beta": np.float64(np.inf)}, r"attribute 'beta' must be finite, got inf"),
    ({"bogus": np.int64(1)}, r"unexpected attribute 'bogus'"),
    ({"size": None}, r"missing attribute 'size'"),
    ({"alpha": "0.5"}, r"attribute 'alpha' must be a scalar"),
]


@pytest.mark.parametrize("change,message", _BAD_ATTRS)
def test_ffi_handler_refuses_bad_attributes_with_an_xla_error(change, message):
    """A bad attribute is an XLA error naming the target and the attribute, never a crash or a
    silent result."""
    x = jnp.ones((2, 4), jnp.float32)
    attrs = {key: value for key, value in {**_LRN_ATTRS, **change}.items() if value is not None}
    with pytest.raises(Exception, match=r"lrn_core_lrn_cpu: " + message):
        _ffi("lrn_core_lrn_cpu", x, x, **attrs)


def test_ffi_handler_refuses_bad_operands_with_an_xla_error(x64):
    attrs = dict(_LRN_ATTRS)
    x32 = jnp.ones((2, 4), jnp.float32)
    cases = [
        ("lrn_core_lrn_cpu", x32.astype(jnp.float16), [x32.astype(jnp.float16)],
         "the result must be float32 or float64 .*got float16"),
        ("lrn_core_lrn_cpu", x32, [x32.astype(jnp.int32)], "operand x must be float32 or float64"),
        ("lrn_core_lrn_cpu", x32, [x32.astype(jnp.float64)],
         "operand x has dtype float64, the result float32"),
        ("lrn_core_lrn_cpu", x32, [jnp.ones((4, 2), jnp.float32)],
         "operand x must have the shape of the result"),
        ("lrn_core_lrn_cpu", jnp.float32(1), [jnp.float32(1)],
         "the result must have at least 1 dimension .*got rank 0"),
        ("lrn_core_lrn_vjp_cpu", x32, [x32], "expected 2 operands, got 1"),
        ("lrn_core_lrn_vjp_cpu", x32, [x32, jnp.ones((2, 5), jnp.float32)],
         "operand g must have the shape of the result"),
        ("lrn_core_window_sum_cpu", x32, [x32, x32], "expected 1 operand, got 2"),
    ]  # fmt: skip
    for target, out, operands, message in cases:
        a = attrs if target != "lrn_core_window_sum_cpu" else {
            key: attrs[key] for key in ("size", "before", "axis")
        }  # fmt: skip
        with pytest.raises(Exception, match=f"{target}: {message}"):
            _ffi(target, out, *operands, **a)
    # the window sum takes no LRN parameters
    with pytest.raises(Exception, match="lrn_core_window_sum_cpu: unexpected attribute 'alpha'"):
        _ffi("lrn_core_window_sum_cpu", x32, x32, **attrs)


def test_ffi_handlers_report_the_api_version_they_are_built_for():
    from lrn_core._dispatch import kernels

    assert kernels().xla_ffi_api_version == (0, 1)
    assert set(kernels().xla_ffi_handlers()) == {"lrn", "lrn_vjp", "window_sum"}


def test_a_refused_api_version_warns_once_and_falls_back(monkeypatch):
    """XLA refuses a handler whose API version it does not accept: nothing is registered (the
    adapter then uses jax.pure_callback) and one warning names both versions."""
    from lrn_core.adapters.jax import _ffi as _jax_ffi

    def refuse(name, fn, platform):
        raise ValueError(
            f"XLA FFI handler registration for {name} on platform Host (canonical cpu) failed "
            "because the handler's API version (0.1) is incompatible with the framework's API "
            "version (1.0). Minimum supported API version is (1.0)."
        )

    monkeypatch.setattr(jax.ffi, "register_ffi_target", refuse)
    monkeypatch.setattr(_jax_ffi, "_warned", False)
    with pytest.warns(RuntimeWarning, match=r"XLA FFI API is 1\.0, lrn-core's handlers are built "
                      r"for 0\.1.*jax\.pure_callback"):  # fmt: skip
        assert _jax_ffi.register(["lrn_core_lrn_cpu"]) == frozenset()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _jax_ffi.register(["lrn_core_lrn_cpu"]) == frozenset()  # said once


# --- transformations ----------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_vmap_batches_as_outer_rows_with_one_kernel_call(x64, impl):
    xb = _x((4, 3, 7))
    for in_axes, axis, ref_axis in [(0, -1, -1), (0, 0, 1), (2, 0, 0), (1, 1, 2)]:
        f = _f(impl, 3, None, axis)
        y = jax.vmap(f, in_axes=in_axes, out_axes=in_axes)(xb)
        assert_close(y, lrn_ref(xb, 3, **PARAMS, axis=ref_axis))
    f = _f(impl, 3, None)
    jaxpr = jax.make_jaxpr(jax.vmap(jax.grad(lambda x: jnp.sum(f(x) ** 2))))(xb)
    assert "while" not in str(jaxpr) and "scan" not in str(jaxpr)
    if impl == "core":
        hlo = jax.jit(jax.vmap(f)).lower(xb).as_text()
        assert hlo.count("custom_call @lrn_core_lrn_cpu") == 1
    # batched gradients with an unbatched cotangent (broadcast), and per-example gradients
    g = jax.vmap(jax.grad(lambda x: jnp.sum(f(x) * xb[0])))(xb)
    for i in range(xb.shape[0]):
        assert_close(g[i], lrn_grad_ref(xb[0], xb[i], 3, **PARAMS, axis=-1), scale=np.abs(xb))


@pytest.mark.parametrize("axis", [1, -3, 0, 2])
@pytest.mark.parametrize("in_axis", [0, 1, 2, 3])
def test_vmap_over_every_axis_matches_the_composite(x64, axis, in_axis):
    """vmap over each axis of the batched array, the channel axis given as a positive or a
    negative index (a positive one shifts when the batch axis is added): forward, gradient and
    forward mode through the kernels equal the pure-XLA composite and the reference."""
    xb = _x((3, 4, 5, 2))  # per example (after removing in_axis) a 3-D array
    core, xla = _f("core", 3, None, axis), _f("native", 3, None, axis)
    per = np.moveaxis(xb, in_axis, 0)
    want = np.stack([lrn_ref(a, 3, **PARAMS, axis=axis) for a in per])
    for f in (core, xla):
        y = jax.vmap(f, in_axes=in_axis, out_axes=0)(xb)
        assert_close(y, want)
    loss = lambda f: lambda x: jnp.sum(f(x) ** 2)  # noqa: E731
    # derivatives are sums of terms of either sign: tolerances relative to the terms
    assert_close(
        jax.vmap(jax.grad(loss(core)), in_axes=in_axis)(xb),
        jax.vmap(jax.grad(loss(xla)), in_axes=in_axis)(xb),
        scale=np.abs(xb),
    )
    t = _x(xb.shape, seed=2)
    jv = lambda f: lambda x, t: jax.jvp(f, (x,), (t,))[1]  # noqa: E731
    assert_close(
        jax.vmap(jv(core), in_axes=in_axis)(xb, t),
        jax.vmap(jv(xla), in_axes=in_axis)(xb, t),
        scale=np.abs(t),
    )
    # nested: two mapped axes around the kernels
    nest = lambda f: jax.vmap(jax.vmap(f), in_axes=in_axis)  # noqa: E731
    assert_close(nest(core)(xb[..., None]), nest(xla)(xb[..., None]))


def test_jit_and_eager_agree_and_recompile_only_for_new_params():
    x = _x((2, 3, 10), np.float32)
    f = jax.jit(local_response_norm, static_argnums=(1,), static_argnames=("implementation",))
    np.testing.assert_array_equal(f(x, 5), local_response_norm(x, 5))
    np.testing.assert_array_equal(
        f(x, 3, implementation="native"), local_response_norm(x, 3, implementation="native")
    )


# --- where the kernels may run ------------------------------------------------------------------


def test_export_uses_pure_xla_under_auto_and_core_refuses():
    from jax import export

    x = jnp.asarray(_x((2, 5, 5, 8), np.float32))
    exp = export.export(jax.jit(local_response_norm))(x)
    assert "custom_call" not in exp.mlir_module() and "reduce_window" in exp.mlir_module()
    assert_close(exp.call(x), lrn_ref(np.asarray(x), 5, axis=-1))
    exp = export.deserialize(export.export(jax.jit(local_response_norm))(x).serialize(vjp_order=1))
    dy = _x(x.shape, np.float32, seed=1)
    g = jax.grad(lambda x: jnp.sum(exp.call(x) * dy))(x)
    assert_close(g, lrn_grad_ref(dy, np.asarray(x), 5, axis=-1), scale=dy)
    with pytest.raises(ValueError, match="implementation='core'.*jax.export.*'auto'"):
        export.export(jax.jit(lambda x: local_response_norm(x, implementation="core")))(x)


def test_other_platforms_get_pure_xla_and_core_refuses():
    x = jnp.ones((2, 3, 8))
    for platform in ("cuda", "tpu"):
        text = jax.jit(local_response_norm).trace(x).lower(lowering_platforms=(platform,)).as_text()
        assert "custom_call" not in text and "reduce_window" in text
        with pytest.raises(RuntimeError, match=r"CPU only.*\('" + platform + r"',\).*'native'"):
            jax.jit(lambda x: local_response_norm(x, implementation="core")).trace(x).lower(
                lowering_platforms=(platform,)
            )


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(size=0), ValueError, "size must be an integer >= 1, got 0"),
        (dict(size=2.5), TypeError, "size must be an integer"),
        (dict(alpha=float("nan")), ValueError, "alpha must be finite"),
        (dict(beta="0.75"), TypeError, "beta must be a real number"),
        (dict(before=5), ValueError, r"before must be an integer in \[0, 4\], got 5"),
        (dict(axis=3), Exception, "axis 3 is out of bounds"),
        (dict(axis=1.0), TypeError, "axis must be an integer"),
        (dict(implementation="fast"), ValueError, "implementation must be one of"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        local_response_norm(jnp.ones((2, 3, 4)), **kwargs)


def test_implementation_xla_is_deprecated_for_native():
    """The old name of the pure jnp/lax implementation warns and gives "native"'s numbers, for the
    function and both Flax modules; the vocabulary is the shared one."""
    from lrn_core import validation

    assert lrn_jax.IMPLEMENTATIONS is validation.IMPLEMENTATIONS
    x = jnp.asarray(_x((2, 3, 9), np.float32))
    native = local_response_norm(x, 4, implementation="native")
    with pytest.warns(DeprecationWarning, match="implementation='xla' is deprecated.*'native'"):
        old = local_response_norm(x, 4, implementation="xla")
    np.testing.assert_array_equal(old, native)
    with pytest.warns(DeprecationWarning, match="'xla' is deprecated"):
        old = jax.jit(lambda x: local_response_norm(x, 4, implementation="xla"))(x)
    np.testing.assert_array_equal(
        old, jax.jit(lambda x: local_response_norm(x, 4, implementation="native"))(x)
    )
    flax_mod = pytest.importorskip("lrn_core.adapters.flax")
    with pytest.warns(DeprecationWarning, match="'xla' is deprecated"):
        m = flax_mod.LocalResponseNorm(size=4, implementation="xla")
    assert m.implementation == "native"
    np.testing.assert_array_equal(m.apply({}, x), native)
    with pytest.warns(DeprecationWarning, match="'xla' is deprecated"):
        n = flax_mod.NNXLocalResponseNorm(4, implementation="xla")
    assert n.implementation == "native"
    np.testing.assert_array_equal(n(x), native)


def test_every_compat_name_resolves():
    """The jax internals the adapter uses (``_compat``) exist in this jax: the eager dispatch of a
    primitive, and the lowering context's platforms, export flag and devices (read while a
    lowering runs)."""
    from lrn_core.adapters.jax import _compat

    assert set(_compat.__all__) == {
        "apply_primitive",
        "lowering_platforms",
        "lowering_for_export",
        "lowering_devices",
    }
    for name in _compat.__all__:
        assert callable(getattr(_compat, name)), name
    seen = {}
    real = {name: getattr(_compat, name) for name in _compat.__all__[1:]}

    def spy(name):
        def call(ctx):
            seen[name] = real[name](ctx)
            return seen[name]

        return call

    import unittest.mock

    with unittest.mock.patch.multiple(_compat, **{n: spy(n) for n in real}):
        jax.jit(lambda x: local_response_norm(x, 3, 0.125, 0.6, 1.75)).lower(jnp.ones((2, 8)))
    assert seen["lowering_platforms"] == ("cpu",) and seen["lowering_for_export"] is False
    _, num_devices = seen["lowering_devices"]
    assert num_devices == 1  # read from the context (the fallback when absent is 2)


def test_bad_inputs_raise_naming_them():
    with pytest.raises(
        TypeError, match="x must have dtype float16, bfloat16, float32 or float64, got int32"
    ):
        local_response_norm(jnp.ones((2, 3), jnp.int32))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        local_response_norm(jnp.float32(1.0))
    with pytest.raises(TypeError, match="x must have dtype .* got complex64"):
        local_response_norm(jnp.ones(3, jnp.complex64))


# --- Flax ---------------------------------------------------------------------------------------


def test_flax_modules_wrap_the_function():
    flax_mod = pytest.importorskip("lrn_core.adapters.flax")
    x = jnp.asarray(_x((2, 4, 4, 9), np.float32))
    expected = local_response_norm(x, 4, 1e-2, 0.6, 2.0, before=1)
    m = flax_mod.LocalResponseNorm(size=4, alpha=1e-2, beta=0.6, k=2.0, before=1)
    assert m.init(jax.random.key(0), x) == {}
    np.testing.assert_array_equal(jax.jit(m.apply)({}, x), expected)
    n = flax_mod.NNXLocalResponseNorm(4, 1e-2, 0.6, 2.0, before=1)
    np.testing.assert_array_equal(n(x), expected)
    m2 = flax_mod.LocalResponseNorm(size=3, axis=1)
    assert_close(m2.apply({}, x), lrn_ref(np.asarray(x), 3, axis=1))
    with pytest.raises(ValueError, match="size must be an integer >= 1"):
        flax_mod.LocalResponseNorm(size=0)
    with pytest.raises(ValueError, match="implementation must be one of"):
        flax_mod.NNXLocalResponseNorm(5, implementation="fast")


def test_pure_callback_fallback_gives_the_same_numbers(monkeypatch, x64):
    """Without the FFI targets (another jaxlib) the kernels run through jax.pure_callback."""
    from lrn_core.adapters.jax import _lowering

    monkeypatch.setattr(_lowering, "_FFI_TARGETS", frozenset())  # the name the lowering reads
    x, dy = _x((2, 3, 9)), _x((2, 3, 9), seed=1)
    params = dict(alpha=0.123, beta=0.61, k=1.25)  # fresh parameters: nothing compiled yet
    f = jax.jit(lambda x: local_response_norm(x, 4, **params, implementation="core"))
    assert "xla_ffi_python_cpu_callback" in f.lower(x).as_text()
    assert_close(f(x), lrn_ref(x, 4, **params, axis=-1))
    g = jax.vmap(jax.grad(lambda x, dy: jnp.sum(f(x) * dy)))(x, dy)
    assert_close(g, lrn_grad_ref(dy, x, 4, **params, axis=-1), scale=np.abs(dy))


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_property_kernels_xla_and_reference_agree(data):
    """Random shapes, axes, windows and parameters: both implementations, value and gradient."""
    ndim = data.draw(st.integers(1, 4))
    shape = tuple(data.draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    axis = data.draw(st.integers(-ndim, ndim - 1))
    size = data.draw(st.integers(1, 9))
    before = data.draw(st.one_of(st.none(), st.integers(0, size - 1)))
    alpha = data.draw(st.floats(0.0, 3.0))
    beta = data.draw(st.sampled_from([0.5, 0.75, 1.0, 0.6]))
    k = data.draw(st.floats(0.5, 3.0))
    x = _x(shape, np.float32, seed=data.draw(st.integers(0, 2**16)))
    dy = _x(shape, np.float32, seed=1)
    ref = lrn_ref(x, size, alpha, beta, k, axis=axis, before=before)
    gref = lrn_grad_ref(dy, x, size, alpha, beta, k, axis=axis, before=before)
    for impl in ("core", "native"):
        f = functools.partial(
            local_response_norm,
            size=size,
            alpha=alpha,
            beta=beta,
            k=k,
            axis=axis,
            before=before,
            implementation=impl,
        )
        y, vjp = jax.vjp(f, x)
        assert_close(y, ref)
        assert_close(vjp(dy)[0], gref, scale=np.abs(dy))


@pytest.mark.parametrize("module", ["lrn_core.adapters.jax", "lrn_core.adapters.flax"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(
        importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0 and result.attempted > 0


SHARDED = """
import sys
import numpy as np, jax, jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
from lrn_core.adapters.jax import local_response_norm
x = np.load(sys.argv[1])
mesh = jax.make_mesh((2,), ("d",))
out = {}
for spec in ("rows", "channels"):
    xs = jax.device_put(x, NamedSharding(mesh, P("d") if spec == "rows" else P(None, None, "d")))
    f = lambda x: local_response_norm(x, 3, 0.5, 0.75, 1.0)
    out[spec] = np.asarray(jax.jit(f)(xs))
    out[spec + "_grad"] = np.asarray(jax.jit(jax.grad(lambda x: jnp.sum(f(x) * x)))(xs))
    out[spec + "_pmap"] = np.asarray(jax.pmap(f)(x[:2]))
np.savez(sys.argv[2], **out)
"""


def test_sharded_over_two_cpu_devices(tmp_path):
    """Arrays sharded over two CPU devices (rows or channels), and pmap: the same numbers."""
    import os
    import subprocess
    import sys

    x = _x((4, 3, 8), np.float32)
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    subprocess.run(
        [sys.executable, "-c", SHARDED, tmp_path / "x.npy", tmp_path / "out.npz"],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    out = np.load(tmp_path / "out.npz")
    ref = lrn_ref(x, 3, 0.5, 0.75, 1.0, axis=-1)
    gref = lrn_grad_ref(x, x, 3, 0.5, 0.75, 1.0, axis=-1) + ref  # d sum(f(x) * x) / dx
    for spec in ("rows", "channels"):
        assert_close(out[spec], ref)
        assert_close(out[spec + "_grad"], gref, scale=np.abs(x))
        assert_close(out[spec + "_pmap"], ref[:2])
