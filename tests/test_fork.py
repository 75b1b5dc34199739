"""Fork safety: a process forked after a parallel lrn-core call must not hang.

GNU OpenMP's thread pool does not survive ``fork``; without the core's ``pthread_atfork`` guard
(``lrn_kernels.c``, "Fork safety") a child that enters a parallel region waits forever. Every
case runs in a fresh interpreter under a hard timeout, so a hang fails the test instead of
stalling CI. In each, the parent first runs a call large enough to start the OpenMP team, then
forks; the children compute the same bytes as the parent (results do not depend on the thread
count), and the parent's result is checked against the float64 reference.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from lrn_core._dispatch import kernels

TESTS = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 120

# the parent's work: a (16, 64, 32, 32) float32 LRN on several threads, checked, then forked
HEADER = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    import lrn_core
    from reference import lrn_ref, lrn_grad_ref
    """
)
PRELUDE = textwrap.dedent(
    """
    from lrn_core.tolerances import REFERENCE

    X = np.random.default_rng(0).standard_normal((16, 64, 32, 32), dtype=np.float32)
    DY = np.random.default_rng(1).standard_normal(X.shape, dtype=np.float32)
    Y = lrn_core.lrn(X, 5)
    DX = lrn_core.lrn_backward(DY, X, 5)
    np.testing.assert_allclose(Y, lrn_ref(X, 5), rtol=REFERENCE["float32"], atol=1e-30)
    np.testing.assert_allclose(DX, lrn_grad_ref(DY, X, 5), rtol=0, atol=1e-5)
    assert lrn_core.get_config()["threads"] == {threads}, lrn_core.get_config()
    assert not lrn_core.get_config()["forked_child"]

    def work(i):
        # runs in a child: the same bytes as the parent, and the cap reported
        y = lrn_core.lrn(X, 5)
        dx = lrn_core.lrn_backward(DY, X, 5)
        cfg = lrn_core.get_config()
        same = bool(np.array_equal(y, Y) and np.array_equal(dx, DX))
        return same, cfg["threads"], cfg["forked_child"]
    """
)


def _run(body, threads=2, extra_env=None, prelude=True):
    """Run ``body`` in a fresh interpreter (after PRELUDE's parallel calls unless ``prelude`` is
    False); it must print OK within TIMEOUT seconds."""
    if not kernels().openmp_enabled:
        pytest.skip("built without OpenMP: no thread pool to lose in a fork")
    code = HEADER.format(tests=TESTS)
    if prelude:
        code += PRELUDE.format(threads=threads)
    code += textwrap.dedent(body)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **(extra_env or {})}
    try:
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"hung (no result in {TIMEOUT} s): {exc.stderr!r}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("OK"), out.stdout + out.stderr
    return out.stdout


def test_os_fork_child_computes_the_same_numbers_on_one_thread():
    _run(
        """
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            ok, threads, capped = work(0)
            os.write(w, f"{ok} {threads} {capped}".encode())
            os._exit(0)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert os.read(r, 100).decode() == "True 1 True"
        # the parent keeps its threads
        assert lrn_core.get_config()["threads"] == 2
        print("OK")
        """
    )


def test_fork_pool_map_of_lrn():
    _run(
        """
        import multiprocessing as mp
        with mp.get_context("fork").Pool(2) as pool:
            results = pool.map(work, range(4))
            ys = pool.map(lrn_core.lrn, [X[:4], X[4:8]])
        assert results == [(True, 1, True)] * 4, results
        assert np.array_equal(np.concatenate(ys), Y[:8])
        print("OK")
        """
    )


def test_process_pool_executor_with_the_fork_context():
    _run(
        """
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as ex:
            results = list(ex.map(work, range(4)))
        assert results == [(True, 1, True)] * 4, results
        print("OK")
        """
    )


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_spawn_and_forkserver_children_keep_their_threads(method):
    _run(
        f"""
        import multiprocessing as mp
        with mp.get_context({method!r}).Pool(1) as pool:
            cfg = pool.apply(lrn_core.get_config)
            y = pool.apply(lrn_core.lrn, (X, 5))
        assert cfg["threads"] == 2 and not cfg["forked_child"], cfg
        assert np.array_equal(y, Y)
        print("OK")
        """
    )


