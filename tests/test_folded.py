"""Real tables and the folded model: penguins (text categories, NA cells) and California
against scikit-learn pipelines built here independently, folding exactness, the folded and
quantized documents, prediction and serving with categories and nulls, and bad input."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_lr import artifacts, training
from mlops_lr.config import StandardPreprocessConfig
from mlops_lr.data import load_table, split_dataset
from mlops_lr.folded import FoldedModel
from mlops_lr.predictor import load_predictor
from mlops_lr.preprocess import build_model, fold
from mlops_lr.quantize import default_spec
from mlops_lr.quantized_folded import QuantizedFoldedModel, calibrate, quantize_folded
from mlops_lr.serve import create_app
from tests.conftest import PENGUINS_TARGET as TARGET
from tests.conftest import assert_one_line_error, penguin_overrides

CATEGORICAL = ["species", "island", "sex"]
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "year"]
MODELS = {
    "linear_regression": (LinearRegression, {}),
    "ridge": (Ridge, {"alpha": 1.0}),
    "lasso": (Lasso, {"alpha": 1.0}),
    "elastic_net": (ElasticNet, {"alpha": 1.0, "l1_ratio": 0.5}),
}


def independent_pipeline(model: str) -> Pipeline:
    """The documented preprocessing, written out with scikit-learn alone."""
    estimator, parameters = MODELS[model]
    drop = "first" if model == "linear_regression" else None
    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    encoders = [
        (name, OneHotEncoder(handle_unknown="ignore", drop=drop, sparse_output=False), [name])
        for name in CATEGORICAL
    ]
    columns = ColumnTransformer([("numeric", numeric, NUMERIC), *encoders])
    return Pipeline([("columns", columns), ("model", estimator(**parameters))])


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_on_penguins_equals_an_independent_pipeline(
    cli, penguins_csv: Path, tmp_path: Path, model: str
) -> None:
    result = cli(*penguin_overrides(penguins_csv, f"model={model}"))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "artifacts" / "metrics.json").read_text())

    frame = pd.read_csv(penguins_csv).dropna(subset=[TARGET])
    X, y = frame.drop(columns=TARGET), frame[TARGET].to_numpy()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
    reference = independent_pipeline(model).fit(X_train, y_train)
    predictions = reference.predict(X_test)
    r2 = 1 - np.sum((y_test - predictions) ** 2) / np.sum((y_test - y_test.mean()) ** 2)
    assert metrics["r2"] == pytest.approx(r2, rel=1e-9)
    assert metrics["mse"] == pytest.approx(np.mean((y_test - predictions) ** 2), rel=1e-9)
    coef = reference.named_steps["model"].coef_
    np.testing.assert_allclose(metrics["coef"], coef, rtol=1e-9, atol=1e-9 * np.abs(coef).max())
    assert metrics["intercept"] == pytest.approx(reference.named_steps["model"].intercept_)
    assert result.stdout.strip().splitlines()[-2].startswith("R² Score: ")

    folded = load_predictor(tmp_path / "artifacts")
    np.testing.assert_allclose(folded.predict_table(X_test), predictions, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_on_california_with_standard_preprocessing(
    make_config, california, model: str
) -> None:
    config = make_config("preprocess=standard", f"model={model}")
    trained = training.fit_and_evaluate(config, *training.prepare_data(config))
    split = split_dataset(california, 0.2, 42)
    estimator, parameters = MODELS[model]
    columns = ColumnTransformer(
        [("numeric", Pipeline([("i", SimpleImputer()), ("s", StandardScaler())]), slice(0, 8))]
    )
    reference = Pipeline([("c", columns), ("m", estimator(**parameters))])
    reference.fit(split.X_train, split.y_train)
    predictions = reference.predict(split.X_test)
    mse = float(np.mean((split.y_test - predictions) ** 2))
    assert trained.metrics["mse"] == pytest.approx(mse, rel=1e-9)
    np.testing.assert_allclose(trained.metrics["coef"], reference[-1].coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        trained.folded.predict(split.test), predictions, rtol=1e-9, atol=1e-9
    )


@pytest.fixture(scope="module")
def penguins(penguins_csv: Path):
    return load_table(penguins_csv, TARGET, missing_target="drop", preprocessed=True)


SETTINGS = {
    "default": StandardPreprocessConfig(),
    "median-robust-indicator": StandardPreprocessConfig(
        impute="median", scale="robust", add_indicator=True
    ),
    "constant-unscaled-pooled": StandardPreprocessConfig(
        impute="constant", fill_value=-1.0, scale="none", min_frequency=60, drop="if_binary"
    ),
}


@pytest.mark.parametrize("settings", list(SETTINGS))
@pytest.mark.parametrize("estimator", [LinearRegression(), Ridge(alpha=3.0), Lasso(alpha=0.5)])
def test_folding_is_exact_on_unseen_missing_and_test_only_categories(
    penguins, settings: str, estimator
) -> None:
    frame, y = penguins.features, penguins.y
    # Chinstrap and Dream appear only in the rows the model does not see.
    seen = (frame["species"] != "Chinstrap") & (frame["island"] != "Dream")
    train, test = frame[seen.to_numpy()], frame[~seen.to_numpy()].copy()
    model = build_model(SETTINGS[settings], estimator, train, penguins.categorical)
    model.fit(train, y[seen.to_numpy()])
    folded = fold(model, penguins.feature_names, penguins.categorical, TARGET)

    test.iloc[0] = np.nan  # every input missing
    test.iloc[1, test.columns.get_loc("species")] = "Unheard-of"
    test.iloc[2, test.columns.get_loc("bill_depth_mm")] = np.nan
    rows = pd.concat([test, train.iloc[:50]])
    with warnings.catch_warnings():  # scikit-learn warns about the unknown categories
        warnings.simplefilter("ignore")
        expected = model.predict(rows)
    got = folded.predict(rows)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    # The design view computes the same function.
    np.testing.assert_allclose(
        folded.design(rows) @ folded.design_coef() + folded.intercept,
        expected,
        rtol=1e-9,
        atol=1e-9,
    )
    # The document round-trips exactly.
    document = json.loads(json.dumps(folded.to_dict()))
    assert FoldedModel.from_dict(document).to_dict() == folded.to_dict()


def test_a_plain_models_predictions_do_not_depend_on_the_rows_beside_them(
    trained_artifacts: Path, california
) -> None:
    """Row by row, in chunks of 3 (Python floats) or 1,001 (numpy), column-major or as a
    table: each row's prediction is bit for bit the one of the whole split at once; and it
    is scikit-learn's (a BLAS product) to a few ulps of the largest term."""
    folded = load_predictor(trained_artifacts).folded
    assert folded.is_plain
    X = split_dataset(california, 0.2, 42).X_test
    whole = folded.predict_matrix(X)
    assert np.array_equal(np.concatenate([folded.predict_matrix(row[None]) for row in X]), whole)
    for size in (3, 1001):
        parts = [folded.predict_matrix(X[i : i + size]) for i in range(0, len(X), size)]
        assert np.array_equal(np.concatenate(parts), whole), size
    assert np.array_equal(folded.predict_matrix(np.asfortranarray(X)), whole)
    table = dict(zip(folded.feature_names, X.T, strict=True))
    assert np.array_equal(folded.predict(table), whole)
    estimator = training.load(trained_artifacts)
    np.testing.assert_allclose(whole, estimator.predict(X), rtol=0, atol=1e-12)
    for rows in (3, 30):  # the Python-float path and the numpy path name the same cell
        broken = X[:rows].copy()
        broken[1, 4], broken[2, 1] = np.nan, np.nan
        with pytest.raises(ValueError, match="column 'Population' has a missing value \\(row 2\\)"):
            folded.predict_matrix(broken)


