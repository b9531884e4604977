"""Fit, evaluate, save and load the float model: what every stage that needs one shares."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from sklearn.base import BaseEstimator, RegressorMixin, is_regressor

from mlops_lr import artifacts
from mlops_lr.artifacts import METRICS_FILE, MODEL_FILE, SAMPLES_FILE
from mlops_lr.config import Config, LinearRegressionConfig, as_dict
from mlops_lr.data import Dataset, Split, fingerprint, load_dataset, split_dataset
from mlops_lr.exceptions import ArtifactError, ConfigError
from mlops_lr.metrics import regression_metrics

# The first test rows are saved with the model (SAMPLES_FILE), so `stage=predict` can show
# sample predictions (and a container can check itself) without the dataset.
N_SAMPLES = 5


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model with the data it was fitted and evaluated on."""

    model: RegressorMixin
    dataset: Dataset
    split: Split
    metrics: dict[str, Any]


def build_model(config: LinearRegressionConfig) -> RegressorMixin:
    """Instantiate the estimator that ``config._target_`` names.

    Raises
    ------
    ConfigError
        The target cannot be imported or built, or is not a scikit-learn regressor.
    """
    try:
        model = instantiate(config)
    except InstantiationException as error:
        reason = " ".join(str(error).split())
        raise ConfigError(f"model._target_={config._target_!r} cannot be built: {reason}") from None
    if not (isinstance(model, BaseEstimator) and is_regressor(model)):
        raise ConfigError(f"model._target_={config._target_!r} is not a scikit-learn regressor")
    return model


def prepare_data(config: Config) -> tuple[Dataset, Split]:
    """Load the configured dataset and split it as configured."""
    dataset = load_dataset(config.dataset)
    return dataset, split_dataset(dataset, config.dataset.test_size, config.dataset.random_state)


def fit_and_evaluate(config: Config, dataset: Dataset, split: Split) -> TrainedModel:
    """Fit the configured model on the training split and score it on both splits."""
    model = build_model(config.model).fit(split.X_train, split.y_train)
    test = regression_metrics(split.y_test, model.predict(split.X_test))
    metrics = {
        **test,
        "train_r2": regression_metrics(split.y_train, model.predict(split.X_train))["r2"],
        "n_train": int(split.X_train.shape[0]),
        "n_test": int(split.X_test.shape[0]),
        "dataset": dataset.name,
        "feature_names": list(dataset.feature_names),
        "target_name": dataset.target_name,
        "coef": np.asarray(model.coef_, dtype=float).tolist(),
        "intercept": float(model.intercept_),
        "created_at": utc_now(),
        "versions": {
            "python": platform.python_version(),
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
        },
    }
    return TrainedModel(model=model, dataset=dataset, split=split, metrics=metrics)


# Settings that change where data comes from or how fast a fit runs, never the fitted model
# (the data fingerprint covers what was read).
_NOT_MODEL_SETTINGS = frozenset({"data_home", "download_if_missing", "n_jobs", "copy_X"})


def training_key(config: Config) -> dict[str, Any]:
    """The part of the config that determines the fitted model (dataset and model groups)."""
    return {
        group: {k: v for k, v in as_dict(node).items() if k not in _NOT_MODEL_SETTINGS}
        for group, node in (("dataset", config.dataset), ("model", config.model))
    }


def save(trained: TrainedModel, config: Config, directory: str | Path) -> dict[str, Any]:
    """Write ``model.joblib``, ``metrics.json``, ``samples.json`` and their manifest."""
    files = {
        MODEL_FILE: artifacts.joblib_bytes(trained.model),
        METRICS_FILE: artifacts.json_bytes(trained.metrics),
        SAMPLES_FILE: artifacts.json_bytes(
            {
                "feature_names": list(trained.dataset.feature_names),
                "X": trained.split.X_test[:N_SAMPLES].tolist(),
                "y": trained.split.y_test[:N_SAMPLES].tolist(),
            }
        ),
    }
    metadata = {
        "created_at": trained.metrics["created_at"],
        "data_fingerprint": fingerprint(trained.dataset),
        "training": training_key(config),
        "config": as_dict(config),
    }
    return artifacts.write_artifacts(directory, files, metadata)


def load(directory: str | Path) -> RegressorMixin:
    """Load ``model.joblib`` from ``directory`` after verifying its sha256 against the manifest."""
    return artifacts.load_verified_joblib(directory, MODEL_FILE)


def load_or_train(
    config: Config, dataset: Dataset, split: Split
) -> tuple[TrainedModel, dict[str, Any], str | None]:
    """The saved model if it was trained on this config and data, else a newly trained one.

    Returns the model, its manifest and, when it had to be trained (and saved), the reason
    why; ``None`` means the saved model was reused.

    Raises
    ------
    ArtifactError
        The saved model matches the config but its file was modified: it is never overwritten
        silently.
    """
    directory = Path(config.paths.artifacts_dir)
    with artifacts.locked(directory):  # parallel jobs on a cold cache train once
        try:
            manifest = artifacts.read_manifest(directory)
        except ArtifactError:
            manifest = None
        reason = _stale_reason(manifest, directory, config, dataset)
        if reason is None:
            metrics = json.loads(artifacts.read_verified(directory, METRICS_FILE))
            return TrainedModel(load(directory), dataset, split, metrics), manifest, None
        trained = fit_and_evaluate(config, dataset, split)
        return trained, save(trained, config, directory), reason


def _stale_reason(
    manifest: dict[str, Any] | None, directory: Path, config: Config, dataset: Dataset
) -> str | None:
    """Why the model that ``manifest`` describes cannot be reused for ``config`` and
    ``dataset``, if so."""
    if manifest is None or MODEL_FILE not in manifest.get("files", {}):
        return f"no trained model in {directory}"
    if manifest.get("training") != training_key(config):
        return "the saved model was trained with another dataset or model config"
    if manifest.get("data_fingerprint") != fingerprint(dataset):
        return "the saved model was trained on different data"
    return None


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
