"""Linear classifiers end to end: LogisticRegression (binary on breast_cancer, multinomial on
the penguins' species) trained by the pipeline, folded, saved and predicted, against
scikit-learn fitted independently here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_lr import artifacts
from mlops_lr.folded_classifier import FoldedClassifier, probabilities
from tests.conftest import assert_one_line_error

BREAST_CANCER = ("dataset=breast_cancer", "model=logistic_regression")
NUMERIC_PENGUIN_COLUMNS = [
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "year",
]


def species_overrides(path: Path, *more: str) -> tuple[str, ...]:
    return (
        "dataset=csv",
        f"dataset.path={path}",
        "dataset.target=species",
        "dataset.missing_target=drop",
        "preprocess=standard",
        "model=logistic_regression",
        *more,
    )


def breast_cancer_split() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    bunch = load_breast_cancer(as_frame=True)
    labels = np.asarray(bunch.target_names, dtype=object)[bunch.target.to_numpy()]
    return train_test_split(bunch.data, labels, test_size=0.2, random_state=42)


def species_split(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    frame = pd.read_csv(path)
    features = frame.drop(columns="species")
    features[["island", "sex"]] = features[["island", "sex"]].astype(object)
    return train_test_split(
        features, frame["species"].to_numpy(dtype=object), test_size=0.2, random_state=42
    )


@pytest.fixture(scope="module")
def species_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import palmerpenguins

    path = tmp_path_factory.mktemp("species") / "penguins.csv"
    palmerpenguins.load_penguins().to_csv(path, index=False)
    return path


def test_binary_model_is_scikit_learns_fit(cli, tmp_path: Path) -> None:
    result = cli(*BREAST_CANCER)
    assert result.returncode == 0, result.stderr
    X_train, X_test, y_train, y_test = breast_cancer_split()
    reference = LogisticRegression(solver="newton-cholesky").fit(X_train, y_train)

    folded = artifacts.load_folded(tmp_path / "artifacts")
    assert isinstance(folded, FoldedClassifier)
    assert folded.link == "logistic"
    assert folded.classes == ("benign", "malignant")
    np.testing.assert_allclose(folded.rows[0].coef, reference.coef_[0], rtol=1e-9, atol=1e-12)
    assert folded.rows[0].intercept == pytest.approx(reference.intercept_[0], rel=1e-9)
    labels = folded.predict(X_test)
    np.testing.assert_array_equal(labels, reference.predict(X_test))
    np.testing.assert_allclose(
        folded.predict_proba(X_test), reference.predict_proba(X_test), atol=1e-12
    )

    metrics = json.loads((tmp_path / "artifacts" / "metrics.json").read_text())
    assert metrics["task"] == "classification"
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_test, reference.predict(X_test)))
    assert metrics["log_loss"] == pytest.approx(log_loss(y_test, reference.predict_proba(X_test)))
    assert np.sum(metrics["confusion_matrix"]) == len(y_test) == metrics["n_test"]
    assert 0.9 < metrics["roc_auc"] <= 1.0
    lines = result.stdout.splitlines()
    assert lines[-2] == f"Accuracy: {metrics['accuracy']:.4f}"
    assert lines[-1] == f"Log Loss: {metrics['log_loss']:.4f}"


def test_multinomial_model_on_a_table_with_text_and_missing_values(
    cli, tmp_path: Path, species_csv: Path
) -> None:
    result = cli(*species_overrides(species_csv))
    assert result.returncode == 0, result.stderr
    X_train, X_test, y_train, y_test = species_split(species_csv)
    columns = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline([("i", SimpleImputer()), ("s", StandardScaler())]),
                NUMERIC_PENGUIN_COLUMNS,
            ),
            *(
                (name, OneHotEncoder(handle_unknown="ignore", sparse_output=False), [name])
                for name in ("island", "sex")
            ),
        ]
    )
    reference = Pipeline([("p", columns), ("m", LogisticRegression(solver="newton-cholesky"))])
    reference.fit(X_train, y_train)

    folded = artifacts.load_folded(tmp_path / "artifacts")
    assert folded.link == "softmax"
    assert folded.classes == ("Adelie", "Chinstrap", "Gentoo")
    metrics = json.loads((tmp_path / "artifacts" / "metrics.json").read_text())
    np.testing.assert_allclose(metrics["coef"], reference[-1].coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        metrics["intercept"], reference[-1].intercept_, rtol=1e-9, atol=1e-12
    )
    np.testing.assert_array_equal(folded.predict(X_test), reference.predict(X_test))
    np.testing.assert_allclose(
        folded.decision_function(X_test), reference.decision_function(X_test), atol=1e-9
    )
    np.testing.assert_allclose(
        folded.predict_proba(X_test), reference.predict_proba(X_test), atol=1e-12
    )
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_test, reference.predict(X_test)))
    assert metrics["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert len(metrics["confusion_matrix"]) == 3


def test_predict_prints_labels_and_probabilities(cli, tmp_path: Path) -> None:
    assert cli(*BREAST_CANCER).returncode == 0
    result = cli(*BREAST_CANCER, "stage=predict", "predict.proba=true")
    assert result.returncode == 0, result.stderr
    _, X_test, _, _ = breast_cancer_split()
    reference = LogisticRegression(solver="newton-cholesky").fit(*breast_cancer_split()[::2])
    expected = reference.predict(X_test[:5])
    assert f"Sample Predictions: {expected}" in result.stdout
    assert "Sample Probabilities (benign, malignant):" in result.stdout


def test_integer_classes_stay_integers(cli, tmp_path: Path) -> None:
    bunch = load_breast_cancer(as_frame=True)
    path = tmp_path / "cancer.csv"
    bunch.frame.to_csv(path, index=False)
    overrides = (
        "dataset=csv",
        f"dataset.path={path}",
        "dataset.target=target",
        "model=logistic_regression",
    )
    result = cli(*overrides)
    assert result.returncode == 0, result.stderr
    folded = artifacts.load_folded(tmp_path / "artifacts")
    assert folded.classes == (0, 1)
    assert set(folded.predict(bunch.data).tolist()) == {0, 1}
    document = json.loads((tmp_path / "artifacts" / "folded.json").read_text())
    assert document["classes"] == [0, 1]


@pytest.mark.parametrize(
    ("overrides", "expected", "code"),
    [
        (("model.C=0",), "model.C=0.0 is not allowed", 2),
        (("model.C=inf",), "model.C=inf is not allowed", 2),
        (("model.penalty=l1",), "model.penalty='l1' is not allowed", 2),
        (("model.class_weight=even",), "model.class_weight='even' is not allowed", 2),
        (("model=linear_regression",), "column 'diagnosis' is not numeric: 'malignant'", 3),
    ],
)
def test_impossible_settings_are_one_line(cli, overrides, expected, code) -> None:
    assert_one_line_error(cli(*BREAST_CANCER, *overrides), expected, code)


def test_a_target_of_one_class_or_of_numbers_is_one_line(cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=40), "z": rng.normal(size=40)})
    one_class = tmp_path / "one.csv"
    frame.assign(label="yes").to_csv(one_class, index=False)
    base = ("dataset=csv", "dataset.target=label", "model=logistic_regression")
    assert_one_line_error(
        cli(*base, f"dataset.path={one_class}"), "target 'label' has one class ('yes')", 3
    )
    numbers = tmp_path / "numbers.csv"
    frame.assign(label=frame.x * 2.5).to_csv(numbers, index=False)
    assert_one_line_error(
        cli(*base, f"dataset.path={numbers}"), "target column 'label' holds numbers, not classes", 3
    )
    assert_one_line_error(
        cli("dataset=diabetes", "model=logistic_regression"), "214 distinct values", 3
    )


def test_probabilities_of_a_regressor_are_refused(cli) -> None:
    assert cli("dataset=diabetes").returncode == 0
    assert_one_line_error(
        cli("dataset=diabetes", "stage=predict", "predict.proba=true"), "is a regressor", 2
    )


def test_the_document_round_trips_and_rejects_malformed_ones(cli, tmp_path: Path) -> None:
    assert cli(*BREAST_CANCER).returncode == 0
    document = json.loads((tmp_path / "artifacts" / "folded.json").read_text())
    model = FoldedClassifier.from_dict(document)
    assert model.to_dict() == document
    for broken, message in [
        ({**document, "link": "softmax"}, "a softmax link three or more classes"),
        ({**document, "classes": ["a", "a"]}, "distinct"),
        ({**document, "classes": ["a", 1]}, "distinct texts, or distinct integers"),
        ({**document, "rows": []}, "rows must be a non-empty list"),
        ({**document, "extra": 1}, "exactly the keys"),
    ]:
        with pytest.raises(ValueError, match=message):
            FoldedClassifier.from_dict(broken)


def test_probabilities_are_scikit_learns_formulas() -> None:
    scores = np.array([[-800.0, 0.0, 800.0], [1.0, 2.0, 3.0]])
    proba = probabilities("softmax", scores)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all(np.isfinite(proba))
    binary = probabilities("logistic", np.array([-40.0, 0.0, 40.0]))
    np.testing.assert_allclose(binary[:, 1], [1 / (1 + np.exp(40.0)), 0.5, 1 / (1 + np.exp(-40.0))])
