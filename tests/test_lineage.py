"""Lineage: a quantized model (and an export of it) remembers the float model it was made
from; once the float model is trained again, predict, serve and export refuse it in one line
(unless allow_stale=true), and `stage=models` lists every saved model and which are stale."""

from __future__ import annotations

from pathlib import Path

from mlops_lr.inventory import saved_models
from mlops_lr.predictor import load_predictor
from tests.conftest import assert_one_line_error

STALE = "quantized model 'default-8bit' is stale: it was made from float model"


def test_a_retrained_float_model_makes_its_quantized_models_and_exports_stale(
    cli, tmp_path: Path
) -> None:
    artifacts_dir = tmp_path / "artifacts"
    for stage in ("stage=train", "stage=quantize", "stage=export"):
        result = cli(stage)
        assert result.returncode == 0, result.stderr
    listed = {m.name: m for m in saved_models(artifacts_dir)}
    assert list(listed) == ["float", "default-8bit", "export/default-8bit/onnx"]
    assert all(m.stale is None for m in listed.values())
    assert listed["default-8bit"].r2 == load_predictor(artifacts_dir, "default-8bit").details["r2"]
    assert listed["default-8bit"].source.startswith("float ")

    assert cli("stage=train", "model=ridge").returncode == 0  # the float model changes
    for stage in ("stage=predict", "stage=serve", "stage=export"):
        model = {"stage=predict": "predict", "stage=serve": "serve", "stage=export": "export"}
        result = cli(stage, f"{model[stage]}.model=default-8bit")
        assert_one_line_error(result, STALE, exit_code=4)
        assert "allow_stale=true" in result.stderr
    result = cli("stage=predict", "predict.model=default-8bit", "allow_stale=true")
    assert result.returncode == 0, result.stderr
    assert "Sample Predictions:" in result.stdout
    assert load_predictor(artifacts_dir, "default-8bit", allow_stale=True).details["stale"]

    result = cli("stage=models")
    assert result.returncode == 0, result.stderr
    rows = {line.split(" | ")[0].strip("| "): line for line in result.stdout.splitlines()}
    assert rows["float"].startswith("| float | Ridge, preprocess=none | data ")
    assert "yes: it was made from float model" in rows["default-8bit"]
    assert "yes: its model 'default-8bit' is stale" in rows["export/default-8bit/onnx"]
    assert "Stale: default-8bit, export/default-8bit/onnx." in result.stdout

    # Quantizing again refreshes the quantized model; the export is then of an older one.
    assert cli("stage=quantize", "model=ridge").returncode == 0
    listed = {m.name: m for m in saved_models(artifacts_dir)}
    assert listed["default-8bit"].stale is None
    assert (
        listed["export/default-8bit/onnx"].stale == "its model 'default-8bit' was made again since"
    )
    assert cli("stage=predict", "predict.model=default-8bit").returncode == 0


def test_without_a_float_model_every_quantized_model_is_stale(cli, tmp_path: Path) -> None:
    assert cli("stage=quantize").returncode == 0
    for name in ("model.joblib", "folded.json", "metrics.json", "samples.json", "manifest.json"):
        (tmp_path / "artifacts" / name).unlink()
    (model,) = saved_models(tmp_path / "artifacts")
    assert model.stale == f"there is no float model in {tmp_path / 'artifacts'} any more"
    result = cli("stage=predict", "predict.model=default-8bit")
    assert_one_line_error(result, "is stale: there is no float model", exit_code=4)


def test_models_with_nothing_saved(cli, tmp_path: Path) -> None:
    result = cli("stage=models")
    assert result.returncode == 0
    assert "No saved models" in result.stdout
    assert saved_models(tmp_path / "nothing") == []
