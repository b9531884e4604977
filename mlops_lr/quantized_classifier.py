"""A quantized folded classifier: each row of a :class:`FoldedClassifier` quantized as a
folded model, calibrated on the Fisher information of the float model.

A regressor's rounding minimises the mean squared change of its predictions on the training
rows. A classifier's output is a probability, and a change δ of a row's logit changes its log
loss by about ``½ · p(1 − p) · δ²`` (the Fisher information): rows the model is sure of barely
care, rows near the decision boundary do. So each row of scores is rounded against the
training design's moments *weighted by* ``w = p(1 − p)`` (for a softmax row k, ``p_k(1 −
p_k)``: the diagonal blocks of the multinomial Fisher information; the blocks between classes
are left out). The weighted mean then re-fits each intercept (bias correction) so the
Fisher-weighted mean logit does not move.

Document (``model.json``)::

    {"format": "mlops-lr/quantized-classifier/1", "target": ..., "link": ..., "classes": [...],
     "rows": [<a quantized folded model document per row>, ...]}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mlops_lr.folded_classifier import (
    LOGISTIC,
    ClassifierDocument,
    FoldedClassifier,
    Label,
    check_classifier,
)
from mlops_lr.quantize import CalibrationMoments, QuantizationSpec, quantize_rows_jointly
from mlops_lr.quantized_folded import QuantizedFoldedModel, quantize_folded, with_codes

FORMAT = "mlops-lr/quantized-classifier/1"


@dataclass(frozen=True)
class QuantizedFoldedClassifier(ClassifierDocument):
    """``rows``, one quantized folded model per row of scores, under ``link``."""

    DOCUMENT_FORMAT: ClassVar[str] = FORMAT
    ROW: ClassVar[Any] = QuantizedFoldedModel
    link: str
    classes: tuple[Label, ...]
    rows: tuple[QuantizedFoldedModel, ...]
    target: str = "prediction"

    def __post_init__(self) -> None:
        check_classifier(self.link, self.classes, [row.layout for row in self.rows])

    @property
    def spec(self) -> QuantizationSpec:
        return self.rows[0].spec

    def dequantized(self) -> FoldedClassifier:
        """The float classifier these codes stand for (what every backend predicts with)."""
        rows = tuple(row.dequantized() for row in self.rows)
        return FoldedClassifier(self.link, self.classes, rows, self.target)

    def storage_bytes(self) -> int:
        """Each row's packed codes, scale, exponents and intercept, the fills and category
        texts once, and the class labels (UTF-8, one length byte each)."""
        layout = self.rows[0].storage_bytes() - self.rows[0].linear.storage_bytes()
        labels = sum(1 + len(str(label).encode()) for label in self.classes)
        return sum(row.linear.storage_bytes() for row in self.rows) + layout + labels


def fisher_weights(classifier: FoldedClassifier, train: Any) -> np.ndarray:
    """Per row of scores, each training row's Fisher weight ``p(1 − p)``: shape ``(rows,
    n)``. ``p`` is the second class's probability (logistic), or the row's class's."""
    proba = classifier.predict_proba(train)
    if classifier.link == LOGISTIC:
        proba = proba[:, 1:]
    return (proba * (1.0 - proba)).T


def weighted_moments(design: np.ndarray, weights: np.ndarray) -> CalibrationMoments:
    """The moments of ``design``'s rows weighted by ``weights`` (uniform when every weight is
    0: a model certain of every training row)."""
    total = float(weights.sum())
    if not total > 0:
        return CalibrationMoments.from_data(design)
    share = weights / total
    mean = share @ design
    centred = design - mean
    return CalibrationMoments(mean=mean, cov=(centred * share[:, None]).T @ centred)


def calibrate_classifier(
    classifier: FoldedClassifier, train: Any
) -> tuple[FoldedClassifier, list[CalibrationMoments]]:
    """``classifier`` with its tables centred on the training rows ``train`` (see
    :func:`mlops_lr.quantized_folded.calibrate`), and per row of scores the Fisher-weighted
    moments of the training design: what :func:`quantize_classifier` rounds against."""
    design = classifier.rows[0].design(train)  # every row has the same design
    counts = design.sum(axis=0)
    rows = tuple(row.centred(counts) for row in classifier.rows)
    moments = [weighted_moments(design, w) for w in fisher_weights(classifier, train)]
    centred = FoldedClassifier(classifier.link, classifier.classes, rows, classifier.target)
    return centred, moments


def quantize_classifier(
    classifier: FoldedClassifier,
    spec: QuantizationSpec,
    moments: Sequence[CalibrationMoments],
) -> QuantizedFoldedClassifier:
    """Quantize each row of ``classifier`` against its moments (:func:`calibrate_classifier`).

    Raises
    ------
    ValueError, SearchBudgetExceeded
        As :func:`mlops_lr.quantized_folded.quantize_folded`.
    """
    if classifier.link == LOGISTIC:
        rows = (quantize_folded(classifier.rows[0], spec, moments[0]),)
    else:  # one scale for every row: the integer-only C compares their scores in one unit
        linears = quantize_rows_jointly(
            [row.design_coef() for row in classifier.rows],
            [row.intercept for row in classifier.rows],
            spec,
            list(moments),
        )
        rows = tuple(
            with_codes(row, linear, row_moments)
            for row, linear, row_moments in zip(classifier.rows, linears, moments, strict=True)
        )
    return QuantizedFoldedClassifier(classifier.link, classifier.classes, rows, classifier.target)


__all__ = [
    "FORMAT",
    "QuantizedFoldedClassifier",
    "calibrate_classifier",
    "fisher_weights",
    "quantize_classifier",
    "weighted_moments",
]
