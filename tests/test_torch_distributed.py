"""lrn-core's PyTorch adapter across processes (gloo on 127.0.0.1) and on tensor subclasses.

DistributedDataParallel: each process trains on its half of the batch; DDP averages the
gradients, which must then equal the gradients of one process on the whole batch (the loss is a
mean over equal halves), at every SGD step.

DTensor (``torch.distributed.tensor``) on a 2-process mesh: forward and input gradient of every
entry point against ``F.local_response_norm`` on the same DTensor (forward; torch has no DTensor
backward for it) and on the full tensor (gradients), and the placements of outputs and gradients.

Tensor subclasses other than DTensor, in this process: the numbers of the native op, or its error.

Only the tests marked ``distributed`` start processes: ``pytest -m distributed`` runs them alone.
This file is also the worker: ``python test_torch_distributed.py RANK PORT OUT [MODE]``.
"""

import gc
import os
import re
import socket
import subprocess
import sys
from datetime import timedelta

import pytest

torch = pytest.importorskip("torch")

WORLD = 2
BATCH = 8  # split in WORLD equal shards
STEPS = 3
TIMEOUT = 120  # seconds for the whole run, start-up included
DTENSOR_TIMEOUT = 300  # the DTensor run: 8 cases x 4 entry points, about 25 s on an idle machine


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


# --- DTensor -------------------------------------------------------------------------------------

P = {"alpha": 0.9, "beta": 0.75, "k": 1.2}  # large alpha: the cross-channel terms matter
#: name -> (shape, size, mesh shape, placements); the channel dimension is 1
DTENSOR_CASES = {
    "Shard(0)": ((4, 6, 4, 3), 5, (2,), "S0"),
    "Shard(1)": ((4, 6, 4, 3), 5, (2,), "S1"),
    "Shard(2)": ((4, 6, 4, 3), 5, (2,), "S2"),
    "Replicate()": ((4, 6, 4, 3), 5, (2,), "R"),
    "Shard(0) uneven, even size": ((3, 5, 2, 2), 4, (2,), "S0"),
    "Shard(2) uneven, 3-D": ((2, 7, 5), 3, (2,), "S2"),
    "Shard(1) uneven, even size": ((2, 5, 3, 2), 4, (2,), "S1"),
    "2-D mesh (2, 1) Shard(2), Shard(0)": ((4, 6, 4, 3), 5, (2, 1), "S2 S0"),
    "Partial()": ((2, 6, 3, 2), 5, (2,), "P"),  # a pending sum: reduced first, not kept
}
ENTRY_POINTS = ("functional", "LRNFunction", "op")


