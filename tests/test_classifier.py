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


@pytest.fixture(scope="module")
def cancer_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """breast_cancer's float classifier and its default 8-bit model, made once."""
    from tests.conftest import train_and_quantize

    directory = tmp_path_factory.mktemp("cancer") / "artifacts"
    train_and_quantize(directory, *BREAST_CANCER)
    return directory


@pytest.mark.parametrize("bits", [2, 8, 16])
def test_quantized_classifier_agrees_with_the_float_model(tmp_path: Path, bits: int) -> None:
    from tests.conftest import train_and_quantize

    directory = tmp_path / "artifacts"
    train_and_quantize(directory, *BREAST_CANCER, f"quantization.bits={bits}")
    _, X_test, _, y_test = breast_cancer_split()
    float_model = artifacts.load_folded(directory)
    quantized = artifacts.load_quantized(directory / "quantized" / f"default-{bits}bit")
    dequantized = quantized.dequantized()
    metrics = json.loads(
        (directory / "quantized" / f"default-{bits}bit" / "metrics.json").read_text()
    )
    agreement = np.mean(float_model.predict(X_test) == dequantized.predict(X_test))
    assert metrics["class_agreement"] == pytest.approx(agreement)
    proba_float, proba_quant = float_model.predict_proba(X_test), dequantized.predict_proba(X_test)
    assert metrics["max_abs_proba_diff"] == pytest.approx(np.abs(proba_quant - proba_float).max())
    assert metrics["log_loss_quant"] == pytest.approx(log_loss(y_test, proba_quant))
    assert metrics["task"] == "classification"
    if bits >= 8:  # the issue's goal: >= 99.9 % agreement, |Δ log loss| <= 0.001
        assert metrics["class_agreement"] >= 0.999
        assert abs(metrics["log_loss_quant"] - metrics["log_loss_float"]) <= 1e-3
    for row in quantized.rows:  # every code within its bit width
        assert np.abs(row.linear.codes).max() <= 2 ** (bits - 1) - 1


def test_fisher_weighting_beats_the_unweighted_objective_on_its_own_terms(
    cancer_artifacts: Path,
) -> None:
    """Rounding against the Fisher-weighted moments gives a smaller Fisher-weighted logit
    change than rounding against the plain ones: the weighting is what is optimised."""
    from mlops_lr.quantize import CalibrationMoments, QuantizationSpec, calibration_objective
    from mlops_lr.quantized_classifier import calibrate_classifier, quantize_classifier

    X_train = breast_cancer_split()[0]
    folded = artifacts.load_folded(cancer_artifacts)
    reference, fisher = calibrate_classifier(folded, X_train)
    plain = [CalibrationMoments.from_data(folded.rows[0].design(X_train))]
    spec = QuantizationSpec(bits=4, granularity="per_feature_pow2", rounding="hessian")
    row = reference.rows[0]

    def fisher_objective(moments: list[CalibrationMoments]) -> float:
        quantized = quantize_classifier(reference, spec, moments).dequantized().rows[0]
        return calibration_objective(
            row.design_coef(),
            quantized.design_coef(),
            fisher[0],
            row.intercept,
            quantized.intercept,
        )

    assert fisher_objective(fisher) < fisher_objective(plain)


def test_the_server_returns_labels_and_probabilities(cancer_artifacts: Path) -> None:
    from fastapi.testclient import TestClient

    from mlops_lr.predictor import load_predictor
    from mlops_lr.serve import create_app

    _, X_test, _, _ = breast_cancer_split()
    rows = X_test[:20]
    predictor = load_predictor(cancer_artifacts, "default-8bit")
    with TestClient(create_app(predictor)) as client:
        info = client.get("/model").json()
        assert info["task"] == "classification"
        assert info["classes"] == ["benign", "malignant"]
        assert info["accuracy"] == pytest.approx(0.956140350877193)
        response = client.post("/predict", json={"inputs": rows.to_numpy().tolist()}).json()
        assert response["predictions"] == predictor.folded.predict(rows).tolist()
        np.testing.assert_allclose(
            response["probabilities"], predictor.folded.predict_proba(rows), rtol=0, atol=0
        )
        assert response["classes"] == ["benign", "malignant"]
        named = client.post("/predict", json={"instances": rows.to_dict("records")}).json()
        assert named["predictions"] == response["predictions"]
        metadata = client.get("/v2/models/default-8bit").json()
        assert [o["name"] for o in metadata["outputs"]] == ["predict", "probabilities"]
        assert metadata["outputs"][0]["datatype"] == "BYTES"


