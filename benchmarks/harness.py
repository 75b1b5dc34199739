"""The side-by-side timing harness behind ``lrn-core bench``: lrn-core (its NumPy core and
adapters) against every native LRN installed and the copy floor (``numpy.copyto`` of the same
array), fwd, bwd and fwd+bwd, one Markdown table per case (``lrn-core bench --quick``).

Ours are the rows (the table :data:`IMPLS`) and the report; warm-up, loop calibration, values,
statistics, worker processes, the JSON file and their options (``-p``, ``-n``, ``--min-time``,
``--append``, ...) are pyperf's. :func:`run` writes the plan to a temporary directory (which
keeps a caller's stray ``statistics.py`` off ``sys.path``) and runs ``python -m
lrn_core.benchmarks.harness --suite plan.json`` there; pyperf re-runs it with ``--worker`` per
row, with the row's ``OMP_NUM_THREADS``. That worker alone builds its row, calls it once untimed
(a failure becomes the row's status), measures its peak memory and puts both in its run's
``lrn_*`` metadata. Importing this module imports no framework.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gc
import importlib
import importlib.util
import itertools
import json
import operator
import os
import site
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["main", "run", "rows", "markdown", "plot", "Result", "Row", "IMPLS", "SHAPES"]

#: name -> ((C, H, W), description); the batch comes from --batch
SHAPES = {
    "alexnet-conv1": ((96, 55, 55), "AlexNet LRN after conv1 (the DESIGN reference shape)"),
    "alexnet-conv2": ((256, 27, 27), "AlexNet LRN after conv2"),
    "googlenet-lrn1": ((64, 56, 56), "GoogLeNet LRN after conv1/pool1"),
    "googlenet-lrn2": ((192, 56, 56), "GoogLeNet LRN after conv2"),
}
#: the four shapes of issue 25, from call overhead to the AlexNet batch
LADDER = ((1, 16, 8, 8), (4, 64, 16, 16), (8, 96, 27, 27), (32, 96, 55, 55))
VARIANTS = {
    "ladder": "the four shapes "
    + ", ".join("x".join(map(str, s)) for s in LADDER)
    + " (instead of the default shapes), with torch.compile unless --no-compile",
    "sizes": "sizes 9, 13, 25 and 32 on the first shape (does the window cost?)",
    "float64": "float64 on the first shape (TensorFlow has no float64 LRN)",
    "beta0.6": "beta 0.6 (the generic pow path) on the first shape",
    "nhwc": "an extra lrn-core NumPy row with axis=-1 on the NHWC array",
    "copy-threads": "an extra copy floor split over the row's threads (is the bus full?)",
}
FIRST_SHAPE = {"sizes": [{"size": n} for n in (9, 13, 25, 32)], "float64": [{"dtype": "float64"}]}
FIRST_SHAPE["beta0.6"] = [{"beta": 0.6}]
FRAMEWORKS = ("numpy", "torch", "tensorflow", "jax")
ALIASES = {"np": "numpy", "pytorch": "torch", "tf": "tensorflow"}
#: pyperf options before the caller's (which win): normal, --quick
PYPERF_DEFAULTS = (["--processes=4"], ["--processes=1", "--values=3", "--warmups=1", "--loops=1"])
Case = namedtuple("Case", "name shape size alpha beta k dtype threads")
Case.__new__.__defaults__ = (5, 1e-4, 0.75, 1.0, "float32", 1)

# --- the rows: build(target, p, x, dy, compiled) -> {pass: callable}, p = (size, alpha, beta, k) --


def _bind(f, params):
    """``f(t)`` with the LRN's parameters bound (torch's order, or TensorFlow's keywords)."""
    module, attr = f.split(":")
    f = operator.attrgetter(attr)(importlib.import_module(module))
    return (lambda t: f(t, **params)) if isinstance(params, dict) else (lambda t: f(t, *params))


def _copy(split, p, x, dy, compiled):
    """``numpy.copyto``; split: in slabs over a pool of OMP_NUM_THREADS threads started once."""
    y = np.empty_like(x)
    if not split:
        return {"copy": functools.partial(np.copyto, y, x)}
    n = int(os.environ.get("OMP_NUM_THREADS", "1"))
    parts = list(zip(*(np.array_split(a.reshape(-1), n) for a in (y, x)), strict=True))
    pool = ThreadPoolExecutor(n)
    return {"copy": lambda: list(pool.map(lambda ab: np.copyto(*ab), parts))}


