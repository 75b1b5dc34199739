"""The ``lrn-core`` command (also ``python -m lrn_core``).

lrn-core info               version, kernels, SIMD, OpenMP, threads, build flags, frameworks
lrn-core check [SUITE ...]  every implementation installed against the float64 reference and
                            the native LRNs; exits 1 on any mismatch
lrn-core bench [...]        side-by-side timings against the native LRNs and the copy floor
                            (``lrn-core bench --help``)
"""

from __future__ import annotations

import argparse
import sys


def _info(args):
    from ._config import show_config

    show_config(_tf_op_info())
    return 0


def _tf_op_info():
    """``{"tf_op": ...}``: whether this TensorFlow loads lrn-core's compiled op, and if not why
    (imports TF: only when it is installed; else nothing)."""
    from ._config import frameworks_found

    if "tensorflow" not in frameworks_found():
        return {}
    try:
        from .adapters.tensorflow import _compiled as _tf_op

        loaded = _tf_op.load() is not None
        status = "loaded" if loaded else f"not loaded: {_tf_op.status()}"
    except Exception as exc:  # noqa: BLE001 - a report, never a crash
        status = f"not loaded: {type(exc).__name__}: {exc}"
    return {"tf_op": status}


def _check(args):
    from . import check

    results = check.run(args.suites or None)
    return 0 if results and all(r.ok for r in results) else 1


def _bench(args):
    from .benchmarks import harness

    return harness.main(args.bench_args) or 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="lrn-core",
        description="Cross-channel Local Response Normalization: one exact, fast core.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print the build and run-time configuration").set_defaults(
        func=_info
    )
    p = sub.add_parser(
        "check",
        help="check every installed implementation against the reference and the native LRNs",
    )
    p.add_argument(
        "suites",
        nargs="*",
        metavar="SUITE",
        help="numpy, torch, tensorflow, jax (default: all installed)",
    )
    p.set_defaults(func=_check)
    p = sub.add_parser(
        "bench", help="time lrn-core against the native LRNs (see bench --help)", add_help=False
    )
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_bench)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # everything after "bench" belongs to the harness's own parser
        return _bench(argparse.Namespace(bench_args=argv[1:]))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
