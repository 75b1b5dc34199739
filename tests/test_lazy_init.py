"""Importing lrn-core or an adapter initialises no framework runtime (issue 23).

Users configure threads, visible devices, memory growth, JAX's CPU devices and Keras' floatx
after their imports; all of these refuse (or silently do nothing) once the runtime has started.
Each check runs in a fresh interpreter (the runtime is per process and cannot be reset), with a
timeout: import the framework, then every lrn-core adapter for it, then configure, then LRN
calls through the adapters against the framework's own op (or the float64 formula where there is
none), so the adapters still work after the configuration.

Every check also runs as a *control*: a statement that initialises the runtime is inserted right
after the imports, and each configuration step must then fail with the framework's own error.
That is what the check sees if an adapter does the same at import, so it cannot pass vacuously.
(Two steps cannot fail on a CPU-only machine and are only exercised: ``set_visible_devices`` with
the devices already visible, which TF accepts as a no-op at any time, and ``set_memory_growth``
on each GPU, of which there are none here. TF's device configuration is held to account by the
split of the CPU into two logical devices, which TF refuses after initialisation.)

Frameworks that are not installed are skipped (looked up with ``importlib.util.find_spec``
rather than imported here: the checks run in children, and this process stays light).
"""

import ast
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

TIMEOUT = 120


def _need(*modules):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


def _script(imports, init, steps, calls):
    """A child: ``imports``; ``init`` (the control's runtime start); each configuration step of
    ``steps`` ({name: code}), its error recorded; then, if none failed, ``calls`` (LRN checks)."""
    parts = [
        textwrap.dedent(imports),
        init or "",
        "import json as _json, sys as _sys",
        "_failed = {}",
    ]
    for name, code in steps.items():
        parts.append(
            f"try:\n{textwrap.indent(textwrap.dedent(code), '    ')}\n"
            f"except Exception as _e:\n    _failed[{name!r}] = f'{{type(_e).__name__}}: {{_e}}'"
        )
    # a failed child leaves by os._exit after flushing: torch 2.15 aborts in its interpreter exit
    # after parallel work ("terminate called without an active exception"), losing stdout
    parts.append(
        "print('FAILED', _json.dumps(_failed), flush=True)\n"
        "if _failed:\n    import os as _os\n    _os._exit(3)"
    )
    parts += [textwrap.dedent(calls), "print('ok')"]
    return "\n".join(parts)


def _run(code, env=None):
    """Run ``code`` in a fresh interpreter (never a hang: a timeout); (returncode, output)."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )
    return proc.returncode, proc.stdout, proc.stderr


def _check(imports, steps, calls, control, errors, env=None):
    """Without the control the child must pass every step and call; with ``control`` (code that
    starts the runtime) every step named in ``errors`` must fail with its message."""
    rc, out, err = _run(_script(imports, control, steps, calls), env)
    if not control:  # the child's last word on stdout (TF logs to stderr at any time)
        assert rc == 0 and out.rstrip().endswith("ok"), (out + err)[-4000:]
        return
    lines = [line for line in out.splitlines() if line.startswith("FAILED ")]
    assert rc != 0 and lines, f"the control started the runtime and the child passed:\n{out}{err}"
    failed = json.loads(lines[-1][len("FAILED ") :])
    for step, message in errors.items():
        assert message in failed.get(step, ""), (step, failed, out[-3000:])


# --- TensorFlow (and Keras on it) -----------------------------------------------------------------

TF_IMPORTS = """
import numpy as np
import tensorflow as tf
import keras
import lrn_core
import lrn_core.adapters.numpy
import lrn_core.adapters.keras as lrn_keras
import lrn_core.adapters.tensorflow as lrn_tf
cpus = tf.config.list_physical_devices("CPU")  # lists, does not start the runtime
"""

TF_STEPS = {
    "intra_op_threads": "tf.config.threading.set_intra_op_parallelism_threads(1)",
    "inter_op_threads": "tf.config.threading.set_inter_op_parallelism_threads(1)",
    "visible_devices": "tf.config.set_visible_devices(cpus)",
    "logical_devices": """
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
        )
    """,
    "memory_growth": """
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    """,
}

TF_ERRORS = {
    "intra_op_threads": "Intra op parallelism cannot be modified after initialization",
    "inter_op_threads": "Inter op parallelism cannot be modified after initialization",
    "logical_devices": "Virtual devices cannot be modified after being initialized",
}

TF_CALLS = """
assert tf.config.threading.get_intra_op_parallelism_threads() == 1
assert tf.config.threading.get_inter_op_parallelism_threads() == 1
assert tf.config.get_visible_devices("CPU") == cpus
assert len(tf.config.list_logical_devices("CPU")) == 2, tf.config.list_logical_devices()
for gpu in tf.config.list_physical_devices("GPU"):
    assert tf.config.experimental.get_memory_growth(gpu)