def test_open_inference_protocol_clients_get_labels_and_probabilities(
    cancer_artifacts: Path, tmp_path: Path
) -> None:
    """Triton's own client, binary and JSON, against the real server process."""
    import tritonclient.http as triton

    from mlops_lr.predictor import load_predictor
    from tests.test_serve import _start_server, _stop

    _, X_test, _, _ = breast_cancer_split()
    X = X_test.to_numpy()
    predictor = load_predictor(cancer_artifacts, "default-8bit")
    expected_labels = predictor.folded.predict(X_test)
    expected_proba = predictor.folded.predict_proba(X_test)
    process, url = _start_server(
        cancer_artifacts, tmp_path, *BREAST_CANCER, "serve.model=default-8bit"
    )
    try:
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        for binary in (True, False):
            item = triton.InferInput("input", list(X.shape), "FP64")
            item.set_data_from_numpy(X, binary_data=binary)
            outputs = [
                triton.InferRequestedOutput("probabilities", binary_data=binary),
                triton.InferRequestedOutput("predict", binary_data=binary),
            ]
            result = client.infer("default-8bit", [item], outputs=outputs)
            # Binary BYTES come back as bytes, JSON ones as text.
            labels = [
                label.decode() if isinstance(label, bytes) else label
                for label in result.as_numpy("predict").ravel()
            ]
            assert labels == expected_labels.tolist()
            np.testing.assert_array_equal(result.as_numpy("probabilities"), expected_proba)
        client.close()
    finally:
        returncode, stderr = _stop(process)
    assert returncode == 0, stderr


def test_a_multinomial_server_takes_text_categories(tmp_path: Path, species_csv: Path) -> None:
    from fastapi.testclient import TestClient

    from mlops_lr.predictor import load_predictor
    from mlops_lr.serve import create_app
    from tests.conftest import train_and_quantize

    directory = tmp_path / "artifacts"
    train_and_quantize(directory, *species_overrides(species_csv)[:-1], "model=logistic_regression")
    _, X_test, _, _ = species_split(species_csv)
    rows = X_test[:10].astype(object).where(X_test[:10].notna(), None)
    predictor = load_predictor(directory, "default-8bit")
    with TestClient(create_app(predictor)) as client:
        response = client.post("/predict", json={"instances": rows.to_dict("records")})
        assert response.status_code == 200, response.text
        body = response.json()
    assert body["predictions"] == predictor.folded.predict(X_test[:10]).tolist()
    assert np.asarray(body["probabilities"]).shape == (10, 3)


def test_a_classifier_sweep_reports_accuracy_and_class_agreement(tmp_path: Path) -> None:
    from tests.test_sweep import multirun

    result = multirun(
        tmp_path,
        "+sweep=bits",
        "hydra/launcher=basic",
        *BREAST_CANCER,
        "quantization.bits=2,8",
        "quantization.rounding=hessian",
        "quantization.granularity=per_feature_pow2",
    )
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "sweep" / "sweep_results.md").read_text()
    assert "| accuracy | class agreement | max abs ΔP |" in table
    rows = pd.read_csv(tmp_path / "sweep" / "sweep_results.csv")
    assert rows["task"].tolist() == ["classification"] * 2
    assert rows["class_agreement"].between(0.9, 1.0).all()
    assert (tmp_path / "sweep" / "sweep.png").stat().st_size > 10_000