def _numpy(axis, p, x, dy, compiled):
    """``lrn`` and ``lrn_backward`` over ``axis``, into preallocated outputs."""
    import lrn_core

    kw = dict(zip(("size", "alpha", "beta", "k"), p, strict=True), axis=axis)
    fwd = functools.partial(lrn_core.lrn, x, **kw, out=np.empty_like(x))
    bwd = functools.partial(lrn_core.lrn_backward, dy, x, **kw, out=np.empty_like(x))
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": lambda: (fwd(), bwd())}


def _torch(f, p, x, dy, compiled):
    """``f(x)`` and ``f(x).backward(dy)``, eager or under ``torch.compile``."""
    import torch

    fp = torch.compile(_bind(f, p), dynamic=False) if compiled else _bind(f, p)
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    xg = xt.clone().requires_grad_(True)

    def fwd_bwd():
        fp(xg).backward(dyt)
        xg.grad = None

    return {"fwd": lambda: fp(xt), "fwd+bwd": fwd_bwd}


def _tf(f, p, x, dy, compiled):
    """``f(x)`` and a ``GradientTape`` over it, in ``tf.function`` (as ``model.fit``) or eager."""
    import tensorflow as tf

    from lrn_core import conventions

    fp = _bind(f, conventions.to_tensorflow(conventions.from_torch(*p)))

    def fwd_bwd(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fp(x)
        return tape.gradient(y, x, output_gradients=dy)

    fwd, fwd_bwd = (tf.function(g) if compiled else g for g in (fp, fwd_bwd))
    with tf.device("/CPU:0"):
        xt, dyt = tf.constant(x), tf.constant(dy)
    return {"fwd": lambda: fwd(xt), "fwd+bwd": lambda: fwd_bwd(xt, dyt)}


def _jax(f, p, x, dy, compiled):
    """The forward, and the forward with the input gradient (``jax.vjp``), under ``jax.jit``."""
    import jax

    fp = _bind(f, p)
    fwd = jax.jit(fp)
    fwd_bwd = jax.jit(lambda x, dy: (lambda y, vjp: (y, vjp(dy)[0]))(*jax.vjp(fp, x)))
    xj, dyj = jax.device_put(x), jax.device_put(dy)
    return {
        "fwd": lambda: jax.block_until_ready(fwd(xj)),
        "fwd+bwd": lambda: jax.block_until_ready(fwd_bwd(xj, dyj)),
    }


TORCH = ("lrn_core.adapters.torch:local_response_norm", "torch.nn.functional:local_response_norm")
TF = "lrn_core.adapters.tensorflow:local_response_normalization"
TF = (TF, "tensorflow:nn.local_response_normalization")
JAX = ("lrn_core.adapters.jax:local_response_norm", "lrn_core.check:jnp_lrn")  # JAX has no LRN
#: ``only``: the row runs only with that variant ("compile": unless --no-compile)
Impl = namedtuple("Impl", "label framework kind layout build target compiled only")
# fmt: off
IMPLS = [
    Impl("copy floor (numpy.copyto)", "numpy", "copy", "NCHW", _copy, False, False, None),
    Impl("copy split over the threads", "numpy", "copy", "NCHW", _copy, True, 0, "copy-threads"),
    Impl("lrn-core numpy", "numpy", "core", "NCHW", _numpy, 1, False, None),
    Impl("lrn-core numpy NHWC", "numpy", "core", "NHWC", _numpy, -1, False, "nhwc"),
    Impl("lrn-core torch adapter", "torch", "adapter", "NCHW", _torch, TORCH[0], False, None),
    Impl("torch.compile(adapter)", "torch", "adapter", "NCHW", _torch, TORCH[0], True, "compile"),
    Impl("torch eager (native)", "torch", "native", "NCHW", _torch, TORCH[1], False, None),
    Impl("torch.compile (native)", "torch", "native", "NCHW", _torch, TORCH[1], True, "compile"),
    Impl("lrn-core tf adapter", "tensorflow", "adapter", "NHWC", _tf, TF[0], True, None),
    Impl("lrn-core tf adapter, eager", "tensorflow", "adapter", "NHWC", _tf, TF[0], False, None),
    Impl("tf native", "tensorflow", "native", "NHWC", _tf, TF[1], True, None),
    Impl("tf native, eager", "tensorflow", "native", "NHWC", _tf, TF[1], False, None),
    Impl("lrn-core jax adapter", "jax", "adapter", "NHWC", _jax, JAX[0], True, None),
    Impl("jax.jit jnp (native)", "jax", "native", "NHWC", _jax, JAX[1], True, None),
]
# fmt: on
PASSES = {"copy": ("copy",), "core": ("fwd", "bwd", "fwd+bwd")}  # others: fwd, fwd+bwd

# --- in pyperf's processes ----------------------------------------------------------------------


def _peak_extra_mib(fn):
    """Rise of the peak resident set (VmHWM, reset through /proc/self/clear_refs) during one call,
    on Linux; None elsewhere (tracemalloc does not see torch's, TensorFlow's or XLA's allocators).
    Freed heap goes back to the system and lrn-core's output cache is emptied first."""
    import ctypes

    import lrn_core

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith(key + ":"))

    lrn_core.empty_cache()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
    try:
        rss = status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except (OSError, StopIteration):
        return None
    fn()
    return max(status("VmHWM") - rss, 0) / 2**20