def case_data(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 1.5
    return (
        x,
        torch.randn(shape, generator=g, dtype=torch.float64),
        torch.randn(shape, generator=g, dtype=torch.float64),
    )


def _placements(spec):
    from torch.distributed.tensor import Partial, Replicate, Shard

    names = {"R": Replicate, "P": Partial}
    return [names[p]() if p in names else Shard(int(p[1:])) for p in spec.split()]


def _distribute(t, mesh, place):
    """distribute_tensor, which takes no Partial: [Partial()] on a 1-D mesh as equal summands."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if place == _placements("P"):
        return DTensor.from_local(t / mesh.size(), mesh, place)  # exact: WORLD is 2
    return distribute_tensor(t, mesh, place)


def _entry(name, size):
    import torch.nn.functional as F

    from lrn_core.adapters.torch import LRNFunction, local_response_norm

    a, b, k = P["alpha"], P["beta"], P["k"]
    return {
        "functional": lambda x: local_response_norm(x, size, **P),
        "LRNFunction": lambda x: LRNFunction.apply(x, size, a, b, k),
        "op": lambda x: torch.ops.lrn_core.lrn_forward(x, size, a, b, k, size // 2),
        "native": lambda x: F.local_response_norm(x, size, **P),
    }[name]


def _full(t):
    return t.full_tensor().detach().clone(), tuple(map(_key, t.placements))


def _dtensor_case(name, entry):
    """Forward, no-grad forward, input gradient and gradient of the gradient on one DTensor.

    Returns {quantity: (full tensor, placements as _key tuples)} or {"error": text}: a failure
    is reported by the test in the parent, with the case's name.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate

    shape, size, mesh_shape, spec = DTENSOR_CASES[name]
    mesh = init_device_mesh("cpu", mesh_shape)
    place = _placements(spec)
    wplace = [Replicate() if p.is_partial() else p for p in place]  # upstream gradients
    x, w, v = case_data(shape, len(name))
    f = _entry(entry, size)
    res = {}
    try:
        d = _distribute(x, mesh, place).requires_grad_()
        wd, vd = _distribute(w, mesh, wplace), _distribute(v, mesh, wplace)
        y = f(d)
        res["y"] = _full(y)
        if entry != "native":  # collectives of the forward and of the first-order backward
            from torch.distributed.tensor.debug import CommDebugMode

            dc = _distribute(x, mesh, place).requires_grad_()
            with CommDebugMode() as comm:
                yc = f(dc)
            res["forward comms"] = comm.get_total_counts()
            with CommDebugMode() as comm:
                torch.autograd.grad((yc * wd).sum(), dc)
            res["backward comms"] = comm.get_total_counts()
        with torch.no_grad():
            res["y no_grad"] = _full(f(_distribute(x, mesh, place)))
        (g,) = torch.autograd.grad((y * wd).sum(), d, create_graph=entry != "native")
        res["grad"] = _full(g)
        if entry != "native":
            (gg,) = torch.autograd.grad((g * vd).sum(), d)
            res["gradgrad"] = _full(gg)
    except Exception as e:  # reported in the parent, with the case and the entry point
        import traceback

        res["error"] = f"{type(e).__name__}: {e}"
        frame = traceback.extract_tb(e.__traceback__)[-1]  # where it was raised
        res["error at"] = f"{frame.filename.replace(os.sep, '/')}:{frame.name}"
    return res


def run_dtensor(rank):
    """Every case and entry point; the raw op first, so that its autograd kernel is what meets
    the first DTensor and registers the sharding rules (the adapter is imported before
    torch.distributed.tensor is)."""
    import lrn_core.adapters.torch as lt

    out = {"lazy": ["torch.distributed.tensor" in sys.modules, lt._distributed._sharding]}
    for name in DTENSOR_CASES:
        for entry in ("op", "LRNFunction", "functional", "native"):
            out[name, entry] = _dtensor_case(name, entry)
    out["lazy"].append(lt._distributed._sharding)
    return out


def run_ddp(rank):
    grads, losses = train_ddp(rank)
    return {"grads": grads, "losses": losses}


MODES = {"ddp": run_ddp, "dtensor": run_dtensor}


def worker(rank, port, out, mode="ddp"):
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
        torch.save(MODES[mode](rank), out)
        print(f"rank {rank}: {mode} done and saved", flush=True)
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


def _start_workers(tmp_path, mode, timeout):
    """Start WORLD workers, wait at most TIMEOUT seconds, kill them on time-out."""
    port = _free_port()
    outs = [tmp_path / f"{mode}-rank{r}.pt" for r in range(WORLD)]
    procs = [
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), str(r), str(port), str(outs[r]), mode],
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
            logs.append(p.communicate(timeout=timeout)[0])
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {WORLD} {mode} workers did not finish within {timeout} s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return procs, logs, outs


