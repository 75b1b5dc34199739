"""Choose the compiled kernels the CPU can run.

setup.py builds the kernels twice on x86-64: ``_kernels`` for the baseline instruction set and
``_kernels_avx2`` with AVX2/FMA. The AVX2 build is used only when NumPy's CPU probe reports both
features; ``LRN_CORE_KERNELS=baseline`` forces the portable one (for debugging or comparison).
"""

from __future__ import annotations

import importlib
import os

_chosen = None


def _cpu_has_avx2():
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as feats
    return bool(feats.get("AVX2")) and bool(feats.get("FMA3"))


def kernels():
    """The compiled kernel module in use (``lrn_core._kernels`` or ``lrn_core._kernels_avx2``)."""
    global _chosen
    if _chosen is None:
        mod = None
        if os.environ.get("LRN_CORE_KERNELS", "").lower() != "baseline" and _cpu_has_avx2():
            try:
                mod = importlib.import_module("lrn_core._kernels_avx2")
            except ImportError:
                mod = None
        if mod is None:
            mod = importlib.import_module("lrn_core._kernels")
        _chosen = mod
    return _chosen
