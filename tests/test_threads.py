"""Threads: OpenMP thread counts, many Python threads at once, the GIL, and leaks."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import lrn_core
from lrn_core._dispatch import kernels

SHAPE = (8, 64, 32, 32)  # large enough to run multi-threaded


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(SHAPE, dtype=np.float32)
    dy = rng.standard_normal(SHAPE, dtype=np.float32)
    return x, dy


def test_results_do_not_depend_on_the_thread_count(data):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    x, dy = data
    results = []
    for n in (1, 2, 3):
        with threadpoolctl.threadpool_limits(limits=n, user_api="openmp"):
            results.append((lrn_core.lrn(x, 5), lrn_core.lrn_backward(dy, x, 4)))
    for y, dx in results[1:]:
        np.testing.assert_array_equal(y, results[0][0])
        np.testing.assert_array_equal(dx, results[0][1])


def test_threadpoolctl_and_omp_num_threads_control_the_kernels():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not kernels().openmp_enabled:
        pytest.skip("built without OpenMP")
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert kernels().max_threads() == 1
    out = subprocess.run(
        [sys.executable, "-c", "import lrn_core; print(lrn_core.get_config()['threads'])"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "3"},
    )
    assert out.stdout.strip() == "3"


def test_many_python_threads_at_once_match_serial_calls(data):
    x, dy = data
    rng = np.random.default_rng(9)
    inputs = [rng.standard_normal((2, 16 + i, 9, 9)).astype(np.float32) for i in range(8)]
    serial = [(lrn_core.lrn(a, 5), lrn_core.lrn_backward(a, a, 4)) for a in inputs]
    results = [None] * len(inputs)
    errors = []

    def work(i):
        try:
            for _ in range(20):
                results[i] = (
                    lrn_core.lrn(inputs[i], 5),
                    lrn_core.lrn_backward(inputs[i], inputs[i], 4),
                )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (y, dx), (ys, dxs) in zip(results, serial, strict=True):
        np.testing.assert_array_equal(y, ys)
        np.testing.assert_array_equal(dx, dxs)


def test_the_gil_is_released_while_a_kernel_runs():
    """A pure-Python thread keeps counting while the main thread sits in long kernel calls."""
    x = np.random.default_rng(0).standard_normal((16, 96, 55, 55), dtype=np.float32)
    out = np.empty_like(x)
    lrn_core.lrn(x, 25, out=out)
    stop = threading.Event()
    ticks = [0]

    def count():
        while not stop.is_set():
            ticks[0] += 1

    t = threading.Thread(target=count)
    # with the GIL held, the counter would advance only at switch points (every 5 ms) between
    # kernel calls; released, it runs the whole time
    sys.setswitchinterval(1.0)
    try:
        t.start()
        time.sleep(0.01)
        before = ticks[0]
        t0 = time.perf_counter()
        calls = 0
        while time.perf_counter() - t0 < 0.3:
            lrn_core.lrn_backward(x, x, 25, out=out)
            calls += 1
        progressed = ticks[0] - before
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(0.005)
    # a held GIL allows at most one switch per second here
    assert calls >= 1 and progressed > 10_000


def test_thousands_of_calls_keep_resident_memory_flat():
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    x = np.random.default_rng(1).standard_normal((4, 32, 16, 16), dtype=np.float32)
    x_nhwc = x.transpose(0, 2, 3, 1)
    dy = np.ones_like(x)

    def burst(n):
        for _ in range(n):
            lrn_core.lrn(x, 5)
            lrn_core.lrn_backward(dy, x, 4)
            lrn_core.lrn(x_nhwc, 5, axis=-1)
            lrn_core.lrn(x.astype(np.float16), 3)
            lrn_core.window_sum(x, 7)
            try:
                lrn_core.lrn(x, 0)
            except ValueError:
                pass

    burst(300)  # warm up allocators and caches
    rss0 = proc.memory_info().rss
    burst(3000)
    grown = proc.memory_info().rss - rss0
    # 3000 x 6 calls; a leak of even one input-sized array per call would add > 1 GB
    assert grown < 8 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB"
