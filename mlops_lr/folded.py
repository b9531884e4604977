"""The folded model: preprocessing and a linear model as the one function they compute.

::

    prediction = intercept
                 + Σ numeric input j:      weight[j] · (x[j], or fill[j] when missing)
                                           + indicator[j] when missing (optional)
                 + Σ categorical input c:  table[c][category]  (or its unknown / missing entry)

Every preprocessing option folds into it exactly (scaling into the weights and the intercept,
imputation into the fills, one-hot encoding into the tables), so the quantizer, the predictor,
the server and the exporters consume this and never scikit-learn's preprocessing.

It is stored as a versioned JSON document (:meth:`FoldedModel.to_dict`, no pickle). Seen as a
linear model over its *design* — per numeric input its value (filled) and, with an indicator,
a 0/1 "missing" column; per categorical input one 0/1 column per category, then "missing" and
"unknown" — it is ``design(X) @ design_coef() + intercept``: that is what the quantizer
calibrates and rounds.

Numeric core: numpy and the standard library (pandas only for the fast string lookup).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

FORMAT = "mlops-lr/folded-linear/1"
# Rows a plain model sums in Python floats rather than numpy arrays (FoldedModel._sum_rows).
_FEW_ROWS = 8
NUMERIC = "numeric"
CATEGORICAL = "categorical"
MISSING_LEVEL = "<missing>"
UNKNOWN_LEVEL = "<unknown>"


def category_text(value: Any) -> str | None:
    """The text a categorical value is known by: strings as they are, integers (and floats
    with integral values) in decimal, ``True``/``False``; None for a missing value (None or
    NaN). A CSV's ``2007``, a Parquet integer 2007 and JSON's ``2007`` are all ``"2007"``."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


@dataclass(frozen=True)
class NumericInput:
    """A numeric input: contributes ``weight · x``; a missing ``x`` becomes ``fill`` (None:
    missing is an error) and adds ``indicator`` (None: the model has no indicator input)."""

    name: str
    weight: float
    fill: float | None = None
    indicator: float | None = None

    @property
    def kind(self) -> str:
        return NUMERIC

    def design_names(self) -> list[str]:
        return [self.name] + (
            [f"{self.name} {MISSING_LEVEL}"] if self.indicator is not None else []
        )

    def design_coef(self) -> list[float]:
        return [self.weight] + ([self.indicator] if self.indicator is not None else [])

    def from_design(self, values: Sequence[float]) -> NumericInput:
        weight, *indicator = values
        return replace(
            self, weight=float(weight), indicator=float(indicator[0]) if indicator else None
        )


