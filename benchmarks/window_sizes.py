"""Does the cost depend on the window? Several sizes timed side by side, calls interleaved.

``lrn-core bench`` times one case after another, minutes apart on a shared machine; here every
round calls the copy floor and then each size once, forward and forward+backward, so a busy
moment slows every size alike and the ratios to the first size stay fair. Medians::

    python benchmarks/window_sizes.py --sizes 5,9,13,25,32
    python benchmarks/window_sizes.py --layout nhwc
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import lrn_core


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--shape", default="32,96,55,55", help="NCHW, comma-separated (default 32,96,55,55)"
    )
    p.add_argument(
        "--sizes",
        default="5,9,13,25,32",
        help="window sizes, comma-separated; ratios are to the first (default 5,9,13,25,32)",
    )
    p.add_argument("--layout", choices=("nchw", "nhwc"), default="nchw")
    p.add_argument("--beta", type=float, default=0.75)
    p.add_argument("--repeat", type=int, default=21)
    args = p.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split(","))
    sizes = [int(s) for s in args.sizes.split(",")]
    axis = 1
    if args.layout == "nhwc":
        shape, axis = (shape[0], *shape[2:], shape[1]), -1
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    dy = rng.standard_normal(shape, dtype=np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)

    def passes(size):
        def fwd():
            lrn_core.lrn(x, size, 1e-4, args.beta, axis=axis, out=y)

        def fwd_bwd():
            fwd()
            lrn_core.lrn_backward(dy, x, size, 1e-4, args.beta, axis=axis, out=dx)

        return {"fwd": fwd, "fwd+bwd": fwd_bwd}

    calls = {("copy", "copy"): lambda: np.copyto(y, x)}
    for size in sizes:
        for name, fn in passes(size).items():
            calls[(size, name)] = fn
    for fn in calls.values():  # warm-up: scratch, output pages, thread pool
        fn()
    times = {key: [] for key in calls}
    for _ in range(args.repeat):
        for key, fn in calls.items():
            t = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t)
    med = {key: statistics.median(ts) * 1e3 for key, ts in times.items()}
    print(
        f"{args.layout.upper()} {'x'.join(map(str, shape))} float32, beta {args.beta}, "
        f"{lrn_core.get_config()['threads']} thread(s), {args.repeat} interleaved rounds; "
        f"copy floor {med[('copy', 'copy')]:.3f} ms"
    )
    print(
        f"{'size':>4}  {'fwd ms':>8}  {'fwd+bwd ms':>10}  {'fwd+bwd / size ' + str(sizes[0]):>16}"
    )
    for size in sizes:
        f, fb = med[(size, "fwd")], med[(size, "fwd+bwd")]
        print(f"{size:>4}  {f:>8.3f}  {fb:>10.3f}  {fb / med[(sizes[0], 'fwd+bwd')]:>15.2f}x")


if __name__ == "__main__":
    main()
