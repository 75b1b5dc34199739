"""lrn-core: cross-channel Local Response Normalization, forward and backward.

One Cython/OpenMP core, exact and fast, for float16/float32/float64 arrays of any rank, layout
and channel axis::

    >>> import numpy as np, lrn_core
    >>> x = np.random.default_rng(0).standard_normal((2, 8, 4, 4), dtype=np.float32)
    >>> y = lrn_core.lrn(x, size=5)                       # PyTorch's defaults, NCHW
    >>> dx = lrn_core.lrn_backward(np.ones_like(y), x, size=5)

Framework adapters live in :mod:`lrn_core.adapters` (``numpy``, ``torch``, ``tensorflow``); each
imports its framework itself, so ``import lrn_core`` never imports torch or tensorflow. If torch
is already imported, ``import lrn_core`` registers the ``torch.ops.lrn_core`` ops (it imports
:mod:`lrn_core.adapters.torch`), so that saved programs calling them (``torch.export``,
TorchScript) load after ``import torch, lrn_core``.
Parameter conventions of the frameworks: :mod:`lrn_core.conventions`.
"""

from ._api import lrn, lrn_backward, window_sum
from ._buffers import empty_cache
from ._config import get_config, restore_threads_after_fork, show_config
from ._version import __version__

__all__ = [
    "lrn",
    "lrn_backward",
    "window_sum",
    "empty_cache",
    "show_config",
    "get_config",
    "restore_threads_after_fork",
    "__version__",
]


def _register_torch_ops():
    """einops-style: touch torch only if the user imported it already."""
    import sys

    if "torch" in sys.modules and "lrn_core.adapters.torch" not in sys.modules:
        try:
            from .adapters import torch as _  # noqa: F401  (defines torch.ops.lrn_core.*)
        except Exception as exc:  # the NumPy core must stay importable with any torch
            import warnings

            warnings.warn(
                f"lrn_core: the torch ops are not registered ({exc!r}); saved torch "
                f"programs calling them will not load",
                RuntimeWarning,
                stacklevel=3,
            )


_register_torch_ops()
