"""The examples in the docstrings run and print what they say; pydoc renders the package."""

import doctest
import pydoc

import pytest

import lrn_core
import lrn_core._api
import lrn_core.adapters.numpy
import lrn_core.conventions
import lrn_core.tolerances
import lrn_core.validation


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