def test_restore_threads_after_fork_refuses_after_a_parallel_parent():
    _run(
        """
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                lrn_core.restore_threads_after_fork()
                msg = "no error"
            except RuntimeError as exc:
                msg = "spawn" if "'spawn'" in str(exc) else str(exc)
            ok, threads, capped = work(0)
            os.write(w, f"{msg} {ok} {threads}".encode())
            os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        assert os.read(r, 500).decode() == "spawn True 1"
        print("OK")
        """
    )


def test_restore_threads_after_fork_when_the_parent_never_ran_threads():
    # a parent that forked before any parallel call: its child may take its threads back
    _run(
        """
        x = np.random.default_rng(0).standard_normal((16, 64, 32, 32), dtype=np.float32)
        small = lrn_core.lrn(x[:1, :4, :4, :4], 5)   # one thread: no team started
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            before = lrn_core.get_config()["threads"]
            after = lrn_core.restore_threads_after_fork()
            y = lrn_core.lrn(x, 5)                    # a team of 2 in the child
            ok = np.allclose(y, lrn_ref(x, 5), rtol=1e-6, atol=0)
            capped = lrn_core.get_config()["forked_child"]
            os.write(w, f"{before} {after} {capped} {ok}".encode())
            os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        assert os.read(r, 100).decode() == "1 2 False True"
        print("OK")
        """,
        prelude=False,
    )


def test_torch_dataloader_workers_with_the_fork_context():
    pytest.importorskip("torch")
    _run(
        """
        import torch
        from lrn_core.adapters.torch import local_response_norm
        import torch.nn.functional as F
        xt = torch.from_numpy(X)
        yt = local_response_norm(xt, 5)          # the adapter's kernels, on threads
        assert torch.equal(yt, torch.from_numpy(Y))

        class Data(torch.utils.data.Dataset):
            def __len__(self):
                return 4
            def __getitem__(self, i):
                v = xt[4 * i : 4 * i + 4]
                return local_response_norm(v, 5), F.local_response_norm(v, 5)

        loader = torch.utils.data.DataLoader(
            Data(), batch_size=None, num_workers=2, multiprocessing_context="fork"
        )
        got = list(loader)
        assert len(got) == 4
        for i, (mine, native) in enumerate(got):
            assert torch.equal(mine, torch.from_numpy(Y[4 * i : 4 * i + 4]))
            torch.testing.assert_close(mine, native, rtol=1e-5, atol=1e-6)
        print("OK")
        """
    )


@pytest.mark.parametrize(
    "framework",
    [
        "tensorflow",
        "jax",
    ],
)
def test_framework_adapters_in_a_forked_child(framework):
    # The parent imports the adapter and runs the core's threads, but not the framework's
    # runtime (neither TF nor JAX supports forking after its own runtime has started threads);
    # the child then calls the adapter, whose kernels run capped at one thread.
    pytest.importorskip(framework)
    call = {
        "tensorflow": (
            "import tensorflow as tf\n"
            "from lrn_core.adapters.tensorflow import local_response_normalization\n"
            "def child():\n"
            "    xt = tf.constant(np.moveaxis(X[:2], 1, -1))\n"
            "    mine = local_response_normalization(xt, 2, 1.0, 1e-4, 0.75).numpy()\n"
            "    native = tf.nn.local_response_normalization(xt, 2, 1.0, 1e-4, 0.75).numpy()\n"
            "    return np.allclose(mine, native, rtol=1e-5, atol=1e-6)\n"
        ),
        "jax": (
            "import jax, jax.numpy as jnp\n"
            "from lrn_core.adapters.jax import local_response_norm\n"
            "def child():\n"
            "    xj = jnp.asarray(X[:2])\n"
            "    mine = np.asarray(jax.jit(lambda v: local_response_norm(v, 5, axis=1))(xj))\n"
            "    return np.allclose(mine, Y[:2], rtol=1e-6, atol=0)\n"
        ),
    }[framework]
    _run(
        call
        + textwrap.dedent(
            """
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.write(w, str(bool(child())).encode())
                os._exit(0)
            os.close(w)
            os.waitpid(pid, 0)
            assert os.read(r, 100).decode() == "True"
            print("OK")
            """
        ),
        extra_env={"TF_CPP_MIN_LOG_LEVEL": "3"},
    )
