"""ONNX export of folded models (categorical inputs, missing values), float and quantized: the
graphs run in ONNX Runtime, fed as a skl2onnx user feeds them (one ``[N, 1]`` array per
column, taken from a DataFrame), against the Python predictor on penguins and a synthetic
table with unseen categories and missing values; the export stage through the CLI.

onnxruntime is required: without it these tests fail, they never skip."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
from onnx import TensorProto, numpy_helper
from sklearn.linear_model import Lasso, LinearRegression, Ridge

from mlops_lr import artifacts
from mlops_lr.config import StandardPreprocessConfig
from mlops_lr.data import load_table, split_dataset
from mlops_lr.export_onnx import (
    INPUTS_METADATA,
    filled_means,
    folded_graph,
    inputs_to_table,
    table_to_inputs,
)
from mlops_lr.folded import NUMERIC, CategoricalInput, FoldedModel, NumericInput
from mlops_lr.predictor import load_predictor
from mlops_lr.preprocess import build_model, fold
from mlops_lr.quantize import CalibrationMoments, default_spec
from mlops_lr.quantized_folded import QuantizedFoldedModel, calibrate, quantize_folded
from tests.conftest import PENGUINS_TARGET, assert_one_line_error, mixed_table, penguin_overrides

DTYPES = {"float32": np.float32, "float64": np.float64}
# What the export allows (absolute + relative·|prediction|, see mlops_lr.stages.export).
TOLERANCE = {np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-14)}
BITS = (2, 8, 16)
PENGUIN_MODELS = {
    "lasso": (Lasso(), StandardPreprocessConfig()),
    "ridge-median-robust": (
        Ridge(alpha=3.0),
        StandardPreprocessConfig(impute="median", scale="robust"),
    ),
    "linear-constant-pooled": (
        LinearRegression(),
        StandardPreprocessConfig(impute="constant", fill_value=-1.0, min_frequency=110),
    ),
}
# Every bit width on the default setting; the other settings float and one width each.
PENGUIN_CASES = [
    *(("lasso", model) for model in ["float", *(f"{bits}-bit" for bits in BITS)]),
    ("ridge-median-robust", "float"),
    ("ridge-median-robust", "8-bit"),
    ("linear-constant-pooled", "float"),
    ("linear-constant-pooled", "2-bit"),
]
STORED_CODES = {2: TensorProto.INT4, 8: TensorProto.INT8, 16: TensorProto.INT16}
MIXED_OVERRIDES = (
    "dataset.target=y",
    "preprocess=standard",
    "preprocess.add_indicator=true",
    "preprocess.min_frequency=5",
    "model=ridge",
)


@pytest.fixture(scope="module")
def penguins(penguins_csv: Path):
    dataset = load_table(penguins_csv, PENGUINS_TARGET, missing_target="drop", preprocessed=True)
    return dataset, split_dataset(dataset, 0.2, 42)


@pytest.fixture(scope="module")
def penguin_model(penguins) -> Callable[[str, str], FoldedModel | QuantizedFoldedModel]:
    """``(setting, model)`` → the float folded model of a PENGUIN_MODELS setting fitted on the
    training split (model ``"float"``), or its quantization (``"8-bit"``): each made once, when
    a test first asks for it (a quantization takes about a second)."""
    dataset, split = penguins

    @functools.cache
    def calibrated(setting: str) -> tuple[FoldedModel, FoldedModel, CalibrationMoments]:
        estimator, settings = PENGUIN_MODELS[setting]
        pipeline = build_model(settings, estimator, split.train, dataset.categorical)
        pipeline.fit(split.train, split.y_train)
        folded = fold(pipeline, dataset.feature_names, dataset.categorical, PENGUINS_TARGET)
        return folded, *calibrate(folded, split.train)

    @functools.cache
    def model(setting: str, name: str) -> FoldedModel | QuantizedFoldedModel:
        folded, centred, moments = calibrated(setting)
        if name == "float":
            return folded
        return quantize_folded(centred, default_spec(int(name.removesuffix("-bit"))), moments)

    return model


def with_unusual_rows(frame: pd.DataFrame, categorical: tuple[str, ...]) -> pd.DataFrame:
    """``frame``'s rows, then its first row again with, column by column, an unseen and a
    missing category or a missing number, then with every value missing."""
    first = frame.iloc[[0]]
    missing = {name: None if name in categorical else np.nan for name in frame.columns}
    changed = [
        first.assign(**{name: value})
        for name in frame.columns
        for value in (("never seen", None) if name in categorical else (np.nan,))
    ]
    return pd.concat([frame, *changed, first.assign(**missing)], ignore_index=True)


def user_feed(session: onnxruntime.InferenceSession, frame: pd.DataFrame) -> dict:
    """A DataFrame fed as a skl2onnx user feeds it: one ``[N, 1]`` array per graph input,
    text (missing as "") for string inputs, numbers of the input's type otherwise."""
    feed = {}
    for node in session.get_inputs():
        column = frame[[node.name]]
        if node.type == "tensor(string)":
            feed[node.name] = column.fillna("").to_numpy(dtype=str)
        else:
            feed[node.name] = column.to_numpy(np.float32 if node.type == "tensor(float)" else float)
    return feed


