"""The command line: info and check (bench is tested in test_bench.py)."""

import importlib
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

import lrn_core
from lrn_core import check, cli


def test_info_prints_the_configuration(capsys, monkeypatch):
    from lrn_core import _buffers

    monkeypatch.setattr(_buffers, "limit", _buffers.limit)  # restored after the test
    monkeypatch.setenv("LRN_CORE_OUTPUT_CACHE_MB", "64")
    _buffers.read_environment()  # read once at import: read it again
    assert cli.main(["info"]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    cfg = lrn_core.get_config()
    assert lines["lrn_core"] == lrn_core.__version__
    for key in ("openmp", "threads", "build_cflags", "kernels", "frameworks"):
        assert key in lines
    assert lines["threads"] == str(cfg["threads"])
    assert lines["output_cache_mib"] == "64" and cfg["output_cache_mib"] == 64


def test_info_prints_the_versions_of_the_frameworks_found(capsys):
    """The versions `lrn-core info` prints are the ones the frameworks report once imported (read
    from metadata: get_config imports none of them, see test_imports.py)."""
    found = lrn_core.get_config()["frameworks"]
    assert found["numpy"] == np.__version__
    for name in ("torch", "tensorflow", "keras", "jax"):
        if importlib.util.find_spec(name) is None:
            assert name not in found
        else:
            assert found[name] == importlib.import_module(name).__version__, name
    assert cli.main(["info"]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines["frameworks"] == ", ".join(f"{n} {v}" for n, v in found.items())


def test_check_numpy_passes_and_prints_a_table(capsys):
    assert cli.main(["check", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "max rel error" in out
    assert "finite differences" in out
    assert " 0 failed" in out
    assert "FAIL" not in out


def test_check_exits_non_zero_on_a_mismatch(monkeypatch, capsys):
    """Break the reference on purpose: check must notice and fail."""
    real = check.reference.lrn
    monkeypatch.setattr(check.reference, "lrn", lambda *a, **k: real(*a, **k) * (1 + 1e-3))
    assert cli.main(["check", "numpy"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_check_all_installed_suites(capsys):
    """Every adapter whose framework is installed, against reference and native."""
    assert cli.main(["check"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    for suite in check.available_suites():
        assert f"\n{suite} " in out


def test_unknown_suite_is_an_error():
    with pytest.raises(ValueError, match="unknown suite 'mxnet'"):
        check.run(["mxnet"])


def test_python_dash_m_and_console_script():
    out = subprocess.run(
        [sys.executable, "-m", "lrn_core", "info"], capture_output=True, text=True, check=True
    )
    assert "openmp" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "lrn_core", "nonsense"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