@dataclass(frozen=True)
class CategoricalInput:
    """A categorical input: contributes ``table[i]`` for ``categories[i]``, ``unknown`` for a
    category not in the table, ``missing`` for a missing value."""

    name: str
    categories: tuple[str, ...]
    table: np.ndarray
    unknown: float
    missing: float

    @property
    def kind(self) -> str:
        return CATEGORICAL

    def design_names(self) -> list[str]:
        levels = [*self.categories, MISSING_LEVEL, UNKNOWN_LEVEL]
        return [f"{self.name}={level}" for level in levels]

    def design_coef(self) -> list[float]:
        return [*map(float, self.table), self.missing, self.unknown]

    def from_design(self, values: Sequence[float]) -> CategoricalInput:
        *table, missing, unknown = values
        return replace(
            self,
            table=np.asarray(table, dtype=np.float64),
            missing=float(missing),
            unknown=float(unknown),
        )

    def codes(self, values: Any) -> np.ndarray:
        """Each value's position in ``categories``; ``len(categories)`` for missing and
        ``len + 1`` for unknown categories.

        Each *distinct* value is looked up once (a pandas ``category`` column's categories,
        or what :func:`pandas.factorize` finds; Arrow-backed text is matched by Arrow), so a
        million rows cost a hash pass, not a million Python calls.
        """
        import pandas as pd  # deferred: a numeric-only model needs no pandas

        n = len(self.categories)
        dtype = getattr(values, "dtype", None)
        if isinstance(dtype, pd.CategoricalDtype):
            inner = pd.Categorical(values).codes
            lookup = self._positions(dtype.categories)
        elif isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
            return self._arrow_codes(values)
        else:
            if not hasattr(values, "dtype") or values.dtype == object:
                # Python's 1 == True would merge them: compare their texts instead.
                values = np.array([category_text(v) for v in values], dtype=object)
            inner, uniques = pd.factorize(values, use_na_sentinel=True)
            lookup = self._positions(uniques)
        return np.append(lookup, n)[inner]  # code -1 (missing) picks the appended n

    def _positions(self, distinct: Any) -> np.ndarray:
        """Codes (as :meth:`codes` defines them) of distinct values."""
        import pandas as pd

        texts = [category_text(value) for value in distinct]
        positions = pd.Index(self.categories, dtype=object).get_indexer(texts)
        missing = np.array([text is None for text in texts], dtype=bool)
        positions = np.where(positions < 0, len(self.categories) + 1, positions)
        positions[missing] = len(self.categories)
        return positions.astype(np.intp)

    def _arrow_codes(self, values: Any) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        array = pa.array(values)
        found = pc.index_in(array, value_set=pa.array(self.categories, type=array.type))
        n = len(self.categories)
        codes = found.fill_null(n + 1).to_numpy(zero_copy_only=False).astype(np.intp)
        codes[array.is_null().to_numpy(zero_copy_only=False)] = n
        return codes

    def contributions(self, values: Any) -> np.ndarray:
        lookup = np.append(self.table, [self.missing, self.unknown])
        return lookup[self.codes(values)]


Input = NumericInput | CategoricalInput


@dataclass(frozen=True)
class DesignParts:
    """A table's design (see :class:`FoldedModel`) in parts: the ``dense`` columns (numeric
    values, filled, and missing indicators) at the design positions ``dense_columns``, and
    per categorical input its one-hot block as ``(codes, first column, width)``: row ``i``
    has a 1 in column ``first + codes[i]``. A design column in neither is 0 in every row."""

    dense: np.ndarray
    dense_columns: np.ndarray
    blocks: tuple[tuple[np.ndarray, int, int], ...]


class MissingValueError(ValueError):
    """A numeric input without a fill has a missing value (``column``, row ``row``)."""

    def __init__(self, column: str, row: int) -> None:
        super().__init__(
            f"column {column!r} has a missing value (row {row + 1}) and the model has no fill "
            "for it"
        )
        self.column, self.row = column, row