def session_of(graph: onnx.ModelProto) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(
        graph.SerializeToString(), providers=["CPUExecutionProvider"]
    )


def assert_agrees(session, frame: pd.DataFrame, folded: FoldedModel, dtype: type) -> None:
    """ONNX Runtime on ``frame`` (fed as a user would) predicts what ``folded`` predicts on the
    same numbers: float64 bit for bit, float32 within the export's tolerance."""
    (predictions,) = session.run(None, user_feed(session, frame))
    assert predictions.dtype == dtype
    assert predictions.shape == (len(frame),)
    numeric = [item.name for item in folded.inputs if item.kind == NUMERIC]
    same_numbers = frame.astype(dict.fromkeys(numeric, dtype)).astype(dict.fromkeys(numeric, float))
    expected = folded.predict(same_numbers)
    if dtype is np.float64:
        np.testing.assert_array_equal(predictions, expected)
    else:
        absolute, relative = TOLERANCE[dtype]
        excess = np.abs(predictions - expected) - relative * np.abs(expected)
        assert np.max(excess) <= absolute


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES)
@pytest.mark.parametrize(("setting", "model"), PENGUIN_CASES)
def test_penguin_graphs_predict_what_python_predicts(
    penguins, penguin_model, setting: str, model: str, dtype: type
) -> None:
    dataset, split = penguins
    exported = penguin_model(setting, model)
    folded = exported if model == "float" else exported.dequantized()
    center = filled_means(folded, split.train) if dtype is np.float32 else None
    graph = folded_graph(exported, dtype, {}, center)
    onnx.checker.check_model(graph, full_check=True)
    rows = with_unusual_rows(split.test, dataset.categorical)

    assert_agrees(session_of(graph), rows, folded, dtype)


