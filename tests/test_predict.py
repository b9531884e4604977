"""Stage `predict`: sample predictions, CSV predictions through the stage, bad input (more in
test_batch_predict.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_lr import artifacts, training
from mlops_lr.batch_predict import predict_files
from mlops_lr.data import Dataset, split_dataset
from mlops_lr.exceptions import ArtifactError, DataError
from mlops_lr.predictor import load_predictor
from mlops_lr.stages import predict
from tests.conftest import assert_one_line_error

ASSIGNMENT_SAMPLES = [0.71912284, 1.76401657, 2.70965883, 2.83892593, 2.60465725]


@pytest.fixture
def artifacts_dir(trained_artifacts: Path) -> Path:
    """Float model and the default 8-bit quantized model (shared by the session)."""
    return trained_artifacts


def run_predict(make_config, artifacts_dir: Path, *overrides: str):
    return predict.run(
        make_config("stage=predict", f"paths.artifacts_dir={artifacts_dir}", *overrides)
    )


def test_sample_predictions_are_the_assignment_ones(make_config, artifacts_dir, capsys) -> None:
    predictions = run_predict(make_config, artifacts_dir)
    assert np.round(predictions, 8).tolist() == ASSIGNMENT_SAMPLES
    out = capsys.readouterr().out
    assert "Sample Predictions: [0.71912284 1.76401657 2.70965883 2.83892593 2.60465725]" in out


def test_float_predictor_has_the_joblib_models_exact_parameters(
    artifacts_dir, california: Dataset
) -> None:
    estimator = training.load(artifacts_dir)
    predictor = load_predictor(artifacts_dir)
    assert predictor.coef.tobytes() == np.asarray(estimator.coef_, dtype=np.float64).tobytes()
    assert predictor.intercept == estimator.intercept_
    assert predictor.feature_names == california.feature_names
    X_test = split_dataset(california, 0.2, 42).X_test
    # The same terms, added in another order (BLAS's, against input order): a few ulps of the
    # largest term (|intercept| ≈ 37) apart.
    np.testing.assert_allclose(
        predictor.predict(X_test), estimator.predict(X_test), rtol=1e-13, atol=1e-12
    )
    assert (
        predictor.details["sha256"]
        == artifacts.read_manifest(artifacts_dir)["files"]["folded.json"]["sha256"]
    )


def test_a_modified_model_file_is_refused_before_predicting(artifacts_dir, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "artifacts"
    shutil.copytree(artifacts_dir, copy)
    (copy / "model.joblib").write_bytes(b"not the model")
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        load_predictor(copy)


def test_quantized_sample_predictions_use_the_quantized_model(
    make_config, artifacts_dir, california: Dataset
) -> None:
    predictions = run_predict(make_config, artifacts_dir, "predict.model=default-8bit")
    model = artifacts.load_quantized(artifacts_dir / "quantized" / "default-8bit").linear
    X_test = split_dataset(california, 0.2, 42).X_test[:5]
    np.testing.assert_allclose(predictions, model.predict(X_test), rtol=0, atol=1e-12)
    assert not np.array_equal(predictions, ASSIGNMENT_SAMPLES)
    assert np.max(np.abs(predictions - ASSIGNMENT_SAMPLES)) < 0.01


def test_csv_in_any_column_order_with_bom_in_chunks(
    artifacts_dir, california: Dataset, tmp_path: Path
) -> None:
    split = split_dataset(california, 0.2, 42)
    frame = pd.DataFrame(split.X_test, columns=list(california.feature_names))
    frame.insert(0, "house_id", [f"h{i}" for i in range(len(frame))])
    frame = frame[list(reversed(frame.columns))]
    source = tmp_path / "rows.csv"
    source.write_text("\ufeff" + frame.to_csv(index=False, float_format="%.17g"), encoding="utf-8")
    predictor = load_predictor(artifacts_dir)

    rows = predict_files(predictor, source, tmp_path / "preds.csv", batch_rows=1000)

    written = pd.read_csv(tmp_path / "preds.csv")
    assert rows == len(frame) == 4128
    assert list(written.columns) == [*frame.columns, "prediction"]
    assert written["house_id"].tolist() == frame["house_id"].tolist()
    expected = predictor.predict(split.X_test)
    np.testing.assert_array_equal(written["prediction"].to_numpy(), expected)
    np.testing.assert_allclose(expected[:5], ASSIGNMENT_SAMPLES, atol=5e-9)


HEADER = "MedInc,HouseAge,AveRooms,AveBedrms,Population,AveOccup,Latitude,Longitude\n"
ROW = "8.3,41,6.9,1.0,322,2.5,37.8,-122.2\n"
BAD_INPUTS = {
    "missing_column.csv": (
        HEADER.replace(",Longitude", "") + "1,2,3,4,5,6,7\n",
        "['Longitude'] not found",
    ),
    "text.csv": (
        HEADER + ROW + ROW.replace("322", "many"),
        "'Population' is not numeric: 'many' on line 3",
    ),
    "empty_cell.csv": (
        HEADER + ROW * 3 + ROW.replace("41", ""),
        "'HouseAge' has a missing value on line 5 (the model has no fill for it)",
    ),
    "empty.csv": ("", "the file is empty"),
    "header_only.csv": (HEADER, "no data rows"),
    "header_without_line_break.csv": (HEADER.rstrip("\n"), "no data rows"),
    "longer_rows.csv": (HEADER + ("id," + ROW) * 3, "line 2 has 9 fields, the header 8"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_csv_is_one_line_and_leaves_no_output(
    cli, artifacts_dir, tmp_path: Path, name: str
) -> None:
    content, message = BAD_INPUTS[name]
    (tmp_path / name).write_text(content)
    result = cli(
        "stage=predict",
        f"paths.artifacts_dir={artifacts_dir}",
        f"predict.input={tmp_path / name}",
        f"predict.output={tmp_path / 'out.csv'}",
    )
    assert_one_line_error(result, message, exit_code=3)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in {".csv", ".part"}) == [name]


def test_a_missing_input_is_named_before_its_default_output(
    cli, artifacts_dir, tmp_path: Path
) -> None:
    """Without predict.output, the output is named after the input: a missing input is "not
    found", not "a directory or a glob"."""
    result = cli(
        "stage=predict",
        f"paths.artifacts_dir={artifacts_dir}",
        f"predict.input={tmp_path / 'missing.csv'}",
    )
    assert_one_line_error(
        result, f"prediction input not found: {tmp_path / 'missing.csv'}", exit_code=3
    )


def test_a_bad_chunk_late_in_the_file_leaves_no_output(artifacts_dir, tmp_path: Path) -> None:
    source = tmp_path / "late.csv"
    source.write_text(HEADER + ROW * 25 + ROW.replace("37.8", "nan"))
    with pytest.raises(DataError, match="line 27"):
        predict_files(load_predictor(artifacts_dir), source, tmp_path / "out.csv", batch_rows=10)
    assert not (tmp_path / "out.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["late.csv"]


def test_unknown_model_and_bad_settings(cli, artifacts_dir) -> None:
    with pytest.raises(ArtifactError, match="no quantized model 'int4'"):
        load_predictor(artifacts_dir, "int4")
    result = cli("stage=predict", f"paths.artifacts_dir={artifacts_dir}", "predict.output=x.csv")
    assert_one_line_error(result, "predict.output='x.csv' is not allowed", exit_code=2)
    result = cli("stage=predict", f"paths.artifacts_dir={artifacts_dir}", "predict.model=../x")
    assert_one_line_error(result, "predict.model='../x' is not allowed", exit_code=2)
