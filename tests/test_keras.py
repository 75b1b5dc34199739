"""The Keras 3 layer on the backend this process runs (KERAS_BACKEND), and across backends.

In process: values against the float64 reference, every implementation, training parity with the
same model built on a plain keras.ops LRN, config round trip, errors. Across backends: a model is
saved to a ``.keras`` file under each installed backend and loaded under each other one, each in
its own subprocess (Keras fixes its backend at import).
"""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_close
from reference import lrn_grad_ref, lrn_ref

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")
lrn_keras = pytest.importorskip("lrn_core.adapters.keras")
from lrn_core.adapters.keras import LocalResponseNormalization  # noqa: E402
from lrn_core.tolerances import FLOOR, NATIVE  # noqa: E402

BACKEND = keras.backend.backend()
FRAMEWORK = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}
AVAILABLE = [b for b in lrn_keras.BACKENDS if importlib.util.find_spec(FRAMEWORK[b])]
LAYER_KW = dict(depth_radius=2, bias=2.0, alpha=1e-2, beta=0.75)


def _ref(x, depth_radius, bias, alpha, beta):
    n = 2 * depth_radius + 1
    return lrn_ref(x, n, alpha * n, beta, bias, axis=-1)


class PlainLRN(keras.layers.Layer):
    """LRN written with keras.ops only: what the layer must agree with, in training too."""

    def __init__(self, depth_radius, bias, alpha, beta, **kwargs):
        super().__init__(**kwargs)
        self.r, self.bias, self.alpha, self.beta = depth_radius, bias, alpha, beta

    def call(self, x):
        ops, r, c = keras.ops, self.r, x.shape[-1]
        padded = ops.pad(ops.square(x), [(0, 0), (0, 0), (0, 0), (r, r)])
        s = sum(padded[..., i : i + c] for i in range(2 * r + 1))
        return x / ops.power(self.bias + self.alpha * s, self.beta)


def _numpy(t):
    return keras.ops.convert_to_numpy(t)


# --- in process ---------------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", lrn_keras.IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "kw",
    [
        LAYER_KW,
        dict(depth_radius=5, bias=1.0, alpha=1.0, beta=0.5),
        dict(depth_radius=0, bias=0.5, alpha=0.3, beta=1.0),
    ],
)
def test_forward_matches_reference(implementation, kw):
    x = np.random.default_rng(0).standard_normal((2, 5, 4, 13)).astype(np.float32)
    y = _numpy(LocalResponseNormalization(**kw, implementation=implementation)(x))
    assert y.shape == x.shape and y.dtype == np.float32
    if implementation == "native":  # the backend's own LRN sums in float32: more than a few ulps
        np.testing.assert_allclose(y, _ref(x, **kw), rtol=NATIVE["float32"], atol=FLOOR["float32"])
    else:
        assert_close(y, _ref(x, **kw))


def test_gradient_matches_reference():
    x = np.random.default_rng(1).standard_normal((2, 3, 3, 11)).astype(np.float32)
    dy = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    layer = LocalResponseNormalization(**LAYER_KW)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt)
        dx = tape.gradient(y, xt, output_gradients=tf.constant(dy))
    elif BACKEND == "torch":
        import torch

        xt = torch.tensor(x, requires_grad=True)
        layer(xt).backward(torch.tensor(dy))
        dx = xt.grad
    else:
        import jax

        dx = jax.vjp(layer, x)[1](dy)[0]
    n = 2 * LAYER_KW["depth_radius"] + 1
    ref = lrn_grad_ref(dy, x, n, LAYER_KW["alpha"] * n, LAYER_KW["beta"], LAYER_KW["bias"], axis=-1)
    assert_close(_numpy(dx), ref, scale=np.abs(dy))


def _model(lrn_layer):
    return keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            keras.layers.Conv2D(12, 3, name="conv"),
            lrn_layer,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, name="dense"),
        ]
    )


