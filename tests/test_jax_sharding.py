"""The JAX adapter on four CPU devices: a sharded input stays sharded, with no collectives.

XLA's device count is fixed when JAX starts, so every check runs in a fresh interpreter (a
subprocess with a timeout, ``XLA_FLAGS=--xla_force_host_platform_device_count=4``): one script
computes every case and saves its facts and arrays, the tests below assert on them. The numbers
are held to the native formulation (``lrn_core.check.jnp_lrn``: ``lax.reduce_window``, what a JAX
user writes) and to the float64 reference.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import TOL, assert_close
from reference import lrn_grad_ref, lrn_ref

pytest.importorskip("jax")
pytest.importorskip("lrn_core.adapters.jax")

FOUR_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
PARAMS = dict(size=5, alpha=0.7, beta=0.75, k=1.5)
COLLECTIVES = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")

# name -> (mesh shape, mesh axis names, partition spec, input shape, channel axis)
CASES = {
    "batch": ((4,), ("b",), ("b",), (8, 5, 4, 16), -1),
    "batch_height_nhwc": ((2, 2), ("b", "h"), ("b", "h"), (4, 6, 5, 12), -1),
    "batch_height_nchw": ((2, 2), ("b", "h"), ("b", None, "h"), (4, 12, 6, 5), 1),
    "batch_2d": ((4,), ("b",), ("b",), (8, 12), -1),
    "channels": ((4,), ("c",), (None, None, None, "c"), (2, 3, 4, 16), -1),
    "batch_channels": ((2, 2), ("b", "c"), ("b", None, None, "c"), (4, 3, 4, 16), -1),
}
CHANNEL_SHARDED = ("channels", "batch_channels")
AXIS_TYPES = ("Explicit", "Auto")  # jax.make_mesh's default in jax 0.10, and jax.sharding.Mesh's

SCRIPT = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from lrn_core.adapters.jax import local_response_norm
from lrn_core.check import jnp_lrn

assert len(jax.devices()) == 4, jax.devices()
(cases, (params, collectives)), out_dir = map(json.loads, sys.argv[1:3]), sys.argv[3]
facts, arrays = {}, {}


def native(v, axis):  # the lax.reduce_window LRN of lrn-core check, on the channel axis
    return jnp.moveaxis(jnp_lrn(jnp.moveaxis(v, axis, -1), **params), -1, axis)


for axis_type in ("Explicit", "Auto"):
    for name, (mesh_shape, names, spec, shape, axis) in cases.items():
        key = f"{name}_{axis_type}"
        types = (getattr(AxisType, axis_type),) * len(names)
        mesh = jax.make_mesh(mesh_shape, names, axis_types=types)
        rng = np.random.default_rng(len(key))
        x_np = (2 * rng.standard_normal(shape)).astype(np.float32)
        w_np = rng.standard_normal(shape).astype(np.float32)
        sharding = NamedSharding(mesh, P(*spec))
        x, w = jax.device_put(x_np, sharding), jax.device_put(w_np, sharding)

        def f(v):
            return local_response_norm(v, **params, axis=axis)

        fwd = jax.jit(f)
        grad = jax.jit(jax.grad(lambda v: (f(v) * w).sum()))
        y, g = fwd(x), grad(x)
        texts = {"y": fwd.lower(x).compile().as_text(), "g": grad.lower(x).compile().as_text()}
        facts[key] = {
            "y_sharding": str(y.sharding.spec),
            "g_sharding": str(g.sharding.spec),
            "y_same_sharding": bool(y.sharding.is_equivalent_to(x.sharding, x.ndim)),
            "g_same_sharding": bool(g.sharding.is_equivalent_to(x.sharding, x.ndim)),
            "y_collectives": [c for c in collectives if c in texts["y"]],
            "g_collectives": [c for c in collectives if c in texts["g"]],
            "y_kernel": "lrn_core_lrn_cpu" in texts["y"],
            "g_kernel": "lrn_core_lrn_vjp_cpu" in texts["g"],
            "y_text": texts["y"],
        }
        y_native = jax.jit(lambda v: native(v, axis))(x_np)
        g_native = jax.jit(jax.grad(lambda v: (native(v, axis) * w_np).sum()))(x_np)
        for tag, a in dict(x=x_np, w=w_np, y=y, g=g, y_native=y_native, g_native=g_native).items():
            arrays[f"{key}/{tag}"] = np.asarray(a)

np.savez(out_dir + "/arrays.npz", **arrays)
with open(out_dir + "/facts.json", "w") as fh:
    json.dump(facts, fh)
"""


