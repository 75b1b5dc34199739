"""The source distribution builds: run by ``tox -e sdist``, which makes the sdist with
``python -m build --sdist`` and points LRN_CORE_SDIST_DIR at it; skipped elsewhere (building a
wheel from source takes minutes).

The sdist must carry what the compiled core is built from (the Cython driver, the C kernels and
their header, the declarations) and not the Cython-generated C; a wheel built from the unpacked
sdist, installed, must pass the core tests shipped in that sdist.
"""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SDIST_DIR = os.environ.get("LRN_CORE_SDIST_DIR")
pytestmark = pytest.mark.skipif(not SDIST_DIR, reason="run by tox -e sdist (LRN_CORE_SDIST_DIR)")

NEEDED = [
    "src/lrn_core/_kernels.pyx",
    "src/lrn_core/_kernels_avx2.pyx",
    "src/lrn_core/_lrn_kernels.pxd",
    "src/lrn_core/_simd/lrn_kernels.h",
    "src/lrn_core/_simd/lrn_kernels.c",
    "src/lrn_core/_lrn_xla_ffi.pxd",
    "src/lrn_core/_simd/lrn_xla_ffi.h",
    "src/lrn_core/_simd/lrn_xla_ffi.c",
    "src/lrn_core/_simd/xla_ffi_c_api.h",
    "src/lrn_core/_simd/lrn_tf_op.c",
    "src/lrn_core/_simd/lrn_driver.h",
    "src/lrn_core/_simd/tf_c_api.h",
    "src/lrn_core/_kernels.pyi",
    "adapters/jax/__init__.py",
    "adapters/jax/_ffi.py",
    "adapters/jax/_primitives.py",
    "setup.py",
    "pyproject.toml",
    "tests/conftest.py",
    "tests/reference.py",
    "tests/test_core.py",
]


@pytest.fixture(scope="module")
def sdist():
    found = sorted(Path(SDIST_DIR).glob("lrn_core-*.tar.gz"))
    assert len(found) == 1, f"expected one sdist in {SDIST_DIR}, found {found}"
    return found[0]


def test_sdist_has_the_sources_and_no_generated_c(sdist):
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    missing = [n for n in NEEDED if n not in names]
    assert not missing, f"{sdist.name} lacks {missing}"
    generated = sorted(n for n in names if n.startswith("src/lrn_core/_kernels") and n[-2:] == ".c")
    assert not generated, f"{sdist.name} carries Cython output {generated}"


def test_wheel_from_unpacked_sdist_passes_core_tests(sdist, tmp_path):
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    (root,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(root)],
        check=True,
    )
    (wheel,) = wheels.glob("lrn_core-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--force-reinstall", "--no-deps", str(wheel)],
        check=True,
    )
    # from an empty directory, so that the installed wheel is imported, not a source tree
    tests = [str(root / "tests" / name) for name in ("test_core.py", "test_imports.py")]
    pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
    run = subprocess.run(pytest_cmd + tests, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    probe = subprocess.run(
        [sys.executable, "-c", "import lrn_core; print(lrn_core.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "site-packages" in probe.stdout, probe.stdout
