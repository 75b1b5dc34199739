"""Argument checks shared by the core and every adapter: one message for one mistake.

Each check names the argument, the value received and what is allowed, in NumPy's manner, and
returns the value normalised (a Python ``int`` or ``float``, an axis in ``[0, ndim)``), so the
kernels can trust what they receive. Nothing here mutates its arguments.

>>> from lrn_core.validation import check_params, check_tf_params
>>> check_params(4, 1e-4, 0.75, 1, None)          # before defaults to PyTorch's size // 2
(4, 0.0001, 0.75, 1.0, 2)
>>> check_params(4, 1e-4, 0.75, 1.0, 4)
Traceback (most recent call last):
    ...
ValueError: before must be an integer in [0, 3], got 4
>>> check_tf_params(1.5, 1.0, 1.0, 0.5)
Traceback (most recent call last):
    ...
TypeError: depth_radius must be an integer, got 1.5 of type float
"""

from __future__ import annotations

import math
import numbers
import operator
import warnings

import numpy as np

from .conventions import default_before

__all__ = [
    "NATIVE_DTYPES",
    "WIDENED_DTYPES",
    "check_int",
    "check_real",
    "check_params",
    "check_tf_params",
    "check_axis",
    "check_choice",
    "IMPLEMENTATIONS",
    "check_implementation",
    "as_array",
    "check_like",
    "check_out",
]

#: dtypes computed natively by the kernels
NATIVE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: dtypes computed in float32 and rounded once to the input dtype at the end
WIDENED_DTYPES = (np.dtype(np.float16),)
_SUPPORTED = "float16, float32 or float64"


# --- scalars --------------------------------------------------------------------------------------


def check_int(name, value, minimum=None, maximum=None):
    """``value`` as an ``int`` in ``[minimum, maximum]`` (either bound may be None).

    bool is refused (``True`` is not a size); NumPy integers and other ``numbers.Integral`` are
    accepted. TypeError for a non-integer, ValueError for an integer out of range.
    """
    if type(value) is not int:  # the common case skips the (slow) ABC checks
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(
                f"{name} must be an integer, got {value!r} of type {type(value).__name__}"
            )
        value = operator.index(value)
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        if maximum is None:
            allowed = f">= {minimum}"
        else:
            allowed = f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")
    return value


def check_real(name, value):
    """``value`` as a finite ``float``: TypeError for a non-number or a bool, ValueError for
    nan or inf."""
    if type(value) is float and math.isfinite(value):  # the common case, without ABC checks
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number, got {value!r} of type {type(value).__name__}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_params(size, alpha, beta, k, before):
    """lrn-core's parameters checked: ``(size, alpha, beta, k, before)`` normalised.

    ``size`` an integer >= 1, ``alpha``, ``beta``, ``k`` finite reals, ``before`` an integer in
    ``[0, size - 1]`` or None for :func:`lrn_core.conventions.default_before` (PyTorch's window).
    """
    size = check_int("size", size, minimum=1)
    alpha = check_real("alpha", alpha)
    beta = check_real("beta", beta)
    k = check_real("k", k)
    if before is None:
        before = default_before(size)
    else:
        before = check_int("before", before, minimum=0, maximum=size - 1)
    return size, alpha, beta, k, before


def check_tf_params(depth_radius, bias, alpha, beta):
    """TensorFlow's LRN parameters checked: ``(depth_radius, bias, alpha, beta)`` normalised,
    ``depth_radius`` an integer >= 0 and the others finite reals."""
    return (
        check_int("depth_radius", depth_radius, minimum=0),
        check_real("bias", bias),
        check_real("alpha", alpha),
        check_real("beta", beta),
    )


def check_axis(axis, ndim):
    """``axis`` as an index in ``[0, ndim)``; negative values count from the end.

    TypeError for a non-integer, ``numpy.exceptions.AxisError`` (a ValueError and an IndexError)
    out of range, as NumPy raises.
    """
    if type(axis) is not int:
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"axis must be an integer, got {axis!r} of type {type(axis).__name__}")
        axis = operator.index(axis)
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim


def check_choice(name, value, choices):
    """``value`` if it is one of the strings ``choices``, else ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


# --- the implementation choice, one vocabulary for every adapter --------------------------------

#: ``implementation=`` of every adapter: ``"auto"`` (lrn-core's kernels where they can run, the
#: framework's own computation where they cannot: another device, a saved or exported artefact,
#: a compiler that cannot call them), ``"core"`` (always the kernels, an error where they cannot
#: run), ``"native"`` (always the framework's own computation: its LRN op, or for JAX, which has
#: none, the formula in ``jnp``/``lax``).
IMPLEMENTATIONS = ("auto", "core", "native")

#: old spellings, accepted with a ``DeprecationWarning``
_OLD_IMPLEMENTATIONS = {"xla": "native"}


def check_implementation(value, *, stacklevel=3):
    """``value`` of :data:`IMPLEMENTATIONS`; an old spelling (``"xla"``) gives its new name with a
    ``DeprecationWarning``; anything else a ValueError listing the choices."""
    if isinstance(value, str) and value in _OLD_IMPLEMENTATIONS:
        new = _OLD_IMPLEMENTATIONS[value]
        warnings.warn(
            f"implementation={value!r} is deprecated; use implementation={new!r} (the same route)",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        return new
    return check_choice("implementation", value, IMPLEMENTATIONS)


# --- arrays ---------------------------------------------------------------------------------------


def as_array(name, a):
    """``a`` as an ndarray of a supported dtype (float16, float32, float64), at least 1-D."""
    if not isinstance(a, np.ndarray):
        try:
            a = np.asarray(a)
        except Exception as exc:  # e.g. ragged lists
            raise TypeError(f"{name} must be array_like, got {type(a).__name__}") from exc
    if a.dtype not in NATIVE_DTYPES and a.dtype not in WIDENED_DTYPES:
        raise TypeError(f"{name} must have dtype {_SUPPORTED}, got {a.dtype}")
    if a.ndim == 0:
        raise ValueError(
            f"{name} must have at least 1 dimension (the channel axis), got a 0-d array"
        )
    return a


def check_like(name, a, ref, ref_name):
    """``a`` (dy, y) as an array of the same shape and dtype as ``ref`` (called ``ref_name``)."""
    a = as_array(name, a)
    if a.shape != ref.shape:
        raise ValueError(f"{name} must have the shape of {ref_name} {ref.shape}, got {a.shape}")
    if a.dtype != ref.dtype:
        raise TypeError(f"{name} must have the dtype of {ref_name} ({ref.dtype}), got {a.dtype}")
    return a


def check_out(out, shape, dtype):
    """``out=``: None, or a writeable ndarray of exactly ``shape`` and ``dtype``."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out must be writeable, got a read-only array")
    return out
