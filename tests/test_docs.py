"""The examples in the docstrings and in the README run and print what they say; pydoc renders
the package; the README keeps the two set-up commands (CI runs the second, ``.ci/run``).

The manual in ``docs/`` is checked by ``tox -e docs`` (``sphinx-build -W`` and
``sphinx-build -b doctest``), which runs this file too, with every framework installed.
"""

import doctest
import importlib.util
import os
import pydoc
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lrn_core
import lrn_core._api
import lrn_core.adapters.numpy
import lrn_core.conventions
import lrn_core.tolerances
import lrn_core.validation

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

#: the README's "Set up" block, word for word: a fresh machine's two commands
SETUP = [
    'pip install ".[all]" -c constraints.txt && lrn-core check && lrn-core bench',
    "pip install tox && tox",
]


@pytest.mark.parametrize(
    "module",
    [
        lrn_core,
        lrn_core._api,
        lrn_core.adapters.numpy,
        lrn_core.conventions,
        lrn_core.validation,
        lrn_core.tolerances,
    ],
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_every_public_function_has_an_example():
    for name in ("lrn", "lrn_backward", "window_sum"):
        assert ">>>" in getattr(lrn_core, name).__doc__, name


def test_pydoc_renders_the_package():
    text = pydoc.render_doc(lrn_core, renderer=pydoc.plaintext)
    for name in ("lrn(", "lrn_backward(", "window_sum(", "show_config("):
        assert name in text


def _readme():
    if not README.exists():
        pytest.skip("no README.md next to tests/ (an installed copy of the tests)")
    return README.read_text(encoding="utf-8")


def _blocks(text, lang):
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_has_the_two_setup_commands():
    text = _readme()
    section = text.split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
    (block,) = _blocks(section, "sh")
    assert block.splitlines() == SETUP


def test_ci_runs_the_readme_test_command():
    ci = ROOT / ".ci" / "run"
    if not ci.exists():
        pytest.skip("no .ci/run (not a clone of the repository)")
    commands = [ln for ln in ci.read_text().splitlines() if ln and not ln.startswith(("#", "set "))]
    # .ci/run calls pip and tox through `python -m` (the interpreter on PATH): the same command
    assert commands[-1].replace("python -m ", "") == SETUP[1], commands


FRAMEWORKS = ("torch", "tensorflow", "jax")


def _examples():
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    return _blocks(text, "python")


def _name(code):
    return next((f for f in FRAMEWORKS if f"import {f}" in code), "numpy")


@pytest.mark.parametrize("code", _examples(), ids=_name)
def test_readme_example_runs_and_prints_true(code):
    """Each README example ends by comparing with the native op (or the float64 formula):
    run in a fresh interpreter (a framework import must not hang the suite), every word it
    prints must be True."""
    needed = [f for f in FRAMEWORKS if re.search(rf"^(import|from) {f}\b", code, flags=re.M)]
    missing = [f for f in needed if importlib.util.find_spec(f) is None]
    if missing:
        pytest.skip(f"needs {missing}")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    words = run.stdout.split()
    assert words and all(w == "True" for w in words), run.stdout
