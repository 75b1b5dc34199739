"""Sphinx configuration of lrn-core's manual (``tox -e docs`` builds it and runs its examples).

The manual documents the *installed* package: nothing here puts ``src/`` on the path, so the API
reference and the doctests import the compiled kernels and the real frameworks (torch,
TensorFlow, JAX), as a user would. To build from a source tree with the extension built in place
(``python setup.py build_ext --inplace``), put ``src`` on ``PYTHONPATH`` yourself.
"""

import os

# Keras 3 picks its backend on first import; the manual's Keras examples are the TensorFlow ones.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import lrn_core  # noqa: E402  (after the environment above)

project = "lrn-core"
author = "lrn-core developers"
copyright = "lrn-core developers"
release = lrn_core.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the docstrings are NumPy style (Parameters, Returns, Examples)
    "sphinx.ext.doctest",  # sphinx-build -b doctest runs every >>> block of the manual
]

exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
html_theme_options = {"description": "Local Response Normalization, one exact, fast core"}

# The API pages list what each module's __all__ exports, with the docstrings as written: an
# inherited docstring (torch.nn.Module.forward, keras.layers.Layer.call) says nothing about LRN.
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False
autodoc_typehints = "none"  # the signatures carry the defaults; the types are in the docstrings
napoleon_google_docstring = False
napoleon_numpy_docstring = True

# Examples print what they compute: whitespace in array reprs varies with NumPy's printing.
import doctest  # noqa: E402

doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
doctest_global_setup = "import numpy as np"
