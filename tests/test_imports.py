"""Importing lrn-core must never import a framework: each adapter imports its own."""

import ast
import pathlib
import subprocess
import sys

import pytest

import lrn_core

CODE = """
import sys
import lrn_core, lrn_core.adapters, lrn_core.adapters.numpy, lrn_core.conventions
import lrn_core.check, lrn_core.cli, lrn_core.tolerances, lrn_core.validation
lrn_core.get_config()
bad = sorted(m for m in ("torch", "tensorflow", "keras", "jax", "jaxlib", "flax")
             if m in sys.modules)
print(",".join(bad))
"""


def test_import_lrn_core_imports_no_framework():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported: {out.stdout.strip()}"


def test_public_api():
    assert set(lrn_core.__all__) >= {
        "lrn",
        "lrn_backward",
        "window_sum",
        "show_config",
        "__version__",
    }
    for name in ("lrn", "lrn_backward", "window_sum", "show_config"):
        doc = getattr(lrn_core, name).__doc__
        assert doc and len(doc) > 60, name


def test_kernels_variant_is_reported_and_baseline_matches(tmp_path):
    """The portable baseline build and the AVX2 build give the same results."""
    code = (
        "import numpy as np, lrn_core, lrn_core._dispatch as d;"
        "x = np.random.default_rng(1).standard_normal((2, 17, 33), dtype=np.float32);"
        "np.save(r'{f}', np.stack([lrn_core.lrn(x, 5, 1.0), "
        "lrn_core.lrn_backward(x, x, 4, 1.0)]));"
        "print(d.kernels().__name__)"
    )
    names = []
    for env in ("baseline", ""):
        f = tmp_path / f"{env or 'auto'}.npy"
        out = subprocess.run(
            [sys.executable, "-c", code.format(f=f)],
            capture_output=True,
            text=True,
            check=True,
            env={**_env(), "LRN_CORE_KERNELS": env},
        )
        names.append(out.stdout.strip())
    assert names[0] == "lrn_core._kernels"
    import numpy as np

    a, b = np.load(tmp_path / "baseline.npy"), np.load(tmp_path / "auto.npy")
    # the AVX2 build takes rsqrt-based beta paths: a couple of ulps apart
    from lrn_core.tolerances import REFERENCE

    rtol = REFERENCE["float32"]
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


def test_adapters_import_no_private_name_of_the_core():
    """Adapters use the core's public names (lrn, lrn_core.validation, conventions, ...), never
    its private helpers. Two private modules are shared on purpose: the output cache ``_buffers``
    (its ``empty``/``empty_like`` allocate their outputs) and ``_dispatch`` (``kernels()``, the
    compiled module for this CPU, which the TF adapter calls on TensorFlow's buffers eagerly)."""
    import lrn_core.adapters

    found = []
    for path in sorted(pathlib.Path(lrn_core.adapters.__path__[0]).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:  # from the core
                module = node.module or ""
                names = [a.name for a in node.names]
                shared = ("_buffers", "_dispatch")
                if (module.startswith("_") and module not in shared) or any(
                    n.startswith("_") and n not in shared for n in names
                ):
                    found.append(
                        f"{path.name}: from {'.' * node.level}{module} import {', '.join(names)}"
                    )
    assert not found, found


def _env():
    import os

    return dict(os.environ)


@pytest.mark.parametrize("module", ["lrn_core._kernels", "lrn_core._kernels_avx2"])
def test_compiled_module_reports_its_build(module):
    mod = pytest.importorskip(module)
    assert isinstance(mod.openmp_enabled, bool)
    assert mod.max_threads() >= 1
    assert "-O" in mod.build_cflags


def test_the_version_is_written_once_and_installed_as_written():
    import importlib.metadata

    import lrn_core._version

    assert lrn_core.__version__ == lrn_core._version.__version__
    assert importlib.metadata.version("lrn-core") == lrn_core.__version__
    pyproject = pathlib.Path(__file__).parent.parent / "pyproject.toml"
    # tomllib is Python 3.11+; pyproject.toml is absent from the sdist's own test run
    if sys.version_info >= (3, 11) and pyproject.exists():
        import tomllib

        project = tomllib.loads(pyproject.read_text())["project"]
        assert "version" not in project and "version" in project["dynamic"]
