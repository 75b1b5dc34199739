"""The side-by-side timing harness behind ``lrn-core bench``.

Times lrn-core against every native LRN installed and against the copy floor, on the LRN shapes
of AlexNet and GoogLeNet, forward and forward+backward, and prints a table of medians and ratios
(optionally also Markdown, JSON and a PNG bar chart)::

    lrn-core bench                               # all installed frameworks, 4 shapes, batch 32
    lrn-core bench --quick                       # tiny smoke run (CI)
    lrn-core bench --shapes alexnet-conv1 --threads 1,2 --markdown bench.md --plot bench.png
    python -m lrn_core.benchmarks.harness --help

Programmatic use: :func:`run` returns a :class:`BenchResult`; :func:`main` is the command line.

Method
------
* Every row of a case (one shape, dtype, parameters and thread count) is measured in the same
  process and the same time window: the repeats are split into ``--rounds`` rounds; in each round
  every row runs ``--warmup`` untimed calls and then its share of the timed calls back to back
  (``time.perf_counter`` around each call, garbage collector off). Medians are over all timed
  calls; every ratio is between medians of the same run.
* The copy floor is ``numpy.copyto`` of the same array into a preallocated array (reads and writes
  the bytes of x once: the memory traffic of an ideal forward pass; an ideal backward reads x and
  dy and writes dx, 1.5 copies; forward+backward 2.5 copies).
* torch.compile is compiled and warmed up (forward, and forward+backward) before any timing.
* Thread counts other than the process default (and every count when several are asked for) run in
  a child process started with ``OMP_NUM_THREADS=t``; there lrn-core's OpenMP, torch
  (``torch.set_num_threads``) and TensorFlow (intra-op threads, set before TF initialises) all use
  ``t`` threads. threadpoolctl, if installed, also limits every OpenMP/BLAS pool. What each
  framework actually reports is printed in the header.

Importing this module imports neither torch nor TensorFlow; they are imported only when installed
and requested (``--frameworks``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

__all__ = ["main", "run", "BenchResult", "Row", "Case", "SHAPES", "VARIANTS", "format_table",
           "to_markdown", "plot"]

# --- what is measured --------------------------------------------------------------------------

#: name -> ((C, H, W), description); the batch comes from --batch (default 32)
SHAPES = {
    "alexnet-conv1": ((96, 55, 55), "AlexNet LRN after conv1 (the DESIGN reference shape)"),
    "alexnet-conv2": ((256, 27, 27), "AlexNet LRN after conv2"),
    "googlenet-lrn1": ((64, 56, 56), "GoogLeNet LRN after conv1/pool1"),
    "googlenet-lrn2": ((192, 56, 56), "GoogLeNet LRN after conv2"),
}
REFERENCE = "alexnet-conv1"
DEFAULT_BATCH = 32
QUICK_BATCH = 2

#: optional variants (--variants)
VARIANTS = {
    "size25": "size 25 (a wide window) on the first selected shape",
    "float64": "float64 on the first selected shape (TensorFlow has no float64 LRN)",
    "beta0.6": "beta 0.6 (the generic pow path) on the first selected shape",
    "nhwc": "extra lrn-core NumPy rows with axis=-1 on the NHWC array, in every case",
    "small": "a small input (1, 16, 8, 8) at 1 and 2 threads (call overhead)",
    "ladder": "sizes from 1x1x1x1 (the per-call overhead) and 1x16x8x8 up to the AlexNet shape",
    "tiny": "a tiny input (1, 8, 2, 2) at 1 thread (fixed cost per call)",
}
SMALL_SHAPE = (1, 16, 8, 8)
TINY_SHAPE = (1, 8, 2, 2)
#: the "ladder" variant: (name, shape); the 1-element case times the per-call overhead alone
LADDER = [("per-call overhead 1x1x1x1", (1, 1, 1, 1)), ("ladder 1x16x8x8", SMALL_SHAPE),
          ("ladder 1x96x27x27", (1, 96, 27, 27)), ("ladder 1x96x55x55", (1, 96, 55, 55)),
          ("ladder 8x96x55x55", (8, 96, 55, 55)), ("ladder 32x96x55x55", (32, 96, 55, 55))]

FRAMEWORK_ALIASES = {"numpy": "numpy", "np": "numpy", "torch": "torch", "pytorch": "torch",
                     "tf": "tensorflow", "tensorflow": "tensorflow", "jax": "jax"}
ALL_FRAMEWORKS = ("numpy", "torch", "tensorflow", "jax")

# implementation labels, in table order: (label, framework, kind)
IMPLS = [
    ("copy floor (numpy.copyto)", "numpy", "copy"),
    ("lrn-core numpy", "numpy", "core"),
    ("lrn-core numpy NHWC", "numpy", "core"),
    ("lrn-core torch adapter", "torch", "adapter"),
    ("torch eager (native)", "torch", "native"),
    ("torch.compile (native)", "torch", "native"),
    ("lrn-core tf adapter", "tensorflow", "adapter"),
    ("tf native", "tensorflow", "native"),
    ("lrn-core tf adapter, eager", "tensorflow", "adapter"),
    ("tf native, eager", "tensorflow", "native"),
    ("lrn-core jax adapter", "jax", "adapter"),
    ("jax.jit jnp (native)", "jax", "native"),
]
IMPL_KIND = {label: kind for label, _, kind in IMPLS}
IMPL_ORDER = {label: i for i, (label, _, _) in enumerate(IMPLS)}
PASS_ORDER = {"copy": 0, "fwd": 1, "bwd": 2, "fwd+bwd": 3}
#: copies of x an ideal implementation must move (the memory-traffic floor, in copy floors)
TRAFFIC = {"copy": 1.0, "fwd": 1.0, "bwd": 1.5, "fwd+bwd": 2.5}


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

    @property
    def key(self):
        return (self.name, self.threads)

    def describe(self):
        return (f"{self.name} {tuple(self.shape)} {self.dtype} size={self.size} "
                f"alpha={self.alpha:g} beta={self.beta:g} k={self.k:g} threads={self.threads}")


@dataclasses.dataclass
class Row:
    """One implementation and pass of one case: timings and ratios (ratios filled by the run)."""

    case: str
    shape: tuple
    dtype: str
    size: int
    beta: float
    threads: int
    impl: str
    kind: str          # copy | core | adapter | native
    framework: str     # numpy | torch | tensorflow
    layout: str        # NCHW | NHWC
    pass_: str         # copy | fwd | bwd | fwd+bwd
    times_ms: list = dataclasses.field(default_factory=list)
    status: str = "ok"  # ok, or why there is no number
    median_ms: float | None = None
    min_ms: float | None = None
    iqr_pct: float | None = None
    x_copy: float | None = None        # median / copy-floor median of the same case
    speedup: float | None = None       # fastest native median of this pass / median
    best_native: str | None = None     # which native was fastest for this pass
    peak_extra_mib: float | None = None  # rise of the peak resident set during one call

    @property
    def ok(self):
        return self.status == "ok" and self.median_ms is not None


@dataclasses.dataclass
class BenchResult:
    """Rows of every case, plus the environment and the method (``meta``)."""

    rows: list
    meta: dict

    def cases(self):
        """Case keys ``(name, threads)`` in the order they were run."""
        seen = []
        for r in self.rows:
            if (r.case, r.threads) not in seen:
                seen.append((r.case, r.threads))
        return seen

    def case_rows(self, key):
        rows = [r for r in self.rows if (r.case, r.threads) == key]
        return sorted(rows, key=lambda r: (PASS_ORDER[r.pass_], IMPL_ORDER.get(r.impl, 99)))

    def get(self, case, impl, pass_, threads=None):
        for r in self.rows:
            if r.case == case and r.impl == impl and r.pass_ == pass_ and (
                    threads is None or r.threads == threads):
                return r
        return None

    def table(self):
        return format_table(self)

    def markdown(self):
        return to_markdown(self)

    def to_dict(self):
        return {"meta": self.meta, "rows": [dataclasses.asdict(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, d):
        rows = []
        for r in d["rows"]:
            r = dict(r)
            r["shape"] = tuple(r["shape"])
            rows.append(Row(**r))
        return cls(rows=rows, meta=d["meta"])


# --- small utilities ---------------------------------------------------------------------------

def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _default_threads():
    from lrn_core._dispatch import kernels

    return int(kernels().max_threads())


@contextlib.contextmanager
def _quiet_fd2():
    """Silence C-level stderr (TensorFlow's absl banner) while importing; replay it on error."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            tmp.seek(0)
            sys.stderr.write(tmp.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _quiet_fd2():
        import tensorflow as tf
    return tf


def _short(exc):
    msg = f"{type(exc).__name__}: {exc}".strip().splitlines()
    msg = msg[0] if msg else type(exc).__name__
    return msg if len(msg) <= 110 else msg[:107] + "..."


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _fmt_ms(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.1f}"
    if v >= 10:
        return f"{v:.2f}"
    if v >= 1:
        return f"{v:.3f}"
    return f"{v:.4f}"


def _fmt_ratio(v, suffix=""):
    if v is None:
        return ""
    if v >= 100:
        return f"{v:.0f}{suffix}"
    if v >= 10:
        return f"{v:.1f}{suffix}"
    return f"{v:.2f}{suffix}"


# --- progress ----------------------------------------------------------------------------------

class _Progress:
    """tqdm if installed, else a plain progress line on stderr (one line per 10% without a tty)."""

    def __init__(self, total, prefix="bench", enabled=True):
        self.total = max(int(total), 1)
        self.done = 0
        self.prefix = prefix
        self.enabled = enabled
        self.text = ""
        self._bar = None
        self._last = 0.0
        self._decile = -1
        self._tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
        if enabled and _installed("tqdm"):
            try:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=self.total, desc=prefix, unit="call", file=sys.stderr,
                                 dynamic_ncols=True, leave=False)
            except Exception:
                self._bar = None

    def describe(self, text):
        self.text = text
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)
        else:
            self._draw(force=True)

    def update(self, n=1):
        self.done = min(self.done + n, self.total)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
        else:
            self._draw()

    def _draw(self, force=False):
        frac = self.done / self.total
        if self._tty:
            now = time.monotonic()
            if not force and now - self._last < 0.1 and self.done < self.total:
                return
            self._last = now
            width = 24
            filled = int(round(frac * width))
            line = (f"\r{self.prefix} [{'#' * filled}{'.' * (width - filled)}] {frac:4.0%} "
                    f"{self.done}/{self.total} {self.text}")
            import shutil

            cols = max(shutil.get_terminal_size((100, 24)).columns - 1, 40)
            sys.stderr.write(line[:cols + 1].ljust(cols + 1))  # + 1 for the leading \r
            sys.stderr.flush()
        else:
            decile = int(frac * 10)
            if decile != self._decile:
                self._decile = decile
                sys.stderr.write(f"{self.prefix}: {frac:4.0%} {self.done}/{self.total} "
                                 f"{self.text}\n")
                sys.stderr.flush()

    def close(self):
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        elif self._tty:
            import shutil

            cols = max(shutil.get_terminal_size((100, 24)).columns - 1, 40)
            sys.stderr.write("\r" + " " * cols + "\r")
            sys.stderr.flush()


