"""Out-of-core logistic regression: Newton's method from merged per-batch sums on the stream and
Dask engines against scikit-learn's newton-cholesky in memory on the same (hash) split — binary
and multinomial, with and without preprocessing — and its failures as one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mlops_lr import training
from mlops_lr.artifacts import load_folded
from mlops_lr.data import hash_test_rows
from mlops_lr.metrics import classification_metrics
from mlops_lr.newton import NewtonFailure, NewtonStats, NotConverged, newton_cholesky
from mlops_lr.sufficient import ClassifierScores, merge_all
from tests.conftest import assert_one_line_error

TOLERANCE = 1e-9
BREAST_CANCER = ("dataset=breast_cancer", "dataset.split=hash", "model=logistic_regression")


def assert_close(got: np.ndarray, expected: np.ndarray) -> None:
    """Within 1e-9 relative, or 1e-9 absolute for coefficients below 1."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    assert got.shape == expected.shape
    assert (np.abs(got - expected) <= TOLERANCE * np.maximum(np.abs(expected), 1.0)).all()


def assert_same_classifier(got: training.TrainedModel, expected: training.TrainedModel) -> None:
    """The same classes, coefficients, test metrics (accuracy and the confusion matrix
    exactly) and sample rows."""
    got_metrics, expected_metrics = got.metrics, expected.metrics
    assert got_metrics["classes"] == expected_metrics["classes"]
    assert_close(got_metrics["coef"], expected_metrics["coef"])
    assert_close(got_metrics["intercept"], expected_metrics["intercept"])
    for name in ("accuracy", "balanced_accuracy", "train_accuracy", "confusion_matrix"):
        assert got_metrics[name] == expected_metrics[name], name
    for name in ("log_loss", "roc_auc"):
        assert got_metrics[name] == pytest.approx(expected_metrics[name], rel=TOLERANCE)
    for name in ("n_train", "n_test", "feature_names", "target_name"):
        assert got_metrics[name] == expected_metrics[name]
    assert got.samples == expected.samples
    assert estimator(got).n_iter_.tolist() == estimator(expected).n_iter_.tolist()


def estimator(trained: training.TrainedModel) -> LogisticRegression:
    return trained.model[-1] if hasattr(trained.model, "steps") else trained.model


def in_memory(make_config, *overrides: str) -> tuple[training.TrainedModel, object]:
    config = make_config(*overrides)
    dataset, split = training.prepare_data(config)
    return training.fit_and_evaluate(config, dataset, split), split


@pytest.fixture(scope="module")
def penguins_species(tmp_path_factory: pytest.TempPathFactory, penguins_csv: Path) -> Path:
    """palmerpenguins in two CSV files: three species, text categories, NA cells, and rows
    whose species is missing (dropped)."""
    directory = tmp_path_factory.mktemp("species")
    frame = pd.read_csv(penguins_csv)
    frame.loc[[5, 150, 300], "species"] = np.nan
    frame.iloc[:180].to_csv(directory / "a.csv", index=False)
    frame.iloc[180:].to_csv(directory / "b.csv", index=False)
    return directory


def species_overrides(path: Path, *more: str) -> tuple[str, ...]:
    return (
        "dataset=csv",
        f"dataset.path={path}/*.csv",
        "dataset.target=species",
        "dataset.missing_target=drop",
        "dataset.split=hash",
        "preprocess=standard",
        "model=logistic_regression",
        *more,
    )


# --- the Newton core ----------------------------------------------------------------------


