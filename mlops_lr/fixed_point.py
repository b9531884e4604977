"""Integer-only inference of a quantized model: the fixed-point plan, its proof that no integer
overflows for any input, and an exact model of the arithmetic the exported C runs.

Numeric core only (numpy), no I/O. :mod:`mlops_lr.export_c` renders a plan as a C header.

The arithmetic, per numeric input ``j`` (``L = 2**31 - 1``)::

    x   = x[j]; if x is NaN and the input has a fill:
          x = fill[j], and acc += ind[j]      with a missing indicator (int64, units of u)
    t   = x * 2**f[j]                         exact (a power of two), NaN stays NaN
    t   = min(t, L), then max(t, -L)          saturation; NaN becomes L here, see below
    q   = (int64)(t + (L + 0.5)) - L          t + L + 0.5 (one double addition) is > 0, so the
                                              cast floors: nearest, ties up
    acc += w[j] * q                           int64, w[j] = c[j] * 2**shift[j]

per categorical input ``k``, whose value has the code ``i`` (``0..n-1`` its categories, ``n``
missing, ``n + 1`` unknown; any other code counts as unknown)::

    acc += table[k][i]                        int64, in units of u: no multiply

and finally::

    y = (double)(acc + b) * u                 one float multiply; NaN if a numeric input
                                              without a fill was NaN

The model's design columns (:mod:`mlops_lr.folded`) have the coefficients ``scale * 2**e * c``
(``c``: integer code minus the zero point). The accumulator unit is ``u = scale * 2**E``: a
numeric input then weighs ``w = c * 2**shift`` with ``shift = e - f - E >= 0``, and a 0/1
column (a missing indicator, a table entry) adds ``c * 2**(e - E)``. ``E`` starts at the finest
active column (``e - f`` for a numeric input, ``e`` for a 0/1 column), so every weight and
entry is an exact integer. ``f[j]`` is the most fractional bits for which twice the largest
training |x[j]| (its fill included) still fits in ``L`` (one bit of headroom); inputs beyond
``L/2**f`` saturate (an input that is always 0 gets ``f = 0``).

The plan is accepted only if ::

    sum |w[j]| * L + sum |ind[j]| + sum_k max |table[k]| + |b| <= 2**63 - 1

(a row adds one entry of each table): then neither a product nor any partial sum can
overflow, whatever the input (NaN, ±inf, ±1e300 and any code included). Otherwise ``E`` rises
one bit at a time: numeric inputs finer than it give up a fractional bit (``f = e - E``), and
0/1 columns finer than it are rounded to whole units, like the intercept (their rounding error
joins :meth:`FixedPointPlan.error_bound`).

Every floating-point step above is one IEEE-754 double operation, so numpy performs exactly
the same ones: :meth:`FixedPointPlan.predict` is a bit-exact reference of the C code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np

from mlops_lr.folded import NUMERIC, FoldedModel
from mlops_lr.quantize import QuantizedLinearModel
from mlops_lr.quantized_folded import QuantizedFoldedModel

INPUT_LIMIT = 2**31 - 1
INT64_MAX = 2**63 - 1
# Fractional bits stay where 2**f is a normal double, so that x * 2**f is exact when finite.
MIN_INPUT_BITS, MAX_INPUT_BITS = -1022, 1023


@dataclass(frozen=True)
class CategoryTable:
    """A categorical input in integer inference: its categories (their positions are their
    codes) and ``entries``, the contribution of each code in accumulator units: one per
    category, then :attr:`missing_code`'s, then :attr:`unknown_code`'s."""

    categories: tuple[str, ...]
    entries: tuple[int, ...]

    @property
    def missing_code(self) -> int:
        return len(self.categories)

    @property
    def unknown_code(self) -> int:
        return len(self.categories) + 1

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {category: code for code, category in enumerate(self.categories)}

    def code(self, text: str | None) -> int:
        """The code the generated ``…_code`` lookup gives ``text`` (None is C's NULL): the
        position of its category; :attr:`missing_code` for None, and for ``""`` unless ``""``
        is a category (an empty CSV cell is a missing value); :attr:`unknown_code` for any
        other text."""
        if text is None:
            return self.missing_code
        if text in self._positions:
            return self._positions[text]
        return self.missing_code if text == "" else self.unknown_code


@dataclass(frozen=True)
class FixedPointPlan:
    """The constants of integer-only inference (see the module docstring).

    The first attributes describe the numeric inputs, in order (for a plain model, every
    input); ``tables`` the categorical ones.

    Attributes
    ----------
    unit : int
        ``E``: the accumulator unit is ``scale * 2**E``.
    codes : tuple of int
        Integer codes minus the zero point, ``c[j]``.
    zero_point : int
        The model's zero point (0 when symmetric): its stored codes are ``c[j] + zero_point``.
    input_bits : tuple of int
        Fractional bits of each quantized input, ``f[j]``.
    shifts : tuple of int
        ``shift[j] >= 0``: the power of two aligning input ``j`` with the accumulator.
    intercept : int
        The intercept in accumulator units, ``b``.
    output_scale : float
        Value of one accumulator unit, ``u``.
    bound : int
        Proven bound on ``|acc + b|`` for any input (see the module docstring).
    fills : tuple of float or None
        The value a missing (NaN) numeric input takes; None: none, the prediction is NaN.
    indicators : tuple of int or None
        What a missing numeric input adds, in accumulator units; None: no indicator.
    tables : tuple of CategoryTable
        The categorical inputs, in order.
    kinds : tuple of str
        Every input's kind in the model's order: ``"numeric"`` or ``"categorical"``.
    entry_rounding : float
        The largest total rounding of the indicator and table entries a row can add, in
        accumulator units (0.0: all exact, the usual case).
    """

    unit: int
    codes: tuple[int, ...]
    zero_point: int
    input_bits: tuple[int, ...]
    shifts: tuple[int, ...]
    intercept: int
    output_scale: float
    bound: int
    fills: tuple[float | None, ...]
    indicators: tuple[int | None, ...]
    tables: tuple[CategoryTable, ...]
    kinds: tuple[str, ...]
    entry_rounding: float

    @property
    def is_plain(self) -> bool:
        """Numeric inputs only, no fills, no indicators: ``predict(x)`` over one array."""
        return not self.tables and all(
            fill is None and indicator is None
            for fill, indicator in zip(self.fills, self.indicators, strict=True)
        )

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
        """Largest difference from the quantized model (numeric weights ``coef``) for inputs
        inside the saturation range whose predictions stay below ``y_max`` in size: half an
        input step per numeric input (plus 2**-20 of a step: ``t + L + 0.5`` is rounded to a
        double before it is floored), half an accumulator unit for the intercept, the
        rounding of indicator and table entries (none unless the proof needed a coarser
        unit: :attr:`entry_rounding`), and the two final double roundings."""
        steps = np.exp2(-np.asarray(self.input_bits, dtype=np.float64))
        inputs = float(np.abs(np.asarray(coef, dtype=np.float64)) @ steps) * (0.5 + 2.0**-20)
        units = 0.5 + self.entry_rounding
        return inputs + self.output_scale * units + 4 * 2.0**-53 * abs(y_max)

    def predict(self, numeric: np.ndarray, category_codes: np.ndarray | None = None) -> np.ndarray:
        """Predictions exactly as the exported C computes them.

        Parameters
        ----------
        numeric
            The numeric inputs, one row per prediction (NaN: missing).
        category_codes
            The categorical inputs' codes, one row per prediction (see
            :meth:`CategoryTable.code`; a code outside ``0..unknown_code`` counts as
            unknown); None for a model without categorical inputs.

        Returns
        -------
        np.ndarray
            float64 predictions; NaN where a numeric input without a fill is NaN.
        """
        acc, undefined = self.accumulate(numeric, category_codes)
        y = acc.astype(np.float64) * self.output_scale
        return np.where(undefined, np.nan, y)

    def accumulate(
        self, numeric: np.ndarray, category_codes: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The int64 accumulators ``acc + b`` exactly as the exported C computes them (the
        inputs as :meth:`predict` takes them), and where they are undefined: a numeric input
        without a fill is NaN (its accumulator is then meaningless)."""
        X = np.asarray(numeric, dtype=np.float64)
        missing = np.isnan(X)
        fills = np.array([np.nan if fill is None else fill for fill in self.fills])
        filled = np.where(missing, fills, X)  # a NaN "fill" keeps the NaN
        # Within the proven bound int64 arithmetic is exact, so the sum order does not matter.
        acc = self.quantize_inputs(filled) @ np.asarray(self.weights, dtype=np.int64)
        indicators = np.array([indicator or 0 for indicator in self.indicators], dtype=np.int64)
        acc = acc + missing.astype(np.int64) @ indicators + self.intercept
        if self.tables:
            codes = np.asarray(category_codes, dtype=np.int64)
            for k, table in enumerate(self.tables):
                column = codes[:, k]
                known = (column >= 0) & (column <= table.unknown_code)
                entries = np.asarray(table.entries, dtype=np.int64)
                acc = acc + entries[np.where(known, column, table.unknown_code)]
        return acc, np.isnan(filled).any(axis=1)


