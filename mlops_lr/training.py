"""Fit, evaluate, save and load the float model: what every stage that needs one shares."""

from __future__ import annotations

import logging
import math
import platform
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sklearn
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from sklearn.base import BaseEstimator, RegressorMixin, is_classifier, is_regressor
from sklearn.pipeline import Pipeline

from mlops_lr import artifacts, preprocess
from mlops_lr.artifacts import FOLDED_FILE, METRICS_FILE, MODEL_FILE, SAMPLES_FILE
from mlops_lr.config import (
    Config,
    LogisticRegressionConfig,
    ModelConfig,
    StandardPreprocessConfig,
    as_dict,
)
from mlops_lr.config import (
    is_classifier as is_classifier_config,
)
from mlops_lr.data import (
    MAX_CLASSES,
    MIN_SPLIT_ROWS,
    PREPROCESS_HINT,
    Dataset,
    Split,
    fingerprint,
    load_dataset,
    split_dataset,
)
from mlops_lr.exceptions import ArtifactError, ConfigError, DataError
from mlops_lr.folded import FoldedModel
from mlops_lr.folded_classifier import FoldedClassifier
from mlops_lr.metrics import classification_metrics, regression_metrics

if TYPE_CHECKING:
    from mlops_lr.engines import SplitRule, StreamingFit
    from mlops_lr.sufficient import ClassCounts, LinearStats, TooManyLevels

log = logging.getLogger(__name__)

