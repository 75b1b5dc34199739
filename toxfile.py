"""tox plugin (tox 4 loads ``toxfile.py`` from the project root): find the pyenv Pythons.

The project's machines carry Python 3.10-3.13 under ``~/.pyenv/versions/3.X.Y`` but put only
pyenv's shims on PATH, and a shim answers for one version at a time (``python3.10`` fails while
the global version is 3.11). For every ``tox`` run this appends the ``bin`` folder of each
installed CPython 3.10+ under ``$PYENV_ROOT`` (default ``~/.pyenv``) to the END of PATH, so an
interpreter already on PATH still wins and tox's discovery (virtualenv) finds the others there.
Nothing happens where pyenv is absent: install the missing Pythons yourself (docs/versions.rst).

It also prunes: with ``LRN_CORE_TOX_PRUNE=1`` (the default when ``CI`` is set, as on the project's
CI) each test env's folder is deleted once its commands have run, so the whole matrix never holds
more than one framework install on disk (each torch/TensorFlow env is 1-6 GB; all of them together
filled a CI disk). The packaging envs (the wheels) are kept. Locally, envs stay for reuse.
"""

from __future__ import annotations

import glob
import os
import re
import shutil

try:
    from tox.plugin import impl
except ImportError:  # loaded without tox (tests/test_toxfile.py): the hooks are plain functions

    def impl(function):
        return function


def pyenv_python_dirs(root=None):
    """``bin`` folders of the CPython 3.10+ builds installed by pyenv, newest patch first."""
    root = root or os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = []
    for path in glob.glob(os.path.join(root, "versions", "3.*", "bin")):
        m = re.fullmatch(r"3\.(\d+)\.(\d+)", os.path.basename(os.path.dirname(path)))
        if m and int(m[1]) >= 10 and os.access(os.path.join(path, f"python3.{m[1]}"), os.X_OK):
            found.append(((int(m[1]), int(m[2])), path))
    return [path for _, path in sorted(found, reverse=True)]


def _extend_path():
    path = os.environ.get("PATH", "").split(os.pathsep)
    extra = [d for d in pyenv_python_dirs() if d not in path]
    if extra:
        os.environ["PATH"] = os.pathsep.join(path + extra)


def prune_enabled(environ=None):
    """True when each test env is to be deleted after its run (LRN_CORE_TOX_PRUNE, else CI)."""
    environ = os.environ if environ is None else environ
    flag = environ.get("LRN_CORE_TOX_PRUNE")
    if flag is None:
        flag = environ.get("CI", "")
    return flag.strip().lower() in ("1", "true", "yes", "on")


@impl
def tox_env_teardown(tox_env):
    """Delete a finished test env's folder when pruning is on (not the packaging envs)."""
    from tox.tox_env.package import PackageToxEnv

    if prune_enabled() and not isinstance(tox_env, PackageToxEnv):
        env_dir = tox_env.env_dir
        shutil.rmtree(env_dir, ignore_errors=True)
        print(f"{tox_env.name}: pruned {env_dir} (LRN_CORE_TOX_PRUNE)", flush=True)


_extend_path()