def _run_workers(tmp_path, mode, timeout=TIMEOUT):
    """The WORLD results of ``mode``; skips without gloo, fails on a failed or late worker."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    procs, logs, outs = _start_workers(tmp_path, mode, timeout)
    if any(p.returncode for p in procs) and "ddress already in use" in "".join(logs):
        procs, logs, outs = _start_workers(tmp_path, mode, timeout)  # the port was taken meanwhile
    for r, (p, log) in enumerate(zip(procs, logs, strict=True)):
        assert p.returncode == 0, f"rank {r} failed:\n{log}"
    return [torch.load(o) for o in outs]


@pytest.mark.distributed
def test_ddp_gradients_equal_single_process(tmp_path):
    from lrn_core.adapters.torch import LocalResponseNorm

    results = _run_workers(tmp_path, "ddp")

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


def _key(placement):
    """A placement as a picklable tuple: ("S", dim), ("R",) or (its class name,)."""
    dim = getattr(placement, "dim", None)
    name = type(placement).__name__
    return ("S", dim) if name == "Shard" else ("R",) if name == "Replicate" else (name,)


def _spec_keys(spec):
    names = {"R": ("R",), "P": ("Partial",)}
    return tuple(names.get(p) or ("S", int(p[1:])) for p in spec.split())


def _dtensor_reference(name):
    """F.local_response_norm on the full tensor: output, gradient and gradient of the gradient."""
    shape, size, _, _ = DTENSOR_CASES[name]
    return _native_derivatives(*case_data(shape, len(name)), size)


def _native_derivatives(x, w, v, size):
    import torch.nn.functional as F

    x = x.clone().requires_grad_()
    y = F.local_response_norm(x, size, **P)
    (g,) = torch.autograd.grad((y * w).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad((g * v).sum(), x)
    return {"y": y.detach(), "y no_grad": y.detach(), "grad": g.detach(), "gradgrad": gg}


#: What native torch cannot do on a DTensor (the error type, a pattern of its message, where it
#: is raised): DTensor has no rule for avg_pool2d/3d_backward (torch 2.13), nor for avg_pool2d/3d
#: itself (torch 2.6); and torch 2.6 fails to redistribute pad's input on the 2-D mesh.
NATIVE_DTENSOR_GAPS = (
    (
        "NotImplementedError",
        r"Operator aten\.avg_pool[23]d(_backward)?\.default does not have a sharding strategy "
        r"registered\.",
        "",
    ),
    ("IndexError", r"list index out of range", "torch/distributed/tensor/_redistribute.py:"),
)


def _assert_native_gap(native, name):
    """native's error on the DTensor is one of NATIVE_DTENSOR_GAPS, not a bug of the test."""
    kind, _, message = native["error"].partition(": ")
    where = native.get("error at", "")
    assert any(
        kind == k and re.fullmatch(m, message) and f in where for k, m, f in NATIVE_DTENSOR_GAPS
    ), f"{name}, native: {native['error']} (at {where})"


def close(a, b, tol=1e-10):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def dtensor_results(tmp_path_factory):
    return _run_workers(tmp_path_factory.mktemp("dtensor"), "dtensor", DTENSOR_TIMEOUT)


@pytest.mark.distributed
def test_dtensor_rules_registered_by_the_first_dtensor(dtensor_results):
    """Not on import (torch.distributed.tensor not loaded yet): by the first raw op call."""
    for res in dtensor_results:
        assert res["lazy"] == [False, None, True]


@pytest.mark.distributed
@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("name", list(DTENSOR_CASES))
def test_dtensor_values_and_placements(dtensor_results, name, entry):
    """Numbers of native torch (on the same DTensor where torch can, on the full tensor for
    gradients and where torch cannot: NATIVE_DTENSOR_GAPS), and placements: batch- and
    spatially-sharded in, sharded alike out, no communication; channel-sharded (dim 1) in,
    gathered along the channels for the kernels, and (functional, LRNFunction) sharded again
    like the input. Gradients are placed like the input. A Partial input (a pending sum) is
    reduced first; the output is not Partial."""
    ref = _dtensor_reference(name)
    spec = _spec_keys(DTENSOR_CASES[name][3])
    channel_sharded, partial = ("S", 1) in spec, ("Partial",) in spec
    for rank, res in enumerate(dtensor_results):
        ours, native = res[name, entry], res[name, "native"]
        assert "error" not in ours, f"rank {rank}, {entry}: {ours['error']}"
        if "error" in native:  # torch cannot run it all on the DTensor: the full tensor's numbers
            _assert_native_gap(native, name)
        for q in ("y", "y no_grad"):
            close(ours[q][0], ref[q])
            if q not in native:  # native raised (a gap, as on torch 2.6): the full tensor only
                continue
            close(ours[q][0], native[q][0])  # F.local_response_norm on the same DTensor
            if not partial:  # native keeps the placement: so must the drop-in
                assert native[q][1] == spec
        for q in ("grad", "gradgrad"):
            close(ours[q][0], ref[q])
        if "grad" in native:  # torch 2.13 has no DTensor rule for avg_pool3d_backward
            close(ours["grad"][0], native["grad"][0])
        for q in ("y", "y no_grad"):
            if partial or (entry == "op" and channel_sharded):  # the op's rule: channels whole
                assert ("S", 1) not in ours[q][1] and ("Partial",) not in ours[q][1], ours[q]
            else:
                assert ours[q][1] == spec, (q, ours[q][1])
        for q in ("grad", "gradgrad"):
            if not partial:
                assert ours[q][1] == spec, (q, ours[q][1])
        if not (channel_sharded or partial):  # the kernels ran on the local shards, no sends
            assert ours["forward comms"] == ours["backward comms"] == 0
        else:  # the window crosses shards (or the sum is pending): communication
            assert ours["forward comms"] > 0 and ours["backward comms"] > 0


