"""The side-by-side timing harness behind ``lrn-core bench``.

Times lrn-core against every native LRN installed and against the copy floor (``numpy.copyto`` of
the same array), forward, backward and forward+backward, and reports medians and ratios as
Markdown (printed, and optionally written), JSON and a PNG bar chart::

    lrn-core bench --quick
    lrn-core bench --shapes alexnet-conv1 --threads 1,2 --markdown bench.md --plot bench.png

Ours are the cases and the reports; warm-up, loop calibration, repetition, statistics and process
isolation are pyperf's. Why pyperf: asv benchmarks a project's history from its repository, not
an installed package from one command; torch.utils.benchmark times in the calling process and
needs torch, while most rows are NumPy, TensorFlow or JAX, and no row may inherit another
framework's thread pools, allocator caches or compiled graphs: pyperf gives each a fresh worker.

:func:`run` writes the plan to a temporary directory and runs ``python -m
lrn_core.benchmarks.harness --suite plan.json`` there (its one ``pyperf.Runner`` parses its own
argv; the directory keeps a caller's stray ``statistics.py`` off ``sys.path``). pyperf re-runs that
command with ``--worker`` per row, with the row's ``OMP_NUM_THREADS``. A worker builds only its row,
calls it once untimed (a failure becomes the row's status), measures its peak memory (pyperf has
no per-call peak) and writes both beside the plan. Importing this module imports no framework.
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
import platform
import site
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["main", "run", "plot", "BenchResult", "Row", "Case", "Settings", "SHAPES", "VARIANTS"]

#: name -> ((C, H, W), description); the batch comes from --batch
SHAPES = {
    "alexnet-conv1": ((96, 55, 55), "AlexNet LRN after conv1 (the DESIGN reference shape)"),
    "alexnet-conv2": ((256, 27, 27), "AlexNet LRN after conv2"),
    "googlenet-lrn1": ((64, 56, 56), "GoogLeNet LRN after conv1/pool1"),
    "googlenet-lrn2": ((192, 56, 56), "GoogLeNet LRN after conv2"),
}
#: defaults of the counting options: (normal, with --quick); loops None: pyperf calibrates them
DEFAULTS = {"batch": (32, 2), "processes": (4, 1), "values": (3, 3), "warmups": (1, 1)}
DEFAULTS["loops"] = (None, 1)
VARIANTS = {
    "size25": "size 25 (a wide window) on the first selected shape",
    "sizes": "sizes 9, 13, 25 and 32 on the first selected shape (does the window cost?)",
    "float64": "float64 on the first selected shape (TensorFlow has no float64 LRN)",
    "beta0.6": "beta 0.6 (the generic pow path) on the first selected shape",
    "nhwc": "extra lrn-core NumPy rows with axis=-1 on the NHWC array, in every case",
    "copy-threads": "an extra copy floor split over the case's threads (is the bus full?)",
    "small": "a small input (1, 16, 8, 8) at 1 and 2 threads (call overhead)",
    "ladder": "sizes from 1x1x1x1 (the per-call overhead) and 1x16x8x8 up to the AlexNet shape",
    "tiny": "a tiny input (1, 8, 2, 2) at 1 thread (fixed cost per call)",
}
#: variants on the first shape: name -> [(suffix of the case name, Case fields)]
FIRST_SHAPE_VARIANTS = {
    "size25": [(" size=25", {"size": 25})],
    "sizes": [(f" size={n}", {"size": n}) for n in (9, 13, 25, 32)],
    "float64": [(" float64", {"dtype": "float64"})],
    "beta0.6": [(" beta=0.6", {"beta": 0.6})],
}
#: variants of their own shape: name -> (shape, thread counts)
OWN_SHAPE_VARIANTS = {"small": ((1, 16, 8, 8), (1, 2)), "tiny": ((1, 8, 2, 2), (1,))}
LADDER = [("per-call overhead 1x1x1x1", (1, 1, 1, 1))] + [
    (f"ladder {'x'.join(map(str, s))}", s)
    for s in ((1, 16, 8, 8), (1, 96, 27, 27), (1, 96, 55, 55), (8, 96, 55, 55), (32, 96, 55, 55))
]
FRAMEWORKS = ("torch", "tensorflow", "jax")  # numpy always runs
FRAMEWORK_ALIASES = {"np": "numpy", "pytorch": "torch", "tf": "tensorflow"}
PASS_ORDER = {"copy": 0, "fwd": 1, "bwd": 2, "fwd+bwd": 3}
FB = ("fwd", "fwd+bwd")


@dataclasses.dataclass(frozen=True)
class Case:
    """One input and parameter set, timed at one thread count."""

    name: str
    shape: tuple
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0
    dtype: str = "float32"
    threads: int = 1
    nhwc_core: bool = False


@dataclasses.dataclass
class Settings:
    """The options of ``lrn-core bench --help``, kept as ``meta["settings"]``. None means the
    default, which ``quick`` changes as ``--quick`` does; :func:`run` fills every one in.
    ``pyperf``: further options of ``pyperf.Runner`` (``--min-time``, ``--affinity``, ...)."""

    shapes: list | str | None = None  # names of SHAPES, or CxHxW / NxCxHxW
    batch: int | None = None
    processes: int | None = None
    values: int | None = None
    warmups: int | None = None
    loops: int | None = None
    threads: list | int | None = None
    frameworks: list | str | None = None
    variants: list | str | None = None
    compile: bool | None = None
    quick: bool = False
    progress: bool = True
    memory: bool = True
    pyperf: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Row:
    """One implementation and pass of one case: its timings, and ratios within the case."""

    case: str
    shape: tuple
    dtype: str
    size: int
    beta: float
    threads: int
    impl: str
    kind: str  # copy | core | adapter | native
    framework: str  # numpy | torch | tensorflow | jax
    layout: str  # NCHW | NHWC
    pass_: str  # copy | fwd | bwd | fwd+bwd
    times_ms: list = dataclasses.field(default_factory=list)  # pyperf's values, per call
    status: str = "ok"  # ok, or why there is no number ("n/a: ...", "error: ...")
    median_ms: float | None = None
    min_ms: float | None = None
    p90_ms: float | None = None
    x_copy: float | None = None  # median / copy-floor median of the same case
    speedup: float | None = None  # fastest native median of the same case and pass / median
    best_native: str | None = None
    peak_extra_mib: float | None = None  # rise of the peak resident set during one call
    loops: int | None = None  # calls per pyperf value

    @property
    def ok(self):
        return self.status == "ok" and self.median_ms is not None

    @classmethod
    def from_dict(cls, d):
        return cls(**{**d, "shape": tuple(d["shape"])})


@dataclasses.dataclass
class BenchResult:
    """Rows of every case, plus the environment, settings and notes (``meta``)."""

    rows: list
    meta: dict

    def cases(self):
        """Case keys ``(name, threads)`` in plan order."""
        return list(dict.fromkeys((r.case, r.threads) for r in self.rows))

    def case_rows(self, key):
        rows = [r for r in self.rows if (r.case, r.threads) == key]
        return sorted(rows, key=lambda r: (PASS_ORDER[r.pass_], IMPL_ORDER.get(r.impl, 99)))

    def markdown(self):
        """The report (what ``lrn-core bench`` prints): method, environment, summary, cases."""
        return _markdown(self)

    def to_dict(self):
        return {"meta": self.meta, "rows": [dataclasses.asdict(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, d):
        return cls([Row.from_dict(r) for r in d["rows"]], d["meta"])


# --- the timed callables: build(f, p, x, dy) -> {pass: callable}, p = (size, alpha, beta, k) ---


def _bind(f, params):
    """``f(t)`` with the LRN's parameters bound (a tuple in torch's order, or a dict of
    TensorFlow's keywords); ``f`` is a function or its ``"module:attribute"`` path."""
    if isinstance(f, str):
        module, attr = f.split(":")
        f = operator.attrgetter(attr)(importlib.import_module(module))
    return (lambda t: f(t, **params)) if isinstance(params, dict) else (lambda t: f(t, *params))


