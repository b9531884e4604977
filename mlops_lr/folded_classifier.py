"""The folded classifier: the folded model with a link and one row of parameters per score.

::

    score[k]    = the folded model of row k on the row's inputs   (mlops_lr.folded)
    logistic:   one row;  P(classes[1]) = 1 / (1 + exp(-score[0])),  label = classes[score > 0]
    softmax:    one row per class;  P(classes[k]) = softmax(score)[k],  label = classes[argmax]

The rows share their inputs (names, kinds, fills, categories) and differ in weights, tables and
intercept, so everything that consumes a folded model (quantizer, exporters) consumes each row.
Labels follow scikit-learn's ``LogisticRegression`` exactly: a binary model's score is the
decision function of its second class, ties of a softmax go to the first class.

Classes are JSON scalars: text, or integers when the target column held integers. Stored as a
versioned JSON document (:meth:`FoldedClassifier.to_dict`), each row a folded model document.

Numeric core: numpy and the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from mlops_lr.folded import FoldedModel, check_keys

FORMAT = "mlops-lr/folded-classifier/1"
LOGISTIC = "logistic"
SOFTMAX = "softmax"
LINKS = (LOGISTIC, SOFTMAX)

Label = str | int


class ClassifierDocument:
    """The JSON document of a classifier (``link``, ``classes``, ``target`` and one row
    document per row of scores), shared by the float and the quantized classifier:
    ``DOCUMENT_FORMAT`` names it, ``ROW`` reads a row (its ``from_dict``)."""

    DOCUMENT_FORMAT: ClassVar[str]
    ROW: ClassVar[Any]
    link: str
    classes: tuple[Label, ...]
    rows: tuple[Any, ...]
    target: str

    def to_dict(self) -> dict[str, Any]:
        """The classifier as JSON-compatible values; deterministic."""
        return {
            "format": self.DOCUMENT_FORMAT,
            "target": self.target,
            "link": self.link,
            "classes": list(self.classes),
            "rows": [row.to_dict() for row in self.rows],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Any:
        """Inverse of :meth:`to_dict`; accepts only documents it would write itself.

        Raises
        ------
        ValueError
            Not a document of this format, or a malformed part.
        """
        if not isinstance(data, dict) or data.get("format") != cls.DOCUMENT_FORMAT:
            raise ValueError(f"not a {cls.DOCUMENT_FORMAT} document")
        check_keys(data, {"format", "target", "link", "classes", "rows"}, "the document")
        if not isinstance(data["target"], str):
            raise ValueError("target must be a string")
        if not isinstance(data["classes"], list):
            raise ValueError("classes must be a list")
        if not isinstance(data["rows"], list) or not data["rows"]:
            raise ValueError("rows must be a non-empty list")
        rows = []
        for index, row in enumerate(data["rows"]):
            try:
                rows.append(cls.ROW.from_dict(row))
            except ValueError as error:
                raise ValueError(f"rows[{index}]: {error}") from None
        model = cls(data["link"], tuple(data["classes"]), tuple(rows), data["target"])
        if model.to_dict() != data:
            raise ValueError("the document is not in canonical form")
        return model

    @classmethod
    def read(cls, data: Any) -> Any:
        """A classifier (this class) or a regressor (a ``ROW``) from its document, as its
        ``format`` says.

        Raises
        ------
        ValueError
            As the format's ``from_dict``.
        """
        if isinstance(data, dict) and data.get("format") == cls.DOCUMENT_FORMAT:
            return cls.from_dict(data)
        return cls.ROW.from_dict(data)


@dataclass(frozen=True)
class FoldedClassifier(ClassifierDocument):
    """A linear classifier: ``rows`` (one folded model per score) under ``link``, predicting
    one of ``classes`` (see the module docstring)."""

    DOCUMENT_FORMAT: ClassVar[str] = FORMAT
    ROW: ClassVar[Any] = FoldedModel
    link: str
    classes: tuple[Label, ...]
    rows: tuple[FoldedModel, ...]
    target: str = "prediction"

    def __post_init__(self) -> None:
        check_classifier(self.link, self.classes, self.rows)

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        return self.rows[0].feature_names

    @cached_property
    def categorical_names(self) -> tuple[str, ...]:
        return self.rows[0].categorical_names

    @property
    def is_plain(self) -> bool:
        """Numeric inputs only, no missing-value rules (see :attr:`FoldedModel.is_plain`)."""
        return self.rows[0].is_plain

    @property
    def inputs(self) -> tuple:
        """The inputs of the first row (every row has the same names, kinds and fills)."""
        return self.rows[0].inputs

    # ------------------------------------------------------------------ prediction
    def decision_function(self, columns: Mapping[str, Any] | Any) -> np.ndarray:
        """The scores: shape ``(n,)`` for a logistic model, ``(n, classes)`` for softmax.

        Raises
        ------
        KeyError, MissingValueError
            As :meth:`FoldedModel.predict`.
        """
        scores = [row.predict(columns) for row in self.rows]
        return scores[0] if self.link == LOGISTIC else np.column_stack(scores)

    def predict_proba(self, columns: Mapping[str, Any] | Any) -> np.ndarray:
        """Each class's probability, shape ``(n, classes)``, columns in ``classes`` order."""
        return probabilities(self.link, self.decision_function(columns))

    def predict(self, columns: Mapping[str, Any] | Any) -> np.ndarray:
        """The predicted labels (an object array of ``classes`` entries)."""
        return self.labels(self.decision_function(columns))

    def decision_matrix(self, X: np.ndarray) -> np.ndarray:
        """The scores (as :meth:`decision_function`) of a float matrix whose columns are the
        inputs in order (numeric inputs only; NaN is missing)."""
        scores = [row.predict_matrix(X) for row in self.rows]
        return scores[0] if self.link == LOGISTIC else np.column_stack(scores)

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Labels for a float matrix (see :meth:`decision_matrix`)."""
        return self.labels(self.decision_matrix(X))

    def labels(self, scores: np.ndarray) -> np.ndarray:
        """The labels the scores pick (see the module docstring): int64 for integer classes,
        else an object array of text."""
        return class_array(self.classes)[class_indices(self.link, scores)]


def integer_classes(classes: Sequence[Label]) -> bool:
    """Whether the classes are integers (else text; a classifier's are all one or the
    other)."""
    return isinstance(classes[0], int)


def class_array(classes: Sequence[Label]) -> np.ndarray:
    """The classes as an array labels are taken from: int64, or objects (text)."""
    return np.asarray(classes, dtype=np.int64 if integer_classes(classes) else object)


def class_indices(link: str, scores: np.ndarray) -> np.ndarray:
    """Which class each row's scores pick: the second of two when a logistic score is > 0,
    else the first; the first largest score of a softmax."""
    if link == LOGISTIC:
        return (np.asarray(scores) > 0).astype(np.intp)
    return np.argmax(scores, axis=1)


def probabilities(link: str, scores: np.ndarray) -> np.ndarray:
    """Class probabilities from scores, computed as scikit-learn does (``expit``; a softmax
    shifted by the row's largest score)."""
    scores = np.asarray(scores, dtype=np.float64)
    if link == LOGISTIC:
        with np.errstate(over="ignore"):  # exp(-score) = inf for a very negative score: p = 0
            positive = 1.0 / (1.0 + np.exp(-scores))
        return np.column_stack([1.0 - positive, positive])
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def check_classifier(link: str, classes: Sequence[Any], rows: Sequence[Any]) -> None:
    """Raise ``ValueError`` unless ``link``, ``classes`` and ``rows`` make a classifier:
    distinct classes all text or all integers, one row for two classes (logistic) or one per
    class (softmax, three or more), every row over the same inputs."""
    if link not in LINKS:
        raise ValueError(f"link must be one of {', '.join(LINKS)}")
    texts = all(isinstance(c, str) for c in classes)
    integers = all(isinstance(c, int) and not isinstance(c, bool) for c in classes)
    if len(classes) < 2 or not (texts or integers) or len(set(classes)) != len(classes):
        raise ValueError("classes must be two or more distinct texts, or distinct integers")
    expected = 1 if link == LOGISTIC else len(classes)
    if (link == LOGISTIC) != (len(classes) == 2) or len(rows) != expected:
        raise ValueError(
            "a logistic link has two classes and one row, a softmax link three or more classes "
            "and one row each"
        )
    layouts = {tuple(_layout(item) for item in row.inputs) for row in rows}
    if len(layouts) != 1:
        raise ValueError("every row must have the same inputs, fills and categories")


def _layout(item: Any) -> tuple:
    if item.kind == "numeric":
        return (item.name, item.kind, item.fill, item.indicator is None)
    return (item.name, item.kind, item.categories)


__all__ = [
    "FORMAT",
    "LINKS",
    "LOGISTIC",
    "SOFTMAX",
    "FoldedClassifier",
    "class_array",
    "class_indices",
    "integer_classes",
    "probabilities",
]