def _prepare(task):
    """In the row's worker: its callable (None if it failed) and the metadata of its run."""
    from threadpoolctl import threadpool_limits

    from lrn_core._api import kernels

    case = Case(**{**task["case"], "shape": tuple(task["case"]["shape"])})
    impl = IMPLS[task["impl"]]
    meta = {"lrn_status": "ok", "lrn_omp_threads": int(kernels().max_threads())}
    threadpool_limits(case.threads)  # OpenMP and BLAS, for the life of this worker
    with contextlib.suppress(ImportError):  # a broken framework shows in its status
        if impl.framework == "torch":
            importlib.import_module("torch").set_num_threads(case.threads)
        if impl.framework == "tensorflow":  # before TensorFlow initialises
            tf = importlib.import_module("tensorflow")
            tf.config.threading.set_intra_op_parallelism_threads(case.threads)
    rng = np.random.default_rng(20240605)
    x, dy = (rng.standard_normal(case.shape).astype(case.dtype) for _ in range(2))
    if impl.layout == "NHWC":
        x, dy = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in (x, dy))
    try:
        p = (case.size, case.alpha, case.beta, case.k)
        fn = impl.build(impl.target, p, x, dy, impl.compiled)[task["meta"]["lrn_pass"]]
        fn()  # imports, tracing, compilation: not pyperf's warm-up, which times its calls
        peak = _peak_extra_mib(fn) if task["memory"] else None
        meta.update({} if peak is None else {"lrn_peak_mib": peak})
    except Exception as exc:
        msg = (f"{type(exc).__name__}: {exc}".strip().splitlines() or ["?"])[0][:110]
        na = isinstance(exc, ModuleNotFoundError) or "lrn_core.adapters" in str(exc)
        meta["lrn_status"], fn = f"{'n/a' if na else 'error'}: {msg}", None
    return fn, meta


def _time_row(loops, fn):
    """Seconds for ``loops`` calls, gc off (as timeit); a failed row: 1 s a call (dropped)."""
    if fn is None:
        return float(loops)
    gc.disable()
    t0 = time.perf_counter()
    for _ in itertools.repeat(None, loops):
        fn()
    dt = time.perf_counter() - t0
    gc.enable()
    return dt


def _suite(argv):
    """``python -m lrn_core.benchmarks.harness --suite plan.json [pyperf options]``."""
    import pyperf

    runner = pyperf.Runner(
        program_args=("-m", "lrn_core.benchmarks.harness"),
        add_cmdline_args=lambda cmd, args: cmd.extend(("--suite", args.suite)),
    )
    runner.argparser.add_argument("--suite", required=True)
    args = runner.parse_args(argv)
    with open(args.suite) as f:
        plan = json.load(f)
    runner.metadata.update(plan["environment"])
    for n, task in enumerate(plan["rows"]):  # the n-th call is pyperf's worker task n
        os.environ["OMP_NUM_THREADS"] = str(task["case"]["threads"])  # for the row's workers
        fn, meta = _prepare(task) if args.worker and args.worker_task == n else (None, {})
        runner.bench_time_func(task["name"], _time_row, fn, metadata={**task["meta"], **meta})


# --- planning, running, summarising --------------------------------------------------------------


def _names(value):
    names = value.split(",") if isinstance(value, str) else value or []
    return [str(n).strip() for n in names if str(n).strip()]