# The pandas reader reads CSV only.
@pytest.mark.parametrize(
    ("source", "reader"), [("csv", "pyarrow"), ("csv", "pandas"), ("parquet", "pyarrow")]
)
def test_files_get_a_column_of_labels(
    cancer_artifacts: Path, tmp_path: Path, source: str, reader: str
) -> None:
    from mlops_lr.batch_predict import predict_files
    from mlops_lr.predictor import load_predictor

    _, X_test, _, _ = breast_cancer_split()
    rows = tmp_path / f"rows.{source}"
    getattr(X_test, f"to_{source}")(rows, index=False)
    predictor = load_predictor(cancer_artifacts, "default-8bit")
    output = tmp_path / f"predictions.{source}"
    assert predict_files(predictor, rows, output, batch_rows=30, reader=reader) == len(X_test)
    written = pd.read_csv(output) if source == "csv" else pd.read_parquet(output)
    assert written["prediction"].tolist() == predictor.folded.predict(X_test).tolist()


@pytest.mark.parametrize("model", ["float", "default-8bit"])
def test_onnx_export_gives_the_labels_and_probabilities(
    cancer_artifacts: Path, tmp_path: Path, model: str
) -> None:
    """Exported by the stage, run here in ONNX Runtime: scikit-learn's labels for the float
    model (and the quantized model's own), probabilities to the tolerance."""
    import shutil

    import onnxruntime
    from hydra import compose, initialize_config_dir

    from mlops_lr.config import to_config
    from mlops_lr.predictor import load_predictor
    from mlops_lr.stages import export
    from tests.conftest import CONFIG_DIR

    directory = tmp_path / "artifacts"
    shutil.copytree(cancer_artifacts, directory)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        config = to_config(
            compose(
                "config",
                overrides=[
                    *BREAST_CANCER,
                    "stage=export",
                    "export.format=onnx",
                    f"export.model={model}",
                    f"paths.artifacts_dir={directory}",
                ],
            )
        )
    report = export.run(config)
    X_train, X_test, y_train, _ = breast_cancer_split()
    folded = load_predictor(directory, model).folded
    reference = LogisticRegression(solver="newton-cholesky").fit(X_train, y_train)
    for dtype in ("float32", "float64"):
        path = directory / "export" / model / "onnx" / f"model.{dtype}.onnx"
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
        labels, proba = session.run(None, {"X": X_test.to_numpy(dtype=dtype)})
        assert labels.tolist() == folded.predict(X_test).tolist()
        if model == "float":
            assert labels.tolist() == reference.predict(X_test).tolist()
        tolerance = 1e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(proba, folded.predict_proba(X_test), rtol=0, atol=tolerance)
        assert report["checks"][dtype]["class_agreement_vs_python"] == 1.0