def _copy(split, p, x, dy):
    """``numpy.copyto``; split: in equal slabs over a pool of OMP_NUM_THREADS threads started
    once, as OpenMP's is (NumPy releases the GIL while copying)."""
    y = np.empty_like(x)
    if not split:
        return {"copy": functools.partial(np.copyto, y, x)}
    n = int(os.environ.get("OMP_NUM_THREADS", "1"))
    parts = list(zip(*(np.array_split(a.reshape(-1), n) for a in (y, x)), strict=True))
    pool = ThreadPoolExecutor(n)
    return {"copy": lambda: list(pool.map(lambda ab: np.copyto(*ab), parts))}


def _numpy(axis, p, x, dy):
    """``lrn`` and ``lrn_backward`` of lrn-core over ``axis``, into preallocated outputs."""
    import lrn_core

    kw = dict(zip(("size", "alpha", "beta", "k"), p, strict=True), axis=axis)
    fwd = functools.partial(lrn_core.lrn, x, **kw, out=np.empty_like(x))
    bwd = functools.partial(lrn_core.lrn_backward, dy, x, **kw, out=np.empty_like(x))
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": lambda: (fwd(), bwd())}


def _torch(f, p, x, dy, compiled=False):
    """``f(x)`` and ``f(x).backward(dy)`` of torch function ``f``, or of ``torch.compile(f)``."""
    import torch

    fp = _bind(f, p)
    fp = torch.compile(fp, dynamic=False) if compiled else fp
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    xg = xt.clone().requires_grad_(True)

    def fwd_bwd():
        fp(xg).backward(dyt)
        xg.grad = None

    return {"fwd": lambda: fp(xt), "fwd+bwd": fwd_bwd}