# --- threads -----------------------------------------------------------------------------------

class _Threads:
    """Apply a thread count to every runtime the run uses; record what each one reports."""

    def __init__(self, threads):
        self.threads = int(threads)
        self.report = {}
        self.notes = []
        self._limits = None
        self._torch_prev = None

    def __enter__(self):
        from lrn_core._dispatch import kernels

        k = kernels()  # load the OpenMP runtime before threadpoolctl looks for it
        if _installed("threadpoolctl"):
            try:
                from threadpoolctl import threadpool_limits

                self._limits = threadpool_limits(limits=self.threads)
            except Exception as exc:  # pragma: no cover - depends on the platform
                self.notes.append(f"threadpoolctl failed: {_short(exc)}")
        got = int(k.max_threads())
        self.report["lrn-core (OpenMP)"] = got
        if got != self.threads:
            self.notes.append(
                f"lrn-core runs {got} threads, not {self.threads} (threadpoolctl missing and "
                "OMP_NUM_THREADS not set: run `lrn-core bench --threads N` so a child process "
                "is started with OMP_NUM_THREADS=N)")
        return self

    def torch(self, torch):
        if self._torch_prev is None:
            self._torch_prev = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        self.report["torch (intra-op)"] = torch.get_num_threads()

    def tensorflow(self, tf):
        if "tensorflow (intra-op)" in self.report:
            return
        try:
            tf.config.threading.set_intra_op_parallelism_threads(self.threads)
            self.report["tensorflow (intra-op)"] = self.threads
        except RuntimeError:
            got = tf.config.threading.get_intra_op_parallelism_threads()
            self.report["tensorflow (intra-op)"] = f"{got or 'default'} (already initialised)"
            self.notes.append(
                "TensorFlow was initialised before the bench: its intra-op thread count could not "
                "be set (TF reads it once, at initialisation)")

    def __exit__(self, *exc):
        if self._torch_prev is not None and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(self._torch_prev)
        if self._limits is not None:
            self._limits.restore_original_limits()
        return False


# --- building the timed callables --------------------------------------------------------------

class _Task:
    def __init__(self, row, fn):
        self.row = row
        self.fn = fn


def _row(case, impl, framework, layout, pass_, status="ok"):
    return Row(case=case.name, shape=tuple(case.shape), dtype=case.dtype, size=case.size,
               beta=case.beta, threads=case.threads, impl=impl, kind=IMPL_KIND[impl],
               framework=framework, layout=layout, pass_=pass_, status=status)