# --- other tensor subclasses, in this process --------------------------------------------------


class Tagged(torch.Tensor):
    """A ``__torch_dispatch__`` subclass holding its own data that knows no lrn-core op: every op
    runs on its data and comes back Tagged (so ``.detach().numpy()`` refuses it, as for DTensor)."""

    @staticmethod
    def __new__(cls, data):
        return torch.Tensor._make_subclass(cls, data, data.requires_grad)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        from torch.utils._pytree import tree_map_only

        out = torch._C._disabled_torch_dispatch_impl(func, types, args, kwargs or {})
        return tree_map_only(torch.Tensor, lambda t: t if isinstance(t, cls) else cls(t), out)


class Logged(torch.Tensor):
    """A ``__torch_function__``-only subclass (plain memory), logging the functions it sees."""

    seen = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.seen.append(getattr(func, "__name__", str(func)))
        return super().__torch_function__(func, types, args, kwargs or {})


class Wrapped(torch.Tensor):
    """A wrapper subclass without storage of its own: unwraps for every op, wraps the results."""

    @staticmethod
    def __new__(cls, elem):
        r = torch.Tensor._make_wrapper_subclass(
            cls, elem.shape, strides=elem.stride(), dtype=elem.dtype, device=elem.device
        )
        r.elem = elem
        return r

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        from torch.utils._pytree import tree_map, tree_map_only

        def unwrap(t):
            return t.elem if isinstance(t, cls) else t

        out = func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs or {}))
        return tree_map_only(torch.Tensor, cls, out)


def _data(t):
    """A subclass's numbers as a plain tensor. Tagged: torch 2.6's ``as_subclass`` dispatches its
    ``alias`` to Tagged, whose Tagged result it then refuses to make a Tensor; not dispatched."""
    if isinstance(t, Wrapped):
        return t.elem
    with torch._C._DisableTorchDispatch():
        return t.as_subclass(torch.Tensor)


