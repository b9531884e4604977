"""Load a saved model — float or quantized — as one folded predictor, and predict on tables
or arrays (files of any size: :mod:`mlops_lr.batch_predict`).

Loading never unpickles and needs neither scikit-learn nor pandas: every model is a folded
JSON document (``folded.json`` beside ``model.joblib``, or a quantized ``model.json``), so a
server starts fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlops_lr import artifacts
from mlops_lr.artifacts import FOLDED_FILE, METRICS_FILE, MODEL_FILE, QUANTIZED_MODEL, SAMPLES_FILE
from mlops_lr.exceptions import ArtifactError
from mlops_lr.folded import FoldedModel
from mlops_lr.folded_classifier import FoldedClassifier

FLOAT_MODEL = "float"
QUANTIZED_DIR = "quantized"
PREDICTION_COLUMN = "prediction"
# The test scores a predictor's details carry, by task (each also as <key>_float).
SCORES = {"regression": ("r2", "mse"), "classification": ("accuracy", "log_loss")}


@dataclass(frozen=True)
class LinearPredictor:
    """A folded model (a regressor, or a :class:`FoldedClassifier`) under a name: ``float``
    or a quantized tag.

    ``details`` describes where it comes from: ``kind``, ``bits``, ``scheme``, the ``sha256``
    and ``created_at`` of the model file, its ``task`` and test-split scores (``r2``/``mse``,
    or ``accuracy``/``log_loss``, with the float model's ``r2_float``... beside them).
    """

    name: str
    folded: FoldedModel | FoldedClassifier
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.folded.feature_names

    @property
    def is_classifier(self) -> bool:
        return isinstance(self.folded, FoldedClassifier)

    def predict_proba_table(self, columns: Mapping[str, Any] | Any) -> np.ndarray:
        """A classifier's class probabilities, columns in ``folded.classes`` order.

        Raises
        ------
        TypeError
            The model is a regressor.
        """
        if not self.is_classifier:
            raise TypeError(f"model {self.name!r} is a regressor: it has no probabilities")
        return self.folded.predict_proba(columns)

    @property
    def coef(self) -> np.ndarray:
        """The weights of a plain numeric model."""
        return self.folded.coef

    @property
    def intercept(self) -> float:
        return self.folded.intercept

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for the rows of a float matrix ``X`` (columns in ``feature_names``
        order; NaN where missing; numeric inputs only)."""
        return self.folded.predict_matrix(X)

    def predict_table(self, columns: Mapping[str, Any] | Any) -> np.ndarray:
        """Predictions for a table given column by column (see :meth:`FoldedModel.predict`)."""
        return self.folded.predict(columns)


def load_predictor(
    artifacts_dir: str | Path,
    model: str = FLOAT_MODEL,
    quantized_dir: str | Path | None = None,
    allow_stale: bool = False,
) -> LinearPredictor:
    """The float model (``model="float"``) or the quantized model tagged ``model`` (in
    ``quantized_dir``, default ``<artifacts_dir>/quantized``), each verified against its
    manifest before use. A quantized model must have been made from the current float model
    (its ``model.joblib``), unless ``allow_stale``.

    Raises
    ------
    ArtifactError
        The model is missing, modified, stale, or has no recorded feature names.
    """
    artifacts_dir = Path(artifacts_dir)
    if model == FLOAT_MODEL:
        # The pickle is verified too, though never loaded here (the tests check that both
        # predict the same): a float model whose model.joblib was changed is refused.
        artifacts.read_verified(artifacts_dir, MODEL_FILE)
        return _load_float(artifacts_dir, FLOAT_MODEL)
    directory = quantized_model_dir(artifacts_dir, model, quantized_dir)
    manifest = artifacts.read_manifest(directory)
    stale = stale_reason(artifacts_dir, manifest)
    if stale is not None and not allow_stale:
        raise ArtifactError(
            f"quantized model {model!r} is stale: {stale}; re-quantize it (`make quantize`), or "
            "set allow_stale=true to use it anyway"
        )
    return _load_quantized(directory, model, stale=stale is not None)


def load_model_directory(directory: str | Path, name: str) -> LinearPredictor:
    """The model a directory holds, float (``folded.json``) or quantized (``model.json``),
    verified against its manifest, named ``name``: a model as it was packaged (an MLflow
    model's artifacts), with no lineage to check and no ``model.joblib`` beside it.

    Raises
    ------
    ArtifactError
        The directory holds no model, or a file is missing or modified.
    """
    files = artifacts.read_manifest(directory).get("files", {})
    if QUANTIZED_MODEL in files:
        return _load_quantized(Path(directory), name)
    if FOLDED_FILE in files:
        return _load_float(Path(directory), name)
    raise ArtifactError(f"{directory} holds no {FOLDED_FILE} or {QUANTIZED_MODEL}")


def _load_quantized(directory: Path, name: str, **details: Any) -> LinearPredictor:
    quantized = artifacts.load_quantized(directory)
    manifest = artifacts.read_manifest(directory)
    metrics = json.loads(artifacts.read_verified(directory, METRICS_FILE))
    details = {
        **details,
        "kind": "quantized",
        "bits": metrics["bits"],
        "scheme": metrics["scheme"],
        "granularity": metrics["granularity"],
        "sha256": manifest["files"][QUANTIZED_MODEL]["sha256"],
        "created_at": manifest["created_at"],
        **_scores(metrics, "_quant"),
    }
    return LinearPredictor(name=name, folded=quantized.dequantized(), details=details)


def _scores(metrics: Mapping[str, Any], suffix: str) -> dict[str, Any]:
    """The task and test scores (see :data:`SCORES`) of a model's ``metrics.json``, whose
    keys end in ``suffix`` ("" for a float model, whose own scores are the float ones)."""
    task = metrics.get("task", "regression")
    scores = {"task": task}
    for key in SCORES[task]:
        scores[key] = metrics[key + suffix]
        scores[key + "_float"] = metrics[key + ("_float" if suffix else "")]
    return scores


def stale_reason(artifacts_dir: str | Path, manifest: Mapping[str, Any]) -> str | None:
    """Why the quantized model with this ``manifest`` no longer matches the float model in
    ``artifacts_dir`` (None: it was made from that very ``model.joblib``)."""
    source = manifest.get("source_model", {}).get("sha256")
    try:
        current = artifacts.read_manifest(artifacts_dir)["files"][MODEL_FILE]["sha256"]
    except (ArtifactError, KeyError):
        return f"there is no float model in {artifacts_dir} any more"
    if source != current:
        return (
            f"it was made from float model {str(source)[:12]}, and the float model is now "
            f"{current[:12]} (trained again since)"
        )
    return None


def quantized_model_dir(
    artifacts_dir: str | Path, tag: str, quantized_dir: str | Path | None = None
) -> Path:
    """The directory of the quantized model ``tag`` (in ``quantized_dir``, default
    ``<artifacts_dir>/quantized``).

    Raises
    ------
    ArtifactError
        There is no such model; the message lists the tags there are.
    """
    quantized_dir = Path(quantized_dir or Path(artifacts_dir) / QUANTIZED_DIR)
    directory = quantized_dir / tag
    if not directory.is_dir():
        available = sorted(p.name for p in quantized_dir.glob("*/"))
        raise ArtifactError(
            f"no quantized model {tag!r} in {quantized_dir} "
            f"(available: {', '.join(available) or 'none'}; run `make quantize`)"
        )
    return directory


def _load_float(directory: Path, name: str) -> LinearPredictor:
    """The float model's folded form (``folded.json``), verified."""
    manifest = artifacts.read_manifest(directory)
    if FOLDED_FILE not in manifest.get("files", {}):
        raise ArtifactError(f"{directory} has no {FOLDED_FILE}: run `make train` again")
    folded = artifacts.load_folded(directory)
    metrics = json.loads(artifacts.read_verified(directory, METRICS_FILE))
    details = {
        "kind": "float",
        "bits": None,
        "scheme": "float64",
        "granularity": None,
        "sha256": manifest["files"][FOLDED_FILE]["sha256"],
        "created_at": manifest["created_at"],
        **_scores(metrics, ""),
    }
    return LinearPredictor(name=name, folded=folded, details=details)


def saved_samples(artifacts_dir: str | Path, feature_names: tuple[str, ...]) -> list[list[Any]]:
    """The first test rows saved with the float model (``samples.json``), one list per row in
    ``feature_names`` order (JSON null where missing).

    Raises
    ------
    ArtifactError
        There are none, or they are rows of other features.
    """
    samples = json.loads(artifacts.read_verified(artifacts_dir, SAMPLES_FILE))
    if tuple(samples.get("feature_names", ())) != tuple(feature_names) or not samples.get("X"):
        raise ArtifactError(f"{SAMPLES_FILE} has other features than the model")
    return samples["X"]


def sample_columns(artifacts_dir: str | Path, predictor: LinearPredictor) -> dict[str, list]:
    """The first test rows saved with the float model (``samples.json``), column by column
    as :meth:`LinearPredictor.predict_table` takes them."""
    rows = saved_samples(artifacts_dir, predictor.feature_names)
    # JSON null is a missing value: numpy reads it as NaN in a numeric input.
    return {name: [row[j] for row in rows] for j, name in enumerate(predictor.feature_names)}


def sample_predictions(artifacts_dir: str | Path, predictor: LinearPredictor) -> np.ndarray:
    """``predictor`` on the first test rows saved with the float model (``samples.json``):
    numbers, or a classifier's labels."""
    return predictor.predict_table(sample_columns(artifacts_dir, predictor))
