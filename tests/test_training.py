"""Training reproduces the reference numbers; artifacts are written atomically and verified."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import ElasticNet, Lasso, Ridge

from mlops_lr import artifacts, training
from mlops_lr.data import Dataset
from mlops_lr.exceptions import ArtifactError, ConfigError
from mlops_lr.metrics import regression_metrics

REFERENCE_COEF = [
    0.448675,
    0.009724,
    -0.123323,
    0.783145,
    -0.000002,
    -0.003526,
    -0.419792,
    -0.433708,
]


@pytest.fixture(scope="module")
def trained_reference(california: Dataset):
    """The default config on California Housing, trained once for this module."""
    from hydra import compose, initialize_config_dir

    from mlops_lr.config import to_config
    from tests.conftest import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        config = to_config(compose("config", overrides=["paths.artifacts_dir=unused"]))
    return config, training.fit_and_evaluate(config, *training.prepare_data(config))


def test_reference_numbers_to_six_decimals(trained_reference) -> None:
    _, trained = trained_reference
    metrics = trained.metrics
    assert metrics["r2"] >= 0.57
    assert round(metrics["r2"], 6) == 0.575788
    assert round(metrics["mse"], 6) == 0.555892
    assert np.round(trained.model.coef_, 6).tolist() == REFERENCE_COEF
    assert round(trained.model.intercept_, 6) == -37.023278
    assert (metrics["n_train"], metrics["n_test"]) == (16512, 4128)
    assert metrics["rmse"] == pytest.approx(np.sqrt(metrics["mse"]))
    assert 0.60 < metrics["train_r2"] < 0.62


def test_save_writes_model_metrics_and_manifest(trained_reference, tmp_path: Path) -> None:
    config, trained = trained_reference
    manifest = training.save(trained, config, tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "folded.json",
        "manifest.json",
        "metrics.json",
        "model.joblib",
        "samples.json",
    ]
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == manifest
    for name, entry in on_disk["files"].items():
        data = (tmp_path / name).read_bytes()
        assert entry == {"sha256": artifacts.sha256_bytes(data), "bytes": len(data)}
    assert on_disk["training"]["dataset"]["name"] == "california"
    assert len(on_disk["data_fingerprint"]) == 64
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    expected_keys = {"r2", "mse", "rmse", "mae", "train_r2", "n_train", "n_test", "coef"}
    expected_keys |= {"feature_names", "intercept", "dataset", "created_at", "versions"}
    assert expected_keys <= set(metrics)
    assert set(metrics["versions"]) == {"python", "sklearn", "numpy"}

    loaded = training.load(tmp_path)
    X_test = trained.split.X_test
    np.testing.assert_array_equal(loaded.predict(X_test), trained.model.predict(X_test))


def test_a_tampered_model_is_refused(trained_reference, tmp_path: Path) -> None:
    config, trained = trained_reference
    training.save(trained, config, tmp_path)
    model_file = tmp_path / "model.joblib"
    data = bytearray(model_file.read_bytes())
    data[-2] ^= 0x01
    model_file.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        training.load(tmp_path)


def test_missing_artifacts_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"no manifest\.json"):
        training.load(tmp_path)
    artifacts.write_artifacts(tmp_path, {"metrics.json": b"{}"}, {})
    with pytest.raises(ArtifactError, match=r"model\.joblib is not listed"):
        training.load(tmp_path)


def test_a_failed_write_leaves_the_previous_artifacts_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts.write_artifacts(tmp_path, {"a.bin": b"old a", "b.bin": b"old b"}, {"run": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_stage = artifacts._stage
    calls = []

    def failing_stage(directory: Path, data: bytes) -> Path:
        calls.append(data)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_stage(directory, data)

    monkeypatch.setattr(artifacts, "_stage", failing_stage)
    with pytest.raises(OSError, match="disk full"):
        artifacts.write_artifacts(tmp_path, {"a.bin": b"new a", "b.bin": b"new b"}, {"run": 2})

    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files either


class NotARegressor:
    """Accepts LinearRegression's parameters but is no regressor."""

    def __init__(self, **params) -> None:
        self.params = params


def test_a_target_that_is_not_a_regressor_or_cannot_be_built_is_refused(make_config) -> None:
    config = make_config(f"model._target_={__name__}.NotARegressor")
    with pytest.raises(ConfigError, match="not a scikit-learn regressor"):
        training.build_model(config.model)
    config = make_config("model._target_=sklearn.cluster.KMeans")
    with pytest.raises(ConfigError, match=r"cannot be built: .*unexpected keyword argument"):
        training.build_model(config.model)


@pytest.mark.parametrize(
    ("overrides", "reference"),
    [
        (["model=ridge"], Ridge()),
        (["model=ridge", "model.alpha=1000", "model.solver=svd"], Ridge(alpha=1000, solver="svd")),
        (["model=ridge", "model.positive=true"], Ridge(positive=True)),
        (["model=lasso", "model.alpha=0.01"], Lasso(alpha=0.01)),
        (
            ["model=elastic_net", "model.alpha=0.01", "model.l1_ratio=0.3"],
            ElasticNet(alpha=0.01, l1_ratio=0.3),
        ),
        (["model=elastic_net", "model.fit_intercept=false"], ElasticNet(fit_intercept=False)),
    ],
    ids=["ridge", "ridge-svd", "ridge-positive", "lasso", "elastic-net", "elastic-net-no-b"],
)
def test_every_model_option_fits_as_scikit_learn_does(
    make_config, california: Dataset, overrides: list[str], reference
) -> None:
    """Each option's parameters reach its estimator: the same coefficients and test metrics as
    the scikit-learn estimator built here, on the same California split."""
    config = make_config(*overrides)
    trained = training.fit_and_evaluate(config, *training.prepare_data(config))
    split = trained.split
    reference.fit(split.X_train, split.y_train)
    assert type(trained.model) is type(reference)
    np.testing.assert_allclose(trained.metrics["coef"], reference.coef_, rtol=1e-9, atol=1e-12)
    assert trained.metrics["intercept"] == pytest.approx(reference.intercept_, rel=1e-9, abs=1e-12)
    expected = regression_metrics(split.y_test, reference.predict(split.X_test))
    for name in ("r2", "mse", "rmse", "mae"):
        assert trained.metrics[name] == pytest.approx(expected[name], rel=1e-9)


def test_the_stages_take_every_model(cli, tmp_path: Path) -> None:
    """Quantize trains the configured model first, predict serves its numbers, and another
    alpha is another model: never reused in its place."""
    lasso = ("model=lasso", "model.alpha=0.01")
    result = cli("stage=quantize", *lasso)
    assert result.returncode == 0, result.stderr
    assert "Trained the float model first" in result.stdout
    assert "R² Score (quantized, default-8bit)" in result.stdout
    manifest = json.loads((tmp_path / "artifacts" / "manifest.json").read_text())
    assert manifest["training"]["model"]["_target_"] == "sklearn.linear_model.Lasso"
    assert manifest["training"]["model"]["alpha"] == 0.01
    result = cli("stage=predict", *lasso)
    assert result.returncode == 0, result.stderr
    assert "Sample Predictions:" in result.stdout
    result = cli("stage=quantize", "model=lasso", "model.alpha=0.02")
    assert result.returncode == 0, result.stderr
    assert "trained with another dataset, preprocess or model config" in result.stdout
