"""tox plugin (tox 4 loads ``toxfile.py`` from the project root): find the pyenv Pythons.

The project's machines carry Python 3.10-3.13 under ``~/.pyenv/versions/3.X.Y`` but put only
pyenv's shims on PATH, and a shim answers for one version at a time (``python3.10`` fails while
the global version is 3.11). For every ``tox`` run this appends the ``bin`` folder of each
installed CPython 3.10+ under ``$PYENV_ROOT`` (default ``~/.pyenv``) to the END of PATH, so an
interpreter already on PATH still wins and tox's discovery (virtualenv) finds the others there.
Nothing happens where pyenv is absent: install the missing Pythons yourself (README, Testing).
"""

from __future__ import annotations

import glob
import os
import re


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


_extend_path()
