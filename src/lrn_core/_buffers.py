"""Output buffers: large results reuse memory their previous owner has let go of.

Writing a fresh large array costs the kernel a page fault and a page of zeros for every page
touched: for a 37 MB LRN output that is about 1.5 ms, more than half of the forward pass itself
(BENCHMARKS.md). Training calls LRN with the same shapes every step, so, like the caching
allocators of the frameworks, outputs of at least ``MIN_BYTES`` come from a small cache of
blocks. A block is handed out again only when nothing references it any more: every array,
view, ``torch.from_numpy`` tensor or DLPack capsule made from it keeps a reference to the
block (NumPy views point at their base), so its reference count tells. Results are ordinary
arrays; the cache only keeps up to ``LRN_CORE_OUTPUT_CACHE_MB`` (default 1024, 0 disables it) of
idle blocks mapped. :func:`lrn_core.empty_cache` releases them.

The variable is read once, when lrn-core is imported (as pyFFTW's config reads its own), not on
every call; :func:`read_environment` reads it again, for tests and for programs that set it later.
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

#: smaller outputs come from NumPy directly (malloc reuses small blocks itself)
MIN_BYTES = 1 << 20
#: data alignment of every block: TensorFlow (Eigen) needs 64 bytes for tensors it adopts
ALIGN = 64

#: blocks tracked at most (in use or idle); older ones are forgotten, and freed with their arrays
MAX_BLOCKS = 32

_lock = threading.Lock()
_blocks: list[np.ndarray] = []  # raw uint8 owners, oldest first


#: the environment variable holding the limit in MiB, and its default
ENV_LIMIT, DEFAULT_LIMIT_MB = "LRN_CORE_OUTPUT_CACHE_MB", 1024


def read_environment():
    """Set :data:`limit` from ``LRN_CORE_OUTPUT_CACHE_MB`` (MiB; negative means 0, anything that
    is not an integer the default) and return it in bytes."""
    global limit
    try:
        limit = max(0, int(os.environ.get(ENV_LIMIT, str(DEFAULT_LIMIT_MB)))) << 20
    except ValueError:
        limit = DEFAULT_LIMIT_MB << 20
    return limit


#: bytes of idle blocks kept at most; 0 turns the cache off. Set by :func:`read_environment`.
limit = read_environment()


def _refcounts(blocks):
    return [sys.getrefcount(raw) for raw in blocks]


#: the count of a block that only ``_blocks`` holds, measured through the same code path
_IDLE = _refcounts([np.empty(0, np.uint8)])[0]


def _aligned(raw, nbytes):
    # __array_interface__, not .ctypes: building the ctypes object costs tens of microseconds
    start = -raw.__array_interface__["data"][0] % ALIGN
    return raw[start : start + nbytes]


def _block(nbytes):
    """``nbytes`` of ALIGN-aligned uint8 memory, from the cache when a block is idle."""
    if nbytes < MIN_BYTES:  # small: no cache
        return _aligned(np.empty(nbytes + ALIGN, np.uint8), nbytes)
    if nbytes + ALIGN > limit:
        return _aligned(np.empty(nbytes + ALIGN, np.uint8), nbytes)
    with _lock:
        for i, count in enumerate(_refcounts(_blocks)):
            if count <= _IDLE and _blocks[i].nbytes == nbytes + ALIGN:
                raw = _blocks.pop(i)
                break
        else:
            raw = np.empty(nbytes + ALIGN, np.uint8)
        _blocks.append(raw)  # most recently used last
        out = _aligned(raw, nbytes)  # in use from here on
        del raw
        _trim(limit)
        return out


def _trim(limit):
    """Forget the oldest idle blocks beyond ``limit`` bytes, and the oldest beyond MAX_BLOCKS."""
    idle = [i for i, count in enumerate(_refcounts(_blocks)) if count <= _IDLE]
    total = sum(_blocks[i].nbytes for i in idle)
    drop = set()
    for i in idle:
        if total <= limit:
            break
        drop.add(i)
        total -= _blocks[i].nbytes
    kept = [raw for i, raw in enumerate(_blocks) if i not in drop]
    _blocks[:] = kept[-MAX_BLOCKS:]


def empty(shape, dtype):
    """An uninitialised C-contiguous array, 64-byte aligned, from the cache when large."""
    dtype = np.dtype(dtype)
    shape = tuple(map(int, shape))
    nbytes = math.prod(shape) * dtype.itemsize  # math.prod: np.prod costs ~5 us a call
    return _block(nbytes).view(dtype).reshape(shape)


def empty_like(a, dtype=None):
    """Like ``np.empty_like(a, dtype)`` (the axes keep ``a``'s memory order), from :func:`empty`."""
    dtype = np.dtype(dtype or a.dtype)
    if a.flags.c_contiguous:
        return empty(a.shape, dtype)
    order = sorted(range(a.ndim), key=lambda i: -abs(a.strides[i]))  # outermost axis first
    buf = empty([a.shape[i] for i in order], dtype)
    return buf.transpose(np.argsort(order))


def empty_cache():
    """Release the idle output blocks lrn-core keeps for reuse (see ``LRN_CORE_OUTPUT_CACHE_MB``).

    Blocks still in use stay with their arrays and are freed when those are.

    >>> import lrn_core
    >>> lrn_core.empty_cache()
    """
    with _lock:
        _blocks.clear()