@dataclass(frozen=True)
class ClassifierPlan:
    """Integer-only inference of a quantized classifier: one :class:`FixedPointPlan` per row
    of scores, all in one accumulator unit (the rows share their quantization scale, and
    :func:`plan_classifier` gives them one ``E``), so the decision compares int64 scores:
    ``acc + b > 0`` (logistic: the second class), or the first largest ``acc_k + b_k``
    (softmax). No floating point decides; probabilities, optional, are
    ``Sigmoid``/``Softmax`` of ``(double)(acc + b) * u``."""

    link: str
    classes: tuple[Any, ...]
    rows: tuple[FixedPointPlan, ...]

    @property
    def output_scale(self) -> float:
        return self.rows[0].output_scale

    def scores(
        self, numeric: np.ndarray, category_codes: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each row's int64 scores ``acc + b``, ``(n, rows)``, exactly as the exported C
        computes them, and where they are undefined (a numeric input without a fill is
        NaN)."""
        results = [row.accumulate(numeric, category_codes) for row in self.rows]
        return np.column_stack([acc for acc, _ in results]), results[0][1]

    def decide(self, numeric: np.ndarray, category_codes: np.ndarray | None = None) -> np.ndarray:
        """Each row's class index, as the exported C decides it; -1 where undefined."""
        scores, undefined = self.scores(numeric, category_codes)
        if self.link == "logistic":
            chosen = (scores[:, 0] > 0).astype(np.intp)
        else:
            chosen = np.argmax(scores, axis=1)  # the first largest, as the C loop
        return np.where(undefined, -1, chosen)

    def probabilities(
        self, numeric: np.ndarray, category_codes: np.ndarray | None = None
    ) -> np.ndarray:
        """Each class's probability with the double operations of the exported C's
        ``_predict_proba`` (its ``exp`` is the C library's, so the last bit may differ);
        NaN where undefined."""
        scores, undefined = self.scores(numeric, category_codes)
        u = self.output_scale
        if self.link == "logistic":
            positive = 1.0 / (1.0 + np.exp(-(scores[:, 0].astype(np.float64) * u)))
            proba = np.column_stack([1.0 - positive, positive])
        else:
            top = scores.max(axis=1, keepdims=True).astype(np.float64)
            shifted = np.exp((scores.astype(np.float64) - top) * u)
            total = shifted[:, 0].copy()
            for k in range(1, shifted.shape[1]):  # summed in the C loop's order
                total += shifted[:, k]
            proba = shifted / total[:, None]
        return np.where(undefined[:, None], np.nan, proba)


def plan_classifier(
    rows: Any, link: str, classes: tuple[Any, ...], max_abs: np.ndarray
) -> ClassifierPlan:
    """The plan of a quantized classifier's ``rows`` (quantized folded models sharing their
    scale, as :func:`mlops_lr.quantized_classifier.quantize_classifier` makes them): each
    row planned alone, then all again at the coarsest unit any of them needs.

    Raises
    ------
    ValueError
        As :func:`plan_fixed_point`, or the rows do not share one scale.
    """
    if len({float(row.linear.scale) for row in rows}) != 1:
        raise ValueError("the rows' scores have different scales: quantize the model again")
    # A coarser unit only lowers the overflow bound, so each row's plan holds at the coarsest.
    unit = max(plan_fixed_point(row, max_abs).unit for row in rows)
    plans = tuple(plan_fixed_point(row, max_abs, min_unit=unit) for row in rows)
    return ClassifierPlan(link, classes, plans)


def input_ranges(layout: FoldedModel, table: Mapping[str, Any] | Any) -> np.ndarray:
    """Largest |value| of each numeric input of ``layout`` over the rows of ``table`` (column
    by column; missing values ignored) and its fill: the range :func:`plan_fixed_point` keeps
    precise (a missing value is computed as its fill)."""
    ranges = []
    for item in layout.inputs:
        if item.kind == NUMERIC:
            values = np.abs(np.asarray(table[item.name], dtype=np.float64))
            largest = float(np.max(values, initial=0.0, where=~np.isnan(values)))
            ranges.append(largest if item.fill is None else max(largest, abs(item.fill)))
    return np.array(ranges, dtype=np.float64)


def c_inputs(layout: FoldedModel, table: Mapping[str, Any] | Any) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``table`` as the exported predict function takes them: the numeric inputs
    (float64, NaN where missing) and the categorical inputs' codes (``int32``, as
    :meth:`~mlops_lr.folded.CategoricalInput.codes` gives them), each ``rows × inputs``.
    An empty text is an unknown category here but missing to the C lookups: pass the table
    through :func:`mlops_lr.export_c.as_c_reads` first for what the C computes."""
    numeric, codes, rows = [], [], len(table[layout.inputs[0].name])
    for item in layout.inputs:
        if item.kind == NUMERIC:
            numeric.append(np.asarray(table[item.name], dtype=np.float64))
        else:
            codes.append(item.codes(table[item.name]).astype(np.int32))
    return (
        np.column_stack(numeric) if numeric else np.empty((rows, 0)),
        np.column_stack(codes) if codes else np.empty((rows, 0), dtype=np.int32),
    )


def plan_fixed_point(
    model: QuantizedLinearModel | QuantizedFoldedModel,
    max_abs: np.ndarray,
    min_unit: int | None = None,
) -> FixedPointPlan:
    """The fixed-point plan of ``model`` for numeric inputs whose training range is
    ``±max_abs``, its accumulator unit ``scale * 2**E`` with ``E >= min_unit`` when given (the
    rows of a classifier share one unit, so their scores compare as integers).

    Parameters
    ----------
    model
        A quantized linear model (a plain model: its features are the numeric inputs), or a
        quantized folded model.
    max_abs
        Largest |value| of each numeric input on the training data, its fill included (see
        :func:`input_ranges`).

    Raises
    ------
    ValueError
        ``max_abs`` does not match the model, or the intercept cannot be represented next to
        the coefficients within int64.
    """
    if isinstance(model, QuantizedLinearModel):
        names = [f"x{j}" for j in range(model.codes.size)]
        model = QuantizedFoldedModel(FoldedModel.linear(np.zeros(len(names)), 0.0, names), model)
    layout, linear = model.layout, model.linear
    numeric = [item for item in layout.inputs if item.kind == NUMERIC]
    # The design column of each numeric input's value; the others hold 0 or 1.
    values = [columns.start for item, columns in layout.design_slices() if item.kind == NUMERIC]
    max_abs = np.asarray(max_abs, dtype=np.float64)
    if max_abs.shape != (len(numeric),) or not np.isfinite(max_abs).all():
        raise ValueError(f"max_abs must hold {len(numeric)} finite values")
    codes = [int(code) - int(linear.zero_point) for code in linear.codes]
    exponents = [int(exponent) for exponent in linear.exponents]
    range_bits = dict(zip(values, map(_input_bits, max_abs.tolist()), strict=True))
    unit = min(  # the finest active column: a 0/1 column has no fractional bits
        (exponents[d] - range_bits.get(d, 0) for d, code in enumerate(codes) if code),
        default=0,
    )
    if min_unit is not None:
        unit = max(unit, min_unit)
    intercept = Fraction(float(linear.intercept_value()))
    while True:
        input_bits = [
            min(range_bits[d], exponents[d] - unit) if codes[d] else range_bits[d] for d in values
        ]
        shifts = [
            exponents[d] - bits - unit if codes[d] else 0
            for d, bits in zip(values, input_bits, strict=True)
        ]
        try:
            output_scale = math.ldexp(float(linear.scale), unit)
        except OverflowError:
            output_scale = math.inf
        if not 0.0 < output_scale < math.inf:
            raise ValueError("the accumulator unit is not a finite, non-zero double")
        fixed_intercept = round(intercept / Fraction(output_scale))
        indicators, tables, rounding = _zero_one_entries(layout, codes, exponents, unit)
        bound = (
            sum(abs(codes[d]) << shift for d, shift in zip(values, shifts, strict=True))
            * INPUT_LIMIT
            + sum(abs(entry) for entry in indicators if entry is not None)
            + sum(max(map(abs, table.entries)) for table in tables)
            + abs(fixed_intercept)
        )
        if bound <= INT64_MAX:
            return FixedPointPlan(
                unit=unit,
                codes=tuple(codes[d] for d in values),
                zero_point=int(linear.zero_point),
                input_bits=tuple(input_bits),
                shifts=tuple(shifts),
                intercept=fixed_intercept,
                output_scale=output_scale,
                bound=bound,
                fills=tuple(item.fill for item in numeric),
                indicators=tuple(indicators),
                tables=tuple(tables),
                kinds=tuple(item.kind for item in layout.inputs),
                entry_rounding=float(rounding),
            )
        if any(codes[d] and exponents[d] - (unit + 1) < MIN_INPUT_BITS for d in values):
            raise ValueError(
                "the coefficients, input ranges and intercept span too many powers of two for int64"
            )
        unit += 1  # a coarser unit: every shift, entry and |b| halves


def _zero_one_entries(
    layout: FoldedModel, codes: list[int], exponents: list[int], unit: int
) -> tuple[list[int | None], list[CategoryTable], Fraction]:
    """The missing indicators (None: the numeric input has none) and category tables of
    ``layout`` in units of ``2**unit``, and the worst total rounding they can add to a row."""
    indicators, tables, rounding = [], [], Fraction(0)
    for item, columns in layout.design_slices():
        if item.kind != NUMERIC:
            entries = [
                _in_units(codes[d], exponents[d], unit) for d in range(columns.start, columns.stop)
            ]
            tables.append(CategoryTable(item.categories, tuple(entry for entry, _ in entries)))
            rounding += max(error for _, error in entries)  # a row adds one entry
        elif item.indicator is None:
            indicators.append(None)
        else:
            indicator, error = _in_units(
                codes[columns.start + 1], exponents[columns.start + 1], unit
            )
            indicators.append(indicator)
            rounding += error
    return indicators, tables, rounding


def _in_units(code: int, exponent: int, unit: int) -> tuple[int, Fraction]:
    """``code * 2**exponent`` in units of ``2**unit``, rounded to an integer (exact when
    ``exponent >= unit``), and the size of the rounding."""
    if exponent >= unit:
        return code << (exponent - unit), Fraction(0)
    exact = Fraction(code, 2 ** (unit - exponent))
    rounded = round(exact)
    return rounded, abs(exact - rounded)


def _input_bits(max_abs: float) -> int:
    """The most fractional bits ``f`` with ``2 * max_abs * 2**f <= 2**31 - 1``."""
    if max_abs == 0.0:
        return 0
    mantissa, exponent = math.frexp(max_abs)  # max_abs = mantissa * 2**exponent, mantissa < 1
    # With f = 30 - exponent, 2 * max_abs * 2**f = mantissa * 2**31 (exact), in [2**30, 2**31).
    bits = 30 - exponent - (mantissa * 2.0**31 > INPUT_LIMIT)
    return max(MIN_INPUT_BITS, min(MAX_INPUT_BITS, bits))