def test_a_category_column_as_pandas_category_or_numbers_predicts_the_same(penguins) -> None:
    model = build_model(
        StandardPreprocessConfig(), Ridge(), penguins.features, penguins.categorical
    )
    model.fit(penguins.features, penguins.y)
    folded = fold(model, penguins.feature_names, penguins.categorical)
    as_text = folded.predict(penguins.features)
    as_category = penguins.features.astype({name: "category" for name in penguins.categorical})
    np.testing.assert_array_equal(folded.predict(as_category), as_text)
    as_objects = {name: penguins.features[name].tolist() for name in penguins.feature_names}
    np.testing.assert_array_equal(folded.predict(as_objects), as_text)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: {**d, "format": "other"}, "not a mlops-lr/folded-linear/1"),
        (lambda d: {**d, "intercept": float("nan")}, "finite"),
        (lambda d: {**d, "extra": 1}, "exactly the keys"),
        (lambda d: {**d, "inputs": d["inputs"] + d["inputs"][:1]}, "distinct"),
        (lambda d: {**d, "inputs": [{**d["inputs"][0], "table": []}]}, "one number per"),
        (lambda d: {**d, "inputs": [{**d["inputs"][0], "kind": "text"}]}, "kind must be"),
    ],
)
def test_malformed_folded_documents_are_refused(penguins, change, message: str) -> None:
    model = build_model(
        StandardPreprocessConfig(), Ridge(), penguins.features, penguins.categorical
    )
    folded = fold(
        model.fit(penguins.features, penguins.y), penguins.feature_names, penguins.categorical
    )
    with pytest.raises(ValueError, match=message):
        FoldedModel.from_dict(change(folded.to_dict()))


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_quantized_penguins_meet_the_goals_and_unknowns_do_not_drift(penguins, bits: int) -> None:
    split = split_dataset(penguins, 0.2, 42)
    model = build_model(StandardPreprocessConfig(), Ridge(), split.train, penguins.categorical)
    folded = fold(
        model.fit(split.train, split.y_train), penguins.feature_names, penguins.categorical
    )
    centred, moments = calibrate(folded, split.train)
    np.testing.assert_allclose(centred.predict(split.test), folded.predict(split.test), rtol=1e-12)
    quantized = quantize_folded(centred, default_spec(bits), moments)
    document = json.loads(json.dumps(quantized.to_dict()))
    assert QuantizedFoldedModel.from_dict(document).to_dict() == document
    dequantized = quantized.dequantized()
    scale = float(np.std(split.y_test))
    difference = np.abs(dequantized.predict(split.test) - folded.predict(split.test))
    limits = {4: (0.02, 0.05), 8: (0.005, 0.01), 16: (1e-5, 1e-4)}[bits]
    assert difference.mean() <= limits[0] * scale
    assert difference.max() <= limits[1] * scale
    unseen = split.test.copy()
    for name in penguins.categorical:  # an unseen category, then a missing one, per column
        for value in ("never seen", np.nan):
            changed = unseen.assign(**{name: value})
            drift = np.abs(dequantized.predict(changed) - folded.predict(changed))
            assert drift.max() <= limits[1] * scale, (name, value)


