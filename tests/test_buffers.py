"""The output cache (lrn_core._buffers): a block is reused only once nothing references it."""

import numpy as np
import pytest
from conftest import assert_close
from reference import lrn_ref

import lrn_core
from lrn_core import _buffers

SHAPE = (4, 16, 64, 64)  # 1 MiB of float32: large enough for the cache


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(_buffers, "limit", _buffers.limit)  # restored after the test
    monkeypatch.delenv("LRN_CORE_OUTPUT_CACHE_MB", raising=False)
    _buffers.read_environment()
    lrn_core.empty_cache()
    yield
    lrn_core.empty_cache()


def set_limit_mb(monkeypatch, value):
    """Set the variable and read it again, as a program that sets it before importing does."""
    monkeypatch.setenv("LRN_CORE_OUTPUT_CACHE_MB", value)
    return _buffers.read_environment()


def test_the_variable_is_read_once_and_again_on_request(monkeypatch):
    assert _buffers.limit == 1024 << 20  # the default
    monkeypatch.setenv("LRN_CORE_OUTPUT_CACHE_MB", "3")
    assert _buffers.limit == 1024 << 20 and lrn_core.get_config()["output_cache_mib"] == 1024
    assert _buffers.read_environment() == 3 << 20 == _buffers.limit
    assert lrn_core.get_config()["output_cache_mib"] == 3
    assert set_limit_mb(monkeypatch, "-5") == 0
    assert set_limit_mb(monkeypatch, "lots") == 1024 << 20


def test_results_are_reused_only_when_released(rng):
    x = rng.standard_normal(SHAPE).astype(np.float32)
    expected = lrn_ref(x, 5)
    y1 = lrn_core.lrn(x, 5)
    y2 = lrn_core.lrn(x, 5)
    assert not np.shares_memory(y1, y2)
    view = y1[1:3, ::2]  # a view keeps its base's block busy
    address = y2.ctypes.data
    del y1, y2
    y3 = lrn_core.lrn(x + 1, 5)  # reuses y2's block, the only idle one
    assert y3.ctypes.data == address
    assert not np.shares_memory(y3, view)
    assert_close(view, expected[1:3, ::2])
    assert_close(y3, lrn_ref(x + 1, 5))


def test_small_outputs_and_a_zero_limit_bypass_the_cache(rng, monkeypatch):
    lrn_core.lrn(rng.standard_normal((2, 8, 4, 4)).astype(np.float32), 5)
    assert _buffers._blocks == []
    set_limit_mb(monkeypatch, "0")
    y = lrn_core.lrn(rng.standard_normal(SHAPE).astype(np.float32), 5)
    assert _buffers._blocks == [] and y.flags.owndata is False


def test_idle_blocks_beyond_the_limit_are_released(rng, monkeypatch):
    set_limit_mb(monkeypatch, "3")
    x = rng.standard_normal(SHAPE).astype(np.float32)
    kept = [lrn_core.lrn(x, 5) for _ in range(5)]  # all in use: all tracked
    assert len(_buffers._blocks) == 5
    del kept
    y = lrn_core.lrn(x, 5)  # reuses one block and releases idle ones beyond the limit
    counts = _buffers._refcounts(_buffers._blocks)
    idle = [b.nbytes for b, n in zip(_buffers._blocks, counts, strict=True) if n <= _buffers._IDLE]
    assert 0 < sum(idle) <= 3 << 20 and len(_buffers._blocks) == len(idle) + 1
    assert_close(y, lrn_ref(x, 5))
    lrn_core.empty_cache()
    assert _buffers._blocks == []


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (0, 2, 3, 1), (3, 1, 0, 2)])
def test_empty_like_keeps_the_memory_order_and_alignment(order):
    a = np.empty([SHAPE[i] for i in order], np.float32).transpose(np.argsort(order))
    b = _buffers.empty_like(a)
    assert b.shape == a.shape and b.strides == a.strides
    assert b.ctypes.data % _buffers.ALIGN == 0
    c = _buffers.empty_like(a, np.float64)
    assert c.dtype == np.float64
    assert np.argsort(c.strides).tolist() == np.argsort(a.strides).tolist()


def test_torch_outputs_held_by_tensors_are_not_reused(rng):
    torch = pytest.importorskip("torch")
    from lrn_core.adapters.torch import local_response_norm

    x = torch.from_numpy(rng.standard_normal(SHAPE).astype(np.float32))
    y1 = local_response_norm(x, 5)
    expected = y1.clone()
    outs = [local_response_norm(x * 2, 5) for _ in range(3)]
    assert all(o.data_ptr() != y1.data_ptr() for o in outs)
    torch.testing.assert_close(y1, expected, rtol=0, atol=0)