@pytest.mark.parametrize("load", [load_breast_cancer, load_iris], ids=["binary", "softmax"])
@pytest.mark.parametrize("C", [1.0, 0.05, math.inf])
@pytest.mark.parametrize("balanced", [False, True])
def test_newton_from_batches_is_scikit_learns_newton_cholesky(load, C, balanced) -> None:
    X, y = load(return_X_y=True)
    Z = StandardScaler().fit_transform(X)
    classes, counts = np.unique(y, return_counts=True)
    weights = len(y) / (len(classes) * counts) if balanced else None
    reference = LogisticRegression(
        C=C, solver="newton-cholesky", class_weight="balanced" if balanced else None
    )
    if load is load_breast_cancer and math.isinf(C):  # separable: scikit-learn gives up too
        with pytest.raises(NewtonFailure, match="separable"):
            newton_cholesky(lambda coef: NewtonStats.from_batch(Z, y, coef), 2, Z.shape[1], C)
        return
    reference.fit(Z, y)

    def evaluate(coef: np.ndarray) -> NewtonStats:
        return merge_all(
            NewtonStats.from_batch(
                Z[i : i + 37],
                y[i : i + 37],
                coef,
                None if weights is None else weights[y][i : i + 37],
            )
            for i in range(0, len(y), 37)
        )

    result = newton_cholesky(evaluate, len(classes), Z.shape[1], C)
    assert result.n_iter == reference.n_iter_[0]
    assert result.passes == result.n_iter + 1  # every full step was accepted
    assert_close(result.coef, np.column_stack([reference.coef_, reference.intercept_]))


def test_newton_stops_after_max_iter() -> None:
    X, y = load_iris(return_X_y=True)
    with pytest.raises(NotConverged, match="within 2 iterations"):
        newton_cholesky(lambda coef: NewtonStats.from_batch(X, y, coef), 3, 4, max_iter=2)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("absent", [False, True])
# scikit-learn's balanced accuracy warns of a class predicted but absent; the merged one is
# silent.
@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true:UserWarning")
def test_scores_merged_from_batches_give_the_in_memory_metrics(n_classes, absent) -> None:
    """Confusion counts and log loss summed per batch, ROC AUC by counting ranked pairs
    (probabilities rounded to create ties): classification_metrics' numbers."""
    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes - absent, 1000)
    proba = np.round(rng.dirichlet(np.ones(n_classes), 1000), 2)
    proba /= proba.sum(axis=1, keepdims=True)
    picked = proba.argmax(axis=1)
    merged = merge_all(
        ClassifierScores.from_batch(y[i : i + 77], picked[i : i + 77], proba[i : i + 77])
        for i in range(0, 1000, 77)
    )
    expected = classification_metrics(y, picked, proba, list(range(n_classes)))
    got = merged.metrics()
    for name in ("accuracy", "balanced_accuracy", "confusion_matrix"):
        assert got[name] == expected[name]
    assert got["log_loss"] == pytest.approx(expected["log_loss"], rel=1e-12)
    if expected["roc_auc"] is None:
        assert got["roc_auc"] is None
    else:
        assert got["roc_auc"] == pytest.approx(expected["roc_auc"], rel=1e-12)


# --- the engines ---------------------------------------------------------------------------


def test_breast_cancer_streams_scikit_learns_fit(cli, make_config, tmp_path: Path) -> None:
    """Binary, no preprocessing, batches of 50 rows: the CLI's saved model and metrics are
    scikit-learn's newton-cholesky fit on the hash split, fitted here independently."""
    result = cli(*BREAST_CANCER, "engine=stream", "engine.batch_rows=50")
    assert result.returncode == 0, result.stderr
    directory = tmp_path / "artifacts"
    metrics = json.loads((directory / "metrics.json").read_text())
    folded = load_folded(directory)

    bunch = load_breast_cancer()
    X, y = bunch.data, np.asarray(bunch.target_names, dtype=object)[bunch.target]
    test = hash_test_rows(X, y, 0.2, 42)
    reference = LogisticRegression(solver="newton-cholesky").fit(X[~test], y[~test])
    assert metrics["classes"] == ["benign", "malignant"]
    assert_close(metrics["coef"], reference.coef_)
    assert_close(metrics["intercept"], reference.intercept_)
    np.testing.assert_array_equal(folded.predict_matrix(X[test]), reference.predict(X[test]))
    assert metrics["accuracy"] == reference.score(X[test], y[test])
    assert metrics["train_accuracy"] == reference.score(X[~test], y[~test])

    expected, _ = in_memory(make_config, *BREAST_CANCER)
    for name in ("accuracy", "balanced_accuracy", "confusion_matrix", "n_test"):
        assert metrics[name] == expected.metrics[name]
    assert metrics["log_loss"] == pytest.approx(expected.metrics["log_loss"], rel=TOLERANCE)
    assert metrics["roc_auc"] == pytest.approx(expected.metrics["roc_auc"], rel=TOLERANCE)


