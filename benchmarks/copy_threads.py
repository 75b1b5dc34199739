"""How much faster does a plain copy get with more threads? (the memory floor of a 2-thread LRN)

``numpy.copyto`` of the reference array on one thread, against the same copy split into equal
slabs over a pool of ``--threads`` threads (NumPy releases the GIL while copying). Interleaved
calls, medians. If two threads copy no faster than one, the memory bus is saturated by one
thread, and a kernel that runs near the copy floor cannot scale with threads either::

    python benchmarks/copy_threads.py --threads 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="32,96,55,55", help="comma-separated (default 32,96,55,55)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split(","))
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    y = np.zeros_like(x)
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)
    bounds = np.linspace(0, flat_x.size, args.threads + 1).astype(int)

    pool = concurrent.futures.ThreadPoolExecutor(args.threads)  # started once, like OpenMP's

    def split_copy():
        jobs = [
            pool.submit(np.copyto, flat_y[a:b], flat_x[a:b])
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        for job in jobs:
            job.result()

    cases = {"1 thread": lambda: np.copyto(y, x), f"{args.threads} threads": split_copy}
    times = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    one = statistics.median(times["1 thread"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(
            f"copy {x.nbytes / 2**20:.1f} MiB, {name}: median {med * 1e3:.3f} ms "
            f"({x.nbytes * 2 / med / 1e9:.1f} GB/s moved, {one / med:.2f}x one thread)"
        )
    pool.shutdown()


if __name__ == "__main__":
    main()