def test_metadata_and_inputs_follow_skl2onnx_convention(penguins, penguin_model) -> None:
    dataset, _ = penguins
    model = penguin_model("lasso", "8-bit")
    graph = folded_graph(model, np.float64, {"mlops_lr.model": "default-8bit"})
    metadata = {prop.key: prop.value for prop in graph.metadata_props}
    assert metadata["mlops_lr.model"] == "default-8bit"
    described = json.loads(metadata[INPUTS_METADATA])
    numeric = {"kind": "numeric", "type": "tensor(double)", "shape": ["N", 1], "missing": "NaN"}
    text = {"kind": "categorical", "type": "tensor(string)", "shape": ["N", 1], "missing": ""}
    assert described == [
        {"name": name, **(text if name in dataset.categorical else numeric)}
        for name in dataset.feature_names
    ]
    session = session_of(graph)
    assert [(node.name, node.type, node.shape) for node in session.get_inputs()] == [
        (item["name"], item["type"], ["N", 1]) for item in described
    ]
    (output,) = session.get_outputs()
    assert (output.name, output.type, output.shape) == ("predictions", "tensor(double)", ["N"])
    domains = {opset.domain: opset.version for opset in graph.opset_import}
    assert domains == {"": 13, "ai.onnx.ml": 4}
    assert graph.ir_version == 9


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES)
@pytest.mark.parametrize("bits", BITS)
def test_quantized_graphs_store_integer_codes(penguin_model, bits: int, dtype: type) -> None:
    model = penguin_model("lasso", f"{bits}-bit")
    graph = onnx.load_from_string(folded_graph(model, dtype, {}).SerializeToString())
    tensors = {tensor.name: tensor for tensor in graph.graph.initializer}
    assert tensors["codes"].data_type == STORED_CODES[bits]
    np.testing.assert_array_equal(
        numpy_helper.to_array(tensors["codes"]).ravel(), model.linear.codes
    )
    # Tables map text to positions among the dequantized parameters, never to floats.
    encoders = [node for node in graph.graph.node if node.op_type == "LabelEncoder"]
    assert len(encoders) == 3
    for node in encoders:
        attributes = {attribute.name: attribute.t for attribute in node.attribute}
        assert attributes["values_tensor"].data_type == TensorProto.INT64
        assert attributes["default_tensor"].data_type == TensorProto.INT64
    # The only float vector is DequantizeLinear's scale: every other float is one number
    # (intercept, fills, the indicator's zero).
    scales = {node.input[1] for node in graph.graph.node if node.op_type == "DequantizeLinear"}
    floats = (TensorProto.FLOAT, TensorProto.DOUBLE)
    vectors = {
        name for name, tensor in tensors.items() if tensor.data_type in floats and tensor.dims
    }
    assert vectors == scales


def test_any_column_name_and_the_empty_category() -> None:
    # Columns named as tensors inside the graph are, "" as a category, a number without fill.
    folded = FoldedModel(
        2.0,
        (
            CategoricalInput("codes", ("", "a"), np.array([1.0, 2.0]), unknown=5.0, missing=7.0),
            CategoricalInput("flat", ("b",), np.array([0.5]), unknown=-1.0, missing=3.0),
            NumericInput("intercept", 0.25),
            NumericInput("total", 2.0, fill=10.0, indicator=-4.0),
        ),
    )
    table = {
        "codes": ["", "a", "zz", None],
        "flat": ["b", None, "", "q"],
        "intercept": [1.0, 2.0, np.nan, 4.0],
        "total": [np.nan, 1.0, 2.0, 3.0],
    }
    graph = folded_graph(folded, np.float64, {})
    inputs = table_to_inputs(folded, table, np.float64)
    assert inputs["codes"].ravel().tolist() == ["", "a", "zz", ""]

    (predictions,) = session_of(graph).run(None, inputs)

    # "" is the category "" where it is one (a missing value becomes it too), missing
    # elsewhere; a missing number without a fill gives NaN (Python refuses it).
    expected = [2 + 1 + 0.5 + 0.25 + (20 - 4), 2 + 2 + 3 + 0.5 + 2, np.nan, 2 + 1 - 1 + 1 + 6]
    np.testing.assert_array_equal(predictions, expected)
    as_python_reads = inputs_to_table(folded, inputs)
    rows = [0, 1, 3]
    python = folded.predict({name: values[rows] for name, values in as_python_reads.items()})
    np.testing.assert_array_equal(predictions[rows], python)
    described = json.loads({p.key: p.value for p in graph.metadata_props}[INPUTS_METADATA])
    assert [item["missing"] for item in described] == [None, "", None, "NaN"]
    with pytest.raises(ValueError, match="'predictions' would be the graph's input and output"):
        folded_graph(FoldedModel.linear([1.0], 0.0, ["predictions"]), np.float64, {})


# --- the stage ---------------------------------------------------------------------------


