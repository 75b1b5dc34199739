"""``lrn-core check``: run every implementation installed against the float64 reference.

Cases: shapes, axes, window conventions (PyTorch, ONNX, TensorFlow, size > C) and dtypes, forward
and backward, against :mod:`lrn_core.reference`; a central finite-difference check of the
gradient; and, for each adapter whose framework is installed, the same against the framework's
native LRN. Frameworks are imported only here, only when installed and asked for.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass

import numpy as np

from . import _api, conventions, formulas, reference
from .tolerances import NATIVE, REFERENCE

# Errors are relative to the largest magnitude of the expected result (``rel_error``); the bounds
# are lrn_core.tolerances' (REFERENCE against the reference, NATIVE against a native op), which
# the tests use too.


@dataclass
class Result:
    suite: str
    case: str
    dtype: str
    error: float
    tol: float

    @property
    def ok(self):
        return bool(self.error <= self.tol)


def rel_error(actual, expected):
    """max |actual - expected| / max |expected| (NaN positions must agree)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return float("inf")
    if not np.array_equal(np.isnan(a), np.isnan(e)):
        return float("inf")
    mask = ~np.isnan(e)
    if not mask.any():
        return 0.0
    scale = max(float(np.max(np.abs(e[mask]))), 1e-300)
    return float(np.max(np.abs(a[mask] - e[mask]))) / scale


# (name, shape, axis, convention params); params are lrn-core's (size, alpha, beta, k, before).
CASES = [
    ("NCHW torch size 5", (2, 16, 7, 7), 1, conventions.from_torch(5, 1e-1, 0.75, 1.0)),
    ("NCHW torch size 4", (2, 16, 7, 7), 1, conventions.from_torch(4, 1e-1, 0.75, 1.0)),
    ("NCHW onnx size 4", (2, 16, 7, 7), 1, conventions.from_onnx(4, 1e-1, 0.75, 1.0)),
    ("NHWC tf radius 2", (2, 7, 7, 16), -1, conventions.from_tensorflow(2, 1.0, 0.5, 0.5)),
    ("NCHW size 9 > C 6", (3, 6, 5, 5), 1, conventions.from_torch(9, 2.0, 0.6, 2.0)),
    ("2-D (N, C) beta 1", (8, 33), 1, conventions.from_caffe(5, 1.0, 1.0, 1.0)),
    ("1-D channels", (40,), 0, conventions.from_torch(7, 1.5, 0.75, 1.0)),
    ("5-D, axis 2", (2, 3, 10, 4, 3), 2, conventions.from_torch(3, 1.0, 0.75, 1.0)),
]