@dataclass(frozen=True)
class FoldedModel:
    """``intercept`` plus the contributions of ``inputs`` (see the module docstring).

    ``target`` names what it predicts.
    """

    intercept: float
    inputs: tuple[Input, ...]
    target: str = "prediction"

    # ------------------------------------------------------------------ names and kinds
    @cached_property  # asked on every request a server decodes
    def feature_names(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.inputs)

    @cached_property
    def categorical_names(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.inputs if item.kind == CATEGORICAL)

    @cached_property  # asked on every prediction; the inputs never change
    def is_plain(self) -> bool:
        """Numeric inputs only, no missing-value rules: exactly ``X @ coef + intercept``."""
        return all(
            item.kind == NUMERIC and item.fill is None and item.indicator is None
            for item in self.inputs
        )

    @cached_property
    def coef(self) -> np.ndarray:
        """The weights of a plain model (see :attr:`is_plain`)."""
        if not self.is_plain:
            raise ValueError("only a model of plain numeric inputs is a coefficient vector")
        return np.array([item.weight for item in self.inputs], dtype=np.float64)

    @classmethod
    def linear(
        cls,
        coef: Sequence[float],
        intercept: float,
        names: Sequence[str],
        target: str = "prediction",
    ) -> FoldedModel:
        """A plain model ``X @ coef + intercept`` over ``names``."""
        inputs = tuple(NumericInput(str(n), float(w)) for n, w in zip(names, coef, strict=True))
        return cls(float(intercept), inputs, target)

    # ------------------------------------------------------------------ prediction
    def predict(self, columns: Mapping[str, Any] | Any) -> np.ndarray:
        """Predictions for a table given column by column (a DataFrame, or a mapping of names
        to sequences); numeric columns may hold NaN/None where a fill exists, categorical
        columns text (or numbers, see :func:`category_text`), None/NaN for missing.

        Raises
        ------
        KeyError
            An input column is absent.
        MissingValueError
            A missing value in a numeric input without a fill.
        """
        if self.is_plain:
            return self._plain_predictions(
                [_float_values(columns[n]).reshape(-1) for n in self.feature_names]
            )
        total = None
        for item in self.inputs:
            column = columns[item.name]
            if item.kind == NUMERIC:
                part = self._numeric_contribution(item, column)
            else:
                part = item.contributions(column)
            if total is None:
                total = np.array(part, dtype=np.float64)
            else:
                total += part
        return total + self.intercept

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Predictions for a float matrix whose columns are the inputs in order (numeric
        inputs only; NaN is missing).

        Raises
        ------
        MissingValueError
            A missing value in an input without a fill.
        """
        X = np.asarray(X, dtype=np.float64)
        if self.is_plain:
            if len(X) <= _FEW_ROWS:
                return self._sum_rows(X.tolist())
            return self._plain_predictions([X[:, j] for j in range(X.shape[1])])
        if self.categorical_names:
            raise ValueError(f"categorical inputs {list(self.categorical_names)} need text")
        return self.predict({item.name: X[:, j] for j, item in enumerate(self.inputs)})

    # A plain model's predictions: the weighted inputs added one at a time, in input order,
    # then the intercept, as for any folded model. Each row's sum is then the same whatever
    # rows share the call; a BLAS product (``X @ coef``) sums blocks of rows in different
    # orders (its last rows, a thread's share), so a row's last bit would depend on the batch
    # it is predicted in. (scikit-learn's ``predict`` is that product: the two agree to an ulp
    # or so.) A few rows, a server's requests, are summed in Python floats: the same IEEE
    # operations in the same order, without numpy's cost per call.
    def _plain_predictions(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        if len(columns[0]) <= _FEW_ROWS:
            return self._sum_rows(list(zip(*(column.tolist() for column in columns), strict=True)))
        coef = self.coef
        total = columns[0] * coef[0]
        for column, weight in zip(columns[1:], coef[1:], strict=True):
            total += column * weight
        total += self.intercept
        unknown = np.isnan(total)
        if unknown.any():  # a missing input, or an infinite one whose terms cancel
            for row in np.flatnonzero(unknown):
                self._check_present([column[row] for column in columns], int(row))
        return total

    def _sum_rows(self, rows: Sequence[Sequence[float]]) -> np.ndarray:
        weights = self.coef.tolist()
        sums = []
        for index, row in enumerate(rows):
            total = row[0] * weights[0]
            for value, weight in zip(row[1:], weights[1:], strict=True):
                total += value * weight
            total += self.intercept
            if total != total:  # NaN: a missing input, or infinite ones that cancel
                self._check_present(row, index)
            sums.append(total)
        return np.array(sums, dtype=np.float64)

    def _check_present(self, values: Sequence[float], row: int) -> None:
        for name, value in zip(self.feature_names, values, strict=True):
            if value != value:
                raise MissingValueError(name, row)

    def _numeric_contribution(self, item: NumericInput, column: Any) -> np.ndarray:
        values, missing = _filled(item, column)
        if missing is None:
            return item.weight * values
        part = item.weight * values
        if item.indicator is not None:
            part = part + np.where(missing, item.indicator, 0.0)
        return part

    # ------------------------------------------------------------------ the design view
    def design_names(self) -> list[str]:
        """Names of the design columns, input by input."""
        return [name for item in self.inputs for name in item.design_names()]

    def design_coef(self) -> np.ndarray:
        """The model's parameters over its design columns."""
        return np.array([w for item in self.inputs for w in item.design_coef()], dtype=np.float64)

    def design_groups(self) -> list[str]:
        """The input each design column belongs to."""
        return [item.name for item in self.inputs for _ in item.design_names()]

    def design_slices(self) -> list[tuple[Input, slice]]:
        """Each input with the slice of the design columns that are its own."""
        slices, start = [], 0
        for item in self.inputs:
            width = len(item.design_names())
            slices.append((item, slice(start, start + width)))
            start += width
        return slices

    def design(self, columns: Mapping[str, Any] | Any) -> np.ndarray:
        """The design matrix of a table (see the module docstring): ``design(X) @
        design_coef() + intercept == predict(X)``."""
        parts = self.design_parts(columns)
        design = np.zeros((len(parts.dense), len(self.design_names())))
        design[:, parts.dense_columns] = parts.dense
        for codes, start, _ in parts.blocks:
            design[np.arange(len(codes)), start + codes] = 1.0
        return design

    def design_parts(self, columns: Mapping[str, Any] | Any) -> DesignParts:
        """The design of a table without its one-hot blocks spelled out (see
        :class:`DesignParts`): what streamed statistics are computed from."""
        dense, dense_columns, blocks = [], [], []
        for item, columns_of_item in self.design_slices():
            column = columns[item.name]
            start = columns_of_item.start
            if item.kind == NUMERIC:
                values, missing = _filled(item, column)
                dense.append(values)
                dense_columns.append(start)
                if item.indicator is not None:
                    none = np.zeros(len(values))
                    dense.append(none if missing is None else missing.astype(np.float64))
                    dense_columns.append(start + 1)
            else:
                blocks.append((item.codes(column), start, len(item.categories) + 2))
        rows = len(dense[0]) if dense else len(blocks[0][0])
        # Column-major: each column contiguous, for the per-category sums of streamed fits.
        matrix = np.asarray(dense, dtype=np.float64).T if dense else np.empty((rows, 0))
        return DesignParts(matrix, np.asarray(dense_columns, dtype=np.intp), tuple(blocks))

    def with_design(self, coef: Sequence[float], intercept: float) -> FoldedModel:
        """The same inputs with the parameters ``coef`` (over the design) and ``intercept``."""
        coef = np.asarray(coef, dtype=np.float64)
        if coef.shape != (len(self.design_names()),):
            raise ValueError(
                f"{coef.size} design parameters for {len(self.design_names())} columns"
            )
        inputs = tuple(item.from_design(coef[columns]) for item, columns in self.design_slices())
        return replace(self, intercept=float(intercept), inputs=inputs)

    def centred(self, counts: np.ndarray) -> FoldedModel:
        """The same function with each categorical table (missing and unknown entries too)
        shifted by its mean weighted by ``counts`` (per design column, the rows where it is
        1: the design's column sums), the shifts moved into the intercept: smaller entries for
        the same predictions."""
        counts = np.asarray(counts, dtype=np.float64)
        inputs, intercept = [], self.intercept
        for item, columns in self.design_slices():
            weights = counts[columns]
            if item.kind == CATEGORICAL and weights.sum() > 0:
                shift = float(weights @ item.design_coef() / weights.sum())
                item = replace(
                    item,
                    table=item.table - shift,
                    missing=item.missing - shift,
                    unknown=item.unknown - shift,
                )
                intercept += shift
            inputs.append(item)
        return replace(self, intercept=intercept, inputs=tuple(inputs))

    # ------------------------------------------------------------------ JSON document
    def to_dict(self) -> dict[str, Any]:
        """The model as JSON-compatible values; deterministic."""
        return {
            "format": FORMAT,
            "target": self.target,
            "intercept": float(self.intercept),
            "inputs": [_input_to_dict(item) for item in self.inputs],
        }

    @classmethod
    def from_dict(cls, data: Any) -> FoldedModel:
        """Inverse of :meth:`to_dict`; accepts only documents it would write itself.

        Raises
        ------
        ValueError
            Not a document of this format, a missing or unknown key, a wrong type, a
            non-finite number, duplicate input names or categories.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        check_keys(data, {"format", "target", "intercept", "inputs"}, "the document")
        if not isinstance(data["target"], str):
            raise ValueError("target must be a string")
        if not isinstance(data["inputs"], list) or not data["inputs"]:
            raise ValueError("inputs must be a non-empty list")
        inputs = tuple(_input_from_dict(item, i) for i, item in enumerate(data["inputs"]))
        names = [item.name for item in inputs]
        if len(set(names)) != len(names):
            raise ValueError("input names must be distinct")
        model = cls(_number(data["intercept"], "intercept"), inputs, data["target"])
        if model.to_dict() != data:
            raise ValueError("the document is not in canonical form")
        return model


def _float_values(column: Any) -> np.ndarray:
    """A numeric column as float64, NaN where missing: None, NaN, or pandas' NA (which a
    nullable column holds, and keeps when a caller, MLflow for one, makes it an object
    column)."""
    try:
        return np.asarray(column, dtype=np.float64)
    except TypeError:
        import pandas as pd  # only an object column holding pandas' NA gets here

        values = np.asarray(column, dtype=object)
        return np.where(pd.isna(values), np.nan, values).astype(np.float64)


def _filled(item: NumericInput, column: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """A numeric input's values with missing ones filled, and where they were missing (None:
    nowhere).

    Raises
    ------
    MissingValueError
        A missing value, and the input has no fill.
    """
    values = _float_values(column)
    missing = np.isnan(values)
    if not missing.any():
        return values, None
    if item.fill is None:
        raise MissingValueError(item.name, int(np.flatnonzero(missing)[0]))
    return np.where(missing, item.fill, values), missing


def _input_to_dict(item: Input) -> dict[str, Any]:
    if item.kind == NUMERIC:
        return {
            "name": item.name,
            "kind": NUMERIC,
            "weight": float(item.weight),
            "fill": None if item.fill is None else float(item.fill),
            "indicator": None if item.indicator is None else float(item.indicator),
        }
    return {
        "name": item.name,
        "kind": CATEGORICAL,
        "categories": list(item.categories),
        "table": [float(v) for v in item.table],
        "unknown": float(item.unknown),
        "missing": float(item.missing),
    }


def _input_from_dict(data: Any, index: int) -> Input:
    where = f"inputs[{index}]"
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        raise ValueError(f"{where} must be an object with a non-empty name")
    if data.get("kind") == NUMERIC:
        check_keys(data, {"name", "kind", "weight", "fill", "indicator"}, where)
        fill, indicator = data["fill"], data["indicator"]
        return NumericInput(
            data["name"],
            _number(data["weight"], f"{where}.weight"),
            None if fill is None else _number(fill, f"{where}.fill"),
            None if indicator is None else _number(indicator, f"{where}.indicator"),
        )
    if data.get("kind") == CATEGORICAL:
        check_keys(data, {"name", "kind", "categories", "table", "unknown", "missing"}, where)
        categories, table = data["categories"], data["table"]
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise ValueError(f"{where}.categories must be a list of strings")
        if len(set(categories)) != len(categories):
            raise ValueError(f"{where}.categories must be distinct")
        if not isinstance(table, list) or len(table) != len(categories):
            raise ValueError(f"{where}.table must hold one number per category")
        return CategoricalInput(
            data["name"],
            tuple(categories),
            np.array([_number(v, f"{where}.table") for v in table], dtype=np.float64),
            _number(data["unknown"], f"{where}.unknown"),
            _number(data["missing"], f"{where}.missing"),
        )
    raise ValueError(f"{where}.kind must be {NUMERIC!r} or {CATEGORICAL!r}")


def check_keys(data: dict, expected: set[str], where: str) -> None:
    """Raise ``ValueError`` unless ``data`` has exactly the keys ``expected``."""
    if set(data) != expected:
        raise ValueError(f"{where} must have exactly the keys {sorted(expected)}")


def _number(value: Any, where: str) -> float:
    try:
        number = float(value) if isinstance(value, (int, float)) else math.nan
    except OverflowError:  # an integer beyond float64
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"{where} must be a finite number")
    return number