x = tf.random.stateless_normal((2, 5, 4, 13), seed=(1, 2))
kw = dict(depth_radius=2, bias=2.0, alpha=1e-2, beta=0.75)
ref = tf.nn.local_response_normalization(x, **kw).numpy()
outs = {
    "function": lrn_tf.local_response_normalization(x, **kw),
    "tf layer": lrn_tf.LocalResponseNormalization(**kw)(x),
    "keras layer": lrn_keras.LocalResponseNormalization(**kw)(x),
    "tf.function": tf.function(lambda x: lrn_tf.local_response_normalization(x, **kw))(x),
}
with tf.device("/CPU:1"):  # the second logical CPU
    outs["on CPU:1"] = lrn_tf.local_response_normalization(x, **kw)
for name, y in outs.items():
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-6, err_msg=name)
"""


@pytest.mark.parametrize("control", [None, "tf.constant(0.0)"], ids=["check", "control"])
def test_tensorflow_configures_after_importing_the_adapters(control):
    _need("tensorflow", "keras")
    _check(TF_IMPORTS, TF_STEPS, TF_CALLS, control, TF_ERRORS, {"KERAS_BACKEND": "tensorflow"})


# --- PyTorch --------------------------------------------------------------------------------------

TORCH_STEPS = {"interop_threads": "torch.set_num_interop_threads(1)"}

TORCH_CALLS = """
import torch.nn.functional as F
from lrn_core.adapters import torch as lrn_torch
assert torch.get_num_interop_threads() == 1
x = torch.randn(2, 7, 4, 5, generator=torch.Generator().manual_seed(0))
ref = F.local_response_norm(x, 3, 1e-2, 0.75, 2.0)
torch.testing.assert_close(lrn_torch.local_response_norm(x, 3, 1e-2, 0.75, 2.0), ref)
torch.testing.assert_close(lrn_torch.LocalResponseNorm(3, 1e-2, 0.75, 2.0)(x), ref)
torch.testing.assert_close(torch.ops.lrn_core.lrn_forward(x, 3, 1e-2, 0.75, 2.0, 1), ref)
"""

# what starts torch's inter-op thread pool: a TorchScript fork (at::launch)
TORCH_INIT = """torch.jit.CompilationUnit('''
def f(x):
    return torch.jit.wait(torch.jit.fork(torch.neg, x))
''').f(torch.ones(2))"""

TORCH_ERRORS = {"interop_threads": "cannot set number of interop threads after parallel work"}


@pytest.mark.parametrize(
    "imports,control",
    [
        # torch imported first: ``import lrn_core`` registers the torch ops (the torch adapter)
        ("import torch\nimport lrn_core", None),
        ("import torch, lrn_core, lrn_core.adapters.numpy, lrn_core.adapters.torch", None),
        ("import torch, lrn_core, lrn_core.adapters.numpy, lrn_core.adapters.torch", TORCH_INIT),
    ],
    ids=["lrn_core-check", "adapters-check", "adapters-control"],
)
def test_torch_sets_interop_threads_after_importing_the_adapter(imports, control):
    _need("torch")
    _check(imports, TORCH_STEPS, TORCH_CALLS, control, TORCH_ERRORS)


# --- JAX and Flax ---------------------------------------------------------------------------------

JAX_IMPORTS = """
import numpy as np
import jax
import jax.numpy as jnp
import lrn_core
import lrn_core.adapters.numpy
import lrn_core.adapters.jax as lrn_jax
import lrn_core.adapters.flax as lrn_flax
"""

JAX_STEPS = {
    "num_cpu_devices": 'jax.config.update("jax_num_cpu_devices", 4)',
    "platforms": 'jax.config.update("jax_platforms", "cpu")',
    "devices": "assert len(jax.devices()) == 4, jax.devices()",
}

JAX_ERRORS = {
    "num_cpu_devices": "jax_num_cpu_devices config should be updated before backends",
    "devices": "AssertionError",
}

JAX_CALLS = """
x = jax.random.normal(jax.random.key(0), (2, 4, 4, 7))
kw = dict(size=3, alpha=1e-2, beta=0.75, k=2.0)
xd = np.asarray(x, np.float64)  # the float64 formula: JAX has no LRN of its own
sq = np.pad(xd * xd, [(0, 0)] * 3 + [(1, 1)])
ref = xd * (2.0 + 1e-2 / 3 * (sq[..., :-2] + sq[..., 1:-1] + sq[..., 2:])) ** -0.75
outs = {i: lrn_jax.local_response_norm(x, **kw, implementation=i) for i in lrn_jax.IMPLEMENTATIONS}
outs["jit"] = jax.jit(lambda x: lrn_jax.local_response_norm(x, **kw))(x)
outs["on device 3"] = lrn_jax.local_response_norm(jax.device_put(x, jax.devices()[3]), **kw)
outs["linen"] = lrn_flax.LocalResponseNorm(**kw).apply({}, x)
outs["nnx"] = lrn_flax.NNXLocalResponseNorm(**kw)(x)
for name, y in outs.items():
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-6, err_msg=name)
"""


@pytest.mark.parametrize("control", [None, "jnp.zeros(1)"], ids=["check", "control"])
def test_jax_sets_cpu_devices_after_importing_the_adapters(control):
    _need("jax", "flax")
    _check(JAX_IMPORTS, JAX_STEPS, JAX_CALLS, control, JAX_ERRORS)


# --- Keras on each backend: the backend chosen, its runtime, floatx -------------------------------

FRAMEWORK = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}

KERAS_RUNTIME = {  # backend: (import, what starts its runtime, configuration, its error)
    "tensorflow": (
        "import tensorflow as tf",
        "tf.constant(0.0)",
        "tf.config.threading.set_intra_op_parallelism_threads(1)",
        "Intra op parallelism cannot be modified after initialization",
    ),
    "torch": (
        "import torch",
        TORCH_INIT,
        "torch.set_num_interop_threads(1)",
        "cannot set number of interop threads after parallel work",
    ),
    "jax": (
        "import jax, jax.numpy as jnp",
        "jnp.zeros(1)",
        'jax.config.update("jax_num_cpu_devices", 4)\njax.config.update("jax_enable_x64", True)',
        "jax_num_cpu_devices config should be updated before backends",
    ),
}

KERAS_IMPORTS = """
import os, sys
{choose}
import numpy as np
{framework}
import lrn_core
import lrn_core.adapters.keras as lrn_keras  # before the user's own ``import keras``
if {backend!r} == "tensorflow":
    import lrn_core.adapters.tensorflow as lrn_tf