def test_the_stages_on_penguins_train_quantize_predict_and_serve(
    cli, penguins_csv: Path, tmp_path: Path
) -> None:
    overrides = penguin_overrides(penguins_csv, "model=ridge")
    assert cli(*overrides).returncode == 0
    result = cli(*overrides, "stage=quantize", "quantization.bits=8")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(
        (tmp_path / "artifacts" / "quantized" / "default-8bit" / "metrics.json").read_text()
    )
    assert metrics["r2_quant"] - metrics["r2_float"] >= -0.001
    assert metrics["payload_bytes_quant"] < metrics["payload_bytes_float"]
    report = (tmp_path / "artifacts" / "quantized" / "default-8bit" / "report.md").read_text()
    for text in ("| species ", "species=Adelie", "species=<unknown>"):
        assert text in report

    output = tmp_path / "predictions.csv"
    result = cli(
        *overrides, "stage=predict", f"predict.input={penguins_csv}", f"predict.output={output}"
    )
    assert result.returncode == 0, result.stderr
    written = pd.read_csv(output)
    assert len(written) == 344
    assert written["prediction"].notna().all()
    predictor = load_predictor(tmp_path / "artifacts")
    source = pd.read_csv(penguins_csv)
    np.testing.assert_array_equal(written["prediction"], predictor.predict_table(source))

    quantized = load_predictor(tmp_path / "artifacts", "default-8bit")
    client = TestClient(create_app(quantized, max_rows=10))
    row = {
        "species": "Adelie",
        "island": "Biscoe",
        "bill_length_mm": 39.1,
        "bill_depth_mm": None,
        "flipper_length_mm": 181,
        "sex": None,
        "year": 2007,
    }
    answer = client.post("/predict", json={"instances": [row, {**row, "island": "Atlantis"}]})
    assert answer.status_code == 200, answer.text
    expected = quantized.predict_table(
        {k: [v, v] for k, v in row.items()} | {"island": ["Biscoe", "Atlantis"]}
    )
    np.testing.assert_array_equal(answer.json()["predictions"], expected)
    rows = client.post("/predict", json={"inputs": [list(row.values())]})
    assert rows.json()["predictions"] == answer.json()["predictions"][:1]
    bad = client.post("/predict", json={"instances": [{**row, "flipper_length_mm": "long"}]})
    assert bad.status_code == 422
    assert bad.json()["detail"] == (
        'instances[0]: flipper_length_mm must be a number or null, got a string "long"'
    )
    bad = client.post("/predict", json={"instances": [{**row, "species": [1]}]})
    assert bad.status_code == 422
    assert "species must be a category" in bad.json()["detail"]
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    species = body["schema"]["oneOf"][0]["properties"]["instances"]["items"]["properties"][
        "species"
    ]
    assert species["examples"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert "null" in species["type"]


def test_text_in_a_numeric_column_names_the_line_when_predicting(
    cli, penguins_csv: Path, tmp_path: Path
) -> None:
    overrides = penguin_overrides(penguins_csv)
    assert cli(*overrides).returncode == 0
    bad = tmp_path / "bad.csv"
    lines = penguins_csv.read_text().splitlines()
    lines[3] = lines[3].replace("40.3", "forty")
    bad.write_text("\n".join(lines) + "\n")
    output = tmp_path / "out.csv"
    result = cli(*overrides, "stage=predict", f"predict.input={bad}", f"predict.output={output}")
    assert_one_line_error(result, "column 'bill_length_mm' is not numeric: 'forty' on line 4", 3)
    assert not output.exists()


def test_artifacts_hold_a_verified_folded_document(cli, penguins_csv: Path, tmp_path: Path) -> None:
    assert cli(*penguin_overrides(penguins_csv)).returncode == 0
    directory = tmp_path / "artifacts"
    manifest = artifacts.read_manifest(directory)
    assert "folded.json" in manifest["files"]
    document = json.loads((directory / "folded.json").read_text())
    assert document["format"] == "mlops-lr/folded-linear/1"
    kinds = {item["name"]: item["kind"] for item in document["inputs"]}
    assert {name for name, kind in kinds.items() if kind == "categorical"} == set(CATEGORICAL)
    # The joblib file is the fitted scikit-learn Pipeline any user can load.
    assert isinstance(training.load(directory), Pipeline)


BAD_INPUTS = {
    "text in a numeric column": (
        "a,b,y\n1,2,3\n4,5,6\n7,x,9\n2,3,4\n",
        (),
        "column 'b' is not numeric: 'x' on line 4",
        3,
    ),
    "a text target": (
        "a,y\n1,a\n2,b\n3,c\n4,d\n",
        (),
        "column 'y' is not numeric: 'a' on line 2",
        3,
    ),
    "a column over the cardinality cap": (
        "a,c,y\n" + "".join(f"{i},level{i},{i}\n" for i in range(12)),
        ("preprocess.max_categories=10",),
        "column 'c' has 12 distinct values, more than preprocess.max_categories=10",
        3,
    ),
    "an unknown model option": ("a,y\n1,2\n", ("model=forest",), "model", 2),
    "an unknown preprocess option": ("a,y\n1,2\n", ("preprocess=magic",), "preprocess", 2),
    "a negative alpha": ("a,y\n1,2\n", ("model=ridge", "model.alpha=-1"), "model.alpha=-1", 2),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(cli, tmp_path: Path, case: str) -> None:
    content, overrides, message, code = BAD_INPUTS[case]
    path = tmp_path / "data.csv"
    path.write_text(content)
    chosen = [o for o in overrides if o.startswith("preprocess=")] or ["preprocess=standard"]
    settings = [o for o in overrides if not o.startswith("preprocess=")]
    result = cli("dataset=csv", f"dataset.path={path}", "dataset.target=y", *chosen, *settings)
    assert_one_line_error(result, message, code)
    assert not (tmp_path / "artifacts").exists()


def test_preprocess_none_refuses_text_and_missing_values_with_a_hint(cli, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,c,y\n1,red,3\n2,blue,4\n3,red,5\n4,blue,6\n")
    result = cli("dataset=csv", f"dataset.path={path}", "dataset.target=y")
    assert_one_line_error(result, "column 'c' is categorical (text): preprocess=standard", 3)
    path.write_text("a,b,y\n1,2,3\n2,,4\n3,4,5\n4,5,6\n")
    result = cli("dataset=csv", f"dataset.path={path}", "dataset.target=y")
    assert_one_line_error(
        result, "column 'b' has 1 missing or infinite value(s), first on line 3", 3
    )


def test_listed_categorical_columns_keep_their_text(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("year,x,y\n2007,1,2\n2008,2,3\n007,3,4\n2007,,5\n")
    dataset = load_table(path, "y", categorical=["year"], preprocessed=True)
    assert dataset.categorical == ("year",)
    assert dataset.features["year"].tolist() == ["2007", "2008", "007", "2007"]
    assert np.isnan(dataset.features["x"].iloc[3])


def test_csv_categories_are_their_text_in_training_and_prediction(cli, tmp_path: Path) -> None:
    path = tmp_path / "flags.csv"
    path.write_text("a,b,y\n1,true,1\n2,false,2\n3,true,3\n4,TRUE,4\n5,false,5\n6,true,7\n")
    dataset = load_table(path, "y", preprocessed=True)
    assert dataset.features["b"].tolist() == ["true", "false", "true", "TRUE", "false", "true"]
    overrides = ("dataset=csv", f"dataset.path={path}", "dataset.target=y", "preprocess=standard")
    assert cli(*overrides, "dataset.test_size=0.34").returncode == 0
    output = tmp_path / "out.csv"
    result = cli(
        *overrides,
        "dataset.test_size=0.34",
        "stage=predict",
        f"predict.input={path}",
        f"predict.output={output}",
    )
    assert result.returncode == 0, result.stderr
    model = training.load(tmp_path / "artifacts")
    np.testing.assert_allclose(
        pd.read_csv(output)["prediction"], model.predict(dataset.features), rtol=1e-9, atol=1e-9
    )
    column = load_predictor(tmp_path / "artifacts").folded.inputs[1]
    assert column.categories == ("TRUE", "false", "true")
    # Matched by text: JSON's true is "True", another category; 1 and True stay apart.
    codes = column.codes(["true", True, "TRUE", None, 1])
    np.testing.assert_array_equal(codes, [2, 4, 0, 3, 4])
