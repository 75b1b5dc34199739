"""The type stub of the compiled module matches what it exports (mypy's stubtest)."""

import subprocess
import sys

import pytest


def test_stub_matches_the_compiled_module():
    pytest.importorskip("mypy")
    modules = ["lrn_core._kernels"]
    try:
        import lrn_core._kernels_avx2  # noqa: F401

        modules.append("lrn_core._kernels_avx2")
    except ImportError:
        pass
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", *modules], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