@pytest.mark.parametrize(
    "more",
    [
        ("preprocess=standard",),
        ("preprocess=standard", "model.class_weight=balanced", "model.C=0.1"),
    ],
    ids=["standard", "balanced"],
)
def test_breast_cancer_streams_like_memory(make_config, more: tuple[str, ...]) -> None:
    expected, _ = in_memory(make_config, *BREAST_CANCER, *more)
    config = make_config(*BREAST_CANCER, *more, "engine=stream", "engine.batch_rows=64")
    assert_same_classifier(training.fit_streamed(config), expected)


def test_penguin_species_stream_and_dask_like_memory(make_config, penguins_species: Path) -> None:
    """Multinomial (three species, text labels), preprocessing learnt from the stream (mean
    imputation, scaling, one-hot islands and sexes), rows without a species dropped."""
    expected, split = in_memory(make_config, *species_overrides(penguins_species))
    assert len(expected.metrics["classes"]) == 3
    for engine in ("engine=stream", "engine=dask"):
        config = make_config(*species_overrides(penguins_species), engine, "engine.batch_rows=40")
        got = training.fit_streamed(config)
        assert_same_classifier(got, expected)
        np.testing.assert_array_equal(
            got.folded.predict(split.test), expected.model.predict(split.test)
        )
        np.testing.assert_allclose(
            got.folded.predict_proba(split.test),
            expected.model.predict_proba(split.test),
            rtol=0,
            atol=TOLERANCE,
        )


def test_integer_labels_in_parquet_files_stream_and_dask(make_config, tmp_path: Path) -> None:
    """Integer classes (0, 1, 2) read from Parquet files in several batches."""
    X, y = load_iris(return_X_y=True)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(kind=y)
    frame.iloc[:70].to_parquet(tmp_path / "a.parquet")
    frame.iloc[70:].to_parquet(tmp_path / "b.parquet")
    overrides = (
        "dataset=parquet",
        f"dataset.path={tmp_path}",
        "dataset.target=kind",
        "model=logistic_regression",
    )
    expected, _ = in_memory(make_config, *overrides)
    assert expected.metrics["classes"] == [0, 1, 2]
    for engine in ("engine=stream", "engine=dask"):
        got = training.fit_streamed(make_config(*overrides, engine, "engine.batch_rows=30"))
        assert_same_classifier(got, expected)


@pytest.mark.parametrize("softmax", [False, True], ids=["binary", "softmax"])
def test_quantize_out_of_core_calibrates_like_memory(
    cli, tmp_path: Path, penguins_species: Path, softmax: bool
) -> None:
    """The Fisher-weighted design moments merged from batches round every row of scores to
    the codes memory gives; the comparison on the test rows gives memory's metrics."""
    if softmax:
        overrides = species_overrides(penguins_species, "quantization.bits=6")
    else:
        overrides = (*BREAST_CANCER, "preprocess=standard", "quantization.bits=4")
    results = {}
    for engine in ("memory", "stream", "dask"):
        directory = tmp_path / engine
        result = cli(
            "stage=quantize",
            *overrides,
            f"engine={engine}",
            "engine.batch_rows=60",
            f"paths.artifacts_dir={directory}",
        )
        assert result.returncode == 0, result.stderr
        (quantized,) = (directory / "quantized").iterdir()
        results[engine] = (
            json.loads((quantized / "model.json").read_text()),
            json.loads((quantized / "metrics.json").read_text()),
        )
    memory_model, memory_metrics = results.pop("memory")
    for model, metrics in results.values():
        for row, memory_row in zip(model["rows"], memory_model["rows"], strict=True):
            assert row["linear"]["codes"] == memory_row["linear"]["codes"]
            assert row["linear"]["exponents"] == memory_row["linear"]["exponents"]
        for name in ("class_agreement", "accuracy_float", "accuracy_quant", "n_test"):
            assert metrics[name] == memory_metrics[name], name
        assert metrics["confusion_matrix_quant"] == memory_metrics["confusion_matrix_quant"]
        for name in ("log_loss_float", "log_loss_quant", "roc_auc_quant", "mean_abs_proba_diff"):
            assert metrics[name] == pytest.approx(memory_metrics[name], rel=TOLERANCE), name


