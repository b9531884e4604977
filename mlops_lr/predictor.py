"""Load a saved model — float or quantized — as one folded predictor, and predict on tables,
arrays or CSV files of any size (streamed in chunks).

Loading never unpickles and needs neither scikit-learn nor pandas: every model is a folded
JSON document (``folded.json`` beside ``model.joblib``, or a quantized ``model.json``), so a
server starts fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlops_lr import artifacts
from mlops_lr.artifacts import FOLDED_FILE, METRICS_FILE, MODEL_FILE, QUANTIZED_MODEL, SAMPLES_FILE
from mlops_lr.exceptions import ArtifactError, DataError
from mlops_lr.folded import FoldedModel

FLOAT_MODEL = "float"
QUANTIZED_DIR = "quantized"
PREDICTION_COLUMN = "prediction"


@dataclass(frozen=True)
class LinearPredictor:
    """A folded model under a name: ``float`` or a quantized tag.

    ``details`` describes where it comes from: ``kind``, ``bits``, ``scheme``, the ``sha256``
    and ``created_at`` of the model file, and test-split ``r2``/``mse`` (with the float
    model's ``r2_float``/``mse_float`` beside them).
    """

    name: str
    folded: FoldedModel
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.folded.feature_names

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
    artifacts_dir: str | Path, model: str = FLOAT_MODEL, quantized_dir: str | Path | None = None
) -> LinearPredictor:
    """The float model (``model="float"``) or the quantized model tagged ``model`` (in
    ``quantized_dir``, default ``<artifacts_dir>/quantized``), each verified against its
    manifest before use.

    Raises
    ------
    ArtifactError
        The model is missing, modified, or has no recorded feature names.
    """
    artifacts_dir = Path(artifacts_dir)
    if model == FLOAT_MODEL:
        return _load_float(artifacts_dir)
    directory = quantized_model_dir(artifacts_dir, model, quantized_dir)
    quantized = artifacts.load_quantized(directory)
    manifest = artifacts.read_manifest(directory)
    metrics = json.loads(artifacts.read_verified(directory, METRICS_FILE))
    details = {
        "kind": "quantized",
        "bits": metrics["bits"],
        "scheme": metrics["scheme"],
        "granularity": metrics["granularity"],
        "sha256": manifest["files"][QUANTIZED_MODEL]["sha256"],
        "created_at": manifest["created_at"],
        "r2": metrics["r2_quant"],
        "mse": metrics["mse_quant"],
        "r2_float": metrics["r2_float"],
        "mse_float": metrics["mse_float"],
    }
    return LinearPredictor(name=model, folded=quantized.dequantized(), details=details)


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


def _load_float(directory: Path) -> LinearPredictor:
    """The float model's folded form (``folded.json``), verified; ``model.joblib`` is verified
    too (the tests check both predict the same)."""
    manifest = artifacts.read_manifest(directory)
    if FOLDED_FILE not in manifest.get("files", {}):
        raise ArtifactError(f"{directory} has no {FOLDED_FILE}: run `make train` again")
    artifacts.read_verified(directory, MODEL_FILE)
    folded = artifacts.load_folded(directory)
    metrics = json.loads(artifacts.read_verified(directory, METRICS_FILE))
    details = {
        "kind": "float",
        "bits": None,
        "scheme": "float64",
        "granularity": None,
        "sha256": manifest["files"][FOLDED_FILE]["sha256"],
        "created_at": manifest["created_at"],
        "r2": metrics["r2"],
        "mse": metrics["mse"],
        "r2_float": metrics["r2"],
        "mse_float": metrics["mse"],
    }
    return LinearPredictor(name=FLOAT_MODEL, folded=folded, details=details)


def sample_predictions(artifacts_dir: str | Path, predictor: LinearPredictor) -> np.ndarray:
    """``predictor`` on the first test rows saved with the float model (``samples.json``)."""
    samples = json.loads(artifacts.read_verified(artifacts_dir, SAMPLES_FILE))
    if tuple(samples["feature_names"]) != predictor.feature_names:
        raise ArtifactError(f"{SAMPLES_FILE} has other features than the model")
    rows = samples["X"]
    # JSON null is a missing value: numpy reads it as NaN in a numeric input.
    columns = {name: [row[j] for row in rows] for j, name in enumerate(predictor.feature_names)}
    return predictor.predict_table(columns)


def predict_csv(
    predictor: LinearPredictor,
    source: str | Path,
    target: str | Path,
    chunk_size: int,
    na_values: Sequence[str] | None = None,
) -> int:
    """Stream ``source`` (a CSV with a header) through ``predictor`` into ``target``: the input
    rows plus a ``prediction`` column, ``chunk_size`` rows at a time.

    Features are matched by name (any order, extra columns kept). Categorical inputs are read
    as text (an unseen category is the model's "unknown"); the ``na_values`` cells (default:
    the datasets' default markers) are missing. Returns the number of rows. ``target`` is
    written atomically: on any error no partial file is left.

    Raises
    ------
    DataError
        Missing file or feature column, an empty file, a non-numeric or infinite value, a
        missing value the model has no fill for (named with its column and line).
    """
    # Deferred: only CSV prediction needs pandas (loading a model for a server does not).
    import pandas as pd

    from mlops_lr.config import DEFAULT_NA_VALUES
    from mlops_lr.data import model_columns

    source, target = Path(source), Path(target)
    if not source.is_file():
        raise DataError(f"prediction input not found: {source}")
    if target.resolve() == source.resolve():
        raise DataError(f"{target}: the output would overwrite the input")
    if not target.parent.is_dir():
        raise DataError(f"{target}: the output directory {target.parent} does not exist")
    rows = 0
    try:
        chunks = pd.read_csv(
            source,
            chunksize=chunk_size,
            encoding="utf-8-sig",
            low_memory=False,
            na_values=list(DEFAULT_NA_VALUES if na_values is None else na_values),
            keep_default_na=False,
            dtype=dict.fromkeys(predictor.folded.categorical_names, str),
        )
        with artifacts.atomic_output(target) as handle:
            for chunk in chunks:
                if rows == 0:
                    _check_columns(chunk.columns, predictor.feature_names, source)
                if not isinstance(chunk.index, pd.RangeIndex):  # the first field became an index
                    raise DataError(f"{source}: rows have more fields than the header")
                # The chunks' index labels count rows from the first: line = label + 2.
                columns = model_columns(chunk, predictor.folded, str(source), 2)
                chunk[PREDICTION_COLUMN] = predictor.predict_table(columns)
                chunk.to_csv(handle, header=rows == 0, index=False)
                rows += len(chunk)
            if rows == 0:
                raise DataError(f"{source}: no data rows")
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        lines = str(error).strip().splitlines()
        raise DataError(f"{source}: cannot be read: {lines[0] if lines else error!r}") from None
    return rows


def _check_columns(columns: Sequence[str], features: Sequence[str], source: Path) -> None:
    present = {str(column) for column in columns}
    missing = [name for name in features if name not in present]
    if missing:
        raise DataError(
            f"{source}: feature column(s) {missing} not found; the model needs {list(features)}"
        )
    if PREDICTION_COLUMN in present:
        raise DataError(f"{source}: already has a {PREDICTION_COLUMN!r} column")