def test_onnx_export_of_a_multinomial_table_model(tmp_path: Path, species_csv: Path) -> None:
    import onnxruntime

    from mlops_lr import export_onnx
    from mlops_lr.predictor import load_predictor
    from tests.conftest import train_and_quantize

    directory = tmp_path / "artifacts"
    overrides = species_overrides(species_csv)
    train_and_quantize(directory, *overrides)
    _, X_test, _, _ = species_split(species_csv)
    for model in ("float", "default-8bit"):
        source = (
            artifacts.load_folded(directory)
            if model == "float"
            else (artifacts.load_quantized(directory / "quantized" / model))
        )
        folded = load_predictor(directory, model).folded
        graph = export_onnx.classifier_graph(source, np.float64, {})
        session = onnxruntime.InferenceSession(
            graph.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        inputs = export_onnx.table_to_inputs(folded.rows[0], X_test, np.float64)
        labels, proba = session.run(None, inputs)
        assert labels.tolist() == folded.predict(X_test).tolist()
        # Each row's contributions added in the Python model's order: the same doubles.
        np.testing.assert_allclose(proba, folded.predict_proba(X_test), rtol=0, atol=1e-15)
        metadata = {prop.key: prop.value for prop in graph.metadata_props}
        assert json.loads(metadata[export_onnx.CLASSES_METADATA]) == list(folded.classes)


def _export(directory: Path, *overrides: str) -> dict:
    """Run ``stage=export`` in this process with the CLI's ``overrides``; its report."""
    from hydra import compose, initialize_config_dir

    from mlops_lr.config import to_config
    from mlops_lr.stages import export
    from tests.conftest import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        config = to_config(
            compose(
                "config",
                overrides=["stage=export", f"paths.artifacts_dir={directory}", *overrides],
            )
        )
    return export.run(config)


STRICT_C = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion"]


def test_c_export_decides_in_integers_as_its_python_model(
    cancer_artifacts: Path, tmp_path: Path
) -> None:
    import shutil
    import subprocess

    from mlops_lr.export_c import csv_rows
    from mlops_lr.fixed_point import c_inputs, input_ranges, plan_classifier
    from tests.conftest import compile_c

    directory = tmp_path / "artifacts"
    shutil.copytree(cancer_artifacts, directory)
    report = _export(directory, *BREAST_CANCER, "export.format=c")
    assert "bit-exact on all 114 test rows" in report["compiled"]
    assert report["class_agreement_vs_quantized"] == 1.0
    work = directory / "export" / "default-8bit" / "c"
    X_train, X_test, _, _ = breast_cancer_split()
    quantized = artifacts.load_quantized(directory / "quantized" / "default-8bit")
    layout = quantized.rows[0].layout
    plan = plan_classifier(
        quantized.rows, quantized.link, quantized.classes, input_ranges(layout, X_train)
    )
    # A missing value in an input without a fill: no class (-1), an empty line.
    rows = X_test.copy()
    rows.iloc[3, 0] = np.nan
    program = compile_c(work, "main.c", STRICT_C, "predict")
    text = csv_rows(layout, rows)
    labels = (
        subprocess.run([str(program)], input=text.encode(), capture_output=True, check=True)
        .stdout.decode()
        .split("\n")[:-1]
    )
    chosen = plan.decide(*c_inputs(layout, rows))
    assert chosen[3] == -1
    assert labels[3] == ""
    expected = [quantized.classes[k] if k >= 0 else "" for k in chosen]
    assert labels == expected
    # The integer decision is the quantized model's on every test row.
    dequantized = quantized.dequantized().predict(X_test)
    np.testing.assert_array_equal(np.delete(labels, 3), np.delete(dequantized, 3))

    # Probabilities, behind the macro: the Python model's doubles but for libm's exp.
    prefix = "mlops_lr_default_8bit"
    (work / "proba.c").write_text(
        f'#include <stdio.h>\n#include "{prefix}.h"\n'
        "int main(void) {\n"
        f"    double x[{prefix.upper()}_N_FEATURES], p[2];\n"
        "    int j, chosen;\n"
        "    for (;;) {\n"
        f"        for (j = 0; j < {prefix.upper()}_N_FEATURES; ++j) {{\n"
        '            if (scanf("%lf", &x[j]) != 1) { return 0; }\n'
        "        }\n"
        f"        chosen = {prefix}_predict_proba(x, p);\n"
        '        printf("%d %a %a\\n", chosen, p[0], p[1]);\n'
        "    }\n"
        "}\n"
    )
    proba_program = compile_c(
        work, "proba.c", [*STRICT_C, f"-D{prefix.upper()}_PROBABILITIES"], "proba", ("-lm",)
    )
    numbers = " ".join(float.hex(float(v)) for v in X_test.to_numpy().ravel())
    printed = (
        subprocess.run(
            [str(proba_program)], input=numbers.encode(), capture_output=True, check=True
        )
        .stdout.decode()
        .split()
    )
    classes = np.array(printed[0::3], dtype=int)
    proba = np.column_stack([[float.fromhex(v) for v in printed[k::3]] for k in (1, 2)])
    inputs = c_inputs(layout, X_test)
    np.testing.assert_array_equal(classes, plan.decide(*inputs))
    np.testing.assert_allclose(proba, plan.probabilities(*inputs), rtol=1e-15, atol=1e-300)


def test_c_export_of_a_multinomial_table_model(tmp_path: Path, species_csv: Path) -> None:
    import subprocess

    from mlops_lr.export_c import as_c_reads, csv_rows
    from tests.conftest import compile_c, train_and_quantize

    directory = tmp_path / "artifacts"
    overrides = species_overrides(species_csv)
    train_and_quantize(directory, *overrides)
    report = _export(directory, *overrides, "export.format=c")
    assert "bit-exact on all 69 test rows" in report["compiled"]
    quantized = artifacts.load_quantized(directory / "quantized" / "default-8bit")
    assert len({row.linear.scale for row in quantized.rows}) == 1  # one unit for all scores
    work = directory / "export" / "default-8bit" / "c"
    _, X_test, _, _ = species_split(species_csv)
    layout = quantized.rows[0].layout
    program = compile_c(work, "main.c", STRICT_C, "predict")
    labels = subprocess.run(
        [str(program)], input=csv_rows(layout, as_c_reads(layout, X_test)).encode(),
        capture_output=True, check=True,
    ).stdout.decode().split()  # fmt: skip
    assert labels == quantized.dequantized().predict(X_test).tolist()


def _labelled_csv(path: Path, labels: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(len(labels), 2))
    pd.DataFrame({"x1": X[:, 0] + (labels == labels[0]), "x2": X[:, 1], "y": labels}).to_csv(
        path, index=False
    )
    return path


def test_integer_classes_quantize_predict_and_serve(tmp_path: Path) -> None:
    """Negative integer classes through quantize, files and the protocol's INT64 output."""
    from fastapi.testclient import TestClient

    from mlops_lr.batch_predict import predict_files
    from mlops_lr.predictor import load_predictor
    from mlops_lr.serve import create_app
    from tests.conftest import train_and_quantize

    labels = np.where(np.arange(200) % 3 == 0, -7, -5)
    path = _labelled_csv(tmp_path / "neg.csv", labels)
    directory = tmp_path / "artifacts"
    overrides = (
        "dataset=csv",
        f"dataset.path={path}",
        "dataset.target=y",
        "model=logistic_regression",
    )
    train_and_quantize(directory, *overrides)
    predictor = load_predictor(directory, "default-8bit")
    assert predictor.folded.classes == (-7, -5)
    rows = pd.read_csv(path).drop(columns="y")
    expected = predictor.folded.predict(rows)
    assert expected.dtype == np.int64
    output = tmp_path / "out.parquet"
    predict_files(predictor, path, output)
    assert pd.read_parquet(output)["prediction"].tolist() == expected.tolist()
    with TestClient(create_app(predictor)) as client:
        body = {
            "inputs": [
                {"name": "input", "shape": [len(rows), 2], "datatype": "FP64",
                 "data": rows.to_numpy().ravel().tolist()}
            ],
            "outputs": [],
        }  # fmt: skip
        response = client.post("/v2/models/default-8bit/infer", json=body)
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["predict"]["datatype"] == "INT64"  # "outputs": [] is every output
    assert outputs["predict"]["data"] == expected.tolist()


def test_classes_the_training_rows_lack_and_huge_integers_are_one_line(cli, tmp_path: Path) -> None:
    labels = np.where(np.arange(200) % 2 == 0, "a", "b").astype(object)
    frame = pd.read_csv(_labelled_csv(tmp_path / "two.csv", labels))
    _, test_rows = train_test_split(np.arange(200), test_size=0.2, random_state=42)
    frame.loc[test_rows[0], "y"] = "z"  # a class only one test row has
    frame.to_csv(tmp_path / "rare.csv", index=False)
    base = ("dataset=csv", "dataset.target=y", "model=logistic_regression")
    assert_one_line_error(
        cli(*base, f"dataset.path={tmp_path / 'rare.csv'}"), "class 'z' of the target 'y'", 3
    )
    frame["y"] = np.where(np.arange(200) % 2 == 0, 2**53 + 1, 2**53 + 3).astype(np.float64)
    frame.loc[5, "y"] = np.nan  # a gap makes pandas read the integers as floats
    frame.to_csv(tmp_path / "huge.csv", index=False, float_format="%.0f")
    assert_one_line_error(
        cli(*base, f"dataset.path={tmp_path / 'huge.csv'}", "dataset.missing_target=drop"),
        "integers as floats up to 2^53",
        3,
    )


def test_report_tables_keep_labels_with_pipes_and_line_ends_in_their_cells() -> None:
    from mlops_lr.report import markdown_table

    table = markdown_table(["actual", "p"], [["a|b", 0.5], ["line1\nline2", 0.25]])
    assert table.splitlines()[2] == "| a\\|b        | 0.500000 |"
    assert table.splitlines()[3] == "| line1 line2 | 0.250000 |"
    assert len(table.splitlines()) == 4
