"""The side-by-side timing harness behind ``lrn-core bench``.

Times lrn-core against every native LRN installed and against the copy floor (``numpy.copyto`` of
the same array), forward, backward and forward+backward, and reports medians and ratios as
Markdown (printed, and optionally written), JSON and a PNG bar chart::

    lrn-core bench --quick
    lrn-core bench --shapes alexnet-conv1 --threads 1,2 --markdown bench.md --plot bench.png

Ours are the cases and the reports; the rest is borrowed. Each thread count runs in a fresh child
process started with ``OMP_NUM_THREADS`` (threadpoolctl holds the OpenMP and BLAS pools to it,
torch and TensorFlow get the same intra-op count before they initialise). There ``timeit`` times
the calls (``time.perf_counter``, gc off), ``statistics`` summarises them and tqdm shows progress.
Every row of a case runs in the same time window: the repeats are split into rounds, and in each
round every row runs its warm-up calls and then its share of the timed calls.

Importing this module imports no framework; :func:`run` returns a :class:`BenchResult`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gc
import importlib
import importlib.util
import json
import multiprocessing
import operator
import os
import platform
import statistics
import sys
import time
import timeit
from collections import namedtuple
from concurrent.futures import ProcessPoolExecutor

import numpy as np

__all__ = ["main", "run", "plot", "BenchResult", "Row", "Case", "Settings", "SHAPES", "VARIANTS"]

# --- the cases -----------------------------------------------------------------------------------

#: name -> ((C, H, W), description); the batch comes from --batch
SHAPES = {
    "alexnet-conv1": ((96, 55, 55), "AlexNet LRN after conv1 (the DESIGN reference shape)"),
    "alexnet-conv2": ((256, 27, 27), "AlexNet LRN after conv2"),
    "googlenet-lrn1": ((64, 56, 56), "GoogLeNet LRN after conv1/pool1"),
    "googlenet-lrn2": ((192, 56, 56), "GoogLeNet LRN after conv2"),
}
#: defaults of the counting options: (normal, with --quick)
DEFAULTS = {"batch": (32, 2), "repeat": (15, 3), "rounds": (3, 1), "warmup": (1, 1)}
VARIANTS = {
    "size25": "size 25 (a wide window) on the first selected shape",
    "float64": "float64 on the first selected shape (TensorFlow has no float64 LRN)",
    "beta0.6": "beta 0.6 (the generic pow path) on the first selected shape",
    "nhwc": "extra lrn-core NumPy rows with axis=-1 on the NHWC array, in every case",
    "small": "a small input (1, 16, 8, 8) at 1 and 2 threads (call overhead)",
    "ladder": "sizes from 1x1x1x1 (the per-call overhead) and 1x16x8x8 up to the AlexNet shape",
    "tiny": "a tiny input (1, 8, 2, 2) at 1 thread (fixed cost per call)",
}
#: variants on the first shape: name -> (suffix of the case name, Case fields)
FIRST_SHAPE_VARIANTS = {
    "size25": (" size=25", {"size": 25}),
    "float64": (" float64", {"dtype": "float64"}),
    "beta0.6": (" beta=0.6", {"beta": 0.6}),
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
    default, which ``quick`` changes as ``--quick`` does; :func:`run` fills every one in."""

    shapes: list | str | None = None  # names of SHAPES, or CxHxW / NxCxHxW
    batch: int | None = None
    repeat: int | None = None
    rounds: int | None = None
    warmup: int | None = None
    threads: list | int | None = None
    frameworks: list | str | None = None
    variants: list | str | None = None
    compile: bool | None = None
    quick: bool = False
    progress: bool = True
    memory: bool = True


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
    times_ms: list = dataclasses.field(default_factory=list)
    status: str = "ok"  # ok, or why there is no number ("n/a: ...", "error: ...")
    median_ms: float | None = None
    min_ms: float | None = None
    iqr_pct: float | None = None
    x_copy: float | None = None  # median / copy-floor median of the same case
    speedup: float | None = None  # fastest native median of the same case and pass / median
    best_native: str | None = None
    peak_extra_mib: float | None = None  # rise of the peak resident set during one call

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
    if isinstance(params, dict):
        return lambda t: f(t, **params)
    return lambda t: f(t, *params)


def _copy(axis, p, x, dy):
    return {"copy": functools.partial(np.copyto, np.empty_like(x), x)}


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
    if compiled:
        torch._dynamo.reset()  # one compiled graph per case, no recompile limit
        fp = torch.compile(fp, dynamic=False)
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
    Impl("copy floor (numpy.copyto)", "numpy", "copy", "NCHW", _copy, 1),
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


