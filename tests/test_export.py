"""Stage `export`: ONNX graphs checked in ONNX Runtime, integer-only C compiled with strict
flags and sanitizers and compared bit for bit with the Python model of its arithmetic.

gcc and onnxruntime are required: without them these tests fail, they never skip."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_lr import artifacts
from mlops_lr.data import Dataset, split_dataset
from mlops_lr.export_c import c_identifier, render_header, render_main
from mlops_lr.export_onnx import float_graph, quantized_graph
from mlops_lr.fixed_point import INPUT_LIMIT, INT64_MAX, plan_fixed_point
from mlops_lr.metrics import regression_metrics
from mlops_lr.predictor import load_predictor
from mlops_lr.quantize import (
    QuantizationSpec,
    QuantizedLinearModel,
    default_spec,
    quantize_linear_model,
)
from tests.conftest import SANITIZERS, STRICT_FLAGS, assert_one_line_error, compile_c

EXTREME_ROWS = [
    [np.nan, 1, 2, 3, 4, 5, 6, 7],
    [1, 2, 3, 4, 5, 6, 7, np.nan],
    [np.inf] * 8,
    [-np.inf] * 8,
    [1e300] * 8,
    [-1e300] * 8,
    [np.finfo(np.float64).max, -np.finfo(np.float64).max, *[0.0] * 6],
    [5e-324] * 8,
    [-5e-324, 2.2250738585072014e-308, -2.2250738585072014e-308, *[1e-310] * 5],
    [-0.0] * 8,
    [0.0] * 8,
    [1e9, -1e9, 1e12, -1e12, 1e6, -1e6, 90.0, -180.0],
    [0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994, -0.49999999999999994],
]
SPECS = {
    "2-bit": default_spec(2),
    "4-bit": default_spec(4),
    "16-bit": default_spec(16),
    "uint8 per-tensor": QuantizationSpec(bits=8, scheme="asymmetric", intercept_dtype="float32"),
    "uint16 per-feature": QuantizationSpec(
        bits=16, scheme="asymmetric", granularity="per_feature_pow2"
    ),
    "int32 intercept": replace(default_spec(8), intercept_dtype="int32"),
}


@pytest.fixture(scope="module")
def split(california: Dataset):
    return split_dataset(california, 0.2, 42)


@pytest.fixture(scope="module")
def models(trained_artifacts: Path, split) -> dict[str, QuantizedLinearModel]:
    """The trained default 8-bit model and other widths and schemes of the same float model."""
    predictor = load_predictor(trained_artifacts)
    quantized = {
        name: quantize_linear_model(predictor.coef, predictor.intercept, spec, split.X_train)
        for name, spec in SPECS.items()
    }
    default = artifacts.load_quantized(trained_artifacts / "quantized" / "default-8bit").linear
    return {"default-8bit": default, **quantized}


def _hex_rows(X: np.ndarray) -> str:
    return "".join(",".join(float.hex(float(v)) for v in row) + "\n" for row in X)


def _build(directory: Path, model: QuantizedLinearModel, max_abs: np.ndarray, flags: list[str]):
    """Write the header and main.c of ``model``, compile them with ``flags``; return the plan
    and the executable."""
    plan = plan_fixed_point(model, max_abs)
    prefix = c_identifier("test-model")
    names = [f"x{j}" for j in range(model.codes.size)]
    (directory / f"{prefix}.h").write_text(render_header(plan, prefix, names, "test"))
    (directory / "main.c").write_text(render_main(plan, prefix, f"{prefix}.h", names))
    return plan, compile_c(directory, "main.c", flags, "predict")


def _run(executable: Path, X: np.ndarray) -> np.ndarray:
    result = subprocess.run(
        [str(executable)], input=_hex_rows(X), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return np.array([float.fromhex(line) for line in result.stdout.split()])


@pytest.mark.parametrize("name", ["default-8bit", *SPECS])
@pytest.mark.parametrize("sanitized", [False, True], ids=["strict-O2", "asan+ubsan"])
def test_c_is_bit_exact_on_every_test_row_and_extreme_input(
    tmp_path: Path, models, split, name: str, sanitized: bool
) -> None:
    model = models[name]
    flags = STRICT_FLAGS + (SANITIZERS if sanitized else [])
    plan, executable = _build(tmp_path, model, np.abs(split.X_train).max(axis=0), flags)
    X = np.vstack([split.X_test, np.array(EXTREME_ROWS)])

    predictions = _run(executable, X)

    reference = plan.predict(X)
    assert predictions.tobytes() == reference.tobytes()  # bit for bit, NaNs included
    n_test = len(split.X_test)
    assert np.isnan(predictions[n_test : n_test + 2]).all()
    assert np.isfinite(predictions[n_test + 2 :]).all()
    # Integer inference is the quantized model up to the input quantization (2**-f).
    expected = model.predict(split.X_test)
    bound = plan.error_bound(model.coef(), float(np.max(np.abs(expected))))
    assert np.max(np.abs(predictions[:n_test] - expected)) <= bound < 1e-6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2,3,4,5,6,7,8\n1,2,3\n", "line 2: expected 8 cells\n"),
        ("1,2,3,4,5,6,7,8,9\n", "line 1: expected 8 cells\n"),
        ("1,2,3,4,5,6,7,8abc\n", "line 1, cell 8: not a number\n"),
        ("1 2 3 4 5 6 7 8\n", "line 1, cell 1: not a number\n"),
        ("1" * 5000 + "\n", "line 1, cell 1: a cell longer than 4095 bytes\n"),
    ],
)
def test_the_example_program_refuses_malformed_lines(
    tmp_path: Path, models, split, text: str, message: str
) -> None:
    _, executable = _build(
        tmp_path, models["default-8bit"], np.abs(split.X_train).max(axis=0), STRICT_FLAGS
    )
    result = subprocess.run(
        [str(executable)], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr == message


def test_feature_names_cannot_escape_the_header_comment(tmp_path: Path, models, split) -> None:
    plan = plan_fixed_point(models["default-8bit"], np.abs(split.X_train).max(axis=0))
    names = ["a */ #error injected /*", "b??/", "c\\", "d\nx", "e", "f", "g", "h"]
    header = render_header(plan, "m", names, "tag */ #error too")
    (tmp_path / "m.h").write_text(header)
    (tmp_path / "use.c").write_text('#include "m.h"\nint main(void) { return 0; }\n')
    compile_c(tmp_path, "use.c", STRICT_FLAGS, "use")
    assert "#error" in header  # still readable, but inside the comment
    plain = render_header(plan, "m", [f"x{j}" for j in range(8)], "tag")
    assert header.count("*/") == plain.count("*/")


def test_plans_keep_the_accumulator_in_int64_for_any_input(models, split) -> None:
    max_abs = np.abs(split.X_train).max(axis=0)
    for model in models.values():
        plan = plan_fixed_point(model, max_abs)
        assert 0 < plan.bound <= INT64_MAX
        # Saturated inputs of the worst sign reach the bound, exactly as Python ints.
        worst = [INPUT_LIMIT if weight > 0 else -INPUT_LIMIT for weight in plan.weights]
        total = sum(w * q for w, q in zip(plan.weights, worst, strict=True))
        assert abs(total) + abs(plan.intercept) == plan.bound
        # Training-range inputs keep their precision: one bit of headroom, no more.
        assert all(
            2 * m * 2.0**f <= INPUT_LIMIT < 4 * m * 2.0**f
            for m, f in zip(max_abs, plan.input_bits, strict=True)
        )


@given(
    coef=st.lists(
        st.floats(min_value=-1e3, max_value=1e3).filter(lambda v: abs(v) > 1e-9),
        min_size=1,
        max_size=6,
    ),
    intercept=st.floats(min_value=-1e6, max_value=1e6),
    scales=st.lists(st.floats(min_value=1e-6, max_value=1e6), min_size=6, max_size=6),
    bits=st.integers(min_value=2, max_value=16),
)
def test_any_plan_is_overflow_free_and_exact(coef, intercept, scales, bits) -> None:
    n = len(coef)
    rng = np.random.default_rng(0)
    X_calib = rng.normal(size=(50, n)) * np.array(scales[:n])
    spec = QuantizationSpec(bits=bits, granularity="per_feature_pow2")
    model = quantize_linear_model(np.array(coef), intercept, spec, X_calib)
    plan = plan_fixed_point(model, np.abs(X_calib).max(axis=0))
    assert plan.bound <= INT64_MAX
    X = np.vstack([X_calib, np.full((1, n), np.inf), np.full((1, n), -1e300), X_calib[:3] * 1e6])
    q = plan.quantize_inputs(X)
    assert np.abs(q).max() <= INPUT_LIMIT
    exact = [sum(int(w) * int(v) for w, v in zip(plan.weights, row, strict=True)) for row in q]
    assert max(abs(a + plan.intercept) for a in exact) <= plan.bound
    expected = np.array([float(a + plan.intercept) * plan.output_scale for a in exact])
    np.testing.assert_array_equal(plan.predict(X), expected)


@pytest.mark.parametrize("name", ["default-8bit", *SPECS, "float"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_onnx_runtime_predicts_what_python_predicts(
    tmp_path: Path, trained_artifacts: Path, models, split, name: str, dtype: type
) -> None:
    center = split.X_train.mean(axis=0) if dtype is np.float32 else None
    if name == "float":
        predictor = load_predictor(trained_artifacts)
        graph = float_graph(predictor.coef, predictor.intercept, dtype, {}, center)
        expected, stored = predictor.predict, onnx.TensorProto.FLOAT
    else:
        graph = quantized_graph(models[name], dtype, {"mlops_lr.model": name}, center)
        expected = models[name].predict
        stored = {2: onnx.TensorProto.INT4, 4: onnx.TensorProto.INT4, 8: onnx.TensorProto.INT8}
        stored = {**stored, 16: onnx.TensorProto.INT16}[models[name].spec.bits]
        if models[name].spec.scheme == "asymmetric":
            stored = {8: onnx.TensorProto.UINT8, 16: onnx.TensorProto.UINT16}[
                models[name].spec.bits
            ]
        assert "DequantizeLinear" in [node.op_type for node in graph.graph.node]
    path = tmp_path / "model.onnx"
    path.write_bytes(graph.SerializeToString())
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    weights = {tensor.name: tensor for tensor in graph.graph.initializer}
    if name != "float":  # the file keeps the integer codes, not float weights
        assert weights["codes"].data_type == stored
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    X = split.X_test.astype(dtype)
    (predictions,) = session.run(None, {"X": X})

    assert predictions.dtype == dtype
    difference = np.max(np.abs(predictions - expected(X.astype(np.float64))))
    assert difference <= (1e-5 if dtype is np.float32 else 1e-12)


def test_onnx_4bit_keeps_r2_within_a_thousandth_of_float(models, split, trained_artifacts) -> None:
    float_r2 = json.loads((trained_artifacts / "metrics.json").read_text())["r2"]
    graph = quantized_graph(models["4-bit"], np.float32, {}, split.X_train.mean(axis=0))
    session = onnxruntime.InferenceSession(
        graph.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (predictions,) = session.run(None, {"X": split.X_test.astype(np.float32)})
    r2 = regression_metrics(split.y_test, predictions.astype(np.float64))["r2"]
    assert r2 >= float_r2 - 0.001


# --- the stage ---------------------------------------------------------------------------


@pytest.fixture
def own_artifacts(trained_artifacts: Path, tmp_path: Path) -> Path:
    """A copy of the shared artifacts that the export stage may write into."""
    return Path(shutil.copytree(trained_artifacts, tmp_path / "artifacts"))


def test_stage_exports_onnx_and_c_under_export_tag(cli, own_artifacts: Path) -> None:
    for export_format, files in (
        ("onnx", {"model.float32.onnx", "model.float64.onnx"}),
        ("c", {"mlops_lr_default_8bit.h", "main.c"}),
    ):
        result = cli(
            "stage=export", f"export.format={export_format}", f"paths.artifacts_dir={own_artifacts}"
        )
        assert result.returncode == 0, result.stderr
        directory = own_artifacts / "export" / "default-8bit" / export_format
        assert f"to {directory}/" in result.stdout
        written = {path.name for path in directory.iterdir()}
        assert written == files | {"export.json", "manifest.json"}
        for name in files:
            artifacts.read_verified(directory, name)  # listed, with its sha256
        report = json.loads((directory / "export.json").read_text())
        assert report["tag"] == "default-8bit"
        assert report["stored_bytes"]["json"] > 0
    report = json.loads((own_artifacts / "export/default-8bit/c/export.json").read_text())
    assert report["accumulator_bound"] <= INT64_MAX
    assert report["max_abs_diff_vs_python"] <= report["error_bound"] < 1e-6
    assert "Integer-only inference: worst-case |accumulator|" in result.stdout
    assert "bit-exact on all 4,128 test rows" in result.stdout


def test_stage_errors_are_one_line(cli, own_artifacts: Path) -> None:
    artifacts_dir = f"paths.artifacts_dir={own_artifacts}"
    result = cli("stage=export", "export.format=pdf", artifacts_dir)
    assert_one_line_error(result, "export.format='pdf' is not allowed", exit_code=2)
    result = cli("stage=export", "export.format=c", "export.model=float", artifacts_dir)
    assert_one_line_error(result, "export.format=c needs a quantized model", exit_code=2)
    result = cli("stage=export", "export.model=int4", artifacts_dir)
    assert_one_line_error(result, "no quantized model 'int4'", exit_code=4)
    result = cli("stage=export", "dataset=diabetes", artifacts_dir)
    assert_one_line_error(result, "default-8bit was trained with other dataset", exit_code=2)
    result = cli("stage=export", "dataset.random_state=7", artifacts_dir)
    assert_one_line_error(result, "default-8bit was trained with other dataset", exit_code=2)
    assert not (own_artifacts / "export").exists()


def test_the_header_proves_its_bound(models, split) -> None:
    plan = plan_fixed_point(models["default-8bit"], np.abs(split.X_train).max(axis=0))
    header = render_header(plan, "m", [f"x{j}" for j in range(8)], "provenance line")
    assert f"+ |INTERCEPT| = {plan.bound} <= 2^63 - 1" in header
    assert "static const int8_t m_codes[8]" in header
    assert "static const int32_t m_zero_point = 0;" in header
    assert f"static const int64_t m_intercept = INT64_C({plan.intercept});" in header
    assert f"m_output_scale = {float.hex(plan.output_scale)};" in header
    assert "static inline double m_predict(" in header
    with pytest.raises(ValueError, match="7 feature names for 8 inputs"):
        render_header(plan, "m", [f"x{j}" for j in range(7)], "")
