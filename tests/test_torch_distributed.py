"""DistributedDataParallel with lrn-core's LocalResponseNorm: 2 processes, gloo on 127.0.0.1.

Each process trains on its half of the batch; DDP averages the gradients, which must then equal
the gradients of one process on the whole batch (the loss is a mean over equal halves), at
every SGD step. Run by hand: ``pytest -m distributed tests/test_torch_distributed.py``.

This file is also the worker: ``python test_torch_distributed.py RANK PORT OUT``.
"""

import gc
import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.distributed

WORLD = 2
BATCH = 8  # split in WORLD equal shards
STEPS = 3
TIMEOUT = 120  # seconds for the whole run, start-up included


def make_model(lrn):
    """A small CNN in float64 with two LRN layers (an even and an odd size), fixed weights."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        lrn(4, alpha=1e-1, beta=0.75, k=1.0),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 6, 3, padding=1),
        torch.nn.Tanh(),
        lrn(3, alpha=1.0, beta=0.5, k=2.0),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 3 * 3, 4),
    ).double()


def make_data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, 3, 6, 6, generator=g, dtype=torch.float64) * 2
    return x, torch.randint(0, 4, (BATCH,), generator=g)


def train(model, x, target):
    """STEPS of SGD; the gradients (one list per step) and the losses."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    grads, losses = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), target)
        loss.backward()
        grads.append([p.grad.detach().clone() for p in model.parameters()])
        losses.append(loss.item())
        opt.step()
    return grads, losses


def train_ddp(rank):
    """This rank's share of the run; returns once DDP (and its process group) can be freed."""
    from torch.nn.parallel import DistributedDataParallel

    from lrn_core.adapters.torch import LocalResponseNorm

    model = DistributedDataParallel(make_model(LocalResponseNorm))
    x, target = make_data()
    shard = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
    return train(model, x[shard], target[shard])


def worker(rank, port, out):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=TIMEOUT // 2),
    )
    try:
        grads, losses = train_ddp(rank)
        torch.save({"grads": grads, "losses": losses}, out)
        print(f"rank {rank}: trained and saved", flush=True)
        gc.collect()  # DDP's reducer holds the process group: free it before the group goes
        dist.barrier()
    finally:
        dist.destroy_process_group()
    print(f"rank {rank}: process group destroyed", flush=True)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loopback_env():
    """One thread per process; gloo's transport on the loopback interface."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    names = [name for _, name in socket.if_nameindex() if name.startswith("lo")]
    if names:
        env["GLOO_SOCKET_IFNAME"] = names[0]
    return env


def _run_workers(tmp_path):
    """Start WORLD workers, wait at most TIMEOUT seconds, kill them on time-out."""
    port = _free_port()
    outs = [tmp_path / f"rank{r}.pt" for r in range(WORLD)]
    procs = [
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), str(r), str(port), str(outs[r])],
            env=_loopback_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(WORLD)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=TIMEOUT)[0])
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {WORLD} DDP workers did not finish within {TIMEOUT} s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return procs, logs, outs


def test_ddp_gradients_equal_single_process(tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    from lrn_core.adapters.torch import LocalResponseNorm

    procs, logs, outs = _run_workers(tmp_path)
    if any(p.returncode for p in procs) and "ddress already in use" in "".join(logs):
        procs, logs, outs = _run_workers(tmp_path)  # the free port was taken meanwhile
    for r, (p, log) in enumerate(zip(procs, logs, strict=True)):
        assert p.returncode == 0, f"rank {r} failed:\n{log}"
    results = [torch.load(o) for o in outs]

    x, target = make_data()
    single, single_losses = train(make_model(LocalResponseNorm), x, target)
    native, native_losses = train(make_model(torch.nn.LocalResponseNorm), x, target)
    for step in range(STEPS):
        for i, g in enumerate(single[step]):
            torch.testing.assert_close(g, native[step][i], rtol=1e-10, atol=1e-12)
            for r in range(WORLD):  # every rank holds the averaged gradient
                torch.testing.assert_close(results[r]["grads"][step][i], g, rtol=1e-10, atol=1e-12)
        mean_loss = sum(res["losses"][step] for res in results) / WORLD
        assert mean_loss == pytest.approx(single_losses[step], rel=1e-12)
    assert single_losses == pytest.approx(native_losses, rel=1e-12)


if __name__ == "__main__":
    worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
