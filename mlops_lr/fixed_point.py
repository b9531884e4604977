"""Integer-only inference of a quantized linear model: the fixed-point plan, its proof that no
integer overflows for any input, and an exact model of the arithmetic the exported C runs.

Numeric core only (numpy), no I/O. :mod:`mlops_lr.export_c` renders a plan as a C header.

The arithmetic, per feature ``j`` (``L = 2**31 - 1``)::

    t   = x[j] * 2**f[j]                  exact (a power of two), NaN stays NaN
    t   = min(t, L), then max(t, -L)      saturation; NaN becomes L here, see below
    q   = (int64)(t + (L + 0.5)) - L      t + L + 0.5 (one double addition) is > 0, so the
                                          cast floors: nearest, ties up
    acc += w[j] * q                       int64, w[j] = c[j] * 2**shift[j]

    y = (double)(acc + b) * u             one float multiply; NaN if any x[j] was NaN

``c[j]`` are the model's integer codes (minus the zero point), so ``w[j] * 2**-f[j] * u`` is
the coefficient ``scale * 2**e[j] * c[j]``: ``u = scale * 2**E`` with ``E = min(e[j] - f[j])``
and ``shift[j] = e[j] - f[j] - E >= 0``. ``f[j]`` is the most fractional bits for which twice
the largest training |x[j]| still fits in ``L`` (one bit of headroom); inputs beyond ``L/2**f``
saturate (a feature that is always 0 gets ``f = 0``). The plan is accepted only if
``sum(|w[j]|) * L + |b| <= 2**63 - 1``: then neither a
product nor any partial sum can overflow, whatever the input (NaN, ±inf and ±1e300 included);
otherwise the finest features give up a fractional bit until it holds.

Every floating-point step above is one IEEE-754 double operation, so numpy performs exactly
the same ones: :meth:`FixedPointPlan.predict` is a bit-exact reference of the C code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from mlops_lr.quantize import QuantizedLinearModel

INPUT_LIMIT = 2**31 - 1
INT64_MAX = 2**63 - 1
# Fractional bits stay where 2**f is a normal double, so that x * 2**f is exact when finite.
MIN_INPUT_BITS, MAX_INPUT_BITS = -1022, 1023


@dataclass(frozen=True)
class FixedPointPlan:
    """The constants of integer-only inference (see the module docstring).

    Attributes
    ----------
    codes : tuple of int
        Integer codes minus the zero point, ``c[j]``.
    zero_point : int
        The model's zero point (0 when symmetric): its stored codes are ``c[j] + zero_point``.
    input_bits : tuple of int
        Fractional bits of each quantized input, ``f[j]``.
    shifts : tuple of int
        ``shift[j] >= 0``: the power of two aligning feature ``j`` with the accumulator.
    intercept : int
        The intercept in accumulator units, ``b``.
    output_scale : float
        Value of one accumulator unit, ``u``.
    bound : int
        Proven bound on ``|acc + b|`` for any input: ``sum(|w|) * (2**31 - 1) + |b|``.
    """

    codes: tuple[int, ...]
    zero_point: int
    input_bits: tuple[int, ...]
    shifts: tuple[int, ...]
    intercept: int
    output_scale: float
    bound: int

    @property
    def weights(self) -> tuple[int, ...]:
        """``w[j] = c[j] * 2**shift[j]``, the int64 multipliers of the quantized inputs."""
        return tuple(code << shift for code, shift in zip(self.codes, self.shifts, strict=True))

    def quantize_inputs(self, X: np.ndarray) -> np.ndarray:
        """``q``: the saturated fixed-point inputs, int64 (a NaN becomes ``2**31 - 1``)."""
        limit = float(INPUT_LIMIT)
        # Overflow to ±inf is what C does too (then saturated); NaN comparisons are False.
        with np.errstate(over="ignore", invalid="ignore"):
            t = np.asarray(X, dtype=np.float64) * np.exp2(np.asarray(self.input_bits, np.float64))
            t = np.where(t < limit, t, limit)
            t = np.where(t > -limit, t, -limit)
        return np.trunc(t + (limit + 0.5)).astype(np.int64) - INPUT_LIMIT

    def error_bound(self, coef: np.ndarray, y_max: float) -> float:
        """Largest difference from ``X @ coef + intercept`` for inputs inside the saturation
        range whose predictions stay below ``y_max`` in size: half an input step per feature
        (plus 2**-20 of a step: ``t + L + 0.5`` is rounded to a double before it is floored),
        half an accumulator unit for the intercept, and the two final double roundings."""
        steps = np.exp2(-np.asarray(self.input_bits, dtype=np.float64))
        inputs = float(np.abs(np.asarray(coef, dtype=np.float64)) @ steps) * (0.5 + 2.0**-20)
        return inputs + self.output_scale / 2 + 4 * 2.0**-53 * abs(y_max)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions exactly as the exported C computes them (NaN where an input is NaN)."""
        X = np.asarray(X, dtype=np.float64)
        # Within the proven bound int64 arithmetic is exact, so the sum order does not matter.
        acc = self.quantize_inputs(X) @ np.asarray(self.weights, dtype=np.int64) + self.intercept
        y = acc.astype(np.float64) * self.output_scale
        return np.where(np.isnan(X).any(axis=1), np.nan, y)


