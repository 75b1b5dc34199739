"""Per-call cost of the JAX adapter's XLA FFI route (a script, not a test).

    PYTHONPATH=<tree>/src python benchmarks/jax_ffi_call.py

Times, in one process, ``jax.jit`` forward and ``jax.jit(jax.grad(...))`` of
``local_response_norm(x, 5, axis=1, implementation="core")`` against jitted ``lax.reduce_window``
(``lrn_core.check.jnp_lrn``, channels last) at 1x16x8x8 float32 (median and p90 of many calls),
and once at the AlexNet shape 32x96x55x55. Run it on two trees to compare handlers.
"""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from lrn_core.adapters.jax import local_response_norm
from lrn_core.check import jnp_lrn


def _times(f, x, n):
    jax.block_until_ready(f(x))
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        jax.block_until_ready(f(x))
        out.append(time.perf_counter() - t0)
    return out


def _row(name, ts):
    ts = sorted(ts)
    p90 = ts[int(0.9 * (len(ts) - 1))]
    print(f"{name:44s} median {statistics.median(ts) * 1e6:9.1f} us   p90 {p90 * 1e6:9.1f} us")


def main():
    def ours(x):
        return local_response_norm(x, 5, 1e-4, 0.75, 1.0, axis=1, implementation="core")

    def native(x):  # channels last, as JAX users write it
        return jnp_lrn(x, 5, 1e-4, 0.75, 1.0)

    fwd, nat = jax.jit(ours), jax.jit(native)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(ours(x) * x)))
    ngrad = jax.jit(jax.grad(lambda x: jnp.sum(native(x) * x)))
    for shape, n in (((1, 16, 8, 8), 3000), ((32, 96, 55, 55), 10)):
        x = jnp.asarray(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
        xl = jnp.moveaxis(x, 1, -1)
        print(f"shape {shape}, {n} calls")
        _row("  jit forward (lrn-core FFI)", _times(fwd, x, n))
        _row("  jit forward (lax.reduce_window)", _times(nat, xl, n))
        _row("  jit(grad) (lrn-core FFI)", _times(grad, x, n))
        _row("  jit(grad) (lax.reduce_window)", _times(ngrad, xl, n))


if __name__ == "__main__":
    main()