# --- failures, one line each --------------------------------------------------------------


def test_no_convergence_within_max_iter_is_one_line(cli) -> None:
    result = cli(*BREAST_CANCER, "engine=stream", "model.max_iter=1")
    assert_one_line_error(result, "did not converge within model.max_iter=1", 3)


def test_a_singular_hessian_without_a_penalty_is_one_line(cli, tmp_path: Path) -> None:
    """A feature twice: without a penalty the Hessian is singular (scikit-learn falls back to
    L-BFGS there)."""
    X, y = load_iris(return_X_y=True)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(twice=2 * X[:, 0], kind=y)
    frame.to_csv(tmp_path / "twice.csv", index=False)
    result = cli(
        "dataset=csv",
        f"dataset.path={tmp_path / 'twice.csv'}",
        "dataset.target=kind",
        "dataset.split=hash",
        "model=logistic_regression",
        "model.penalty=none",
        "engine=stream",
    )
    assert_one_line_error(result, "cannot fit the logistic regression by Newton's method", 3)
    assert "singular" in result.stderr


def test_a_single_class_is_one_line(cli, tmp_path: Path) -> None:
    X, _ = load_iris(return_X_y=True)
    pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(kind="setosa").to_csv(
        tmp_path / "one.csv", index=False
    )
    result = cli(
        "dataset=csv",
        f"dataset.path={tmp_path / 'one.csv'}",
        "dataset.target=kind",
        "dataset.split=hash",
        "model=logistic_regression",
        "engine=stream",
    )
    assert_one_line_error(result, "has one class ('setosa')", 3)


def test_a_class_only_the_test_rows_have_is_one_line(cli, tmp_path: Path) -> None:
    bunch = load_iris()
    frame = pd.DataFrame(bunch.data, columns=["a", "b", "c", "d"])
    labels = np.asarray(bunch.target_names, dtype=object)[bunch.target]
    for row in range(len(labels)):  # a row that is a test row with the label "rare"
        rare = labels.copy()
        rare[row] = "rare"
        if hash_test_rows(frame, rare, 0.2, 42)[row]:
            break
    frame.assign(kind=rare).to_csv(tmp_path / "rare.csv", index=False)
    result = cli(
        "dataset=csv",
        f"dataset.path={tmp_path / 'rare.csv'}",
        "dataset.target=kind",
        "dataset.split=hash",
        "model=logistic_regression",
        "engine=stream",
    )
    assert_one_line_error(result, "the label 'rare' is in the test rows but not in the training", 3)


def test_fractional_labels_are_one_line(cli, tmp_path: Path) -> None:
    X = load_iris().data
    frame = pd.DataFrame(X[:, :3], columns=["a", "b", "c"]).assign(size=X[:, 3])
    frame.to_csv(tmp_path / "sizes.csv", index=False)
    result = cli(
        "dataset=csv",
        f"dataset.path={tmp_path / 'sizes.csv'}",
        "dataset.target=size",
        "dataset.split=hash",
        "model=logistic_regression",
        "engine=stream",
    )
    assert_one_line_error(result, "holds numbers, not classes", 3)


def test_other_solvers_are_refused_with_the_stream_engines(cli) -> None:
    result = cli(*BREAST_CANCER, "engine=stream", "model.solver=lbfgs")
    assert_one_line_error(result, "model.solver='lbfgs' is not allowed", 2)