def _planned(case, frameworks, compile_):
    """(impl, framework, layout, passes) of every row a case will have, in order."""
    plan = [("copy floor (numpy.copyto)", "numpy", "NCHW", ("copy",)),
            ("lrn-core numpy", "numpy", "NCHW", ("fwd", "bwd", "fwd+bwd"))]
    if case.nhwc_core:
        plan.append(("lrn-core numpy NHWC", "numpy", "NHWC", ("fwd", "bwd", "fwd+bwd")))
    if "torch" in frameworks:
        plan += [("lrn-core torch adapter", "torch", "NCHW", ("fwd", "fwd+bwd")),
                 ("torch eager (native)", "torch", "NCHW", ("fwd", "fwd+bwd"))]
        if compile_:
            plan.append(("torch.compile (native)", "torch", "NCHW", ("fwd", "fwd+bwd")))
    if "tensorflow" in frameworks:
        plan += [("lrn-core tf adapter", "tensorflow", "NHWC", ("fwd", "fwd+bwd")),
                 ("tf native", "tensorflow", "NHWC", ("fwd", "fwd+bwd")),
                 ("lrn-core tf adapter, eager", "tensorflow", "NHWC", ("fwd", "fwd+bwd")),
                 ("tf native, eager", "tensorflow", "NHWC", ("fwd", "fwd+bwd"))]
    if "jax" in frameworks:
        plan += [("lrn-core jax adapter", "jax", "NHWC", ("fwd", "fwd+bwd")),
                 ("jax.jit jnp (native)", "jax", "NHWC", ("fwd", "fwd+bwd"))]
    return plan


def _numpy_fns(case, x, dy, layout):
    import lrn_core

    axis = 1 if layout == "NCHW" else -1
    p = dict(size=case.size, alpha=case.alpha, beta=case.beta, k=case.k)
    y = np.empty_like(x)
    dx = np.empty_like(x)

    def fwd():
        lrn_core.lrn(x, **p, axis=axis, out=y)

    def bwd():
        lrn_core.lrn_backward(dy, x, **p, axis=axis, out=dx)

    def fwd_bwd():
        lrn_core.lrn(x, **p, axis=axis, out=y)
        lrn_core.lrn_backward(dy, x, **p, axis=axis, out=dx)

    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd_bwd}


def _torch_fns(f, xt, dyt):
    """fwd and fwd+bwd callables of a torch function ``f(x) -> y``."""
    xg = xt.detach().clone().requires_grad_(True)

    def fwd():
        f(xt)

    def fwd_bwd():
        y = f(xg)
        y.backward(dyt)
        xg.grad = None

    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


def _tf_eager_fns(tf, f, xt, dyt):
    """fwd and fwd+bwd of ``f(x) -> y`` called eagerly (a GradientTape for the backward)."""
    def fwd():
        f(xt)

    def fwd_bwd():
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = f(xt)
        tape.gradient(y, xt, output_gradients=dyt)

    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


