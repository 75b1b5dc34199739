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


def _core_imports(path, package):
    """(module, names) of each import of lrn-core's own modules in ``path`` (any nesting)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(parts + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


def test_adapters_and_harness_use_one_door_into_the_core():
    """The adapters and the benchmark harness call the public API (``lrn_core``, its public
    modules) or the one documented internal door, ``lrn_core._api`` (its ``__all__``: the
    functions, ``kernels``, ``output_buffer``): never ``_buffers``, ``_dispatch``, the kernel
    modules or any other private name of the core."""
    import lrn_core._api
    import lrn_core.adapters
    import lrn_core.benchmarks

    door = set(lrn_core._api.__all__)
    found, scanned = [], 0
    for pkg in (lrn_core.adapters, lrn_core.benchmarks):
        root = pathlib.Path(pkg.__path__[0])
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("").parts
            package = ".".join([pkg.__name__, *rel[:-1]])  # the folder holding the file
            scanned += 1
            for module, names in _core_imports(path, package):
                if not module.startswith("lrn_core") or module.startswith(
                    ("lrn_core.adapters", "lrn_core.benchmarks")
                ):
                    continue
                private = [m for m in module.split(".")[1:] if m.startswith("_")]
                if module == "lrn_core._api":
                    bad = [n for n in names if n not in door]
                elif private:
                    bad = [module]
                else:
                    bad = [n for n in names if n.startswith("_") and n != "__version__"]
                if bad:
                    found.append(f"{path.relative_to(root.parent)}: {module} {bad}")
    assert scanned > 5 and not found, found


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
