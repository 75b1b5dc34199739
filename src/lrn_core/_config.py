"""Build and run-time configuration, in the manner of ``numpy.show_config()``."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys

from . import _buffers
from ._dispatch import kernels

FRAMEWORKS = ("numpy", "torch", "tensorflow", "keras", "jax", "flax")


def _version_of(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def frameworks_found():
    """Installed frameworks and their versions (``{"numpy": "2.4.6", ...}``), read from the
    installed distributions' metadata without importing them."""
    found = {}
    for name in FRAMEWORKS:
        if importlib.util.find_spec(name) is None:
            continue
        dist = name
        if name == "tensorflow" and _version_of("tensorflow") is None:
            dist = "tensorflow-cpu"
        found[name] = _version_of(dist) or "unknown"
    return found


def get_config():
    """A dict with version, kernels in use, SIMD level, OpenMP, threads, build flags, the output
    cache limit (MiB, LRN_CORE_OUTPUT_CACHE_MB) and the frameworks found."""
    from . import __version__

    k = kernels()
    return {
        "lrn_core": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "kernels": k.__name__,
        "simd": k.simd,
        "vector_pow": k.vector_pow,
        "openmp": k.openmp_enabled,
        "openmp_version": k.openmp_version,
        "threads": k.max_threads(),
        "forked_child": k.fork_capped(),
        "build_cflags": k.build_cflags,
        "output_cache_mib": _buffers.limit >> 20,
        "tf_op_library": _tf_op_library(),
        "frameworks": frameworks_found(),
    }


def _tf_op_library():
    """The file name of the TF op library built with the core (docs/tensorflow.rst), or why not."""
    import pathlib

    found = sorted(pathlib.Path(__file__).parent.glob("_lrn_tf_op*.so"))
    return found[0].name if found else "not built (TensorFlow graphs use the other routes)"


def restore_threads_after_fork():
    """Let a forked child run the kernels on several threads again.

    In a process made by ``fork`` (``os.fork``, ``multiprocessing``'s "fork" start method, the
    default on Linux before Python 3.14, a forking ``DataLoader``), lrn-core runs its kernels on
    one thread: GNU OpenMP's thread pool does not survive ``fork``, and a child that entered a
    parallel region would wait forever for threads that no longer exist. This lifts that cap,
    which is safe only if no parallel lrn-core call ran in the parent before the fork; otherwise
    it raises and the child stays single-threaded. Children started with the "spawn" or
    "forkserver" method have all their threads from the start. Returns the thread count now
    in use (as :func:`get_config` reports it). In a process that was not forked, it does nothing.

    Raises
    ------
    RuntimeError
        The parent ran a parallel lrn-core call before it forked this process.
    """
    k = kernels()
    if not k.release_fork_cap():
        raise RuntimeError(
            "lrn_core.restore_threads_after_fork: this process was forked after lrn-core ran "
            "OpenMP threads in its parent, whose thread pool does not survive fork; it stays on "
            "one thread. For threaded workers start them with the 'spawn' or 'forkserver' "
            "method (multiprocessing.get_context('spawn'))."
        )
    return k.max_threads()


def show_config(extra=None):
    """Print :func:`get_config` for bug reports (``lrn-core info`` prints the same, and adds
    rows of its own through ``extra``, a dict)."""
    cfg = {**get_config(), **(extra or {})}
    width = max(len(key) for key in cfg)
    for key, value in cfg.items():
        if key == "frameworks":
            value = ", ".join(f"{n} {v}" for n, v in value.items()) or "none"
        elif key == "openmp" and not value:
            value = "False (single-threaded build)"
        print(f"{key:<{width}}  {value}")