def test_stage_exports_penguins_float_and_quantized(
    cli, penguins_csv: Path, tmp_path: Path
) -> None:
    overrides = penguin_overrides(penguins_csv, "model=lasso")
    assert cli(*overrides).returncode == 0
    assert cli(*overrides, "stage=quantize", "quantization.bits=8").returncode == 0
    source = pd.read_csv(penguins_csv)
    for tag in ("default-8bit", "float"):
        result = cli(*overrides, "stage=export", "export.format=onnx", f"export.model={tag}")
        assert result.returncode == 0, result.stderr
        directory = tmp_path / "artifacts" / "export" / tag / "onnx"
        report = json.loads((directory / "export.json").read_text())
        assert set(report["files"]) == {"model.float32.onnx", "model.float64.onnx"}
        assert report["checks"]["float64"]["max_abs_diff_vs_python"] == 0.0
        assert report["checks"]["float32"]["max_abs_diff_vs_python"] < 1e-3
        predictor = load_predictor(tmp_path / "artifacts", tag)
        for name, dtype in DTYPES.items():
            data = artifacts.read_verified(directory, f"model.{name}.onnx")
            session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
            assert_agrees(session, source, predictor.folded, dtype)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_stage_exports_the_synthetic_table(cli, tmp_path: Path, suffix: str) -> None:
    table = mixed_table(1500, seed=3, late_category=True)
    path = tmp_path / f"mixed.{suffix}"
    if suffix == "csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path)
    overrides = (f"dataset={suffix}", f"dataset.path={path}", *MIXED_OVERRIDES)
    assert cli(*overrides).returncode == 0
    # Without the searches (scale, exact rounding) that take seconds on 56 design columns.
    quantization = (
        "quantization.bits=8",
        "quantization.rounding=hessian",
        "quantization.scale=minmax",
    )
    result = cli(*overrides, "stage=quantize", *quantization)
    assert result.returncode == 0, result.stderr
    features = with_unusual_rows(table.drop(columns="y"), ("colour", "grade", "region"))
    for tag in ("default-8bit", "float"):
        result = cli(
            *overrides, "stage=export", "export.format=onnx", f"export.model={tag}", *quantization
        )
        assert result.returncode == 0, result.stderr
        assert "max |Δ| vs the Python model 0 (≤ 1e-12" in result.stdout
        directory = tmp_path / "artifacts" / "export" / tag / "onnx"
        predictor = load_predictor(tmp_path / "artifacts", tag)
        numeric = [item for item in predictor.folded.inputs if item.kind == NUMERIC]
        assert any(item.indicator is not None for item in numeric)  # add_indicator=true
        for name, dtype in DTYPES.items():
            data = artifacts.read_verified(directory, f"model.{name}.onnx")
            session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
            assert_agrees(session, features, predictor.folded, dtype)


def test_stage_refuses_a_graph_that_float32_cannot_hold(cli, tmp_path: Path) -> None:
    # The target is a small difference of two large, nearly equal columns: float32 sums
    # of ~1e5 cannot reach the 1e-5 + 1e-6·|prediction| the export requires.
    rng = np.random.default_rng(0)
    large = rng.normal(0.0, 1e5, 400)
    close = large + rng.normal(0.0, 1.0, 400)
    kind = rng.choice(np.array(["p", "q", None], dtype=object), 400)
    table = pd.DataFrame({"large": large, "close": close, "kind": kind})
    table["y"] = 3.0 * (table["large"] - table["close"]) + (table["kind"] == "p")
    path = tmp_path / "cancelling.csv"
    table.to_csv(path, index=False)
    overrides = (
        "dataset=csv",
        f"dataset.path={path}",
        "dataset.target=y",
        "preprocess=standard",
        "model=linear_regression",
    )
    assert cli(*overrides).returncode == 0

    result = cli(*overrides, "stage=export", "export.format=onnx", "export.model=float")

    assert_one_line_error(result, "ONNX Runtime (float32) differs from the Python model", 4)
    assert "not exported" in result.stderr
    assert not (tmp_path / "artifacts" / "export").exists()
