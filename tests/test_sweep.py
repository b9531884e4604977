"""Multirun sweeps: the report callback, failed jobs, train once, the joblib launcher."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from mlops_lr.sweep import model_overrides, model_parameter, parameter_value, without_parameter


def multirun(
    tmp_path: Path, *overrides: str, shared_artifacts: bool = True
) -> subprocess.CompletedProcess[str]:
    """A real ``python -m mlops_lr -m`` run; the jobs share ``tmp_path/artifacts`` unless the
    sweep config gives each its own (``shared_artifacts=False``)."""
    command = [
        sys.executable,
        "-m",
        "mlops_lr",
        "-m",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *([f"paths.artifacts_dir={tmp_path / 'artifacts'}"] if shared_artifacts else []),
        *overrides,
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)


def read_rows(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "sweep_results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_three_job_sweep_reports_every_job_and_trains_once(tmp_path: Path) -> None:
    result = multirun(tmp_path, "stage=quantize", "quantization.bits=4,8,16")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Trained the float model first") == 1
    sweep_dir = tmp_path / "sweep"
    rows = read_rows(sweep_dir)
    assert [(r["job"], r["bits"], r["status"]) for r in rows] == [
        ("0", "4", "ok"),
        ("1", "8", "ok"),
        ("2", "16", "ok"),
    ]
    for row in rows:
        tag = f"default-{row['bits']}bit"
        metrics = json.loads(
            (tmp_path / "artifacts" / "quantized" / tag / "metrics.json").read_text()
        )
        assert float(row["r2_quant"]) == metrics["r2_quant"]
        assert float(row["mean_abs_pred_diff"]) == metrics["mean_abs_pred_diff"]
        assert row["overrides"].endswith(f"stage=quantize quantization.bits={row['bits']}")
    table = (sweep_dir / "sweep_results.md").read_text()
    assert "3 jobs, 0 failed" in table
    assert "| model" not in table  # one float model: no model column
    assert table.count("★") == 4  # one per bit width, plus the legend line
    assert (sweep_dir / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Sweep report:" in result.stdout

    for name in ("sweep_results.csv", "sweep_results.md", "sweep.png"):
        (sweep_dir / name).unlink()
    rebuilt = subprocess.run(
        [sys.executable, "-m", "mlops_lr.sweep", str(sweep_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert read_rows(sweep_dir) == rows


def test_a_failed_job_is_reported_and_fails_the_multirun(tmp_path: Path) -> None:
    result = multirun(tmp_path, "stage=quantize", "quantization.bits=1,8")
    assert result.returncode != 0
    assert "1 of 2 sweep jobs failed" in result.stderr + result.stdout
    rows = read_rows(tmp_path / "sweep")
    assert [(r["bits"], r["status"]) for r in rows] == [("", "failed"), ("8", "ok")]
    assert "quantization.bits=1 is not allowed" in rows[0]["error"]
    assert float(rows[1]["r2_quant"]) > 0.57
    assert "1 failed" in (tmp_path / "sweep" / "sweep_results.md").read_text()


def test_sweep_config_runs_on_joblib_and_keeps_models_in_job_dirs(tmp_path: Path) -> None:
    result = multirun(
        tmp_path, "+sweep=bits", "quantization.bits=2", "quantization.rounding=nearest"
    )
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "sweep")
    assert sorted(r["granularity"] for r in rows) == ["per_feature_pow2", "per_tensor"]
    assert "Joblib.Parallel" in result.stdout + result.stderr
    for job in ("0", "1"):
        assert (tmp_path / "sweep" / job / "quantized" / "default-2bit" / "model.json").exists()
    assert not (tmp_path / "artifacts" / "quantized").exists()


def test_submitit_local_launcher_runs_the_same_sweep(tmp_path: Path) -> None:
    result = multirun(
        tmp_path,
        "+sweep=bits",
        "hydra/launcher=submitit_local",
        "quantization.bits=4",
        "quantization.rounding=hessian",
    )
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "sweep")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert (tmp_path / "sweep" / ".submitit").is_dir()


def test_alpha_sweep_trains_a_model_per_job_and_plots_against_alpha(tmp_path: Path) -> None:
    result = multirun(
        tmp_path,
        "+sweep=alpha",
        "model=ridge",
        "model.alpha=0.1,1000,100000",
        shared_artifacts=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Trained the float model first") == 3
    sweep_dir = tmp_path / "sweep"
    rows = read_rows(sweep_dir)
    assert [r["model"] for r in rows] == [
        f"model=ridge model.alpha={alpha}" for alpha in ("0.1", "1000", "100000")
    ]
    for row in rows:
        job_artifacts = sweep_dir / row["job"] / "artifacts"
        manifest = json.loads((job_artifacts / "manifest.json").read_text())
        assert f"model.alpha={manifest['training']['model']['alpha']:g}" in row["model"]
        float_metrics = json.loads((job_artifacts / "metrics.json").read_text())
        assert float(row["r2_float"]) == float_metrics["r2"]
    assert len({row["r2_float"] for row in rows}) == 3  # three different float models
    assert not (tmp_path / "artifacts").exists()  # nothing shared between the jobs
    table = (sweep_dir / "sweep_results.md").read_text()
    assert "| model " in table
    assert "float R²" in table
    assert table.count("★") == 4  # one per float model (one bit width), plus the legend line
    assert (sweep_dir / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_float_model_overrides_and_the_varied_parameter() -> None:
    overrides = (
        "stage=quantize ++model.alpha=1e-3 quantization.bits=4 dataset.test_size=0.3 +model=lasso"
    )
    assert model_overrides(overrides) == "+model=lasso ++model.alpha=1e-3 dataset.test_size=0.3"
    rows = [
        {"model": "model=ridge model.alpha=0.1 model.solver=svd"},
        {"model": "model=ridge model.alpha='10' model.solver=svd"},
        {"model": "model=lasso model.alpha=10 model.solver=svd"},
    ]
    assert model_parameter(rows) == "alpha"
    assert [parameter_value(row, "alpha") for row in rows] == [0.1, 10.0, 10.0]
    assert without_parameter(rows[2], "alpha") == "model=lasso model.solver=svd"
    # Two numbers varied, or one some rows lack: no single axis to plot against.
    assert (
        model_parameter(
            [{"model": "model.alpha=1 model.tol=1"}, {"model": "model.alpha=2 model.tol=2"}]
        )
        is None
    )
    assert model_parameter([{"model": "model.alpha=1"}, {"model": "model=ridge"}]) is None