def _tf(f, p, x, dy, graph=True):
    """``f(x)`` and a ``GradientTape`` over it, in ``tf.function`` (as ``model.fit`` runs a
    step) or eagerly; ``f`` gets TensorFlow's parameters of the same LRN."""
    import tensorflow as tf

    from lrn_core import conventions

    fp = _bind(f, conventions.to_tensorflow(conventions.from_torch(*p)))

    def fwd_bwd(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fp(x)
        return tape.gradient(y, x, output_gradients=dy)

    fwd, fwd_bwd = (tf.function(g) if graph else g for g in (fp, fwd_bwd))
    with tf.device("/CPU:0"):
        xt, dyt = tf.constant(x), tf.constant(dy)
    return {"fwd": lambda: fwd(xt), "fwd+bwd": lambda: fwd_bwd(xt, dyt)}


def _jax(f, p, x, dy):
    """The forward, and forward with the input gradient (``jax.vjp``), each under ``jax.jit``."""
    import jax

    fp = _bind(f, p)
    fwd = jax.jit(fp)
    fwd_bwd = jax.jit(lambda x, dy: (lambda y, vjp: (y, vjp(dy)[0]))(*jax.vjp(fp, x)))
    xj, dyj = jax.device_put(x), jax.device_put(dy)
    return {
        "fwd": lambda: jax.block_until_ready(fwd(xj)),
        "fwd+bwd": lambda: jax.block_until_ready(fwd_bwd(xj, dyj)),
    }


TORCH_NATIVE = "torch.nn.functional:local_response_norm"
TORCH_ADAPTER = "lrn_core.adapters.torch:local_response_norm"
TF_ADAPTER = "lrn_core.adapters.tensorflow:local_response_normalization"
TF_NATIVE = "tensorflow:nn.local_response_normalization"
JAX_ADAPTER = "lrn_core.adapters.jax:local_response_norm"
JAX_NATIVE = "lrn_core.check:jnp_lrn"  # the LRN a JAX user writes (JAX has none)
COMPILED, EAGER = {"compiled": True}, {"graph": False}
Impl = namedtuple("Impl", "label framework kind layout build f kw", defaults=[{}])
#: every implementation, in table order; its rows come from ``build(f, p, x, dy, **kw)``
IMPLS = [
    Impl("copy floor (numpy.copyto)", "numpy", "copy", "NCHW", _copy, False),
    Impl("copy split over the threads", "numpy", "copy", "NCHW", _copy, True),
    Impl("lrn-core numpy", "numpy", "core", "NCHW", _numpy, 1),
    Impl("lrn-core numpy NHWC", "numpy", "core", "NHWC", _numpy, -1),
    Impl("lrn-core torch adapter", "torch", "adapter", "NCHW", _torch, TORCH_ADAPTER),
    Impl("torch eager (native)", "torch", "native", "NCHW", _torch, TORCH_NATIVE),
    Impl("torch.compile (native)", "torch", "native", "NCHW", _torch, TORCH_NATIVE, COMPILED),
    Impl("lrn-core tf adapter", "tensorflow", "adapter", "NHWC", _tf, TF_ADAPTER),
    Impl("tf native", "tensorflow", "native", "NHWC", _tf, TF_NATIVE),
    Impl("lrn-core tf adapter, eager", "tensorflow", "adapter", "NHWC", _tf, TF_ADAPTER, EAGER),
    Impl("tf native, eager", "tensorflow", "native", "NHWC", _tf, TF_NATIVE, EAGER),
    Impl("lrn-core jax adapter", "jax", "adapter", "NHWC", _jax, JAX_ADAPTER),
    Impl("jax.jit jnp (native)", "jax", "native", "NHWC", _jax, JAX_NATIVE),
]
IMPL_KIND = {i.label: i.kind for i in IMPLS}
IMPL_ORDER = {i.label: n for n, i in enumerate(IMPLS)}
PASSES = {"copy": ("copy",), "core": ("fwd", "bwd", "fwd+bwd"), "adapter": FB, "native": FB}


def _impls(case, s):
    """The implementations a case runs."""
    skip = {
        "lrn-core numpy NHWC": not case.nhwc_core,
        "copy split over the threads": "copy-threads" not in s.variants,
        "torch.compile (native)": not s.compile,
    }
    return [i for i in IMPLS if i.framework in s.frameworks and not skip.get(i.label)]


# --- in pyperf's processes ----------------------------------------------------------------------


def _short(exc):
    msg = (f"{type(exc).__name__}: {exc}".strip().splitlines() or [type(exc).__name__])[0]
    return msg if len(msg) <= 110 else msg[:107] + "..."


def _peak_extra_mib(fn):
    """Rise of the peak resident set (VmHWM, reset through /proc/self/clear_refs) during one call,
    on Linux; None elsewhere. No library resets the peak, and tracemalloc does not see torch's,
    TensorFlow's or XLA's allocators. Freed heap memory is returned to the system first and
    lrn-core's output cache is emptied, so that a call's allocations count as fresh memory."""
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


def _pin_threads(threads, framework):
    """Hold this worker's pools to ``threads`` (OMP_NUM_THREADS is set already): the count each
    runtime then reports. TensorFlow's intra-op count must be set before it initialises."""
    from threadpoolctl import threadpool_limits

    from lrn_core._api import kernels

    report = {"lrn-core (OpenMP)": int(kernels().max_threads())}
    threadpool_limits(threads)  # OpenMP and BLAS, for the life of this process
    with contextlib.suppress(ImportError):  # a broken framework shows in its rows
        if framework == "torch":
            import torch

            torch.set_num_threads(threads)
            report["torch (intra-op)"] = torch.get_num_threads()
        if framework == "tensorflow":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            report["tensorflow (intra-op)"] = tf.config.threading.get_intra_op_parallelism_threads()
    return report


_BUILT = {}  # task index -> its callable (None: it failed), in a worker


def _prepare(task, workdir):
    """Build one row, call it once, measure its memory, and note what pyperf's values cannot
    carry (status, peak memory, thread counts) in ``row<index>.json`` beside the plan."""
    case = Case(**{**task["case"], "shape": tuple(task["case"]["shape"])})
    impl = IMPLS[IMPL_ORDER[task["impl"]]]
    note = {"status": "ok", "peak_extra_mib": None}
    note["threads"] = _pin_threads(case.threads, impl.framework)
    rng = np.random.default_rng(20240605)
    x, dy = (rng.standard_normal(case.shape).astype(case.dtype) for _ in range(2))
    if impl.layout == "NHWC":
        x, dy = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in (x, dy))
    try:
        fn = impl.build(impl.f, (case.size, case.alpha, case.beta, case.k), x, dy, **impl.kw)
        fn = fn[task["pass"]]
        fn()  # imports, tracing, compilation: not pyperf's warm-up, which times its calls
        if task["memory"]:
            note["peak_extra_mib"] = _peak_extra_mib(fn)
    except Exception as exc:
        na = isinstance(exc, ModuleNotFoundError) or "lrn_core.adapters" in str(exc)
        note["status"], fn = f"{'n/a' if na else 'error'}: {_short(exc)}", None
    with open(os.path.join(workdir, f"row{task['index']}.json"), "w") as f:
        json.dump(note, f)
    return fn