def test_fit_matches_a_plain_ops_layer():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 6, 6, 3)).astype(np.float32)
    t = rng.standard_normal((16, 3)).astype(np.float32)
    keras.utils.set_random_seed(0)
    ours = _model(LocalResponseNormalization(**LAYER_KW))
    plain = _model(PlainLRN(**LAYER_KW))
    plain.set_weights(ours.get_weights())
    results = []
    for model in (ours, plain):
        model.compile(keras.optimizers.SGD(0.1), "mse")
        hist = model.fit(x, t, batch_size=8, epochs=3, shuffle=False, verbose=0)
        results.append((hist.history["loss"], model.get_weights()))
    (loss_a, w_a), (loss_b, w_b) = results
    assert loss_a[-1] < loss_a[0]  # it trained
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-5)
    for a, b in zip(w_a, w_b, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_config_round_trips():
    layer = LocalResponseNormalization(
        depth_radius=3, bias=2.0, alpha=1e-4, beta=0.75, implementation="core", name="lrn"
    )
    config = layer.get_config()
    for key, value in dict(
        depth_radius=3, bias=2.0, alpha=1e-4, beta=0.75, implementation="core"
    ).items():
        assert config[key] == value
    clone = LocalResponseNormalization.from_config(config)
    assert clone.get_config() == config
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is LocalResponseNormalization and revived.get_config() == config


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(depth_radius=-1), ValueError, "depth_radius must be an integer >= 0, got -1"),
        (dict(depth_radius=1.5), TypeError, "depth_radius must be an integer"),
        (dict(beta=float("inf")), ValueError, "beta must be finite"),
        (dict(implementation="fast"), ValueError, "implementation must be one of"),
    ],
)
def test_bad_arguments_raise(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        LocalResponseNormalization(**kwargs)


def test_the_old_spelling_xla_is_native_with_a_deprecation_warning():
    """One vocabulary for every adapter ("auto", "core", "native"); JAX's old "xla" still works."""
    with pytest.warns(DeprecationWarning, match="implementation='native'"):
        layer = LocalResponseNormalization(implementation="xla")
    assert layer.implementation == "native" and layer.get_config()["implementation"] == "native"
    x = np.random.default_rng(3).standard_normal((1, 3, 3, 8)).astype(np.float32)
    native = LocalResponseNormalization(implementation="native")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(x)), keras.ops.convert_to_numpy(native(x))
    )


def test_rank_other_than_4_raises():
    with pytest.raises(ValueError, match="must be 4-dimensional"):
        LocalResponseNormalization()(np.ones((2, 3, 8), np.float32))


# --- across backends ------------------------------------------------------------------------------

SAVE = """
import sys, numpy as np, keras
from lrn_core.adapters.keras import LocalResponseNormalization
assert keras.backend.backend() == sys.argv[1]
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((6, 6, 3)), keras.layers.Conv2D(12, 3, name="conv"),
    LocalResponseNormalization(depth_radius=2, bias=2.0, alpha=1e-2, beta=0.75, name="lrn"),
    keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, name="dense")])
np.save(sys.argv[4], keras.ops.convert_to_numpy(model(np.load(sys.argv[3]))))
model.save(sys.argv[2])
"""

LOAD = """
import sys, numpy as np, keras
import lrn_core.adapters.keras
assert keras.backend.backend() == sys.argv[1]
model = keras.models.load_model(sys.argv[2])
lrn = model.get_layer("lrn")
assert type(lrn) is lrn_core.adapters.keras.LocalResponseNormalization, type(lrn)
x = np.load(sys.argv[3])
conv = keras.ops.convert_to_numpy(model.get_layer("conv")(x))
np.savez(sys.argv[4], out=keras.ops.convert_to_numpy(model(x)), conv=conv,
         lrn=keras.ops.convert_to_numpy(lrn(conv)))
"""


def _run(code, backend, *args):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", code, backend, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{backend}: {proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A model saved under each installed backend: {backend: (file, input, output)}."""
    tmp = tmp_path_factory.mktemp("keras_files")
    x = np.random.default_rng(4).standard_normal((2, 6, 6, 3)).astype(np.float32)
    np.save(tmp / "x.npy", x)
    files = {}
    for backend in AVAILABLE:
        f, out = tmp / f"{backend}.keras", tmp / f"{backend}_out.npy"
        _run(SAVE, backend, f, tmp / "x.npy", out)
        files[backend] = (f, tmp / "x.npy", np.load(out))
    return files


@pytest.mark.parametrize("dst", lrn_keras.BACKENDS)
def test_keras_file_saved_under_one_backend_loads_under_another(saved, dst, tmp_path):
    if dst not in AVAILABLE or len(AVAILABLE) < 2:
        pytest.skip(f"needs the {dst} backend and at least one other one installed")
    for src, (f, xfile, expected) in saved.items():
        out = tmp_path / f"{src}_in_{dst}.npz"
        _run(LOAD, dst, f, xfile, out)
        got = np.load(out)
        np.testing.assert_allclose(
            got["out"],
            expected,
            rtol=1e-5,
            atol=1e-6,
            err_msg=f"saved under {src}, loaded under {dst}",
        )
        assert_close(got["lrn"], _ref(got["conv"], **LAYER_KW))


def test_docstring_examples():
    import doctest

    result = doctest.testmod(lrn_keras, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