import keras
"""

KERAS_STEPS = {
    "runtime": "{configure}",
    "backend": "assert keras.backend.backend() == {backend!r}, keras.backend.backend()",
    "floatx": 'keras.config.set_floatx("float64")',
    "float64 layer": """
        layer = lrn_keras.LocalResponseNormalization(1, 2.0, 1e-2, 0.75)
        assert layer.compute_dtype == "float64", f"computes in {{layer.compute_dtype}}"
    """,
}

KERAS_CALLS = """
x = np.random.default_rng(0).standard_normal((2, 3, 4, 7))
sq = np.pad(x * x, [(0, 0)] * 3 + [(1, 1)])
ref = x * (2.0 + 1e-2 * (sq[..., :-2] + sq[..., 1:-1] + sq[..., 2:])) ** -0.75
layers = {{"keras layer": layer}}
if {backend!r} == "tensorflow":
    layers["tf layer"] = lrn_tf.LocalResponseNormalization(1, 2.0, 1e-2, 0.75)
for name, lay in layers.items():
    y = keras.ops.convert_to_numpy(lay(x))
    assert y.dtype == np.float64, (name, y.dtype)
    np.testing.assert_allclose(y, ref, rtol=1e-13, atol=0, err_msg=name)  # float32 is 1e-8 off