def _time_row(loops, task, workdir):
    """pyperf's time function of a row: seconds for ``loops`` calls, gc off (as timeit). A
    failed row takes 1 s a call, so that calibration stops at once; its values are dropped."""
    if task["index"] not in _BUILT:
        _BUILT[task["index"]] = _prepare(task, workdir)
    fn, enabled = _BUILT[task["index"]], gc.isenabled()
    if fn is None:
        return float(loops)
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in itertools.repeat(None, loops):
            fn()
        return time.perf_counter() - t0
    finally:
        if enabled:
            gc.enable()


def _suite(argv):
    """``python -m lrn_core.benchmarks.harness --suite plan.json [pyperf options]``: every row
    of the plan as one pyperf benchmark; pyperf re-runs this command with ``--worker``."""
    import pyperf

    runner = pyperf.Runner(
        program_args=("-m", "lrn_core.benchmarks.harness"),
        add_cmdline_args=lambda cmd, args: cmd.extend(("--suite", args.suite)),
    )
    runner.argparser.add_argument("--suite", required=True)
    args = runner.parse_args(argv)
    with open(args.suite) as f:
        plan = json.load(f)
    workdir = os.path.dirname(os.path.abspath(args.suite))
    for task in plan:  # the manager spawns the row's workers with this environment
        os.environ["OMP_NUM_THREADS"] = str(task["case"]["threads"])
        runner.bench_time_func(task["name"], _time_row, task, workdir)


# --- planning and running -----------------------------------------------------------------------


def _parse_shape(spec, batch):
    if spec in SHAPES:
        return spec, (batch,) + SHAPES[spec][0]
    try:
        dims = tuple(int(d) for d in spec.lower().replace(",", "x").split("x") if d)
    except ValueError:
        dims = ()
    dims = (batch,) + dims if len(dims) == 3 else dims
    if len(dims) != 4 or min(dims) < 1:
        raise ValueError(
            f"unknown shape {spec!r}: use one of {', '.join(SHAPES)} or CxHxW or NxCxHxW"
        )
    return "x".join(map(str, dims)), dims


def _plan(shapes, batch, variants, threads_list):
    """The cases to run, in order."""
    nhwc = "nhwc" in variants
    named = [Case(*_parse_shape(s, batch), nhwc_core=nhwc) for s in shapes]
    named += [
        dataclasses.replace(named[0], name=named[0].name + suffix, **kw)
        for v, extra in FIRST_SHAPE_VARIANTS.items()
        if v in variants
        for suffix, kw in extra
    ]
    cases = [dataclasses.replace(c, threads=t) for t in threads_list for c in named]
    ladder = LADDER if "ladder" in variants else []
    cases += [Case(n, s, threads=t, nhwc_core=nhwc) for t in threads_list for n, s in ladder]
    cases += [
        Case(f"{v} " + "x".join(map(str, shape)), shape, threads=t, nhwc_core=nhwc)
        for v, (shape, ts) in OWN_SHAPE_VARIANTS.items()
        if v in variants
        for t in ts
    ]
    return list(dict.fromkeys(cases))  # size25 and sizes share a case


def _names(value):
    """A list from a list or a comma-separated string, blanks dropped."""
    names = value.split(",") if isinstance(value, str) else value or []
    return [n.strip() if isinstance(n, str) else n for n in names if str(n).strip()]


