"""toxfile.py (the tox plugin that finds the pyenv Pythons of the project's machines)."""

import importlib.util
import os
from pathlib import Path

import pytest

TOXFILE = Path(__file__).resolve().parents[1] / "toxfile.py"


def _fake_pyenv(root, versions):
    for version in versions:
        bin_dir = root / "versions" / version / "bin"
        bin_dir.mkdir(parents=True)
        minor = version.split(".")[1]
        exe = bin_dir / f"python3.{minor}"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    return root


@pytest.fixture
def toxfile(monkeypatch, tmp_path):
    if not TOXFILE.exists():
        pytest.skip("toxfile.py is not beside the tests (installed tests)")
    root = _fake_pyenv(tmp_path / "pyenv", ["3.9.18", "3.10.13", "3.12.1", "3.13.0", "3.11.7"])
    (root / "versions" / "3.14-dev" / "bin").mkdir(parents=True)  # not a release: ignored
    (root / "versions" / "3.12.0" / "bin").mkdir(parents=True)  # no interpreter in it: ignored
    monkeypatch.setenv("PYENV_ROOT", str(root))
    monkeypatch.setenv("PATH", "/usr/bin" + os.pathsep + str(root / "versions/3.11.7/bin"))
    spec = importlib.util.spec_from_file_location("lrn_core_toxfile", TOXFILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # appends to PATH on import, as tox loads it
    return module, root


def test_finds_the_pyenv_pythons_3_10_and_newer(toxfile):
    module, root = toxfile
    found = module.pyenv_python_dirs()
    assert found == [
        str(root / "versions" / v / "bin") for v in ("3.13.0", "3.12.1", "3.11.7", "3.10.13")
    ]


def test_appends_them_to_path_after_what_is_there(toxfile):
    _, root = toxfile
    path = os.environ["PATH"].split(os.pathsep)
    assert path == ["/usr/bin"] + [
        str(root / "versions" / v / "bin") for v in ("3.11.7", "3.13.0", "3.12.1", "3.10.13")
    ]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"CI": "1"}, True),
        ({"CI": ""}, False),
        ({"CI": "true", "LRN_CORE_TOX_PRUNE": "0"}, False),
        ({"LRN_CORE_TOX_PRUNE": "1"}, True),
        ({"LRN_CORE_TOX_PRUNE": "yes"}, True),
    ],
)
def test_prunes_envs_on_ci_or_when_asked(toxfile, environ, expected):
    module, _ = toxfile
    assert module.prune_enabled(environ) is expected