# The first test rows are saved with the model (SAMPLES_FILE), so `stage=predict` can show
# sample predictions (and a container can check itself) without the dataset.
N_SAMPLES = 5


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model (the estimator, or the preprocessing pipeline around it), its folded
    form, its metrics, its first test rows and the fingerprint of its data; ``split`` is the
    in-memory split it was fitted on (None when the data was streamed)."""

    model: RegressorMixin
    folded: FoldedModel | FoldedClassifier
    metrics: dict[str, Any]
    samples: dict[str, Any]
    data_fingerprint: str
    split: Split | None = None


def build_model(config: ModelConfig) -> RegressorMixin:
    """Instantiate the estimator that ``config._target_`` names.

    Raises
    ------
    ConfigError
        The target cannot be imported or built, or is not a scikit-learn regressor (a
        classifier, for a classifier's config).
    """
    if isinstance(config, LogisticRegressionConfig):
        return _logistic_regression(config)
    try:
        model = instantiate(config)
    except InstantiationException as error:
        reason = " ".join(str(error).split())
        raise ConfigError(f"model._target_={config._target_!r} cannot be built: {reason}") from None
    if not (isinstance(model, BaseEstimator) and is_regressor(model)):
        raise ConfigError(f"model._target_={config._target_!r} is not a scikit-learn regressor")
    return model


def _logistic_regression(config: LogisticRegressionConfig) -> BaseEstimator:
    """The configured ``LogisticRegression``: ``penalty=none`` is scikit-learn's ``C=inf``
    (its ``penalty`` parameter is deprecated)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(
        C=math.inf if config.penalty == "none" else config.C,
        fit_intercept=config.fit_intercept,
        solver=config.solver,
        max_iter=config.max_iter,
        tol=config.tol,
        class_weight=config.class_weight,
    )


def prepare_data(config: Config) -> tuple[Dataset, Split]:
    """Load the configured dataset and split it as configured (a classifier's target as
    class labels, and at least two classes among the training rows).

    Raises
    ------
    DataError
        As :func:`mlops_lr.data.load_dataset`, or a classifier's training rows hold one class,
        or its test rows a class the training rows do not have (the model could never
        predict it, and its scores are undefined there).
    """
    settings = config.dataset
    classes = is_classifier_config(config.model)
    dataset = load_dataset(settings, preprocessed=config.preprocess.name != "none", classes=classes)
    split = split_dataset(dataset, settings.test_size, settings.random_state, settings.split)
    if classes:
        present = np.unique(split.y_train).tolist()
        if len(present) < 2:
            raise DataError(
                f"{dataset.name}: the training rows' target {dataset.target_name!r} has one "
                f"class ({present[0]!r}): a classifier needs two or more"
            )
        unseen = sorted(set(np.unique(split.y_test).tolist()) - set(present))
        if unseen:
            raise DataError(
                f"{dataset.name}: class {unseen[0]!r} of the target {dataset.target_name!r} "
                "is only in the test rows: give it more rows, drop them, or change "
                "dataset.random_state"
            )
    return dataset, split


def fit_and_evaluate(config: Config, dataset: Dataset, split: Split) -> TrainedModel:
    """Fit the configured model (with its preprocessing) on the training split, in memory,
    fold it, and score it on both splits."""
    model = preprocess.build_model(
        config.preprocess, build_model(config.model), dataset.features, dataset.categorical
    )
    # A bare estimator takes the float matrix (the reference numbers), a pipeline the table.
    if isinstance(model, Pipeline):
        train, test = split.train, split.test
    else:
        train, test = split.X_train, split.X_test
    model.fit(train, split.y_train)
    folded = preprocess.fold(model, dataset.feature_names, dataset.categorical, dataset.target_name)
    with warnings.catch_warnings():  # categories only the test split has: the documented rule
        warnings.filterwarnings("ignore", "Found unknown categories", UserWarning)
        if is_classifier(model):
            classes = folded.classes
            test_scores = classification_metrics(
                split.y_test, model.predict(test), model.predict_proba(test), classes
            )
            train_scores = {"train_accuracy": float(model.score(train, split.y_train))}
        else:
            test_scores = regression_metrics(split.y_test, model.predict(test))
            train_scores = {
                "train_r2": regression_metrics(split.y_train, model.predict(train))["r2"]
            }
    metrics = _metrics(
        model,
        folded,
        test=test_scores,
        train=train_scores,
        n_train=len(split.y_train),
        n_test=len(split.y_test),
        dataset=dataset.name,
        feature_names=dataset.feature_names,
        target_name=dataset.target_name,
        preprocess=config.preprocess.name,
    )
    samples = sample_rows(dataset.feature_names, split.test, split.y_test)
    return TrainedModel(model, folded, metrics, samples, fingerprint(dataset), split)


def fit_streamed(config: Config) -> TrainedModel:
    """Fit and score the model out of core (``engine=stream`` or ``dask``): exact sufficient
    statistics of the training rows, then exact error sums of both splits, batch by batch."""
    from mlops_lr.engines import SplitRule, StreamingFit, make_source

    rule = SplitRule(config.dataset.test_size, config.dataset.random_state)
    with StreamingFit(config.engine, make_source(config)) as streaming:
        if is_classifier_config(config.model):
            return fit_classifier_out_of_core(config, streaming, rule)
        return fit_out_of_core(config, streaming, rule)[0]


def fit_out_of_core(
    config: Config, streaming: StreamingFit, rule: SplitRule
) -> tuple[TrainedModel, LinearStats]:
    """The configured preprocessing and model fitted from one pass of ``streaming`` over the
    data (the statistics of the raw table with preprocessing, of the features without),
    scored by another pass.

    Returns the trained model and its design statistics (the training rows' moments that
    quantization calibrates on).
    """
    from mlops_lr import statistics_fit
    from mlops_lr.sufficient import TooManyLevels

    source = streaming.source
    names, categorical = source.feature_names, source.categorical
    model = build_model(config.model)
    if isinstance(config.preprocess, StandardPreprocessConfig):
        settings = config.preprocess
        try:
            table = streaming.table_statistics(rule, settings.max_categories)
        except TooManyLevels as error:
            raise _too_many_levels(error, categorical, settings) from None
        summary = table.summary()
        _check_training_rows(summary.n, config)
        model = statistics_fit.fit_preprocessing(settings, model, summary, names, categorical)
        layout = statistics_fit.layout(model, names, categorical, source.target_name)
        design = table.design_statistics(layout)
    else:
        _check_numeric(streaming)
        layout = statistics_fit.layout(model, names, categorical, source.target_name)
        design = streaming.design_statistics(rule, layout)
    try:
        statistics_fit.fit_estimator(model, layout, design)
    except ValueError as error:
        raise DataError(f"cannot fit: {error} in the training split") from None
    folded = preprocess.fold(model, names, categorical, source.target_name)
    evaluation = streaming.evaluate(rule, folded, N_SAMPLES)
    _check_test_rows(evaluation.test.n, config)
    metrics = _metrics(
        model,
        folded,
        test=evaluation.test.metrics(),
        train={"train_r2": evaluation.train.metrics()["r2"]},
        n_train=design.n,
        n_test=evaluation.test.n,
        dataset=config.dataset.name,
        feature_names=names,
        target_name=source.target_name,
        preprocess=config.preprocess.name,
    )
    samples = sample_rows(names, evaluation.samples, evaluation.samples_y)
    return TrainedModel(model, folded, metrics, samples, source.fingerprint()), design


def fit_classifier_out_of_core(
    config: Config, streaming: StreamingFit, rule: SplitRule
) -> TrainedModel:
    """The configured preprocessing and ``LogisticRegression`` fitted out of core: a pass for
    the training rows' classes (and the raw table's statistics, which fit the preprocessing),
    one pass per point Newton's method evaluates (:mod:`mlops_lr.newton`), then a pass that
    scores it (its test rows' classes and probabilities are kept for ROC AUC).

    Raises
    ------
    DataError
        One class, too many, a class only the test rows have, too few rows, or Newton's
        method fails or does not converge within ``model.max_iter`` steps.
    """
    from mlops_lr import statistics_fit
    from mlops_lr.engines import label_array, label_values
    from mlops_lr.newton import NewtonFailure, NotConverged, newton_cholesky
    from mlops_lr.sufficient import TooManyLevels

    source = streaming.source
    names, categorical, target = source.feature_names, source.categorical, source.target_name
    settings = config.preprocess
    standard = isinstance(settings, StandardPreprocessConfig)
    model = build_model(config.model)
    if not standard:
        _check_numeric(streaming)
    try:
        labelled = streaming.labelled_statistics(
            rule, settings.max_categories if standard else None
        )
    except TooManyLevels as error:
        raise _too_many_levels(error, categorical, settings) from None
    classes = _classes(labelled.classes, source.name)
    labels = label_array(classes, source)
    counts = np.array([labelled.classes.counts[label] for label in classes])
    _check_training_rows(int(counts.sum()), config)
    if standard:
        summary = labelled.table.summary()
        model = statistics_fit.fit_preprocessing(settings, model, summary, names, categorical)
    layout = statistics_fit.layout(model, names, categorical, target)
    encoding = statistics_fit.encoding(model, layout) if standard else None
    width = len(names) if encoding is None else encoding[0].shape[1]
    # scikit-learn's "balanced": n / (classes · rows of the class).
    class_weight = None
    if config.model.class_weight == "balanced":
        class_weight = counts.sum() / (len(counts) * counts)
    estimator = model.named_steps["model"] if hasattr(model, "named_steps") else model
    try:
        result = newton_cholesky(
            lambda coef: streaming.newton_statistics(
                rule, layout, encoding, labels, class_weight, coef
            ),
            len(classes),
            width,
            C=estimator.C,
            tol=estimator.tol,
            max_iter=estimator.max_iter,
        )
    except NotConverged as error:
        raise DataError(
            f"the logistic regression did not converge within model.max_iter={error.max_iter} "
            "Newton steps: raise model.max_iter (or model.tol)"
        ) from None
    except NewtonFailure as error:
        raise DataError(
            f"cannot fit the logistic regression by Newton's method: {error}; penalize it "
            "(model.penalty=l2, a smaller model.C) or drop redundant features"
        ) from None
    log.info(
        "Newton's method: %d step(s), %d pass(es) over the training rows",
        result.n_iter,
        result.passes,
    )
    statistics_fit.fit_classifier(model, classes, result.coef, result.n_iter)
    folded = preprocess.fold(model, names, categorical, target)
    evaluation = streaming.evaluate_classifier(rule, folded, labels, N_SAMPLES)
    n_test = evaluation.test.n
    _check_test_rows(n_test, config)
    metrics = _metrics(
        model,
        folded,
        test=evaluation.test.metrics(),
        train={"train_accuracy": evaluation.train_correct / evaluation.n_train},
        n_train=evaluation.n_train,
        n_test=n_test,
        dataset=config.dataset.name,
        feature_names=names,
        target_name=target,
        preprocess=settings.name,
    )
    samples = sample_rows(names, evaluation.samples, label_values(evaluation.samples_y, source))
    return TrainedModel(model, folded, metrics, samples, source.fingerprint())


def _classes(counts: ClassCounts, source: str) -> list[Any]:
    """The training rows' classes, sorted as scikit-learn sorts them, as the model's
    ``classes_`` holds them (text, or integers).

    Raises
    ------
    DataError
        One class, or more than :data:`~mlops_lr.data.MAX_CLASSES`.
    """
    found = sorted(counts.counts)
    if len(found) > MAX_CLASSES:
        raise DataError(
            f"{source}: the target has {len(found)} distinct values, more than a classifier's "
            f"{MAX_CLASSES} classes: is it a measurement? use a regression model"
        )
    if len(found) < 2:
        raise DataError(
            f"{source}: the training rows' target has one class "
            f"({found[0] if found else None!r}): a classifier needs two or more"
        )
    return [label if isinstance(label, str) else int(label) for label in found]


def _check_numeric(streaming: StreamingFit) -> None:
    """Without preprocessing, every feature must be a number."""
    source = streaming.source
    if source.categorical:
        raise DataError(
            f"{source.name}: column {source.categorical[0]!r} is categorical (text): "
            f"{PREPROCESS_HINT}"
        )


def _too_many_levels(
    error: TooManyLevels, categorical: tuple[str, ...], settings: StandardPreprocessConfig
) -> DataError:
    return DataError(
        f"column {categorical[error.column]!r} has more than preprocess.max_categories="
        f"{settings.max_categories} distinct values ({error.count} in the rows read so "
        "far): drop it (dataset.drop), raise the cap, or pool rare values "
        "(preprocess.min_frequency)"
    )


def _check_training_rows(n: int, config: Config) -> None:
    if n < MIN_SPLIT_ROWS:
        raise DataError(
            f"only {n} training row(s) with test_size={config.dataset.test_size}: "
            f"at least {MIN_SPLIT_ROWS} are needed"
        )


def _check_test_rows(n: int, config: Config) -> None:
    if n < MIN_SPLIT_ROWS:
        raise DataError(
            f"only {n} test row(s) with test_size={config.dataset.test_size}: "
            f"at least {MIN_SPLIT_ROWS} are needed"
        )


def _metrics(
    model: RegressorMixin,
    folded: FoldedModel | FoldedClassifier,
    *,
    test: dict[str, Any],
    train: dict[str, float],
    n_train: int,
    n_test: int,
    dataset: str,
    feature_names: tuple[str, ...],
    target_name: str,
    preprocess: str,
) -> dict[str, Any]:
    """What ``metrics.json`` holds: the task, test and training scores, sizes, names, the
    estimator's exact parameters (over its inputs after preprocessing; ``folded.json`` has
    them per column) and a classifier's classes."""
    estimator = model[-1] if hasattr(model, "steps") else model
    labels = {}
    if isinstance(folded, FoldedClassifier):
        labels = {"classes": list(folded.classes)}
    return {
        "task": "classification" if labels else "regression",
        **test,
        **train,
        **labels,
        "n_train": int(n_train),
        "n_test": int(n_test),
        "dataset": dataset,
        "feature_names": list(feature_names),
        "target_name": target_name,
        "preprocess": preprocess,
        "coef": np.asarray(estimator.coef_, dtype=float).tolist(),
        "intercept": np.asarray(estimator.intercept_, dtype=float).tolist(),
        "created_at": utc_now(),
        "versions": {
            "python": platform.python_version(),
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
        },
    }


def sample_rows(names: tuple[str, ...], X_test: Any, y_test: np.ndarray) -> dict[str, Any]:
    """The first test rows as JSON values: numbers, text for categories, null for missing."""
    rows = X_test[:N_SAMPLES]
    if hasattr(rows, "columns"):  # a table: each cell as JSON
        rows = [[_json_cell(value) for value in row] for row in rows.itertuples(index=False)]
    else:
        rows = np.asarray(rows).tolist()
    return {"feature_names": list(names), "X": rows, "y": np.asarray(y_test)[:N_SAMPLES].tolist()}


def _json_cell(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return float(value)


# Settings that change where data comes from or how fast a fit runs, never the fitted model
# (the data fingerprint covers what was read).
_NOT_MODEL_SETTINGS = frozenset({"data_home", "download_if_missing", "n_jobs"})


def training_key(config: Config) -> dict[str, Any]:
    """The part of the config that determines the fitted model (dataset, preprocess and
    model groups)."""
    return {
        group: {k: v for k, v in as_dict(node).items() if k not in _NOT_MODEL_SETTINGS}
        for group, node in (
            ("dataset", config.dataset),
            ("preprocess", config.preprocess),
            ("model", config.model),
        )
    }


def save(trained: TrainedModel, config: Config, directory: str | Path) -> dict[str, Any]:
    """Write ``model.joblib``, ``folded.json``, ``metrics.json``, ``samples.json`` and their
    manifest."""
    files = {
        MODEL_FILE: artifacts.joblib_bytes(trained.model),
        FOLDED_FILE: artifacts.json_bytes(trained.folded.to_dict()),
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
) -> tuple[FoldedModel, dict[str, Any], str | None]:
    """The saved model (folded) if it was trained on this config and the data with
    ``data_fingerprint``, else ``train()``'s model, saved.

    Returns the folded model, its manifest and, when it had to be trained, the reason why;
    ``None`` means the saved model was reused.

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
            artifacts.read_verified(directory, MODEL_FILE)
            return artifacts.load_folded(directory), manifest, None
        trained = train()
        return trained.folded, save(trained, config, directory), reason


def stale_reason(
    manifest: dict[str, Any] | None, directory: Path, config: Config, data_fingerprint: str
) -> str | None:
    """Why the model that ``manifest`` describes cannot be reused for ``config`` and the data
    with ``data_fingerprint``, if so (None: it can)."""
    files = (manifest or {}).get("files", {})
    if MODEL_FILE not in files or FOLDED_FILE not in files:
        return f"no trained model in {directory}"
    if manifest.get("training") != training_key(config):
        return "the saved model was trained with another dataset, preprocess or model config"
    if manifest.get("data_fingerprint") != data_fingerprint:
        return "the saved model was trained on different data"
    return None


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")