def _impls(case, settings):
    """The implementations a case runs."""
    skip = {
        "lrn-core numpy NHWC": not case.nhwc_core,
        "torch.compile (native)": not settings.compile,
    }
    return [i for i in IMPLS if i.framework in settings.frameworks and not skip.get(i.label)]


# --- measuring (in a child process per thread count) --------------------------------------------


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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


def _split(repeat, rounds):
    """Timed calls per round: ``repeat`` split into at most ``rounds`` near-equal shares."""
    rounds = max(1, min(rounds, repeat))
    return [repeat // rounds + (i < repeat % rounds) for i in range(rounds)]


def _time_case(case, settings, bar):
    """The rows of a case, timed. Every callable is called once first (imports, tracing,
    compilation; a failure becomes the row's status), then rounds of (warm-up, then back-to-back
    timed calls) go over every row; with ``memory``, one more untimed call per row in the first
    round measures its peak extra memory."""
    rng = np.random.default_rng(20240605)
    x, dy = (rng.standard_normal(case.shape).astype(case.dtype) for _ in range(2))
    arrays = {"NCHW": (x, dy)}
    arrays["NHWC"] = tuple(np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in (x, dy))
    p = (case.size, case.alpha, case.beta, case.k)
    head = (case.name, tuple(case.shape), case.dtype, case.size, case.beta, case.threads)
    label, tasks = f"{case.name} t={case.threads}", []
    for impl in _impls(case, settings):
        bar.set_postfix_str(f"{label}: preparing {impl.label}", refresh=False)
        try:
            fns, err = impl.build(impl.f, p, *arrays[impl.layout], **impl.kw), None
        except Exception as exc:
            fns, err = {}, exc
        for pass_ in PASSES[impl.kind]:
            row = Row(*head, impl.label, impl.kind, impl.framework, impl.layout, pass_)
            fn = fns.get(pass_)
            try:
                if err is not None:
                    raise err
                fn()
            except Exception as exc:
                na = isinstance(exc, ModuleNotFoundError) or "lrn_core.adapters" in str(exc)
                row.status, fn = f"{'n/a' if na else 'error'}: {_short(exc)}", None
            tasks.append((row, fn))
    gc.collect()  # once per case: with torch and TF loaded a collection takes ~0.3 s
    for r, n in enumerate(_split(settings.repeat, settings.rounds)):
        for row, fn in tasks:
            if fn is not None and row.status == "ok":
                bar.set_postfix_str(f"{label}: {row.impl} {row.pass_} (round {r + 1})", False)
                timer = timeit.Timer(fn)  # time.perf_counter, gc off while timing
                try:
                    timer.timeit(settings.warmup)
                    if r == 0 and settings.memory:
                        row.peak_extra_mib = _peak_extra_mib(fn)
                    row.times_ms += [t * 1e3 for t in timer.repeat(n, 1)]
                except Exception as exc:
                    row.status = f"error: {_short(exc)}"
            bar.update(settings.warmup + n)
    return [row for row, _ in tasks]


def _run_threads(cases, settings, threads):
    """Run cases (all at ``threads``) in this process, started with ``OMP_NUM_THREADS=threads``:
    (rows, the thread count each pool reports)."""
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    from lrn_core._api import kernels

    report = {"lrn-core (OpenMP)": int(kernels().max_threads())}
    threadpool_limits(threads)  # OpenMP and BLAS, for the life of this process
    if "torch" in settings.frameworks:
        with contextlib.suppress(ImportError):  # a broken torch shows in its rows
            import torch

            torch.set_num_threads(threads)
            report["torch (intra-op)"] = torch.get_num_threads()
    if "tensorflow" in settings.frameworks:
        with contextlib.suppress(ImportError):  # a broken TF shows in its rows
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)  # before it initialises
            report["tensorflow (intra-op)"] = tf.config.threading.get_intra_op_parallelism_threads()
    s = settings
    calls = (s.repeat + s.warmup * len(_split(s.repeat, s.rounds))) * sum(
        len(PASSES[i.kind]) for c in cases for i in _impls(c, s)
    )
    kw = {"unit": "call", "leave": False, "dynamic_ncols": True, "disable": not s.progress}
    kw["mininterval"] = 0.2 if sys.stderr.isatty() else 30
    with tqdm(total=calls, desc=f"bench threads={threads}", **kw) as bar:
        return [row for case in cases for row in _time_case(case, s, bar)], report


