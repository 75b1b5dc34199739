"""How close results must come to the exact ones: the one table behind ``lrn-core check`` and the
tests (``tests/conftest.py`` and the framework tests import it).

Every bound is a multiple of the dtype's unit roundoff ``u``, the largest relative error of one
correct rounding (half the gap between 1 and the next number): 2**-53 for float64, 2**-24 for
float32, 2**-11 for float16 and 2**-8 for bfloat16. An "ulp" below is ``2 u``.

>>> from lrn_core.tolerances import REFERENCE, UNIT_ROUNDOFF
>>> REFERENCE["float32"] / UNIT_ROUNDOFF["float32"]
16.0
"""

from __future__ import annotations

__all__ = ["UNIT_ROUNDOFF", "REFERENCE", "FLOOR", "NATIVE"]

#: dtype name -> unit roundoff ``u``
UNIT_ROUNDOFF = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}
_u = UNIT_ROUNDOFF

#: dtype name -> relative error allowed between lrn-core and the float64 reference, elementwise
#: for outputs (tests add :data:`FLOOR` as absolute error); a gradient's error is measured
#: relative to the magnitude of its terms, which can cancel.
REFERENCE = {
    # Double throughout: a window sum of n = min(size, C) positive squares costs at most
    # (n + 2) u, s ** -beta multiplies that by beta, and the reference errs as much again: with
    # windows of up to 64 channels and beta up to 2, under 300 u. 2**10 u (1.1e-13) is above
    # that bound; test_core measures at most 12 u.
    "float64": 2**10 * _u["float64"],
    # float32 kernels are within 6 ulps of the exact result (docs/numerics.rst; test_core's ulp
    # test measures at most 5 ulps); 8 ulps (16 u, 9.5e-7) leaves room for the last rounding.
    "float32": 16 * _u["float32"],
    # Computed in float32 (within 16 u of float32, 2**-20: under 1/500 of float16's u) and
    # rounded once (at most u): 1.25 u covers both with room to spare. test_core measures
    # at most 0.8 u.
    "float16": 1.25 * _u["float16"],
    # the same in bfloat16: float32's error is under 1/4000 of its u
    "bfloat16": 1.25 * _u["bfloat16"],
}

#: dtype name -> absolute error allowed besides the relative one, for results at or near zero
#: and in the subnormal range, where relative error means nothing: float32's is 8.5 times its
#: smallest normal (1.2e-38), float16's 1.7 times its subnormal spacing (6e-8; rounding a
#: subnormal costs up to half of that), float64's only lets exact zeros through. bfloat16
#: shares float32's exponent range.
FLOOR = {"float64": 1e-300, "float32": 1e-37, "float16": 1e-7, "bfloat16": 1e-37}

#: dtype name -> relative error allowed between a framework's native LRN (or the plain ``jnp``
#: LRN a JAX user writes) and the exact result, or lrn-core's: the natives are not exact.
#: Measured here (torch 2.13, TF 2.21; 2x33x5x4 inputs, sizes 1-30, beta 0.5-2, elementwise
#: against the float64 reference): torch float64 8 u, torch float32 11 u, TF float32 8 u,
#: TF float16 7 u.
NATIVE = {
    # torch's float64 LRN is an average pooling of the squares (a sum then a division) and a
    # pow, (n + 4) u times beta at most: 2**12 u (4.5e-13) is ten times that for 64 channels.
    "float64": 2**12 * _u["float64"],
    # torch and TF accumulate float32 windows in float32 (torch by average pooling, TF with a
    # band-matrix product), (n + 4) u times beta again, and lrn-core's own 16 u on the other
    # side: 2**7 u (7.6e-6).
    "float32": 2**7 * _u["float32"],
    # TF computes float16 LRN in float16 (and jnp in the input's precision): the window sum,
    # the power and the product each round in float16, (n + 4) u; 20 u (9.8e-3) covers TF's
    # default window of 11 channels (the largest the tests give it) with a margin.
    "float16": 20 * _u["float16"],
    # jnp in bfloat16 the same way (TF's native op computes bfloat16 through float32, in the
    # adapter, and the tests compare it with 2 * REFERENCE instead).
    "bfloat16": 7 * _u["bfloat16"],
}