def _choose(value, known, what, aliases=None):
    """The names in ``value`` (a list or a comma-separated string; "all" for every known one)."""
    names = [(aliases or {}).get(n.lower(), n.lower()) for n in _names(value)]
    for n in names:
        if n not in known and n != "all":
            raise ValueError(f"unknown {what} {n!r}: use {', '.join(known)} or all")
    return list(known) if "all" in names else names


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


def _run_suite(plan, s):
    """Run the plan under pyperf in a fresh process: (benchmarks by name, row notes, failure)."""
    import pyperf

    import lrn_core

    with tempfile.TemporaryDirectory(prefix="lrn-core-bench-") as tmp:
        with open(os.path.join(tmp, "plan.json"), "w") as f:
            json.dump(plan, f)
        counts = {k: getattr(s, k) for k in ("processes", "values", "warmups", "loops")}
        opts = [f"--{k}={v}" for k, v in counts.items() if v is not None] + list(s.pyperf)
        out = os.path.join(tmp, "out.json")
        cmd = [sys.executable, "-m", __spec__.name, "--suite", "plan.json", "-o", out]
        # the workers import this lrn_core (not a site-packages one), without putting
        # site-packages ahead of the standard library
        root = os.path.dirname(os.path.dirname(lrn_core.__file__))
        paths = [] if root in site.getsitepackages() + [site.getusersitepackages()] else [root]
        paths += [
            os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
        ]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        proc = subprocess.run(
            [*cmd, "--copy-env", *opts] + ([] if s.progress else ["--quiet"]),
            cwd=tmp,
            env=env,
            stdout=2 if s.progress else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        err = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        if proc.returncode == 2 and "usage:" in proc.stderr:
            raise ValueError(f"pyperf: {err}")
        benches = pyperf.BenchmarkSuite.load(out).get_benchmarks() if os.path.exists(out) else []
        notes = {}
        for t in plan:
            with (
                contextlib.suppress(OSError),
                open(os.path.join(tmp, f"row{t['index']}.json")) as f,
            ):
                notes[t["index"]] = json.load(f)
    failed = f"the pyperf run failed (status {proc.returncode}): {err}" if proc.returncode else None
    return {b.get_name(): b for b in benches}, notes, failed


def _summarise(rows):
    """``x copy`` and ``speedup``, only within a case (the first copy row is the floor)."""
    for key in dict.fromkeys((r.case, r.threads) for r in rows):
        rs = [r for r in rows if (r.case, r.threads) == key and r.ok]
        copy = next((r for r in rs if r.kind == "copy"), None)
        best = {}
        for r in sorted((r for r in rs if r.kind == "native"), key=lambda r: -r.median_ms):
            best[r.pass_] = r  # the fastest comes last
        for r in rs:
            if copy is not None and copy.median_ms > 0:
                r.x_copy = r.median_ms / copy.median_ms
            if r.pass_ in best and r.median_ms > 0:
                r.speedup, r.best_native = best[r.pass_].median_ms / r.median_ms, best[r.pass_].impl
    return rows


def _environment(frameworks):
    import pyperf

    import lrn_core
    from lrn_core._api import kernels

    k, found = kernels(), lrn_core.get_config()["frameworks"]
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    return {
        "lrn_core": lrn_core.__version__,
        "kernels": f"{k.__name__} (simd {k.simd}, openmp {k.openmp_enabled})",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pyperf": pyperf.__version__,
        **{fw: found.get(fw) if fw in frameworks else None for fw in FRAMEWORKS},
        "platform": platform.platform(),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def _loadavg():
    with contextlib.suppress(OSError, AttributeError):
        return [round(v, 2) for v in os.getloadavg()]
    return None


def run(shapes=None, **options):
    """Run the benchmark and return a :class:`BenchResult`.

    ``options`` are the fields of :class:`Settings`, the options of ``lrn-core bench --help``:
    ``shapes``, ``frameworks`` and ``variants`` are lists or comma-separated strings, ``threads``
    an int or a list (default: the process's OpenMP default), ``pyperf`` a list of further
    pyperf options. The rows run in pyperf's worker processes, never in this one.
    """
    from lrn_core._api import kernels

    t_start = time.perf_counter()
    _require(["threadpoolctl", "pyperf"])
    s = Settings(shapes=_names(shapes) or list(SHAPES), **options)
    s.variants = _choose(s.variants, VARIANTS, "variant")
    known = ("numpy",) + FRAMEWORKS
    wanted = _choose(s.frameworks, known, "framework", FRAMEWORK_ALIASES) or FRAMEWORKS
    s.frameworks = ["numpy"] + [f for f in FRAMEWORKS if f in wanted and _installed(f)]
    missing = [f for f in FRAMEWORKS if f in wanted and f not in s.frameworks]
    for name, (normal, quick) in DEFAULTS.items():
        if getattr(s, name) is None:
            setattr(s, name, quick if s.quick else normal)
    if min(s.processes, s.values, s.batch, s.loops or 1) < 1 or s.warmups < 0:
        raise ValueError(
            f"processes ({s.processes}), values ({s.values}), loops ({s.loops}) and batch "
            f"({s.batch}) must be >= 1, warmups ({s.warmups}) >= 0"
        )
    threads = [s.threads] if isinstance(s.threads, int) else _names(s.threads)
    try:
        threads = [int(t) for t in threads] or [int(kernels().max_threads())]
    except ValueError:
        threads = [0]
    if min(threads) < 1:
        raise ValueError(f"threads must be integers >= 1, got {s.threads!r}")
    cases = _plan(s.shapes, s.batch, s.variants, dict.fromkeys(threads))
    s.compile = (not s.quick if s.compile is None else bool(s.compile)) and "torch" in s.frameworks
    s.threads = list(dict.fromkeys(c.threads for c in cases))
    meta = {
        "environment": _environment(s.frameworks),
        "settings": dataclasses.asdict(s),
        "threads_reported": {},
        "notes": [f"{f} is not installed: its rows are skipped" for f in missing],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_start": _loadavg(),
    }
    rows, plan = [], []
    for c in cases:
        head = (c.name, tuple(c.shape), c.dtype, c.size, c.beta, c.threads)
        for i in _impls(c, s):
            for p in PASSES[i.kind]:
                rows.append(Row(*head, i.label, i.kind, i.framework, i.layout, p))
                name = f"{c.name} t={c.threads}: {i.label} {p}"
                task = {"name": name, "case": dataclasses.asdict(c), "impl": i.label, "pass": p}
                plan.append({**task, "index": len(plan), "memory": s.memory})
    benches, notes, failed = _run_suite(plan, s)
    meta["notes"] += [failed] if failed else []
    for row, task in zip(rows, plan, strict=True):
        note, bench = notes.get(task["index"]), benches.get(task["name"])
        row.status = note["status"] if note else "error: no result (its worker failed)"
        if row.status == "ok" and bench is None:
            row.status = "error: no values (its worker failed)"
        if note:
            reported = meta["threads_reported"].setdefault(str(row.threads), {})
            reported.update(note["threads"])
            row.peak_extra_mib = note["peak_extra_mib"]
        if row.status == "ok":
            row.times_ms = [v * 1e3 for v in bench.get_values()]
            row.median_ms, row.p90_ms = bench.median() * 1e3, bench.percentile(90) * 1e3
            row.min_ms, row.loops = min(row.times_ms), bench.get_loops()
    for t, report in meta["threads_reported"].items():
        if report["lrn-core (OpenMP)"] != int(t):
            meta["notes"].append(f"lrn-core ran {report['lrn-core (OpenMP)']} threads, not {t}")
    _summarise(rows)
    meta["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    meta["loadavg_end"] = _loadavg()
    start = meta["loadavg_start"]
    if start and start[0] >= 0.5 * (os.cpu_count() or 1):
        meta["notes"].append("the machine was busy before the run: look at the min column too")
    return BenchResult(rows, meta)


# --- reports -------------------------------------------------------------------------------------

COLUMNS = ["implementation", "layout", "pass", "median ms", "min ms", "p90 ms", "x copy"]
COLUMNS += ["speedup vs best native", "peak extra MiB"]
ADAPTERS = {
    "numpy": ("lrn-core numpy", "lrn-core numpy ms"),
    "torch": ("lrn-core torch adapter", "torch adapter ms"),
    "tensorflow": ("lrn-core tf adapter", "tf adapter ms"),
    "jax": ("lrn-core jax adapter", "jax adapter ms"),
}


def _fmt_ms(v):
    return "-" if v is None else f"{v:.{1 if v >= 100 else 2 if v >= 10 else 3 if v >= 1 else 4}f}"


def _fmt_ratio(v, suffix=""):
    return "" if v is None else f"{v:.{0 if v >= 100 else 1 if v >= 10 else 2}f}{suffix}"


def _md_table(header, rows):
    """A Markdown table; the columns from the fourth on are numbers, aligned right."""
    lines = ["| " + " | ".join(row) + " |" for row in [header, *rows]]
    rule = "|" + "|".join("---" if i < 3 else "---:" for i in range(len(header))) + "|"
    return lines[:1] + [rule] + lines[1:]


def _case_section(result, key):
    """Markdown of one case: heading, table, footnotes."""
    rows = result.case_rows(key)
    r0 = rows[0]
    head = (
        f"## {key[0]}: x {'x'.join(map(str, r0.shape))} {r0.dtype}, size {r0.size}, "
        f"beta {r0.beta:g}, threads {key[1]}"
    )
    cells, notes = [], []
    for r in rows:
        if r.ok:
            numbers = [_fmt_ms(v) for v in (r.median_ms, r.min_ms, r.p90_ms)]
            numbers += [_fmt_ratio(r.x_copy), _fmt_ratio(r.speedup, "x")]
            numbers += ["" if r.peak_extra_mib is None else f"{r.peak_extra_mib:.1f}"]
        else:
            short, _, why = r.status.partition(": ")
            note = f"{r.impl}: {why or short}"
            notes += [note] if note not in notes else []
            numbers = [f"{short} [{notes.index(note) + 1}]"] + [""] * 5
        cells.append([r.impl, r.layout, r.pass_] + numbers)
    out = ["", head, ""] + _md_table(COLUMNS, cells)
    return out + ([""] + [f"[{i}] {n}  " for i, n in enumerate(notes, 1)] if notes else [])


def _summary(result):
    """Markdown of the summary: per case and pass, lrn-core's rows against the fastest native."""
    adapters = [ADAPTERS[f] for f in result.meta["settings"]["frameworks"] if f in ADAPTERS]
    header = ["case", "threads", "pass"] + [col for _, col in adapters]
    out = []
    for key in result.cases():
        for p in FB:
            rows = {r.impl: r for r in result.case_rows(key) if r.ok and r.pass_ == p}
            cells = [key[0], str(key[1]), p]
            cells += [_fmt_ms(rows[impl].median_ms) if impl in rows else "" for impl, _ in adapters]
            best = next((r for r in rows.values() if r.best_native == r.impl), None)
            core = rows.get("lrn-core numpy")
            if best:
                cells += [f"{best.impl} {_fmt_ms(best.median_ms)}"]
                cells += [_fmt_ratio(core.speedup, "x") if core else ""]
            else:
                cells += ["(no native)", ""]
            out.append(cells)
    header += ["fastest native ms", "numpy speedup"]
    return ["", "## Summary (medians, ms)", ""] + _md_table(header, out) if out else []


def _markdown(result):
    meta, env, s = result.meta, result.meta["environment"], result.meta["settings"]
    names = {"torch": "torch", "tensorflow": "TensorFlow", "jax": "JAX"}
    fws = "".join(f", {name} {env[key]}" for key, name in names.items() if env.get(key))
    a, b = meta.get("loadavg_start"), meta.get("loadavg_end")
    load = (
        f"1-min load average {a[0]:g} before, {b[0]:g} after the run (this one included), "
        f"on {env['logical_cpus']} logical CPUs"
        if a and b
        else "load average unknown"
    )
    loops = f"{s['loops']} call(s)" if s["loops"] else "as many calls as pyperf calibrates"
    lines = [
        f"method: pyperf {env.get('pyperf', '')}, per row {s['processes']} worker process(es) x "
        f"{s['values']} value(s) of {loops} each, after {s['warmups']} warm-up value(s) and "
        "one untimed call; median, min and p90 of the values; gc off while timing; ratios "
        "within the same run",
        f"environment: lrn-core {env['lrn_core']}, kernels {env['kernels']}, Python "
        f"{env['python']}, NumPy {env['numpy']}{fws}",
        f"machine: {env['cpu']}, {env['logical_cpus']} logical CPUs, {env['platform']}",
        *(
            f"threads={t}: " + ", ".join(f"{k} {v}" for k, v in rep.items())
            for t, rep in sorted(meta["threads_reported"].items())
        ),
        "*x copy*: median / copy floor (`numpy.copyto` of the same array, same run). An ideal "
        "implementation moves 1 copy for fwd, 1.5 for bwd, 2.5 for fwd+bwd.",
        "*speedup*: fastest native median of the same pass / this median (> 1: faster than "
        "every native).",
        "*peak extra MiB*: rise of the process's peak resident memory during one call, inputs "
        "and preallocated outputs excluded, lrn-core's output cache emptied first (Linux only; "
        "memory a framework's allocator caches between calls is not seen).",
        f"date: {meta.get('date', '')}; wall time {meta.get('wall_seconds', '?')} s; {load}",
        *(f"note: {n}" for n in meta["notes"]),
    ]
    out = ["# lrn-core bench", ""] + [f"- {ln}" for ln in lines] + _summary(result)
    for key in result.cases():
        out += _case_section(result, key)
    return "\n".join(out) + "\n"


def plot(result, path):
    """A PNG bar chart of the medians: one panel per case, log scale, the copy floor dashed.
    Raises ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = []
    for key in result.cases():
        rows = [r for r in result.case_rows(key) if r.ok]
        impls = list(dict.fromkeys(r.impl for r in rows if r.pass_ in FB)) or ["(none)"]
        panels.append((key, impls, rows))
    heights = [len(p[1]) for p in panels]
    size = (9, max(3.0, 0.8 + sum(0.5 + 0.32 * h for h in heights)))
    grid = {"height_ratios": heights}
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, figsize=size, gridspec_kw=grid)
    for ax, (key, impls, rows) in zip(axes[:, 0], panels, strict=True):
        y = np.arange(len(impls))
        for j, (p, color) in enumerate((("fwd", "#4c72b0"), ("fwd+bwd", "#dd8452"))):
            ms = {r.impl: r.median_ms for r in rows if r.pass_ == p}
            widths = [ms.get(i, 0.0) for i in impls]
            bars = ax.barh(y + (j - 0.5) * 0.38, widths, height=0.38, color=color, label=p)
            ax.bar_label(bars, [f" {_fmt_ms(ms[i])}" if i in ms else "" for i in impls], fontsize=7)
        for r in rows:
            if r.kind == "copy":
                ax.axvline(r.median_ms, color="k", ls="--", lw=1)
                ax.text(r.median_ms, -0.75, f" copy floor {_fmt_ms(r.median_ms)} ms", fontsize=7)
        ms = [r.median_ms for r in rows] or [1.0]
        ax.set(xscale="log", xlim=(min(ms) / 1.6, max(ms) * 3), ylim=(len(impls) - 0.4, -0.9))
        ax.set(yticks=y)
        ax.set_yticklabels(impls, fontsize=8)
        r0 = result.case_rows(key)[0]
        shape = "x".join(map(str, r0.shape))
        ax.set_title(f"{key[0]}  {shape} {r0.dtype}, threads {key[1]}", fontsize=9)
        ax.grid(axis="x", which="both", alpha=0.3)
    axes[-1, 0].set_xlabel("median time per call, ms (log scale; lower is better)")
    handles = axes[0, 0].get_legend_handles_labels()
    fig.legend(*handles, loc="upper right", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("lrn-core bench", x=0.02, ha="left", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --- command line --------------------------------------------------------------------------------

LIST, INT = {"metavar": "LIST"}, {"type": int}  # run() splits and checks them
#: ``lrn-core bench``'s options: flag -> (argparse keywords, help; ``{...}`` from DEFAULTS)
OPTIONS = {
    "--shapes": (LIST, "comma-separated names ({shapes}) or CxHxW / NxCxHxW (default: all four)"),
    "--batch": (INT, "batch of the shapes (default {batch[0]}; {batch[1]} with --quick)"),
    "--processes": (INT, "pyperf worker processes per row (default {processes[0]})"),
    "--values": (INT, "pyperf values per worker process (default {values[0]})"),
    "--warmups": (INT, "pyperf warm-up values per worker, dropped (default {warmups[0]})"),
    "--loops": (INT, "calls per value (default: calibrated by pyperf; 1 with --quick)"),
    "--threads": (LIST, "thread counts, e.g. 1,2 (default: the process default)"),
    "--frameworks": (LIST, "numpy,torch,tf,jax (default: every one installed; numpy always runs)"),
    "--variants": (LIST, "extra cases: {variants} or all"),
    "--compile": (
        {"action": argparse.BooleanOptionalAction},
        "time torch.compile (default: yes, except with --quick; compiling takes tens of seconds "
        "per case and worker)",
    ),
    "--quick": ({"action": "store_true"}, "smoke run: batch 2, 1 process of 3 single calls"),
    "--markdown": ({"metavar": "FILE"}, "also write the report as Markdown"),
    "--plot": ({"metavar": "FILE"}, "also write a PNG bar chart (needs matplotlib)"),
    "--json": ({"metavar": "FILE"}, "also write every timing as JSON"),
    "--no-progress": ({"dest": "progress", "action": "store_false"}, "no pyperf output"),
    "--no-memory": (
        {"dest": "memory", "action": "store_false"},
        "do not measure each row's peak extra memory (one untimed call)",
    ),
}


def build_parser(prog="lrn-core bench"):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Time lrn-core against the native LRNs installed (torch eager, torch.compile, "
        "TensorFlow in tf.function and eager, jitted jnp) and the copy floor "
        "(numpy.copyto of the same array), under pyperf. Prints medians and ratios measured in "
        "the same run, as Markdown. Other options go to pyperf's Runner (e.g. --min-time, "
        "--affinity, --rigorous).",
        epilog="Shapes: "
        + "; ".join(f"{n} = (N, {', '.join(map(str, s))}): {d}" for n, (s, d) in SHAPES.items())
        + ". Variants: "
        + "; ".join(f"{n}: {d}" for n, d in VARIANTS.items())
        + ". Each row runs in pyperf's worker processes with OMP_NUM_THREADS set; torch and "
        "TensorFlow (intra-op) follow it.",
    )
    fill = {"shapes": ", ".join(SHAPES), "variants": ", ".join(VARIANTS), **DEFAULTS}
    for flag, (kw, text) in OPTIONS.items():
        p.add_argument(flag, **kw, help=text.format(**fill))
    return p


def main(argv=None):
    """``lrn-core bench [options]``: run, print the report, write the files asked for. A usage
    error or a missing library exits with status 2 (argparse's ``error``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    options = {k: v for k, v in vars(args).items() if v is not None}
    markdown, json_path, png = (options.pop(k, None) for k in ("markdown", "json", "plot"))
    try:
        _require(["matplotlib"] if png else [], " --plot")
        result = run(**options, pyperf=extra)
    except (ValueError, ImportError) as exc:
        parser.error(str(exc))
    print(result.markdown(), end="")
    for path, text in (
        (markdown, result.markdown),
        (json_path, lambda: json.dumps(result.to_dict(), indent=1)),
    ):
        if path:
            with open(path, "w") as f:
                f.write(text())
            print(f"wrote {path}")
    if png:
        print(f"wrote {plot(result, png)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_suite(sys.argv[1:]) if "--suite" in sys.argv else main())