def _tf_fns(tf, f, xt, dyt):
    """fwd and fwd+bwd of a TF function ``f(x) -> y``, each inside ``tf.function`` (how Keras
    runs a model: ``model.fit`` and ``predict`` trace their steps), for native and adapter alike.
    Eager calls pay per-op dispatch and, for the adapter, OpenMP threads competing with TF's
    spinning eager pool; see the README's TensorFlow section."""
    @tf.function
    def fwd_graph(x):
        return f(x)

    @tf.function
    def fwd_bwd_graph(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = f(x)
        return tape.gradient(y, x, output_gradients=dy)

    def fwd():
        fwd_graph(xt)

    def fwd_bwd():
        fwd_bwd_graph(xt, dyt)

    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


def jnp_lrn(x, size, alpha, beta, k):
    """LRN over the last axis as a JAX user writes it (JAX has none): ``lax.reduce_window``."""
    from jax import lax

    window = (1,) * (x.ndim - 1) + (size,)
    pad = ((0, 0),) * (x.ndim - 1) + ((size // 2, (size - 1) // 2),)
    s = lax.reduce_window(x * x, np.array(0, x.dtype), lax.add, window, (1,) * x.ndim, pad)
    return x / (k + alpha / size * s) ** beta


def _jax_fns(jax, f, x, dy):
    """fwd and fwd+bwd (y and the input gradient) of a JAX function, each under ``jax.jit``."""
    fwd_jit = jax.jit(f)

    @jax.jit
    def fwd_bwd_jit(x, dy):
        y, vjp = jax.vjp(f, x)
        return y, vjp(dy)[0]

    def fwd():
        jax.block_until_ready(fwd_jit(x))

    def fwd_bwd():
        jax.block_until_ready(fwd_bwd_jit(x, dy))

    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


def _prepare(case, frameworks, compile_, threads_ctl, progress, meta):
    """Build (and call once, compiling where needed) every timed callable of a case.

    Returns a list of :class:`_Task`; a row whose implementation is missing or fails carries the
    reason in ``status`` and a ``fn`` of None.
    """
    rng = np.random.default_rng(20240605)
    dtype = np.dtype(case.dtype)
    x = rng.standard_normal(case.shape, dtype=np.float64).astype(dtype)
    dy = rng.standard_normal(case.shape, dtype=np.float64).astype(dtype)
    x_nhwc = dy_nhwc = None
    if case.nhwc_core or "tensorflow" in frameworks or "jax" in frameworks:
        x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        dy_nhwc = np.ascontiguousarray(dy.transpose(0, 2, 3, 1))
    tasks = []

    def add(impl, framework, layout, build, passes):
        """build() -> {pass: fn}; failures become a status on every pass of the row."""
        progress.describe(f"{case.name} t={case.threads}: preparing {impl}")
        try:
            fns = build()
            err = None
        except Exception as exc:
            fns, err = {}, exc
        for pass_ in passes:
            row = _row(case, impl, framework, layout, pass_)
            fn = fns.get(pass_)
            if err is not None:
                row.status = _status_of(err)
            elif fn is None:
                row.status = "n/a"
            else:
                try:
                    t0 = time.perf_counter()
                    fn()  # first call outside timing: imports, allocator, compilation
                    first = time.perf_counter() - t0
                    if impl.startswith("torch.compile"):
                        meta.setdefault("compile_seconds", {})[
                            f"{case.name} t={case.threads} {pass_}"] = round(first, 1)
                except Exception as exc:
                    row.status = _status_of(exc)
                    fn = None
            tasks.append(_Task(row, fn if row.status == "ok" else None))

    dst = np.empty_like(x)
    add("copy floor (numpy.copyto)", "numpy", "NCHW",
        lambda: {"copy": lambda: np.copyto(dst, x)}, ("copy",))
    add("lrn-core numpy", "numpy", "NCHW", lambda: _numpy_fns(case, x, dy, "NCHW"),
        ("fwd", "bwd", "fwd+bwd"))
    if case.nhwc_core:
        add("lrn-core numpy NHWC", "numpy", "NHWC",
            lambda: _numpy_fns(case, x_nhwc, dy_nhwc, "NHWC"), ("fwd", "bwd", "fwd+bwd"))

    def failed(impls, exc):
        for impl, framework, layout, passes in impls:
            for pass_ in passes:
                tasks.append(_Task(_row(case, impl, framework, layout, pass_,
                                        status=f"error: import failed ({_short(exc)})"), None))

    planned = _planned(case, frameworks, compile_)
    if "torch" in frameworks:
        try:
            import torch
            import torch.nn.functional as F
        except Exception as exc:  # installed but broken
            failed([p for p in planned if p[1] == "torch"], exc)
            frameworks = [f for f in frameworks if f != "torch"]
    if "torch" in frameworks:
        threads_ctl.torch(torch)
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
        p = (case.size, case.alpha, case.beta, case.k)

        def torch_adapter():
            from lrn_core.adapters.torch import local_response_norm

            return _torch_fns(lambda t: local_response_norm(t, *p), xt, dyt)

        add("lrn-core torch adapter", "torch", "NCHW", torch_adapter, ("fwd", "fwd+bwd"))
        add("torch eager (native)", "torch", "NCHW",
            lambda: _torch_fns(lambda t: F.local_response_norm(t, *p), xt, dyt),
            ("fwd", "fwd+bwd"))
        if compile_:
            def compiled():
                torch._dynamo.reset()  # one compiled graph per case; no recompile limit
                progress.describe(f"{case.name} t={case.threads}: torch.compile "
                                  "(compiling, may take a minute)")
                cf = torch.compile(lambda t: F.local_response_norm(t, *p), dynamic=False)
                return _torch_fns(cf, xt, dyt)

            add("torch.compile (native)", "torch", "NCHW", compiled, ("fwd", "fwd+bwd"))

    if "jax" in frameworks:  # channels last, as Flax lays out activations
        try:
            import jax
        except Exception as exc:  # installed but broken
            failed([p for p in planned if p[1] == "jax"], exc)
        else:
            xj, dyj = jax.device_put(x_nhwc), jax.device_put(dy_nhwc)
            p = (case.size, case.alpha, case.beta, case.k)

            def jax_adapter():
                from lrn_core.adapters.jax import local_response_norm

                return _jax_fns(jax, lambda t: local_response_norm(t, *p), xj, dyj)

            add("lrn-core jax adapter", "jax", "NHWC", jax_adapter, ("fwd", "fwd+bwd"))
            add("jax.jit jnp (native)", "jax", "NHWC",
                lambda: _jax_fns(jax, lambda t: jnp_lrn(t, *p), xj, dyj), ("fwd", "fwd+bwd"))

    if "tensorflow" in frameworks:
        try:
            tf = _import_tf()
        except Exception as exc:  # installed but broken
            failed([p for p in planned if p[1] == "tensorflow"], exc)
            return tasks
        threads_ctl.tensorflow(tf)
        from lrn_core import conventions

        tp = conventions.to_tensorflow(conventions.from_torch(case.size, case.alpha, case.beta,
                                                              case.k))
        with tf.device("/CPU:0"):
            xtf, dytf = tf.constant(x_nhwc), tf.constant(dy_nhwc)

        def tf_adapter():
            from lrn_core.adapters.tensorflow import local_response_normalization

            return _tf_fns(tf, lambda t: local_response_normalization(t, **tp), xtf, dytf)

        add("lrn-core tf adapter", "tensorflow", "NHWC", tf_adapter, ("fwd", "fwd+bwd"))
        add("tf native", "tensorflow", "NHWC",
            lambda: _tf_fns(tf, lambda t: tf.nn.local_response_normalization(t, **tp), xtf,
                            dytf),
            ("fwd", "fwd+bwd"))

        def tf_adapter_eager():
            from lrn_core.adapters.tensorflow import local_response_normalization

            return _tf_eager_fns(tf, lambda t: local_response_normalization(t, **tp), xtf, dytf)

        add("lrn-core tf adapter, eager", "tensorflow", "NHWC", tf_adapter_eager,
            ("fwd", "fwd+bwd"))
        add("tf native, eager", "tensorflow", "NHWC",
            lambda: _tf_eager_fns(tf, lambda t: tf.nn.local_response_normalization(t, **tp),
                                  xtf, dytf),
            ("fwd", "fwd+bwd"))
    return tasks


def _status_of(exc):
    if isinstance(exc, (ImportError, AttributeError)) and "lrn_core.adapters" in str(exc):
        return f"n/a: adapter missing ({_short(exc)})"
    if isinstance(exc, ModuleNotFoundError):
        return f"n/a: {_short(exc)}"
    return f"error: {_short(exc)}"


# --- memory ------------------------------------------------------------------------------------

class _PeakMemory:
    """Peak extra resident memory of one call, on Linux: reset the high-water mark (VmHWM) with
    /proc/self/clear_refs, call, read it back. Freed heap memory is returned to the system first
    (malloc_trim) and lrn-core's output cache is emptied, so a call's allocations are counted;
    memory a framework's allocator keeps cached across calls is not."""

    def __init__(self):
        self.ok = False
        self._trim = None
        if not sys.platform.startswith("linux"):
            return
        try:
            self._read()
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.ok = True
        except (OSError, KeyError, ValueError):
            return
        try:
            import ctypes
            import ctypes.util

            self._trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            self._trim = None

    @staticmethod
    def _read():
        vals = {}
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, val = line.split(":", 1)
                    vals[key] = int(val.split()[0]) * 1024
        return vals["VmRSS"], vals["VmHWM"]

    def measure(self, fn):
        if not self.ok:
            return None
        import lrn_core

        lrn_core.empty_cache()  # lrn-core's outputs count as fresh memory, as the natives' do
        gc.collect()
        if self._trim is not None:
            self._trim(0)
        rss0, _ = self._read()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        fn()
        _, hwm = self._read()
        return max(hwm - rss0, 0) / 2**20


# --- timing ------------------------------------------------------------------------------------

def _split(repeat, rounds):
    rounds = max(1, min(rounds, repeat))
    base, extra = divmod(repeat, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


def _time_case(tasks, repeat, rounds, warmup, progress, label, memory=None):
    """Rounds of (warmup, then contiguous timed calls) for every row; fills ``row.times_ms``.

    With ``memory`` (a :class:`_PeakMemory`), one extra untimed call per row in the first round,
    after the warm-up, measures its peak extra memory.
    """
    per_round = _split(repeat, rounds)
    gc_was = gc.isenabled()
    gc.collect()  # once per case: with torch and TF loaded a collection takes ~0.3 s
    try:
        for r, n in enumerate(per_round):
            for task in tasks:
                units = warmup + n
                if task.fn is None:
                    progress.update(units)
                    continue
                progress.describe(f"{label}: {task.row.impl} {task.row.pass_} "
                                  f"(round {r + 1}/{len(per_round)})")
                fn = task.fn
                try:
                    for _ in range(warmup):
                        fn()
                        progress.update()
                    if r == 0 and memory is not None and memory.ok:
                        task.row.peak_extra_mib = memory.measure(fn)
                    times = task.row.times_ms
                    gc.disable()
                    for _ in range(n):
                        t0 = time.perf_counter()
                        fn()
                        t1 = time.perf_counter()
                        times.append((t1 - t0) * 1e3)
                        progress.update()
                except Exception as exc:
                    task.row.status = f"error: {_short(exc)}"
                    task.fn = None
                finally:
                    if gc_was:
                        gc.enable()
    finally:
        if gc_was:
            gc.enable()


def _summarise(rows):
    """Fill medians and the ratios of every case (ratios only within one case)."""
    for r in rows:
        if r.status == "ok" and r.times_ms:
            t = sorted(r.times_ms)
            r.median_ms = statistics.median(t)
            r.min_ms = t[0]
            if len(t) >= 4:
                q = statistics.quantiles(t, n=4)
                r.iqr_pct = 100.0 * (q[2] - q[0]) / r.median_ms if r.median_ms else None
            else:
                r.iqr_pct = None
        elif r.status == "ok":
            r.status = "n/a: not timed"
    keys = []
    for r in rows:
        if (r.case, r.threads) not in keys:
            keys.append((r.case, r.threads))
    for key in keys:
        rs = [r for r in rows if (r.case, r.threads) == key]
        copy = next((r for r in rs if r.kind == "copy" and r.ok), None)
        best = {}
        for r in rs:
            if r.kind == "native" and r.ok:
                if r.pass_ not in best or r.median_ms < best[r.pass_].median_ms:
                    best[r.pass_] = r
        for r in rs:
            if not r.ok:
                continue
            r.x_copy = r.median_ms / copy.median_ms if copy and copy.median_ms > 0 else None
            b = best.get(r.pass_)
            if b is not None and r.median_ms > 0:
                r.speedup = b.median_ms / r.median_ms
                r.best_native = b.impl
    return rows


# --- one process: a group of cases at one thread count -----------------------------------------

def _environment(frameworks):
    import lrn_core
    from lrn_core._config import frameworks_found
    from lrn_core._dispatch import kernels

    k = kernels()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    found = frameworks_found()
    return {
        "lrn_core": lrn_core.__version__,
        "kernels": f"{k.__name__} (simd {k.simd}, openmp {k.openmp_enabled})",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": found.get("torch") if "torch" in frameworks else None,
        "tensorflow": found.get("tensorflow") if "tensorflow" in frameworks else None,
        "jax": found.get("jax") if "jax" in frameworks else None,
        "platform": platform.platform(),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
    }


def _run_group(cases, settings, threads, progress_prefix="bench"):
    """Run cases (all at ``threads``) in this process; returns (rows, meta)."""
    frameworks = settings["frameworks"]
    meta = {"threads_reported": {}, "notes": []}
    total = 0
    for case in cases:
        for _, _, _, passes in _planned(case, frameworks, settings["compile"]):
            total += len(passes) * (settings["repeat"] + settings["warmup"] * len(
                _split(settings["repeat"], settings["rounds"])))
    progress = _Progress(total, prefix=progress_prefix, enabled=settings["progress"])
    memory = _PeakMemory() if settings.get("memory", True) else None
    rows = []
    try:
        with _Threads(threads) as ctl:
            for case in cases:
                tasks = _prepare(case, frameworks, settings["compile"], ctl, progress, meta)
                _time_case(tasks, settings["repeat"], settings["rounds"], settings["warmup"],
                           progress, f"{case.name} t={case.threads}", memory)
                rows += [t.row for t in tasks]
                del tasks
                gc.collect()
            meta["threads_reported"][str(threads)] = dict(ctl.report)
            meta["notes"] += ctl.notes
    finally:
        progress.close()
    return rows, meta


def _child_main(spec_path, out_path):
    """Entry point of a child process (one thread count); writes rows and meta as JSON."""
    with open(spec_path) as f:
        spec = json.load(f)
    cases = [Case(**{**c, "shape": tuple(c["shape"])}) for c in spec["cases"]]
    try:
        rows, meta = _run_group(cases, spec["settings"], spec["threads"],
                                progress_prefix=f"bench threads={spec['threads']}")
        payload = {"rows": [dataclasses.asdict(r) for r in rows], "meta": meta}
    except BaseException as exc:  # report, do not lose the parent's other thread counts
        payload = {"error": "".join(traceback.format_exception(exc))}
    with open(out_path, "w") as f:
        json.dump(payload, f)
    return 0


def _run_child(cases, settings, threads):
    with tempfile.TemporaryDirectory(prefix="lrn_core_bench_") as tmp:
        spec_path = os.path.join(tmp, "spec.json")
        out_path = os.path.join(tmp, "out.json")
        with open(spec_path, "w") as f:
            json.dump({"cases": [dataclasses.asdict(c) for c in cases], "settings": settings,
                       "threads": threads}, f)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        # ``python -c`` puts the working directory first on sys.path: drop it, so that a stray
        # module there (a script named like a stdlib or framework module) cannot shadow one.
        code = ("import sys; sys.path = [p for p in sys.path if p != '']; "
                "from lrn_core.benchmarks.harness import _child_main; "
                "sys.exit(_child_main(sys.argv[1], sys.argv[2]))")
        proc = subprocess.run([sys.executable, "-c", code, spec_path, out_path], env=env)
        payload = None
        if os.path.exists(out_path):
            with open(out_path) as f:
                payload = json.load(f)
    if payload is None or "error" in payload:
        why = (payload or {}).get("error") or f"child exited with code {proc.returncode}"
        return None, why
    rows = []
    for r in payload["rows"]:
        r["shape"] = tuple(r["shape"])
        rows.append(Row(**r))
    return rows, payload["meta"]


# --- planning ----------------------------------------------------------------------------------

def _parse_shape(spec, batch):
    spec = spec.strip()
    if spec in SHAPES:
        return spec, (batch,) + SHAPES[spec][0]
    try:
        dims = tuple(int(d) for d in spec.lower().replace(",", "x").split("x") if d)
    except ValueError:
        dims = ()
    if len(dims) == 3:
        dims = (batch,) + dims
    if len(dims) != 4 or min(dims) < 1:
        raise ValueError(f"unknown shape {spec!r}: use one of {', '.join(SHAPES)} or CxHxW or "
                         "NxCxHxW")
    return "x".join(map(str, dims)), dims


def _plan(shapes, batch, variants, threads_list):
    """The cases to run, in order."""
    named = [_parse_shape(s, batch) for s in shapes]
    nhwc = "nhwc" in variants
    cases = []
    for t in threads_list:
        for name, shape in named:
            cases.append(Case(name=name, shape=shape, threads=t, nhwc_core=nhwc))
        if named:
            name, shape = named[0]
            if "size25" in variants:
                cases.append(Case(name=f"{name} size=25", shape=shape, size=25, threads=t,
                                  nhwc_core=nhwc))
            if "float64" in variants:
                cases.append(Case(name=f"{name} float64", shape=shape, dtype="float64",
                                  threads=t, nhwc_core=nhwc))
            if "beta0.6" in variants:
                cases.append(Case(name=f"{name} beta=0.6", shape=shape, beta=0.6, threads=t,
                                  nhwc_core=nhwc))
    if "ladder" in variants:
        for t in threads_list:
            for name, shape in LADDER:
                cases.append(Case(name=name, shape=shape, threads=t, nhwc_core=nhwc))
    if "small" in variants:
        for t in (1, 2):
            cases.append(Case(name="small " + "x".join(map(str, SMALL_SHAPE)), shape=SMALL_SHAPE,
                              threads=t, nhwc_core=nhwc))
    if "tiny" in variants:
        cases.append(Case(name="tiny " + "x".join(map(str, TINY_SHAPE)), shape=TINY_SHAPE,
                          threads=1, nhwc_core=nhwc))
    return cases


def _frameworks(requested):
    """(frameworks to run, notes): numpy always; the others only when installed."""
    notes = []
    if requested is None:
        wanted = list(ALL_FRAMEWORKS)
        explicit = False
    else:
        if isinstance(requested, str):
            requested = requested.split(",")
        wanted = []
        for name in requested:
            name = name.strip().lower()
            if not name:
                continue
            if name not in FRAMEWORK_ALIASES:
                raise ValueError(f"unknown framework {name!r}: use numpy, torch, tf, jax")
            wanted.append(FRAMEWORK_ALIASES[name])
        explicit = True
    out = ["numpy"]
    for fw in ("torch", "tensorflow", "jax"):
        if fw not in wanted:
            continue
        if _installed(fw):
            out.append(fw)
        else:
            notes.append(f"{fw} is not installed: its rows are skipped"
                         + (" (requested with --frameworks)" if explicit else ""))
    return out, notes


# --- the public entry points -------------------------------------------------------------------

def run(shapes=None, *, batch=None, repeat=None, rounds=None, warmup=None, frameworks=None,
        compile=None, variants=(), threads=None, quick=False, progress=True, memory=True,
        isolate=None):
    """Run the benchmark and return a :class:`BenchResult`.

    Parameters
    ----------
    shapes : list of str, optional
        Names from :data:`SHAPES` or ``CxHxW`` / ``NxCxHxW``; default all four named shapes.
    batch : int, optional
        Batch of the named and ``CxHxW`` shapes; default 32 (2 with ``quick``).
    repeat, rounds, warmup : int, optional
        Timed calls per row (default 15; 3 with ``quick``), the rounds they are split into
        (default 3; 1 with ``quick``) and the untimed calls per row and round (default 1).
    frameworks : list of str or comma-separated str, optional
        Any of numpy, torch, tf; default every one installed. numpy (copy floor, lrn-core) always
        runs.
    compile : bool, optional
        Time torch.compile (compiling takes tens of seconds per case); default True, False with
        ``quick``.
    variants : iterable of str
        Any of :data:`VARIANTS` (``"all"`` for every one).
    threads : int or list of int, optional
        Thread counts; default the process default (what OpenMP reports).
    memory : bool
        Also measure each row's peak extra memory with one untimed call (Linux only).
    isolate : bool, optional
        Run each thread count in a child process with ``OMP_NUM_THREADS`` set. Default: when
        several thread counts are asked for, or one that differs from the process default.
    """
    t_start = time.perf_counter()
    if isinstance(variants, str):
        variants = [v for v in variants.split(",") if v.strip()]
    variants = [v.strip().lower() for v in variants]
    if "all" in variants:
        variants = list(VARIANTS)
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}: use {', '.join(VARIANTS)} or all")
    batch = batch or (QUICK_BATCH if quick else DEFAULT_BATCH)
    repeat = repeat or (3 if quick else 15)
    rounds = rounds or (1 if quick else 3)
    warmup = 1 if warmup is None else warmup
    if repeat < 1 or rounds < 1 or warmup < 0 or batch < 1:
        raise ValueError("repeat, rounds and batch must be >= 1, warmup >= 0")
    if compile is None:
        compile = not quick
    fws, notes = _frameworks(frameworks)
    if "torch" not in fws:
        compile = False
    default = _default_threads()
    if threads is None:
        threads_list = [default]
    elif isinstance(threads, int):
        threads_list = [threads]
    else:
        threads_list = [int(t) for t in threads]
    if any(t < 1 for t in threads_list):
        raise ValueError("thread counts must be >= 1")
    threads_list = list(dict.fromkeys(threads_list))
    shapes = list(shapes) if shapes else list(SHAPES)
    cases = _plan(shapes, batch, variants, threads_list)
    settings = {"frameworks": fws, "compile": bool(compile), "repeat": int(repeat),
                "rounds": int(rounds), "warmup": int(warmup), "progress": bool(progress),
                "memory": bool(memory)}
    groups = list(dict.fromkeys(c.threads for c in cases))
    if isolate is None:
        isolate = len(groups) > 1 or groups != [default]

    meta = {
        "environment": _environment(fws),
        "settings": {**settings, "batch": batch, "shapes": shapes, "variants": variants,
                     "threads": groups, "isolated": bool(isolate), "quick": bool(quick),
                     "rounds_effective": len(_split(repeat, rounds))},
        "threads_reported": {},
        "notes": notes,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_start": _loadavg(),
    }
    rows = []
    for t in groups:
        group = [c for c in cases if c.threads == t]
        if isolate:
            got, sub = _run_child(group, settings, t)
            if got is None:
                meta["notes"].append(f"threads={t}: the child process failed: "
                                     f"{sub.strip().splitlines()[-1] if sub.strip() else sub}")
                continue
        else:
            got, sub = _run_group(group, settings, t)
        rows += got
        meta["threads_reported"].update(sub.get("threads_reported", {}))
        meta["notes"] += [n for n in sub.get("notes", []) if n not in meta["notes"]]
        if sub.get("compile_seconds"):
            meta.setdefault("compile_seconds", {}).update(sub["compile_seconds"])
    order = {c.key: i for i, c in enumerate(cases)}  # report in plan order, not run order
    rows.sort(key=lambda r: order.get((r.case, r.threads), len(order)))
    _summarise(rows)
    meta["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    meta["loadavg_end"] = _loadavg()
    ncpu = os.cpu_count() or 1
    start = meta["loadavg_start"]
    if start and start[0] >= 0.5 * ncpu:  # measured before the bench ran: other processes
        meta["notes"].append(
            f"the machine was busy before the run (1-min load average {start[0]:g} on {ncpu} "
            "logical CPUs): other processes competed for the cores; look at the min column too, "
            "or rerun on a quiet machine")
    return BenchResult(rows=rows, meta=meta)


# --- reports -----------------------------------------------------------------------------------

COLUMNS = ["implementation", "layout", "pass", "median ms", "min ms", "IQR %", "x copy",
           "speedup vs best native", "peak extra MiB"]


def _case_header(result, key):
    rows = result.case_rows(key)
    r0 = rows[0]
    size = r0.size
    shape = "x".join(map(str, r0.shape))
    copy = next((r for r in rows if r.kind == "copy" and r.ok), None)
    parts = [f"{key[0]}: x {shape} {r0.dtype}, size {size}, beta {r0.beta:g}, threads {key[1]}"]
    extra = []
    if copy:
        extra.append(f"copy floor {_fmt_ms(copy.median_ms)} ms")
    for p in ("fwd", "fwd+bwd"):
        b = next((r for r in rows if r.pass_ == p and r.ok and r.best_native == r.impl), None)
        if b:
            extra.append(f"fastest native {p}: {b.impl} {_fmt_ms(b.median_ms)} ms")
    return parts[0], "; ".join(extra)


def _cells(rows):
    """Table cells of a case's rows, and footnotes with the reasons for rows without a number."""
    out, notes = [], []
    for r in rows:
        if not r.ok:
            short, _, why = r.status.partition(": ")
            note = f"{r.impl}: {why or short}"
            if note not in notes:
                notes.append(note)
            mark = f"{short} [{notes.index(note) + 1}]"
            out.append([r.impl, r.layout, r.pass_, mark, "", "", "", "", ""])
            continue
        out.append([r.impl, r.layout, r.pass_, _fmt_ms(r.median_ms), _fmt_ms(r.min_ms),
                    "" if r.iqr_pct is None else f"{r.iqr_pct:.0f}",
                    _fmt_ratio(r.x_copy), _fmt_ratio(r.speedup, "x"),
                    "" if r.peak_extra_mib is None else f"{r.peak_extra_mib:.1f}"])
    return out, [f"[{i + 1}] {n}" for i, n in enumerate(notes)]


def _summary_rows(result):
    """For each case and pass: lrn-core's implementations against the fastest native."""
    out = []
    for key in result.cases():
        rows = result.case_rows(key)
        for p in ("fwd", "fwd+bwd"):
            best = next((r for r in rows if r.pass_ == p and r.ok and r.best_native == r.impl),
                        None)
            cells = [key[0], str(key[1]), p]
            for impl in ("lrn-core numpy", "lrn-core torch adapter", "lrn-core tf adapter",
                         "lrn-core jax adapter"):
                r = next((r for r in rows if r.impl == impl and r.pass_ == p), None)
                cells.append("" if r is None or not r.ok else _fmt_ms(r.median_ms))
            if best:
                cells += [f"{best.impl} {_fmt_ms(best.median_ms)}"]
                core = next((r for r in rows if r.impl == "lrn-core numpy" and r.pass_ == p
                             and r.ok), None)
                cells.append(_fmt_ratio(core.speedup, "x") if core else "")
            else:
                cells += ["(no native)", ""]
            out.append(cells)
    return out


MEMORY_TEXT = ("peak extra MiB = rise of the process's peak resident memory during one call, "
               "inputs and preallocated outputs excluded, lrn-core's output cache emptied first "
               "(Linux only; memory a framework's allocator caches between calls is not seen)")

SUMMARY_COLUMNS = ["case", "threads", "pass", "lrn-core numpy ms", "torch adapter ms",
                   "tf adapter ms", "jax adapter ms", "fastest native ms", "numpy speedup"]


def _method(result):
    s = result.meta["settings"]
    per = _split(s["repeat"], s["rounds"])
    return (f"median of {s['repeat']} timed calls per row ({len(per)} round(s) of "
            f"{'/'.join(map(str, per))} back-to-back calls, each after {s['warmup']} untimed "
            f"warm-up call(s)); time.perf_counter, gc off; ratios within the same run")


def _text_table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    numeric = [i >= 3 for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) if not n else h.rjust(w)
                       for h, w, n in zip(header, widths, numeric, strict=False))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = []
        for i, (c, w) in enumerate(zip(row, widths, strict=False)):
            # a status message in the median column is left-aligned and may overflow
            cells.append(str(c).rjust(w) if numeric[i] else str(c).ljust(w))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _fw_text(env):
    return "".join(f", {name} {env[key]}" for key, name in (("torch", "torch"),
                                                             ("tensorflow", "TensorFlow"),
                                                             ("jax", "JAX"))
                   if env.get(key))


def format_table(result):
    """The plain-text report: environment, method, one table per case, summary, notes."""
    env = result.meta["environment"]
    out = ["lrn-core bench: " + _method(result),
           "env: lrn-core {lrn_core} [{kernels}], numpy {numpy}{fw}; {cpu}, {logical_cpus} "
           "logical CPUs".format(fw=_fw_text(env), **env)]
    for t, rep in sorted(result.meta.get("threads_reported", {}).items()):
        out.append(f"threads={t}: " + ", ".join(f"{k} {v}" for k, v in rep.items()))
    out.append("x copy = median / copy floor of the same case (an ideal implementation moves "
               "1 copy for fwd, 1.5 for bwd, 2.5 for fwd+bwd); speedup = fastest native median "
               "of the same pass / this median; " + MEMORY_TEXT)
    for key in result.cases():
        head, extra = _case_header(result, key)
        out += ["", head, "  " + extra if extra else ""]
        cells, foot = _cells(result.case_rows(key))
        out.append(_text_table(COLUMNS, cells))
        out += foot
    summary = _summary_rows(result)
    if summary:
        out += ["", "summary (medians, ms)", _text_table(SUMMARY_COLUMNS, summary)]
    for note in result.meta.get("notes", []):
        out.append(f"note: {note}")
    if result.meta.get("compile_seconds"):
        cs = result.meta["compile_seconds"]
        out.append("torch.compile first calls (s, untimed): "
                   + ", ".join(f"{k} {v}" for k, v in cs.items()))
    out.append(f"wall time {result.meta.get('wall_seconds', '?')} s; {_load_text(result)}")
    return "\n".join(out)


def _load_text(result):
    a, b = result.meta.get("loadavg_start"), result.meta.get("loadavg_end")
    if not a or not b:
        return "load average unknown"
    return (f"1-min load average {a[0]:g} before, {b[0]:g} after the run (this one included), "
            f"on {result.meta['environment'].get('logical_cpus')} logical CPUs")


def _md_table(header, rows):
    esc = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < 3 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in esc]
    return "\n".join(lines)


def to_markdown(result):
    """The same report as GitHub Markdown."""
    env = result.meta["environment"]
    out = ["# lrn-core bench", ""]
    out.append(f"- method: {_method(result)}")
    out.append("- environment: lrn-core {lrn_core}, kernels {kernels}, Python {python}, "
               "NumPy {numpy}{fw}".format(fw=_fw_text(env), **env))
    out.append("- machine: {cpu}, {logical_cpus} logical CPUs, {platform}".format(**env))
    for t, rep in sorted(result.meta.get("threads_reported", {}).items()):
        out.append(f"- threads={t}: " + ", ".join(f"{k} {v}" for k, v in rep.items()))
    out.append("- *x copy*: median / copy floor (`numpy.copyto` of the same array, same run). "
               "An ideal implementation moves 1 copy for fwd, 1.5 for bwd, 2.5 for fwd+bwd.")
    out.append("- *speedup*: fastest native median of the same pass / this median (> 1: faster "
               "than every native).")
    out.append(f"- *{MEMORY_TEXT.split(' = ')[0]}*: {MEMORY_TEXT.split(' = ', 1)[1]}.")
    out.append(f"- date: {result.meta.get('date', '')}; wall time "
               f"{result.meta.get('wall_seconds', '?')} s; {_load_text(result)}")
    for note in result.meta.get("notes", []):
        out.append(f"- note: {note}")
    summary = _summary_rows(result)
    if summary:
        out += ["", "## Summary (medians, ms)", "", _md_table(SUMMARY_COLUMNS, summary)]
    for key in result.cases():
        head, extra = _case_header(result, key)
        out += ["", f"## {head}", ""]
        if extra:
            out += [extra, ""]
        cells, foot = _cells(result.case_rows(key))
        out.append(_md_table(COLUMNS, cells))
        if foot:
            out += [""] + [f"{f}  " for f in foot]
    return "\n".join(out) + "\n"


def plot(result, path):
    """A PNG bar chart of the medians (one panel per case, log scale, copy floor marked).

    Raises ImportError if matplotlib is missing.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    keys = result.cases()
    panels = []
    for key in keys:
        rows = [r for r in result.case_rows(key) if r.ok and r.pass_ in ("fwd", "fwd+bwd")]
        copy = next((r for r in result.case_rows(key) if r.kind == "copy" and r.ok), None)
        impls = list(dict.fromkeys(r.impl for r in rows))
        panels.append((key, impls, rows, copy))
    n = max(len(panels), 1)
    height = sum(0.5 + 0.32 * max(len(p[1]), 1) for p in panels) + 0.8
    fig, axes = plt.subplots(n, 1, figsize=(9, max(height, 3)), squeeze=False,
                             gridspec_kw={"height_ratios": [max(len(p[1]), 1) for p in panels]
                                          or [1]})
    colors = {"fwd": "#4c72b0", "fwd+bwd": "#dd8452"}
    for ax, (key, impls, rows, copy) in zip(axes[:, 0], panels, strict=False):
        ypos = np.arange(len(impls))
        for j, p in enumerate(("fwd", "fwd+bwd")):
            vals = []
            for impl in impls:
                r = next((r for r in rows if r.impl == impl and r.pass_ == p), None)
                vals.append(r.median_ms if r else 0.0)
            bars = ax.barh(ypos + (j - 0.5) * 0.38, vals, height=0.38, color=colors[p], label=p)
            for b, v in zip(bars, vals, strict=False):
                if v > 0:
                    ax.text(v, b.get_y() + b.get_height() / 2, f" {_fmt_ms(v)}", va="center",
                            fontsize=7)
        if copy:
            ax.axvline(copy.median_ms, color="k", ls="--", lw=1)
            ax.text(copy.median_ms, -0.75, f" copy floor {_fmt_ms(copy.median_ms)} ms",
                    fontsize=7, va="bottom")
        vmax = max([r.median_ms for r in rows] + [copy.median_ms if copy else 0.0] + [1e-3])
        vmin = min([r.median_ms for r in rows] + [copy.median_ms if copy else vmax])
        ax.set_xscale("log")
        ax.set_xlim(vmin / 1.6, vmax * 3.0)
        ax.set_ylim(len(impls) - 0.4, -0.9)
        ax.set_yticks(ypos)
        ax.set_yticklabels(impls, fontsize=8)
        r0 = result.case_rows(key)[0]
        ax.set_title(f"{key[0]}  {'x'.join(map(str, r0.shape))} {r0.dtype}, threads {key[1]}",
                     fontsize=9)
        ax.grid(axis="x", which="both", alpha=0.3)
    axes[-1, 0].set_xlabel("median time per call, ms (log scale; lower is better)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("lrn-core bench", x=0.02, ha="left", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --- command line ------------------------------------------------------------------------------

def _int_list(text):
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return vals


def _positive(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    return v


def _csv(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser(prog="lrn-core bench"):
    shapes = "; ".join(f"{n} = (N, {', '.join(map(str, s))}): {d}" for n, (s, d) in SHAPES.items())
    variants = "; ".join(f"{n}: {d}" for n, d in VARIANTS.items())
    p = argparse.ArgumentParser(
        prog=prog,
        description="Time lrn-core against the native LRNs installed (torch eager, torch.compile, "
                    "tf.nn.local_response_normalization) and the copy floor (numpy.copyto of the "
                    "same array), forward and forward+backward, float32. Prints medians and "
                    "ratios measured in the same run.",
        epilog=f"Shapes: {shapes}. Variants: {variants}. Thread counts other than the default "
               "(and every count when several are given) run in a child process with "
               "OMP_NUM_THREADS set; torch.set_num_threads and TensorFlow's intra-op threads "
               "(set before TF initialises) follow it.")
    p.add_argument("--shapes", type=_csv, default=None, metavar="LIST",
                   help=f"comma-separated names ({', '.join(SHAPES)}) or CxHxW / NxCxHxW "
                        "(default: all four names)")
    p.add_argument("--batch", type=_positive, default=None,
                   help=f"batch of named shapes (default {DEFAULT_BATCH}; {QUICK_BATCH} "
                        "with --quick)")
    p.add_argument("--repeat", type=_positive, default=None,
                   help="timed calls per row (default 15; 3 with --quick)")
    p.add_argument("--rounds", type=_positive, default=None,
                   help="rounds the repeats are split into, every row once per round "
                        "(default 3; 1 with --quick)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed calls per row before each round (default 1)")
    p.add_argument("--threads", type=_int_list, default=None, metavar="LIST",
                   help="thread counts, e.g. 1,2 (default: the process default)")
    p.add_argument("--frameworks", type=_csv, default=None, metavar="LIST",
                   help="numpy,torch,tf,jax (default: all installed; numpy always runs)")
    p.add_argument("--variants", type=_csv, default=[], metavar="LIST",
                   help=f"extra cases: {', '.join(VARIANTS)} or all")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--compile", dest="compile", action="store_true", default=None,
                   help="time torch.compile (default, except with --quick)")
    g.add_argument("--no-compile", dest="compile", action="store_false",
                   help="skip torch.compile (compiling takes tens of seconds per case)")
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run: batch 2, 3 repeats in 1 round, no torch.compile")
    p.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown")
    p.add_argument("--plot", metavar="FILE", help="also write a PNG bar chart (needs matplotlib)")
    p.add_argument("--json", metavar="FILE", help="also write every timing as JSON")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar on stderr")
    p.add_argument("--no-memory", dest="memory", action="store_false",
                   help="do not measure the peak extra memory of each row (one untimed call)")
    return p


def main(argv=None):
    """``lrn-core bench [options]``: run, print the table, write the requested files.

    Returns the exit code: 0, or 2 for a usage error (also raised as SystemExit by argparse).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.plot and not _installed("matplotlib"):
        print("lrn-core bench: --plot needs matplotlib, which is not installed.\n"
              "Install it with `pip install 'lrn-core[bench]'` (or `pip install matplotlib`), "
              "or drop --plot.", file=sys.stderr)
        return 2
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    try:
        result = run(args.shapes, batch=args.batch, repeat=args.repeat, rounds=args.rounds,
                     warmup=args.warmup, frameworks=args.frameworks, compile=args.compile,
                     variants=args.variants, threads=args.threads, quick=args.quick,
                     progress=args.progress, memory=args.memory)
    except ValueError as exc:
        parser.error(str(exc))
    print(result.table())
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(result.markdown())
        print(f"wrote {args.markdown}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.to_dict(), f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