def _choose(value, known, what):
    names = [ALIASES.get(n.lower(), n.lower()) for n in _names(value)]
    for n in names:
        if n not in known and n != "all":
            raise ValueError(f"unknown {what} {n!r}: use {', '.join(known)} or all")
    return list(known) if "all" in names else names


def _shape(spec, batch):
    if spec in SHAPES:
        return spec, (batch,) + SHAPES[spec][0]
    with contextlib.suppress(ValueError):
        dims = tuple(int(d) for d in spec.lower().replace(",", "x").split("x") if d)
        dims = (batch,) + dims if len(dims) == 3 else dims
        if len(dims) == 4 and min(dims) >= 1:
            return "x".join(map(str, dims)), dims
    raise ValueError(f"unknown shape {spec!r}: use one of {', '.join(SHAPES)} or CxHxW or NxCxHxW")


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _require(modules, why=""):
    missing = [m for m in modules if not _installed(m)]
    if missing:
        raise ImportError(
            f"lrn-core bench{why} needs {', '.join(missing)}: pip install 'lrn-core[bench]'"
        )


KEYS = ("case", "heading", "threads", "impl", "kind", "pass")  # lrn_<key> metadata of a Row


@dataclasses.dataclass
class Row:
    """One benchmark of pyperf's suite, read back through its ``lrn_*`` metadata."""

    name: str
    case: str
    heading: str
    threads: int
    impl: str
    kind: str
    pass_: str
    status: str = "error: no result (its worker failed)"
    bench: object = None  # the pyperf.Benchmark
    median_ms: float | None = None
    p90_ms: float | None = None
    peak_mib: float | None = None
    omp_threads: int | None = None
    x_copy: float | None = None  # median / copy-floor median of the same case
    x_native: float | None = None  # median / fastest native median of the same case and pass

    @property
    def ok(self):
        return self.status == "ok" and self.median_ms is not None


def rows(suite):
    """The rows of a pyperf suite written by ``lrn-core bench`` (e.g. ``--json``'s file), with
    pyperf's median and p90 and the ratios within each case."""
    out = []
    for b in suite.get_benchmarks():
        runs = [run.get_metadata() for run in b.get_runs()]
        r = Row(b.get_name(), *(runs[0][f"lrn_{k}"] for k in KEYS), bench=b)
        r.status = next((s for s in (m.get("lrn_status", "ok") for m in runs) if s != "ok"), "ok")
        peaks = [m["lrn_peak_mib"] for m in runs if "lrn_peak_mib" in m]
        r.peak_mib, r.omp_threads = max(peaks, default=None), runs[-1].get("lrn_omp_threads")
        if r.status == "ok" and b.get_nvalue():
            r.median_ms, r.p90_ms = b.median() * 1e3, b.percentile(90) * 1e3
        out.append(r)
    for case in dict.fromkeys((r.case, r.threads) for r in out):
        rs = [r for r in out if (r.case, r.threads) == case and r.ok]
        copy = next((r.median_ms for r in rs if r.kind == "copy"), None)
        for r in rs:
            natives = [n.median_ms for n in rs if n.kind == "native" and n.pass_ == r.pass_]
            r.x_copy = r.median_ms / copy if copy else None
            r.x_native = r.median_ms / min(natives) if natives else None
    return out


class Result(namedtuple("Result", "suite rows settings notes")):
    """What :func:`run` returns: pyperf's suite, its rows, the settings and notes."""

    def markdown(self):
        return markdown(*self[1:])


def _plan(shapes, batch, threads, fws, variants, compile, memory):
    """The rows to run: one pyperf benchmark each, with its ``lrn_*`` metadata."""
    named = [_shape(s, batch) for s in _names(shapes)]
    named = named or ([] if "ladder" in variants else [_shape(s, batch) for s in SHAPES])
    named += [("x".join(map(str, s)), s) for s in LADDER if "ladder" in variants]
    cases = [Case(n, s) for n, s in named]
    for kw in (kw for v in variants for kw in FIRST_SHAPE.get(v, ())):
        name = cases[0].name + "".join(f" {k}={v}" for k, v in kw.items())
        cases.append(cases[0]._replace(name=name, **kw))
    enabled = {*variants, None} | ({"compile"} if compile else set())
    plan = []
    for c in (c._replace(threads=t) for t in dict.fromkeys(threads) for c in cases):
        heading = f"{'x'.join(map(str, c.shape))} {c.dtype}, size {c.size}, beta {c.beta:g}"
        for n, i in enumerate(IMPLS):
            for p in PASSES.get(i.kind, ("fwd", "fwd+bwd")) if i.only in enabled else ():
                if i.framework in fws:
                    values = (c.name, heading, c.threads, i.label, i.kind, p)
                    meta = dict(zip(KEYS, values, strict=True))
                    meta = {f"lrn_{k}": v for k, v in meta.items()} | {"lrn_layout": i.layout}
                    name = f"{c.name} t={c.threads}: {i.label} {p}"
                    plan.append({"name": name, "case": c._asdict(), "impl": n, "meta": meta})
                    plan[-1]["memory"] = memory
    return plan