def _subclass_entries(size):
    from lrn_core.adapters.torch import LRNFunction, local_response_norm

    a, b, k = P["alpha"], P["beta"], P["k"]
    return {
        "functional": lambda x: local_response_norm(x, size, **P),
        "LRNFunction": lambda x: LRNFunction.apply(x, size, a, b, k),
        "op": lambda x: torch.ops.lrn_core.lrn_forward(x, size, a, b, k, size // 2),
    }


@pytest.mark.parametrize("size", [3, 4])
@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("cls", [Tagged, Logged, Wrapped])
def test_unknown_subclass_gets_native_numbers_and_gradients(cls, entry, size):
    """Forward, gradient and gradient of the gradient of native torch (float64, 1e-10), where the
    unchanged adapter raised ``.numpy() is not supported for tensor subclasses`` (Tagged)."""
    import torch.nn.functional as F

    x, w, v = case_data((2, 6, 3, 2), size)
    f = _subclass_entries(size)[entry]
    xs = x.clone().as_subclass(cls) if cls is Logged else cls(x.clone())
    xs.requires_grad_()
    Logged.seen.clear()
    y = f(xs)
    if cls is Logged and entry == "functional":  # the __torch_function__ protocol, as native's
        assert "local_response_norm" in Logged.seen
    if entry != "LRNFunction" or cls is not Logged:  # Function.apply skips __torch_function__
        assert isinstance(y, cls)  # as native's output: the subclass is kept
    (g,) = torch.autograd.grad((y * w).sum(), xs, create_graph=True)
    (gg,) = torch.autograd.grad((g * v).sum(), xs)
    ref = _native_derivatives(x, w, v, size)
    with torch.no_grad():
        close(_data(f(xs)), ref["y"])
    for got, q in ((y, "y"), (g, "grad"), (gg, "gradgrad")):
        close(_data(got), ref[q])
    close(_data(y), _data(F.local_response_norm(xs, size, **P)))


def _outcome(f, x):
    try:
        return f(x)
    except Exception as e:  # compared with the native op's
        return e


def _masked(x):
    import warnings

    from torch.masked import masked_tensor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "prototype", by torch.masked itself
        return masked_tensor(x, x > -1.0)


def _jagged(x):
    return torch.nested.nested_tensor(list(x), layout=torch.jagged)


@pytest.mark.parametrize("make", [_masked, _jagged], ids=["masked", "nested-jagged"])
def test_masked_and_nested_take_the_native_function(make):
    """local_response_norm gives what native gives them (here: native's own error), never a
    ``.numpy()`` error; LRNFunction and the op raise an error of the subclass naming it or the
    op, or compute the native numbers."""
    import warnings

    import torch.nn.functional as F

    x, _, _ = case_data((2, 6, 3, 2), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        native = _outcome(lambda t: F.local_response_norm(t, 3, **P), make(x))
        for entry, f in _subclass_entries(3).items():
            got = _outcome(f, make(x))
            if entry == "functional":
                assert type(got) is type(native), (got, native)
                if isinstance(native, Exception):  # j1, j2: a nested tensor's ragged size
                    assert re.sub(r"\bj\d+", "j", str(got)) == re.sub(r"\bj\d+", "j", str(native))
                continue
            if isinstance(got, Exception):  # the subclass's own error (op), or ours naming it
                assert ".numpy()" not in str(got)
                names = [type(make(x)).__name__] + ["lrn_core"] * (entry == "op")
                assert any(s in str(got) for s in names), got
                if entry == "LRNFunction":
                    assert "to a plain tensor first" in str(got)
            else:
                close(
                    got.to_dense() if hasattr(got, "to_dense") else got,
                    F.local_response_norm(x, 3, **P),
                )


def test_import_leaves_torch_distributed_alone():
    """Importing the adapter neither imports torch.distributed.tensor nor initialises a process
    group; with torch.distributed.tensor impossible to import (as in builds without
    torch.distributed) every entry point still works."""
    code = """
import sys, torch
import lrn_core.adapters.torch as lt
print("torch.distributed.tensor" in sys.modules, torch.distributed.is_initialized())
"""
    assert _run_python(code).split() == ["False", "False"]
    code = """
import sys, torch
sys.modules["torch.distributed.tensor"] = None  # import fails, as without torch.distributed
torch.distributed.is_available = lambda: False
import lrn_core.adapters.torch as lt
import torch.nn.functional as F
x = torch.randn(2, 6, 3, 3, dtype=torch.float64, requires_grad=True)
for f in (
    lambda t: lt.local_response_norm(t, 5),
    lambda t: lt.LRNFunction.apply(t, 5),
    lambda t: torch.ops.lrn_core.lrn_forward(t, 5, 1e-4, 0.75, 1.0, 2),
):
    y = f(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    y0 = F.local_response_norm(x, 5)
    (g0,) = torch.autograd.grad(y0.sum(), x)
    print(torch.allclose(y, y0) and torch.allclose(g, g0))
"""
    assert _run_python(code).split() == ["True"] * 3


def _run_python(code, *args):
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


if __name__ == "__main__":
    worker(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:])
