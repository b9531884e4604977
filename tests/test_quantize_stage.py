"""Stage `quantize`: artifacts, safe format, determinism, reuse of the trained model, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlops_lr import artifacts, training
from mlops_lr.exceptions import ArtifactError
from mlops_lr.stages import quantize, train
from tests.conftest import assert_one_line_error

METRIC_KEYS = {
    "bits",
    "scheme",
    "granularity",
    "rounding",
    "r2_float",
    "r2_quant",
    "mse_float",
    "mse_quant",
    "max_abs_pred_diff",
    "mean_abs_pred_diff",
    "max_coef_error",
    "intercept_error",
    "size_bytes_float",
    "size_bytes_quant",
    "quality",
}


@pytest.fixture
def artifacts_dir(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


def test_quantize_trains_first_then_reuses_the_model(make_config, artifacts_dir, capsys) -> None:
    metrics = quantize.run(make_config("stage=quantize", "quantization=int16"))
    first = capsys.readouterr().out
    assert "Trained the float model first (no trained model in" in first
    assert set(metrics) >= METRIC_KEYS
    assert metrics["r2_float"] == pytest.approx(0.5757877060324524, abs=1e-12)
    directory = artifacts_dir / "quantized" / "int16"
    assert sorted(p.name for p in directory.iterdir()) == [
        "manifest.json",
        "metrics.json",
        "model.json",
        "report.md",
    ]
    assert json.loads((directory / "metrics.json").read_text()) == metrics
    model_before = (artifacts_dir / "model.joblib").read_bytes()

    quantize.run(make_config("stage=quantize", "quantization=uint8"))
    second = capsys.readouterr().out
    assert "Trained the float model first" not in second
    assert (artifacts_dir / "model.joblib").read_bytes() == model_before
    for table in ("Model size", "Quantization accuracy", "Performance", "Coefficients"):
        assert f"## {table}" in second
    assert "## First 5 test predictions" in second
    assert "| Population |" in second


def test_a_changed_training_config_retrains(make_config, capsys) -> None:
    train.run(make_config("dataset.random_state=1"))
    capsys.readouterr()
    quantize.run(make_config("stage=quantize", "quantization=int8"))
    assert "trained with another dataset, preprocess or model config" in capsys.readouterr().out


def test_quantized_model_loads_without_pickle_and_predicts_the_same(
    make_config, artifacts_dir
) -> None:
    metrics = quantize.run(make_config("stage=quantize", "quantization.bits=4"))
    directory = artifacts_dir / "quantized" / "default-4bit"
    document = json.loads((directory / "model.json").read_text())  # plain JSON, no pickle
    assert document["format"].startswith("mlops-lr/quantized-folded/")
    model = artifacts.load_quantized(directory).linear
    assert model.spec.bits == 4
    assert model.codes.dtype == np.int8
    from mlops_lr.data import load_california, split_dataset

    split = split_dataset(load_california(download_if_missing=False), 0.2, 42)
    difference = np.abs(
        model.predict(split.X_test) - artifacts_joblib_predict(artifacts_dir, split)
    )
    assert difference.max() == pytest.approx(metrics["max_abs_pred_diff"], rel=1e-12)


def artifacts_joblib_predict(artifacts_dir: Path, split) -> np.ndarray:
    from mlops_lr import training

    return training.load(artifacts_dir).predict(split.X_test)


def test_tampered_quantized_model_is_refused(make_config, artifacts_dir) -> None:
    quantize.run(make_config("stage=quantize", "quantization=uint8"))
    path = artifacts_dir / "quantized" / "uint8" / "model.json"
    document = json.loads(path.read_text())
    document["linear"]["scale"] *= 2
    path.write_text(json.dumps(document))
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        artifacts.load_quantized(path.parent)


def test_same_config_same_data_gives_a_byte_identical_model(make_config, tmp_path) -> None:
    files = []
    for run in ("a", "b"):
        quantize.run(make_config("stage=quantize", f"paths.artifacts_dir={tmp_path / run}"))
        files.append((tmp_path / run / "quantized" / "default-8bit" / "model.json").read_bytes())
    assert files[0] == files[1]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("quantization.bits=1", "quantization.bits=1 is not allowed: an integer from 2 to 16"),
        ("quantization.bits=17", "quantization.bits=17 is not allowed"),
        ("quantization.rounding=stochastic", "quantization.rounding='stochastic' is not allowed"),
        ("quantization.scheme=float", "quantization.scheme='float' is not allowed"),
    ],
)
def test_bad_quantization_config_is_one_line_and_writes_nothing(
    cli, tmp_path: Path, override: str, message: str
) -> None:
    result = cli("stage=quantize", override)
    assert_one_line_error(result, message, exit_code=2)
    assert not (tmp_path / "artifacts").exists()


def test_a_model_without_intercept_stays_without_one(make_config) -> None:
    metrics = quantize.run(
        make_config("stage=quantize", "model.fit_intercept=false", "quantization.bits=8")
    )
    model = artifacts.load_quantized(
        Path(make_config().paths.artifacts_dir) / "quantized" / "default-8bit"
    )
    assert model.linear.intercept_value() == 0.0
    assert model.dequantized().intercept == 0.0
    assert metrics["intercept_error"] == 0.0


def test_settings_that_do_not_change_the_fit_reuse_the_model(make_config, capsys) -> None:
    train.run(make_config())
    capsys.readouterr()
    quantize.run(
        make_config("stage=quantize", "model.n_jobs=2", "dataset.download_if_missing=false")
    )
    assert "Trained the float model first" not in capsys.readouterr().out


def _quantize_job(artifacts_dir: str, bits: int, start) -> tuple[str | None, str]:
    """One `stage=quantize` run in its own process (as a parallel sweep job); all jobs pass
    ``start`` (a barrier) together, so they race for the empty cache."""
    import contextlib
    import io

    from hydra import compose, initialize_config_dir

    from mlops_lr.config import register_configs, to_config
    from tests.conftest import CONFIG_DIR

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        config = to_config(
            compose(
                "config",
                overrides=[
                    "stage=quantize",
                    f"paths.artifacts_dir={artifacts_dir}",
                    f"quantization.bits={bits}",
                ],
            )
        )
    output = io.StringIO()
    start.wait()
    with contextlib.redirect_stdout(output):
        quantize.run(config)
    return output.getvalue(), (Path(artifacts_dir) / "model.joblib").read_bytes().hex()[:16]


def test_four_parallel_jobs_on_a_cold_cache_train_once(artifacts_dir) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(4) as pool:
        start = manager.Barrier(4)
        jobs = [(str(artifacts_dir), bits, start) for bits in (2, 4, 8, 16)]
        results = pool.starmap(_quantize_job, jobs)
    trained = [out for out, _ in results if "Trained the float model first" in out]
    assert len(trained) == 1
    training.load(artifacts_dir)  # one valid model: its sha256 matches the manifest
    for bits in (2, 4, 8, 16):
        artifacts.load_quantized(artifacts_dir / "quantized" / f"default-{bits}bit")
    assert not [p for p in artifacts_dir.iterdir() if p.name.startswith(".tmp-")]