def plan_fixed_point(model: QuantizedLinearModel, max_abs: np.ndarray) -> FixedPointPlan:
    """The fixed-point plan of ``model`` for inputs whose training range is ``±max_abs``.

    Parameters
    ----------
    model
        A quantized linear model.
    max_abs
        Largest |value| of each feature on the training data.

    Raises
    ------
    ValueError
        ``max_abs`` does not match the model, or the intercept cannot be represented next to
        the coefficients within int64.
    """
    max_abs = np.asarray(max_abs, dtype=np.float64)
    codes = [int(code) - int(model.zero_point) for code in model.codes]
    if max_abs.shape != (len(codes),) or not np.isfinite(max_abs).all():
        raise ValueError(f"max_abs must hold {len(codes)} finite values")
    exponents = [int(exponent) for exponent in model.exponents]
    input_bits = [_input_bits(float(m)) for m in max_abs]
    active = [j for j, code in enumerate(codes) if code != 0]
    intercept = Fraction(float(model.intercept_value()))
    while True:
        alignment = [exponents[j] - input_bits[j] for j in range(len(codes))]
        finest = min((alignment[j] for j in active), default=0)
        shifts = [alignment[j] - finest if codes[j] else 0 for j in range(len(codes))]
        try:
            output_scale = math.ldexp(float(model.scale), finest)
        except OverflowError:
            output_scale = math.inf
        if not 0.0 < output_scale < math.inf:
            raise ValueError("the accumulator unit is not a finite, non-zero double")
        fixed_intercept = round(intercept / Fraction(output_scale))
        bound = sum(
            abs(code) << shift for code, shift in zip(codes, shifts, strict=True)
        ) * INPUT_LIMIT + abs(fixed_intercept)
        if bound <= INT64_MAX:
            return FixedPointPlan(
                codes=tuple(codes),
                zero_point=int(model.zero_point),
                input_bits=tuple(input_bits),
                shifts=tuple(shifts),
                intercept=fixed_intercept,
                output_scale=output_scale,
                bound=bound,
            )
        if not active or any(input_bits[j] <= MIN_INPUT_BITS for j in active):
            raise ValueError(
                "the coefficients, input ranges and intercept span too many powers of two for int64"
            )
        for j in active:  # the finest features give up a bit: every shift and |b| shrink
            if alignment[j] == finest:
                input_bits[j] -= 1


def _input_bits(max_abs: float) -> int:
    """The most fractional bits ``f`` with ``2 * max_abs * 2**f <= 2**31 - 1``."""
    if max_abs == 0.0:
        return 0
    mantissa, exponent = math.frexp(max_abs)  # max_abs = mantissa * 2**exponent, mantissa < 1
    # With f = 30 - exponent, 2 * max_abs * 2**f = mantissa * 2**31 (exact), in [2**30, 2**31).
    bits = 30 - exponent - (mantissa * 2.0**31 > INPUT_LIMIT)
    return max(MIN_INPUT_BITS, min(MAX_INPUT_BITS, bits))