"""


@pytest.mark.parametrize("control", [False, True], ids=["check", "control"])
@pytest.mark.parametrize("backend", list(FRAMEWORK))
def test_keras_configures_after_importing_the_adapter(backend, control):
    """KERAS_BACKEND set before the imports is the backend Keras runs on although the adapter
    imports Keras before the user does; the backend's runtime and floatx are set afterwards, and
    a layer built then computes in float64 (to 1e-13: float32 would be 1e-8 off).

    The control sets another backend before the imports (as an adapter choosing one would),
    starts the runtime, and pins the global dtype policy (as an adapter building a policy at
    import would): every step must fail."""
    _need("keras", FRAMEWORK[backend])
    framework, init, configure, error = KERAS_RUNTIME[backend]
    other = next(
        (b for b in FRAMEWORK if b != backend and importlib.util.find_spec(FRAMEWORK[b])), None
    )
    if control and other is None:
        pytest.skip("the control needs a second Keras backend installed")
    fmt = dict(backend=backend, framework=framework, configure=configure)
    choose = f"os.environ['KERAS_BACKEND'] = {other!r}" if control else ""
    imports = KERAS_IMPORTS.format(choose=choose, **fmt)
    steps = {k: v.format(**fmt) for k, v in KERAS_STEPS.items()}
    errors = {
        "runtime": error,
        "backend": "AssertionError",
        "float64 layer": "computes in float32",
    }
    start = f'{init}\nkeras.config.set_dtype_policy("float32")' if control else None
    _check(imports, steps, KERAS_CALLS.format(**fmt), start, errors, {"KERAS_BACKEND": backend})


# --- no import cycle between the adapters ---------------------------------------------------------


def _module_level(tree):
    """The import statements Python runs when it loads a module: its top level (with ``if`` /
    ``try`` blocks), not the bodies of functions and classes, which run later."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                todo.extend(getattr(node, field, []))
        elif isinstance(node, ast.ExceptHandler):
            todo.extend(node.body)


def test_adapters_import_each_other_one_way_only():
    """The adapters' module-level imports of each other (``from .x import``, ``from . import x``,
    in packages too) have no cycle, so importing any adapter never meets a half-initialised one.
    The one import against the grain, the Keras layer's call of the TensorFlow function, runs
    inside that function (the Keras adapter must not import TensorFlow on other backends);
    the TensorFlow package imports the Keras adapter, whose layer it re-exports."""
    import pathlib

    import lrn_core.adapters

    root = pathlib.Path(lrn_core.adapters.__path__[0])
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        package = parts[:-1]
        if parts[-1] == "__init__":
            parts = package
        modules[".".join(parts)] = (path, package)
    edges, lazy = {}, set()
    for name, (path, package) in modules.items():
        tree = ast.parse(path.read_text())
        top = set(map(id, _module_level(tree)))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not 1 <= node.level <= len(package) + 1:
                continue
            base = package[: len(package) + 1 - node.level]
            if node.module:
                targets = [".".join([*base, *node.module.split(".")])]
            else:
                targets = [".".join([*base, a.name]) for a in node.names]
            for target in targets:
                while target and target not in modules:  # a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    if id(node) in top:
                        edges.setdefault(name, set()).add(target)
                    else:
                        lazy.add((name, target))
    assert "keras" in edges["tensorflow"] and ("keras", "tensorflow") in lazy  # parsed
    assert "torch._ops" in edges["torch"] and "torch._compat" in edges["torch._ops"]  # packages

    def cycle_from(node, stack):
        if node in stack:
            return [*stack[stack.index(node) :], node]
        for nxt in sorted(edges.get(node, ())):
            found = cycle_from(nxt, [*stack, node])
            if found:
                return found
        return None

    for start in edges:
        cycle = cycle_from(start, [])
        assert cycle is None, " -> ".join(cycle)