def _inputs(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, dy


def check_core():
    results = []
    for i, (name, shape, axis, p) in enumerate(CASES):
        kw = dict(p._asdict(), axis=axis)
        for dtype in ("float64", "float32", "float16"):
            x, dy = _inputs(shape, dtype, i)
            y = _api.lrn(x, **kw)
            dx = _api.lrn_backward(dy, x, **kw)
            tol = REFERENCE[dtype]
            results.append(
                Result("numpy", f"{name} forward", dtype, rel_error(y, reference.lrn(x, **kw)), tol)
            )
            results.append(
                Result(
                    "numpy",
                    f"{name} backward",
                    dtype,
                    rel_error(dx, reference.lrn_backward(dy, x, **kw)),
                    tol,
                )
            )
    # a strided, negative-step view, in and out
    x, dy = _inputs((4, 12, 6, 8), "float32", 99)
    v = x[::-1, ::2, :, ::-2]
    out = np.empty((4, 6, 6, 8), np.float32)[:, :, :, ::2]
    _api.lrn(v, 5, 0.5, 0.75, 1.0, out=out)
    results.append(
        Result(
            "numpy",
            "strided view, out= strided",
            "float32",
            rel_error(out, reference.lrn(v, 5, 0.5, 0.75, 1.0)),
            REFERENCE["float32"],
        )
    )
    results.append(
        check_finite_differences(
            "numpy",
            lambda x: _api.lrn(x, 4, 2.0, 0.75, 1.0),
            lambda dy, x: _api.lrn_backward(dy, x, 4, 2.0, 0.75, 1.0),
        )
    )
    return results


def finite_difference(f, x, dy, eps=1e-6):
    """Central differences of sum(dy * f(x)) with respect to each element of x (float64)."""
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    xf, gf = x.reshape(-1), g.reshape(-1)
    for i in range(xf.size):
        old = xf[i]
        xf[i] = old + eps
        up = float(np.sum(dy * f(x)))
        xf[i] = old - eps
        down = float(np.sum(dy * f(x)))
        xf[i] = old
        gf[i] = (up - down) / (2 * eps)
    return g


def check_finite_differences(suite, forward, backward, shape=(2, 6, 3, 2), seed=7):
    """Gradient of ``forward`` (float64 arrays in and out) against central differences."""
    x, dy = _inputs(shape, "float64", seed)
    num = finite_difference(forward, x, dy)
    return Result(
        suite,
        "finite differences (size 4, even window)",
        "float64",
        rel_error(backward(dy, x), num),
        1e-6,
    )


# --- adapters -------------------------------------------------------------------------------------


def check_torch():
    import torch
    import torch.nn.functional as F

    from .adapters import torch as adapter

    results = []
    for i, size in enumerate((5, 4, 9)):
        for dtype, layout in (
            ("float64", "contiguous"),
            ("float32", "contiguous"),
            ("float32", "channels_last"),
        ):
            x, dy = _inputs((2, 7, 6, 5), dtype, 10 + i)
            fwd_grad = {}
            for impl, fn in (
                ("lrn-core", adapter.local_response_norm),
                ("native", F.local_response_norm),
            ):
                xt = torch.from_numpy(x)
                if layout == "channels_last":
                    xt = xt.contiguous(memory_format=torch.channels_last)
                xt.requires_grad_(True)
                y = fn(xt, size, alpha=0.5, beta=0.75, k=1.0)
                y.backward(torch.from_numpy(dy))
                fwd_grad[impl] = (y.detach().numpy(), xt.grad.numpy())
            p = conventions.from_torch(size, 0.5, 0.75, 1.0)._asdict()
            ours, native = fwd_grad["lrn-core"], fwd_grad["native"]
            tol, ntol = REFERENCE[dtype], NATIVE[dtype]
            case = f"size {size} {layout}"
            results += [
                Result(
                    "torch",
                    f"{case} forward vs reference",
                    dtype,
                    rel_error(ours[0], reference.lrn(x, **p)),
                    tol,
                ),
                Result(
                    "torch",
                    f"{case} grad vs reference",
                    dtype,
                    rel_error(ours[1], reference.lrn_backward(dy, x, **p)),
                    tol,
                ),
                Result(
                    "torch", f"{case} forward vs native", dtype, rel_error(ours[0], native[0]), ntol
                ),
                Result(
                    "torch", f"{case} grad vs native", dtype, rel_error(ours[1], native[1]), ntol
                ),
            ]

    def fwd(a):
        return adapter.local_response_norm(torch.from_numpy(a), 4, 2.0, 0.75, 1.0).numpy()

    def bwd(dy, a):
        xt = torch.from_numpy(a).requires_grad_(True)
        adapter.local_response_norm(xt, 4, 2.0, 0.75, 1.0).backward(torch.from_numpy(dy))
        return xt.grad.numpy()

    results.append(check_finite_differences("torch", fwd, bwd))
    return results


def check_tensorflow():
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from .adapters import tensorflow as adapter

    results = []
    for i, (r, bias, alpha, beta) in enumerate(
        ((2, 1.0, 0.5, 0.75), (5, 1.0, 1.0, 0.5), (0, 2.0, 0.3, 1.0), (7, 0.5, 0.1, 0.6))
    ):
        for dtype in ("float32", "float16", "float64"):
            x, dy = _inputs((2, 5, 4, 12), dtype, 20 + i)
            kw = dict(depth_radius=r, bias=bias, alpha=alpha, beta=beta)
            p = conventions.from_tensorflow(**kw)._asdict()
            tol, ntol = REFERENCE[dtype], NATIVE[dtype]
            case = f"r={r} bias={bias} alpha={alpha} beta={beta}"
            out = {}
            impls = [("lrn-core", adapter.local_response_normalization)]
            if dtype != "float64":  # native TF has no float64 LRN
                impls.append(("native", tf.nn.local_response_normalization))
            for impl, fn in impls:
                xt = tf.constant(x)
                with tf.GradientTape() as tape:
                    tape.watch(xt)
                    y = fn(xt, **kw)
                g = tape.gradient(y, xt, output_gradients=tf.constant(dy))
                out[impl] = (y.numpy(), g.numpy())
            ours = out["lrn-core"]
            results += [
                Result(
                    "tensorflow",
                    f"{case} forward vs reference",
                    dtype,
                    rel_error(ours[0], reference.lrn(x, axis=-1, **p)),
                    tol,
                ),
                Result(
                    "tensorflow",
                    f"{case} grad vs reference",
                    dtype,
                    rel_error(ours[1], reference.lrn_backward(dy, x, axis=-1, **p)),
                    tol,
                ),
            ]
            if "native" in out:
                results += [
                    Result(
                        "tensorflow",
                        f"{case} forward vs native",
                        dtype,
                        rel_error(ours[0], out["native"][0]),
                        ntol,
                    ),
                    Result(
                        "tensorflow",
                        f"{case} grad vs native",
                        dtype,
                        rel_error(ours[1], out["native"][1]),
                        ntol,
                    ),
                ]

    def fwd(a):
        return adapter.local_response_normalization(tf.constant(a), 2, 1.0, 0.4, 0.75).numpy()

    def bwd(dy, a):
        xt = tf.constant(a)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = adapter.local_response_normalization(xt, 2, 1.0, 0.4, 0.75)
        return tape.gradient(y, xt, output_gradients=tf.constant(dy)).numpy()

    results.append(check_finite_differences("tensorflow", fwd, bwd, shape=(2, 3, 2, 7)))
    return results


def jnp_lrn(x, size, alpha, beta, k):
    """LRN over the last axis as a JAX user writes it (JAX has none): :func:`formulas.forward`
    with ``lax.reduce_window`` for the window sum, in the input's dtype (no widening).

    The native JAX LRN of ``lrn-core check`` and ``lrn-core bench``."""
    from jax import lax

    def window(v, size, before):
        shape = (1,) * (v.ndim - 1) + (size,)
        pad = ((0, 0),) * (v.ndim - 1) + ((before, formulas.transposed(size, before)),)
        return lax.reduce_window(v, np.array(0, v.dtype), lax.add, shape, (1,) * v.ndim, pad)

    before = conventions.default_before(size)  # PyTorch's window
    return formulas.forward(formulas.Ops(window=window), x, size, alpha, beta, k, before)


def check_jax():
    import jax
    import jax.numpy as jnp

    from .adapters import jax as adapter

    results = []
    with jax.enable_x64(True):
        for i, (size, before) in enumerate(((5, None), (4, None), (4, 1), (9, None))):
            for dtype in ("float32", "float64", "float16", "bfloat16"):
                x, dy = _inputs((2, 5, 4, 7), "float64", 30 + i)
                if dtype == "bfloat16":  # NumPy has no bfloat16: round the inputs through jax
                    xj, dyj = jnp.asarray(x, jnp.bfloat16), jnp.asarray(dy, jnp.bfloat16)
                else:
                    xj, dyj = jnp.asarray(x.astype(dtype)), jnp.asarray(dy.astype(dtype))
                x64, dy64 = np.asarray(xj, np.float64), np.asarray(dyj, np.float64)
                placed = conventions.default_before(size) if before is None else before
                p = conventions.LRNParams(size, 0.5, 0.75, 1.0, placed)
                case = f"size {size} before {p.before}"
                impls = [
                    (
                        "lrn-core",
                        functools.partial(
                            adapter.local_response_norm, **p._asdict(), implementation="core"
                        ),
                    ),
                    (
                        "native",
                        functools.partial(
                            adapter.local_response_norm, **p._asdict(), implementation="native"
                        ),
                    ),
                ]
                if before is None:  # the jnp LRN a JAX user writes: PyTorch's window
                    impls.append(
                        (
                            "jnp",
                            functools.partial(jnp_lrn, size=size, alpha=0.5, beta=0.75, k=1.0),
                        )
                    )
                out = {}
                for impl, fn in impls:
                    y, vjp = jax.vjp(jax.jit(fn), xj)
                    out[impl] = (np.asarray(y, np.float64), np.asarray(vjp(dyj)[0], np.float64))
                ref = (
                    reference.lrn(x64, **p._asdict(), axis=-1),
                    reference.lrn_backward(dy64, x64, **p._asdict(), axis=-1),
                )
                for impl, (y, g) in out.items():
                    what = "vs reference" if impl != "jnp" else "vs lrn-core"
                    exp = ref if impl != "jnp" else out["lrn-core"]
                    # jnp computes half precision in half precision: compare at its precision
                    tol = NATIVE[dtype] if impl == "jnp" else REFERENCE[dtype]
                    label = "" if impl == "lrn-core" else f" {impl}"
                    results += [
                        Result(
                            "jax", f"{case}{label} forward {what}", dtype, rel_error(y, exp[0]), tol
                        ),
                        Result(
                            "jax", f"{case}{label} grad {what}", dtype, rel_error(g, exp[1]), tol
                        ),
                    ]

        def fwd(a):
            return np.asarray(adapter.local_response_norm(jnp.asarray(a), 4, 2.0, 0.75, 1.0))

        def bwd(dy, a):
            f = jax.jit(lambda t: adapter.local_response_norm(t, 4, 2.0, 0.75, 1.0))
            return np.asarray(jax.vjp(f, jnp.asarray(a))[1](jnp.asarray(dy))[0])

        results.append(check_finite_differences("jax", fwd, bwd))
    return results


SUITES = {
    "numpy": (None, check_core),
    "torch": ("torch", check_torch),
    "tensorflow": ("tensorflow", check_tensorflow),
    "jax": ("jax", check_jax),
}


def available_suites():
    return [
        name
        for name, (module, _) in SUITES.items()
        if module is None or importlib.util.find_spec(module) is not None
    ]


def run(suites=None, stream=None):
    """Run the suites (default: all whose framework is installed); print a table; return results."""
    import sys

    stream = stream or sys.stdout
    names = suites or available_suites()
    results = []
    for name in names:
        if name not in SUITES:
            raise ValueError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
        module, fn = SUITES[name]
        if module is not None and importlib.util.find_spec(module) is None:
            print(f"{name}: {module} is not installed, skipped", file=stream)
            continue
        results += fn()
    widths = [
        max([len(h)] + [len(getattr(r, a)) for r in results])
        for h, a in (("adapter", "suite"), ("case", "case"), ("dtype", "dtype"))
    ]
    head = (
        f"{'adapter':<{widths[0]}}  {'case':<{widths[1]}}  {'dtype':<{widths[2]}}  "
        f"{'max rel error':>13}  {'tolerance':>9}  result"
    )
    print(head, file=stream)
    print("-" * len(head), file=stream)
    for r in results:
        print(
            f"{r.suite:<{widths[0]}}  {r.case:<{widths[1]}}  {r.dtype:<{widths[2]}}  "
            f"{r.error:13.2e}  {r.tol:9.1e}  {'pass' if r.ok else 'FAIL'}",
            file=stream,
        )
    failed = sum(not r.ok for r in results)
    print(f"\n{len(results) - failed} passed, {failed} failed", file=stream)
    return results