def _child_env(threads):
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read when lrn-core's and torch's OpenMP load
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _run_child(cases, settings, threads):
    """:func:`_run_threads` in a fresh process (spawned: no framework or OpenMP pool inherited)."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, spawn, initializer=_child_env, initargs=(threads,)) as pool:
        return pool.submit(_run_threads, cases, settings, threads).result()


def _summarise(rows):
    """Median, min and IQR of every row; ``x copy`` and ``speedup`` only within a case."""
    for r in rows:
        if r.status == "ok" and not r.times_ms:
            r.status = "n/a: not timed"
        if r.status == "ok":
            r.median_ms, r.min_ms = statistics.median(r.times_ms), min(r.times_ms)
            if len(r.times_ms) >= 4 and r.median_ms > 0:
                q = statistics.quantiles(r.times_ms, n=4)
                r.iqr_pct = 100.0 * (q[2] - q[0]) / r.median_ms
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


# --- planning and the entry point ---------------------------------------------------------------


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
        for v, (suffix, kw) in FIRST_SHAPE_VARIANTS.items()
        if v in variants
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
    return cases


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


def _require(modules, why=""):
    missing = [m for m in modules if not _installed(m)]
    if missing:
        raise ImportError(
            f"lrn-core bench{why} needs {', '.join(missing)}: pip install 'lrn-core[bench]'"
        )


def _environment(frameworks):
    import lrn_core
    from lrn_core._api import kernels

    k, found, cpu = (
        kernels(),
        lrn_core.get_config()["frameworks"],
        platform.processor() or platform.machine(),
    )
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    return {
        "lrn_core": lrn_core.__version__,
        "kernels": f"{k.__name__} (simd {k.simd}, openmp {k.openmp_enabled})",
        "python": platform.python_version(),
        "numpy": np.__version__,
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
    an int or a list (default: the process's OpenMP default). Each thread count runs in a child
    process started with ``OMP_NUM_THREADS``.
    """
    from lrn_core._api import kernels

    t_start = time.perf_counter()
    _require(["threadpoolctl", "tqdm"])
    s = Settings(shapes=_names(shapes) or list(SHAPES), **options)
    s.variants = _choose(s.variants, VARIANTS, "variant")
    wanted = (
        _choose(s.frameworks, ("numpy",) + FRAMEWORKS, "framework", FRAMEWORK_ALIASES) or FRAMEWORKS
    )
    s.frameworks = ["numpy"] + [f for f in FRAMEWORKS if f in wanted and _installed(f)]
    missing = [f for f in FRAMEWORKS if f in wanted and f not in s.frameworks]
    for name, (normal, quick) in DEFAULTS.items():
        if getattr(s, name) is None:
            setattr(s, name, quick if s.quick else normal)
    if min(s.repeat, s.rounds, s.batch) < 1 or s.warmup < 0:
        raise ValueError(
            f"repeat ({s.repeat}), rounds ({s.rounds}) and batch ({s.batch}) must be "
            f">= 1, warmup ({s.warmup}) >= 0"
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
    rows = []
    for t in s.threads:
        try:
            got, report = _run_child([c for c in cases if c.threads == t], s, t)
        except Exception as exc:  # the child died or failed: go on with the other counts
            meta["notes"].append(f"threads={t}: the child process failed: {_short(exc)}")
            continue
        rows += got
        meta["threads_reported"][str(t)] = report
        if report["lrn-core (OpenMP)"] != t:
            meta["notes"].append(f"lrn-core ran {report['lrn-core (OpenMP)']} threads, not {t}")
    _summarise(rows)
    meta["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    meta["loadavg_end"] = _loadavg()
    start, ncpu = meta["loadavg_start"], os.cpu_count() or 1
    if start and start[0] >= 0.5 * ncpu:
        meta["notes"].append(
            f"the machine was busy before the run (1-min load average {start[0]:g} on {ncpu} "
            "logical CPUs): other processes competed for the cores; look at the min column too, "
            "or rerun on a quiet machine"
        )
    return BenchResult(rows, meta)


# --- reports -------------------------------------------------------------------------------------

COLUMNS = ["implementation", "layout", "pass", "median ms", "min ms", "IQR %", "x copy"]
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


def _fmt(v, spec):
    return "" if v is None else f"{v:{spec}}"


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
            numbers = [_fmt_ms(r.median_ms), _fmt_ms(r.min_ms), _fmt(r.iqr_pct, ".0f")]
            numbers += [_fmt_ratio(r.x_copy), _fmt_ratio(r.speedup, "x")]
            numbers += [_fmt(r.peak_extra_mib, ".1f")]
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
    meta, env = result.meta, result.meta["environment"]
    s = meta["settings"]
    per = _split(s["repeat"], s["rounds"])
    names = {"torch": "torch", "tensorflow": "TensorFlow", "jax": "JAX"}
    fws = "".join(f", {name} {env[key]}" for key, name in names.items() if env.get(key))
    a, b = meta.get("loadavg_start"), meta.get("loadavg_end")
    load = (
        f"1-min load average {a[0]:g} before, {b[0]:g} after the run (this one included), "
        f"on {env['logical_cpus']} logical CPUs"
        if a and b
        else "load average unknown"
    )
    lines = [
        f"method: median of {s['repeat']} timed calls per row ({len(per)} round(s) of "
        f"{'/'.join(map(str, per))} back-to-back calls, each after {s['warmup']} untimed "
        "warm-up call(s)); time.perf_counter, gc off; ratios within the same run",
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


#: ``lrn-core bench``'s options: flag, then its help (``{...}`` filled in by :func:`build_parser`)
HELP = """
--shapes       comma-separated names ({shapes}) or CxHxW / NxCxHxW (default: the four names)
--batch        batch of the shapes (default {batch[0]}; {batch[1]} with --quick)
--repeat       timed calls per row (default {repeat[0]}; {repeat[1]} with --quick)
--rounds       rounds the timed calls are split into, every row once per round (default \
{rounds[0]}; {rounds[1]} with --quick)
--warmup       untimed calls per row before each round (default {warmup[0]})
--threads      thread counts, e.g. 1,2 (default: the process default)
--frameworks   numpy,torch,tf,jax (default: every one installed; numpy always runs)
--variants     extra cases: {variants} or all
--compile      time torch.compile (default: yes, except with --quick; compiling takes tens of \
seconds per case)
--quick        smoke run: batch {batch[1]}, {repeat[1]} repeats in {rounds[1]} round, no \
torch.compile
--markdown     also write the report as Markdown
--plot         also write a PNG bar chart (needs matplotlib)
--json         also write every timing as JSON
--no-progress  no progress bar (tqdm) on stderr
--no-memory    do not measure each row's peak extra memory (one untimed call)
"""
LIST, INT = {"metavar": "LIST"}, {"type": int}  # run() splits and checks them
#: argparse keywords of each option
OPTIONS = {
    "--shapes": LIST,
    "--batch": INT,
    "--repeat": INT,
    "--rounds": INT,
    "--warmup": INT,
    "--threads": LIST,
    "--frameworks": LIST,
    "--variants": LIST,
    "--compile": {"action": argparse.BooleanOptionalAction},
    "--quick": {"action": "store_true"},
    "--markdown": {"metavar": "FILE"},
    "--plot": {"metavar": "FILE"},
    "--json": {"metavar": "FILE"},
    "--no-progress": {"dest": "progress", "action": "store_false"},
    "--no-memory": {"dest": "memory", "action": "store_false"},
}


def build_parser(prog="lrn-core bench"):
    p = argparse.ArgumentParser(
        prog=prog,
        description="Time lrn-core against the native LRNs installed (torch eager, torch.compile, "
        "TensorFlow in tf.function and eager, jitted jnp) and the copy floor "
        "(numpy.copyto of the same array). Prints medians and ratios measured in the "
        "same run, as Markdown.",
        epilog="Shapes: "
        + "; ".join(f"{n} = (N, {', '.join(map(str, s))}): {d}" for n, (s, d) in SHAPES.items())
        + ". Variants: "
        + "; ".join(f"{n}: {d}" for n, d in VARIANTS.items())
        + ". Each thread count runs in a child process with OMP_NUM_THREADS set; torch and "
        "TensorFlow (intra-op) follow it.",
    )
    fill = {"shapes": ", ".join(SHAPES), "variants": ", ".join(VARIANTS), **DEFAULTS}
    helps = dict(ln.split(None, 1) for ln in HELP.strip().splitlines())
    for flag, kw in OPTIONS.items():
        p.add_argument(flag, **kw, help=helps[flag].format(**fill))
    return p


def main(argv=None):
    """``lrn-core bench [options]``: run, print the report, write the files asked for. A usage
    error or a missing library exits with status 2 (argparse's ``error``)."""
    parser = build_parser()
    options = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    markdown, json_path, png = (options.pop(k, None) for k in ("markdown", "json", "plot"))
    try:
        _require(["matplotlib"] if png else [], " --plot")
        result = run(**options)
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
    sys.exit(main())
