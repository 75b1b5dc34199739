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
        "build_cflags": k.build_cflags,
        "output_cache_mib": _buffers.limit >> 20,
        "frameworks": frameworks_found(),
    }


def show_config():
    """Print :func:`get_config` for bug reports (``lrn-core info`` prints the same)."""
    cfg = get_config()
    width = max(len(key) for key in cfg)
    for key, value in cfg.items():
        if key == "frameworks":
            value = ", ".join(f"{n} {v}" for n, v in value.items()) or "none"
        elif key == "openmp" and not value:
            value = "False (single-threaded build)"
        print(f"{key:<{width}}  {value}")