def _run_suite(plan, env, opts, progress):
    """Run the plan under pyperf in a fresh process: (its suite, a note if it failed)."""
    import pyperf

    import lrn_core

    with tempfile.TemporaryDirectory(prefix="lrn-core-bench-") as tmp:
        with open(os.path.join(tmp, "plan.json"), "w") as f:
            json.dump({"rows": plan, "environment": env}, f)
        out = os.path.join(tmp, "out.json")
        # the workers import this lrn_core, without putting site-packages ahead of the stdlib
        root = os.path.dirname(os.path.dirname(lrn_core.__file__))
        paths = [] if root in site.getsitepackages() + [site.getusersitepackages()] else [root]
        paths += [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(":") if p]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "TF_CPP_MIN_LOG_LEVEL": "2"}
        cmd = [sys.executable, "-m", __spec__.name, "--suite", "plan.json", "--copy-env", *opts]
        proc = subprocess.run(
            [*cmd, "-o", out] + ([] if progress else ["--quiet"]),
            cwd=tmp,
            env=env,
            stdout=2 if progress else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        err = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        if proc.returncode == 2 and "usage:" in proc.stderr:
            raise ValueError(f"pyperf: {err}")
        suite = pyperf.BenchmarkSuite.load(out) if os.path.exists(out) else None
    failed = f"the pyperf run failed (status {proc.returncode}): {err}"
    return suite or pyperf.BenchmarkSuite([]), [failed] if proc.returncode else []


def run(shapes=None, *, batch=None, threads=None, frameworks=None, variants=None, **options):
    """Run the benchmark under pyperf, in worker processes only, and return a :class:`Result`.
    ``shapes``, ``frameworks``, ``variants``: lists or comma-separated strings; ``threads``: an
    int or a list (default: the OpenMP default); ``options``: ``compile`` (default: not
    ``quick``, or ``ladder``), ``quick``, ``memory``, ``progress`` (True, False, True) and
    ``pyperf``, a list of pyperf options (they win over the defaults)."""
    import pyperf

    import lrn_core
    from lrn_core._api import kernels

    _require(["threadpoolctl", "pyperf"])
    quick, compile = options.pop("quick", False), options.pop("compile", None)
    memory, progress = options.pop("memory", True), options.pop("progress", True)
    opts = PYPERF_DEFAULTS[bool(quick)] + list(options.pop("pyperf", ()))
    if options:
        raise TypeError(f"run() got unknown options {sorted(options)}")
    if any(o in ("-o", "--output") or o.startswith("--output=") for o in opts):
        raise ValueError("pyperf's -o/--output is the harness's own: use --json FILE")
    variants = _choose(variants, VARIANTS, "variant")
    wanted = _choose(frameworks, FRAMEWORKS, "framework") or FRAMEWORKS
    fws = ["numpy"] + [f for f in FRAMEWORKS[1:] if f in wanted and _installed(f)]
    notes = [f"{f} is not installed: its rows are skipped" for f in wanted if f not in fws]
    batch = batch if batch is not None else 2 if quick else 32
    spec, threads = threads, [threads] if isinstance(threads, int) else _names(threads)
    try:
        threads = [int(t) for t in threads] or [int(kernels().max_threads())]
    except ValueError:
        threads = [0]
    if min(threads) < 1 or batch < 1:
        raise ValueError(f"threads and batch must be integers >= 1, got {spec!r} and {batch}")
    compile = ("ladder" in variants or not quick) if compile is None else bool(compile)
    plan = _plan(shapes, batch, threads, fws, variants, compile, memory)
    versions = lrn_core.get_config()["frameworks"]
    env = {"lrn_core_version": lrn_core.__version__, "lrn_kernels": kernels().__name__}
    env["lrn_frameworks"] = ", ".join(f"{f} {versions.get(f)}" for f in fws[1:]) or "numpy only"
    suite, failed = _run_suite(plan, {**env, "lrn_numpy": np.__version__}, opts, progress)
    found = {r.name: r for r in rows(suite)}
    keys = [[t["meta"][f"lrn_{k}"] for k in KEYS] for t in plan]
    result = [found.get(t["name"]) or Row(t["name"], *k) for t, k in zip(plan, keys, strict=True)]
    odd = {
        (r.case, r.threads, r.omp_threads) for r in result if r.omp_threads not in (None, r.threads)
    }
    notes += failed + [f"{c} t={t}: lrn-core ran {n} threads" for c, t, n in sorted(odd)]
    settings = {"pyperf": " ".join(opts), "pyperf_version": pyperf.__version__}
    settings |= {"environment": env_line(suite), "frameworks": fws, "compile": compile}
    return Result(suite, result, settings, notes)


def env_line(suite):
    """lrn-core, kernels, Python, NumPy, frameworks and machine, from the suite's metadata."""
    benches = suite.get_benchmarks()
    m = benches[0].get_metadata() if benches else {}
    return (
        f"lrn-core {m.get('lrn_core_version', '?')} ({m.get('lrn_kernels', '?')}), Python "
        f"{m.get('python_version', '?')}, NumPy {m.get('lrn_numpy', '?')}, "
        f"{m.get('lrn_frameworks', '')}; {m.get('cpu_model_name', '?')}, "
        f"{m.get('cpu_count', '?')} logical CPUs, {m.get('platform', '?')}"
    )


# --- reports -------------------------------------------------------------------------------------

COLUMNS = "implementation|pass|median ms|p90 ms|p90/median|x native|x copy|peak MiB".split("|")


def _ms(v):
    return "" if v is None else f"{v:.{1 if v >= 100 else 2 if v >= 10 else 3 if v >= 1 else 4}f}"


def _x(v):
    return "" if v is None else f"{v:.{0 if v >= 100 else 1 if v >= 10 else 2}f}"


def markdown(rows, settings, notes=()):
    """The report: method and environment, then one table per case (shape and threads)."""
    lines = [
        "# lrn-core bench",
        "",
        f"- method: pyperf {settings['pyperf_version']} ({settings['pyperf']}), each row in its "
        "own worker processes after one untimed call; median and p90 of pyperf's values; gc off "
        "while timing; ratios within one case of the same run",
        f"- environment: {settings['environment']}",
        "- *x native*: median / the fastest native median of the same pass (< 1: faster than "
        "every native); *x copy*: median / copy floor (`numpy.copyto` of the same array; an "
        "ideal LRN moves 1 copy for fwd, 1.5 for bwd, 2.5 for fwd+bwd); *peak MiB*: rise of the "
        "peak resident memory during one call (Linux)",
        *(f"- note: {n}" for n in notes),
    ]
    for case in dict.fromkeys((r.case, r.threads) for r in rows):
        rs = [r for r in rows if (r.case, r.threads) == case]
        head = f"## {case[0]}: {rs[0].heading}, threads {case[1]}"
        lines += ["", head, "", "| " + " | ".join(COLUMNS) + " |", "|---|---|" + "---:|" * 6]
        for r in rs:
            cells = [_ms(r.median_ms), _ms(r.p90_ms), _x(r.p90_ms / r.median_ms)] if r.ok else []
            cells += [_x(r.x_native), _x(r.x_copy)] if r.ok else [r.status, "", "", "", ""]
            cells += ["" if r.peak_mib is None else f"{r.peak_mib:.1f}"]
            lines.append("| " + " | ".join([r.impl, r.pass_, *cells]) + " |")
    return "\n".join(lines) + "\n"


def plot(rows, path):
    """One PNG figure of the medians: a panel per case, log scale, the copy floor dashed."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys((r.case, r.threads) for r in rows))
    panels = [[r for r in rows if (r.case, r.threads) == c and r.ok] for c in cases]
    impls = [list(dict.fromkeys(r.impl for r in p if r.kind != "copy")) or ["-"] for p in panels]
    fig, axes = plt.subplots(
        len(cases),
        1,
        squeeze=False,
        figsize=(9, 1 + sum(0.6 + 0.3 * len(i) for i in impls)),
        gridspec_kw={"height_ratios": [len(i) for i in impls]},
    )
    for ax, case, rs, names in zip(axes[:, 0], cases, panels, impls, strict=True):
        y = np.arange(len(names))
        for j, p in enumerate(("fwd", "fwd+bwd")):
            ms = {r.impl: r.median_ms for r in rs if r.pass_ == p}
            bars = ax.barh(y + (j - 0.5) * 0.38, [ms.get(i, 0) for i in names], 0.38, label=p)
            ax.bar_label(bars, [f" {_ms(ms.get(i))}" for i in names], fontsize=7)
        for r in rs:
            if r.kind == "copy":
                ax.axvline(r.median_ms, color="k", ls="--", lw=1)
        ms = [r.median_ms for r in rs] or [1.0]
        ax.set(xscale="log", xlim=(min(ms) / 1.6, max(ms) * 3), yticks=y)
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{case[0]}, threads {case[1]} (dashed: copy floor)", fontsize=9)
    axes[-1, 0].set_xlabel("median time per call, ms (log scale; lower is better)")
    axes[0, 0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --- command line --------------------------------------------------------------------------------


FILE, OFF = {"metavar": "FILE"}, {"action": "store_false"}
# fmt: off
OPTIONS = [  # flag, help, argparse keywords
    ("--shapes", f"comma-separated names ({', '.join(SHAPES)}) or CxHxW / NxCxHxW", {}),
    ("--batch", "batch of the named and CxHxW shapes (default 32; 2 with --quick)", {"type": int}),
    ("--threads", "thread counts, e.g. 1,2 (OMP_NUM_THREADS of the rows' workers)", {}),
    ("--frameworks", "numpy,torch,tf,jax (default: every one installed; numpy always)", {}),
    ("--variants", f"extra cases: {', '.join(VARIANTS)} or all", {}),
    ("--compile", "time torch.compile (default: yes, except with --quick without ladder)",
     {"action": argparse.BooleanOptionalAction}),
    ("--quick", "batch 2, pyperf -p 1 -n 3 -w 1 -l 1, no compile", {"action": "store_true"}),
    ("--no-memory", "no peak-memory measurement", {"dest": "memory", **OFF}),
    ("--no-progress", "no pyperf output", {"dest": "progress", **OFF}),
    ("--markdown", "also write the report as Markdown", FILE),
    ("--json", "also write pyperf's JSON suite (every value, lrn_* metadata)", FILE),
    ("--plot", "also write a PNG bar chart (needs matplotlib)", FILE),
]
# fmt: on


def build_parser(prog="lrn-core bench"):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Time lrn-core against the native LRNs installed (torch eager and "
        "torch.compile, TensorFlow in tf.function and eager, jitted jnp) and the copy floor, "
        "under pyperf; print one Markdown table per case. pyperf's own options pass through "
        "(-p/--processes, -n/--values, -w/--warmups, -l/--loops, --min-time, --affinity, "
        "--rigorous, --append FILE, ...; default here --processes=4).",
        epilog="Shapes: "
        + "; ".join(f"{n} = (N, {', '.join(map(str, s))}): {d}" for n, (s, d) in SHAPES.items())
        + ". Variants: "
        + "; ".join(f"{n}: {d}" for n, d in VARIANTS.items())
        + ".",
    )
    for flag, help, kw in OPTIONS:
        p.add_argument(flag, help=help, **kw)
    return p


def main(argv=None):
    """``lrn-core bench [options]``: run, print the report, write the files asked for. A usage
    error or a missing library exits with status 2 (argparse's ``error``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    options = {k: v for k, v in vars(args).items() if v is not None}
    md, js, png = (options.pop(k, None) for k in ("markdown", "json", "plot"))
    try:
        _require(["matplotlib"] if png else [], " --plot")
        result = run(options.pop("shapes", None), **options, pyperf=extra)
    except (ValueError, ImportError) as exc:
        parser.error(str(exc))
    print(result.markdown(), end="")
    if md:
        with open(md, "w") as f:
            f.write(result.markdown())
    if js:
        result.suite.dump(js, replace=True)
    if png:
        plot(result.rows, png)
    for path in filter(None, (md, js, png)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_suite(sys.argv[1:]) if "--suite" in sys.argv else main())
