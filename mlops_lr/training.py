"""Fit, evaluate, save and load the float model: what every stage that needs one shares."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sklearn
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from sklearn.base import BaseEstimator, RegressorMixin, is_regressor

from mlops_lr import artifacts
from mlops_lr.artifacts import METRICS_FILE, MODEL_FILE, SAMPLES_FILE
from mlops_lr.config import Config, ModelConfig, as_dict
from mlops_lr.data import (
    MIN_SPLIT_ROWS,
    Dataset,
    Split,
    fingerprint,
    load_dataset,
    split_dataset,
)
from mlops_lr.exceptions import ArtifactError, ConfigError, DataError
from mlops_lr.metrics import regression_metrics

if TYPE_CHECKING:
    from mlops_lr.engines import SplitRule, StreamingFit
    from mlops_lr.sufficient import LinearStats

# The first test rows are saved with the model (SAMPLES_FILE), so `stage=predict` can show
# sample predictions (and a container can check itself) without the dataset.
N_SAMPLES = 5


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model, its metrics, its first test rows and the fingerprint of its data;
    ``split`` is the in-memory split it was fitted on (None when the data was streamed)."""

    model: RegressorMixin
    metrics: dict[str, Any]
    samples: dict[str, Any]
    data_fingerprint: str
    split: Split | None = None


def build_model(config: ModelConfig) -> RegressorMixin:
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
    settings = config.dataset
    dataset = load_dataset(settings)
    split = split_dataset(dataset, settings.test_size, settings.random_state, settings.split)
    return dataset, split


def fit_and_evaluate(config: Config, dataset: Dataset, split: Split) -> TrainedModel:
    """Fit the configured model on the training split (in memory) and score it on both."""
    model = build_model(config.model).fit(split.X_train, split.y_train)
    metrics = _metrics(
        model,
        test=regression_metrics(split.y_test, model.predict(split.X_test)),
        train_r2=regression_metrics(split.y_train, model.predict(split.X_train))["r2"],
        n_train=len(split.y_train),
        n_test=len(split.y_test),
        dataset=dataset.name,
        feature_names=dataset.feature_names,
        target_name=dataset.target_name,
    )
    samples = _samples(dataset.feature_names, split.X_test, split.y_test)
    return TrainedModel(model, metrics, samples, fingerprint(dataset), split)


def fit_streamed(config: Config) -> TrainedModel:
    """Fit and score the model out of core (``engine=stream`` or ``dask``): exact sufficient
    statistics of the training rows, then exact error sums of both splits, batch by batch."""
    from mlops_lr.engines import SplitRule, StreamingFit, make_source

    rule = SplitRule(config.dataset.test_size, config.dataset.random_state)
    with StreamingFit(config.engine, make_source(config)) as streaming:
        return fit_from_statistics(config, streaming, streaming.statistics(rule), rule)


def fit_from_statistics(
    config: Config, streaming: StreamingFit, statistics: LinearStats, rule: SplitRule
) -> TrainedModel:
    """The model that ``statistics`` (of the training rows) define, scored by another pass
    of ``streaming`` over the data."""
    try:
        coef, intercept = statistics.solve()
    except ValueError as error:
        raise DataError(f"cannot fit: {error} in the training split") from None
    evaluation = streaming.evaluate(rule, coef, intercept, N_SAMPLES)
    if evaluation.test.n < MIN_SPLIT_ROWS:
        raise DataError(
            f"only {evaluation.test.n} test row(s) with test_size={config.dataset.test_size}: "
            f"at least {MIN_SPLIT_ROWS} are needed"
        )
    model = build_model(config.model)
    model.coef_, model.intercept_ = coef, intercept
    model.n_features_in_ = len(coef)
    source = streaming.source
    metrics = _metrics(
        model,
        test=evaluation.test.metrics(),
        train_r2=evaluation.train.metrics()["r2"],
        n_train=statistics.n,
        n_test=evaluation.test.n,
        dataset=config.dataset.name,
        feature_names=source.feature_names,
        target_name=source.target_name,
    )
    samples = _samples(source.feature_names, evaluation.samples_X, evaluation.samples_y)
    return TrainedModel(model, metrics, samples, source.fingerprint())


def _metrics(
    model: RegressorMixin,
    *,
    test: dict[str, float],
    train_r2: float,
    n_train: int,
    n_test: int,
    dataset: str,
    feature_names: tuple[str, ...],
    target_name: str,
) -> dict[str, Any]:
    """What ``metrics.json`` holds: test scores, sizes, names, the exact parameters."""
    return {
        **test,
        "train_r2": train_r2,
        "n_train": int(n_train),
        "n_test": int(n_test),
        "dataset": dataset,
        "feature_names": list(feature_names),
        "target_name": target_name,
        "coef": np.asarray(model.coef_, dtype=float).tolist(),
        "intercept": float(model.intercept_),
        "created_at": utc_now(),
        "versions": {
            "python": platform.python_version(),
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
        },
    }


def _samples(names: tuple[str, ...], X_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    return {
        "feature_names": list(names),
        "X": np.asarray(X_test)[:N_SAMPLES].tolist(),
        "y": np.asarray(y_test)[:N_SAMPLES].tolist(),
    }


# Settings that change where data comes from or how fast a fit runs, never the fitted model
# (the data fingerprint covers what was read).
_NOT_MODEL_SETTINGS = frozenset({"data_home", "download_if_missing", "n_jobs"})


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
        SAMPLES_FILE: artifacts.json_bytes(trained.samples),
    }
    metadata = {
        "created_at": trained.metrics["created_at"],
        "data_fingerprint": trained.data_fingerprint,
        "training": training_key(config),
        "config": as_dict(config),
    }
    return artifacts.write_artifacts(directory, files, metadata)


def load(directory: str | Path) -> RegressorMixin:
    """Load ``model.joblib`` from ``directory`` after verifying its sha256 against the manifest."""
    return artifacts.load_verified_joblib(directory, MODEL_FILE)


def load_or_train(
    config: Config, data_fingerprint: str, train: Callable[[], TrainedModel]
) -> tuple[RegressorMixin, dict[str, Any], str | None]:
    """The saved model if it was trained on this config and the data with
    ``data_fingerprint``, else ``train()``'s model, saved.

    Returns the model, its manifest and, when it had to be trained, the reason why; ``None``
    means the saved model was reused.

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
        reason = stale_reason(manifest, directory, config, data_fingerprint)
        if reason is None:
            return load(directory), manifest, None
        trained = train()
        return trained.model, save(trained, config, directory), reason


def stale_reason(
    manifest: dict[str, Any] | None, directory: Path, config: Config, data_fingerprint: str
) -> str | None:
    """Why the model that ``manifest`` describes cannot be reused for ``config`` and the data
    with ``data_fingerprint``, if so (None: it can)."""
    if manifest is None or MODEL_FILE not in manifest.get("files", {}):
        return f"no trained model in {directory}"
    if manifest.get("training") != training_key(config):
        return "the saved model was trained with another dataset or model config"
    if manifest.get("data_fingerprint") != data_fingerprint:
        return "the saved model was trained on different data"
    return None


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")
