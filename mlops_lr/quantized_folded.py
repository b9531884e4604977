"""A quantized folded model: the folded model's inputs with integer-coded parameters.

The folded model is a linear model over its design columns (:mod:`mlops_lr.folded`), so it is
quantized as one: each numeric weight, missing indicator and category-table entry is a design
column with its own power-of-two exponent (``per_feature_pow2``) on one shared scale, rounded
with the calibration objective on the training rows' design (H covers the category
frequencies and their covariance with the numeric inputs). Tables are first centred on their
training frequencies (the shift moves into the intercept), so their entries are small. The
unknown entry, and the missing one when no training value was missing, have no calibration
rows: they get the grid's nearest code.

Document (``model.json``)::

    {"format": "mlops-lr/quantized-folded/1", "target": ...,
     "inputs": [{"name", "kind": "numeric", "fill", "indicator": bool} |
                {"name", "kind": "categorical", "categories": [...]}, ...],
     "linear": <the design's QuantizedLinearModel document>}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_lr.folded import (
    CATEGORICAL,
    NUMERIC,
    CategoricalInput,
    FoldedModel,
    NumericInput,
)
from mlops_lr.folded import FORMAT as FOLDED_FORMAT
from mlops_lr.quantize import (
    CalibrationMoments,
    QuantizationSpec,
    QuantizedLinearModel,
    quantize_linear_model,
    round_to_grid,
)

FORMAT = "mlops-lr/quantized-folded/1"


@dataclass(frozen=True)
class QuantizedFoldedModel:
    """``linear`` (integer codes over the design of ``layout``) and what ``layout`` stores
    as floats: the numeric inputs' fill values."""

    layout: FoldedModel
    linear: QuantizedLinearModel

    @property
    def spec(self) -> QuantizationSpec:
        return self.linear.spec

    def dequantized(self) -> FoldedModel:
        """The float folded model these codes stand for (what every backend predicts with)."""
        return self.layout.with_design(self.linear.coef(), self.linear.intercept_value())

    def storage_bytes(self) -> int:
        """Packed codes, scale, exponents and intercept (see
        :meth:`QuantizedLinearModel.storage_bytes`), plus 8 bytes per fill value and the
        category texts (UTF-8, one length byte each)."""
        return self.linear.storage_bytes() + _layout_bytes(self.layout)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "target": self.layout.target,
            "inputs": [_layout_to_dict(item) for item in self.layout.inputs],
            "linear": self.linear.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> QuantizedFoldedModel:
        """Inverse of :meth:`to_dict`; accepts only documents it would write itself.

        Raises
        ------
        ValueError
            Not a document of this format, or a malformed part.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        if set(data) != {"format", "target", "inputs", "linear"}:
            raise ValueError("keys must be exactly format, target, inputs and linear")
        if not isinstance(data["inputs"], list) or not data["inputs"]:
            raise ValueError("inputs must be a non-empty list")
        skeleton = {
            "format": FOLDED_FORMAT,
            "target": data["target"],
            "intercept": 0.0,
            "inputs": [_layout_from_dict(item, i) for i, item in enumerate(data["inputs"])],
        }
        layout = FoldedModel.from_dict(skeleton)
        linear = QuantizedLinearModel.from_dict(data["linear"])
        if linear.codes.size != len(layout.design_names()):
            raise ValueError(
                f"{linear.codes.size} codes for {len(layout.design_names())} design columns"
            )
        model = cls(layout, linear)
        if model.to_dict() != data:
            raise ValueError("the document is not in canonical form")
        return model


def calibrate(folded: FoldedModel, train: Any) -> tuple[FoldedModel, CalibrationMoments]:
    """``folded`` with its tables centred on the training rows ``train`` (a table, column by
    column, as :meth:`FoldedModel.predict` takes it), and the moments of its design there:
    what :func:`quantize_folded` rounds against. Centring changes no design column, so one
    pass over ``train`` gives both (a one-hot column's sum counts its rows)."""
    design = folded.design(train)
    return folded.centred(design.sum(axis=0)), CalibrationMoments.from_data(design)


def quantize_folded(
    folded: FoldedModel, spec: QuantizationSpec, moments: CalibrationMoments
) -> QuantizedFoldedModel:
    """Quantize ``folded`` as a linear model over its design, calibrated on ``moments`` (of
    the training rows' design: :func:`calibrate`, or streamed statistics for a plain model).

    Raises
    ------
    ValueError, SearchBudgetExceeded
        As :func:`mlops_lr.quantize.quantize_linear_model`.
    """
    linear = quantize_linear_model(folded.design_coef(), folded.intercept, spec, moments)
    return with_codes(folded, linear, moments)


def with_codes(
    folded: FoldedModel, linear: QuantizedLinearModel, moments: CalibrationMoments
) -> QuantizedFoldedModel:
    """``folded`` with ``linear``'s codes (a quantization of its design parameters against
    ``moments``), each table's uncalibrated entries rounded after its calibrated ones."""
    coef = folded.design_coef()
    linear = _follow_table_shifts(folded, coef, linear, moments)
    layout = folded.with_design(np.zeros(coef.size), 0.0)
    return QuantizedFoldedModel(layout, linear)


def _follow_table_shifts(
    folded: FoldedModel,
    coef: np.ndarray,
    linear: QuantizedLinearModel,
    moments: CalibrationMoments,
) -> QuantizedLinearModel:
    """Round each table's uncalibrated entries (unknown; missing when no training value was)
    after its calibrated ones.

    Every training row has exactly one entry of a table, so the objective cannot tell a shift
    of a whole table from one of the intercept: rounding may move the table by δ (its
    frequency-weighted mean change) and bias correction moves the intercept by −δ. The
    entries no training row uses must move by δ too, or unseen and missing categories drift
    by δ (measured: 1.5 % of the target's deviation at 16 bits on diamonds)."""
    change = linear.coef() - coef
    indices, targets = [], []
    for item, columns in folded.design_slices():
        weights = moments.mean[columns]  # a one-hot column's mean: its share of the rows
        if item.kind == CATEGORICAL and weights.sum() > 0:
            shift = float(weights @ change[columns] / weights.sum())
            free = np.arange(columns.start, columns.stop)[weights == 0]
            indices.extend(free)
            targets.extend(coef[free] + shift)
    if not indices:
        return linear
    return round_to_grid(linear, np.asarray(indices), np.asarray(targets))


def _layout_to_dict(item: NumericInput | CategoricalInput) -> dict[str, Any]:
    if item.kind == NUMERIC:
        return {
            "name": item.name,
            "kind": NUMERIC,
            "fill": item.fill,
            "indicator": item.indicator is not None,
        }
    return {"name": item.name, "kind": CATEGORICAL, "categories": list(item.categories)}


def _layout_from_dict(data: Any, index: int) -> dict[str, Any]:
    """A layout entry as a folded input document with zero parameters."""
    where = f"inputs[{index}]"
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object")
    if data.get("kind") == NUMERIC:
        if set(data) != {"name", "kind", "fill", "indicator"} or not isinstance(
            data["indicator"], bool
        ):
            raise ValueError(f"{where} must have name, kind, fill and a boolean indicator")
        return {
            "name": data["name"],
            "kind": NUMERIC,
            "weight": 0.0,
            "fill": data["fill"],
            "indicator": 0.0 if data["indicator"] else None,
        }
    if set(data) != {"name", "kind", "categories"} or not isinstance(data["categories"], list):
        raise ValueError(f"{where} must have name, kind and a list of categories")
    return {
        "name": data["name"],
        "kind": CATEGORICAL,
        "categories": data["categories"],
        "table": [0.0] * len(data["categories"]),
        "unknown": 0.0,
        "missing": 0.0,
    }


def _layout_bytes(layout: FoldedModel) -> int:
    total = 0
    for item in layout.inputs:
        if item.kind == NUMERIC:
            total += 8 if item.fill is not None else 0
        else:
            total += sum(1 + len(c.encode()) for c in item.categories)
    return total


def float_storage_bytes(folded: FoldedModel) -> int:
    """The float model's parameters stored the same way: float64 per design parameter and
    the intercept, plus fills and category texts."""
    return 8 * (len(folded.design_names()) + 1) + _layout_bytes(folded)


__all__ = [
    "FORMAT",
    "QuantizedFoldedModel",
    "calibrate",
    "float_storage_bytes",
    "quantize_folded",
    "with_codes",
]