def run_four_devices(args, tmp_path, extra_env=None, script=SCRIPT):
    """``script`` in a fresh interpreter on four CPU devices; fails with its stderr."""
    env = {**os.environ, **FOUR_DEVICES, **(extra_env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded")
    run_four_devices([json.dumps(CASES), json.dumps([PARAMS, COLLECTIVES])], out)
    with open(out / "facts.json") as fh:
        facts = json.load(fh)
    return facts, dict(np.load(out / "arrays.npz"))


def _case(sharded, name, axis_type):
    facts, arrays = sharded
    key = f"{name}_{axis_type}"
    return facts[key], {
        tag: arrays[f"{key}/{tag}"] for tag in ("x", "w", "y", "g", "y_native", "g_native")
    }


@pytest.mark.parametrize("axis_type", AXIS_TYPES)
@pytest.mark.parametrize("name", [n for n in CASES if n not in CHANNEL_SHARDED])
def test_sharded_input_stays_sharded_with_no_collective(sharded, name, axis_type):
    facts, _ = _case(sharded, name, axis_type)
    # the kernels run (not a silent switch to XLA), on each device's block, forward and backward
    assert facts["y_kernel"] and facts["g_kernel"]
    assert facts["y_same_sharding"], facts["y_sharding"]
    assert facts["g_same_sharding"], facts["g_sharding"]
    assert facts["y_collectives"] == [] and facts["g_collectives"] == []


@pytest.mark.parametrize("axis_type", AXIS_TYPES)
@pytest.mark.parametrize("name", list(CASES))
def test_sharded_numbers_match_native_and_reference(sharded, name, axis_type):
    _, a = _case(sharded, name, axis_type)
    axis = CASES[name][4]
    x64, w64 = a["x"].astype(np.float64), a["w"].astype(np.float64)
    assert_close(a["y"], lrn_ref(x64, **PARAMS, axis=axis))
    assert_close(a["g"], lrn_grad_ref(w64, x64, **PARAMS, axis=axis), scale=np.abs(w64))
    # and the native lax.reduce_window formulation (both float32: twice the one-sided bound)
    rtol, atol = TOL[np.dtype(np.float32)]
    np.testing.assert_allclose(a["y"], a["y_native"], rtol=2 * rtol, atol=2 * atol)
    g_atol = 2 * rtol * float(np.max(np.abs(a["w"])))
    np.testing.assert_allclose(a["g"], a["g_native"], rtol=2 * rtol, atol=g_atol)


@pytest.mark.parametrize("axis_type", AXIS_TYPES)
def test_sharded_channels_are_gathered_and_only_they(sharded, axis_type):
    """The window crosses channel shards: that axis is gathered, the batch split is kept."""
    facts, _ = _case(sharded, "batch_channels", axis_type)
    assert facts["y_kernel"]
    assert "all-gather" in facts["y_collectives"]
    assert facts["y_same_sharding"], facts["y_sharding"]  # sliced back to the input's sharding
    # the kernel runs on half the batch (4 / 2 devices along "b") and all 16 channels
    assert "f32[2,3,4,16]{3,2,1,0} custom-call(" in facts["y_text"]
    assert "f32[4,3,4,16]{3,2,1,0} custom-call(" not in facts["y_text"]


KERAS = r"""
import json, sys
import numpy as np
import keras
from lrn_core.adapters.keras import LocalResponseNormalization
import jax

assert keras.backend.backend() == "jax" and len(jax.devices()) == 4


def losses(implementation, distributed):
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=jax.devices()) if distributed else None
    )
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(12, 3, padding="same"),
        LocalResponseNormalization(depth_radius=2, bias=1.5, alpha=0.3, beta=0.75,
                                   implementation=implementation),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8, 8, 3)).astype("float32")
    y = rng.standard_normal((16, 1)).astype("float32")
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return history.history["loss"]


out = {f"{impl}_{dist}": losses(impl, dist == "dp")
       for impl in ("auto", "native") for dist in ("dp", "single")}
# the layer alone on a batch sharded as DataParallel shards it (a jax.sharding.Mesh: auto axes)
from jax.sharding import NamedSharding, PartitionSpec as P
keras.distribution.set_distribution(None)
mesh = jax.sharding.Mesh(np.array(jax.devices()), ("batch",))
xs = jax.device_put(np.ones((8, 6, 6, 12), "float32"), NamedSharding(mesh, P("batch")))
call = jax.jit(LocalResponseNormalization(depth_radius=2))
text = call.lower(xs).compile().as_text()
out["layer"] = [bool(call(xs).sharding.is_equivalent_to(xs.sharding, 4)),
                "all-gather" in text, "lrn_core_lrn_cpu" in text]
with open(sys.argv[1] + "/losses.json", "w") as fh:
    json.dump(out, fh)
"""


def test_keras_data_parallel_training_matches_native_and_one_device(tmp_path):
    """Keras 3 DataParallel on the JAX backend, four CPU devices: the lrn-core layer trains to the
    losses of the native formula (``implementation="native"``) and of single-device training."""
    pytest.importorskip("keras")
    run_four_devices([], tmp_path, {"KERAS_BACKEND": "jax"}, script=KERAS)
    with open(tmp_path / "losses.json") as fh:
        out = json.load(fh)
    ref = np.asarray(out["native_single"])
    assert ref.shape == (2,) and np.isfinite(ref).all() and ref[1] != ref[0]  # it trained
    for key in ("auto_dp", "native_dp", "auto_single"):
        np.testing.assert_allclose(out[key], ref, rtol=1e-5, err_msg=key)
    # the layer keeps the batch sharding, on the kernels, with no gather
    assert out["layer"] == [True, False, True]
