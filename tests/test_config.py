"""Every config group composes; impossible values are refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from mlops_lr.config import (
    CaliforniaDatasetConfig,
    Config,
    DiabetesDatasetConfig,
    ElasticNetConfig,
    LassoConfig,
    LinearRegressionConfig,
    RidgeConfig,
    TableDatasetConfig,
)
from mlops_lr.exceptions import ConfigError
from tests.conftest import CONFIG_DIR

# The extra overrides an option needs to be complete.
REQUIRED = {
    ("dataset", "csv"): ["dataset.path=data.csv", "dataset.target=price"],
    ("dataset", "parquet"): ["dataset.path=data/"],
    # A stream cannot be shuffled: the streaming engines need the hash split.
    ("engine", "stream"): ["dataset.split=hash"],
    ("engine", "dask"): ["dataset.split=hash"],
    # A sweep puts quantized models in Hydra's job directory, known only inside a real run.
    ("sweep", "bits"): ["paths.quantized_dir=quantized"],
    ("sweep", "alpha"): ["paths.artifacts_dir=artifacts"],
}
OPTIONAL_GROUPS = {"sweep"}  # not in the defaults list: appended with +group=option
EXPECTED_TYPES = {
    ("dataset", "california"): CaliforniaDatasetConfig,
    ("dataset", "csv"): TableDatasetConfig,
    ("dataset", "diabetes"): DiabetesDatasetConfig,
    ("model", "linear_regression"): LinearRegressionConfig,
    ("model", "ridge"): RidgeConfig,
    ("model", "lasso"): LassoConfig,
    ("model", "elastic_net"): ElasticNetConfig,
}
OPTIONS = sorted(
    (path.parent.name, path.stem)
    for path in CONFIG_DIR.glob("*/*.yaml")
    if path.parent.name not in {"hydra"}
)


def test_defaults(make_config, tmp_path: Path) -> None:
    config = make_config()
    assert isinstance(config, Config)
    assert config.stage == "train"
    assert isinstance(config.dataset, CaliforniaDatasetConfig)
    assert (config.dataset.test_size, config.dataset.random_state) == (0.2, 42)
    assert config.model._target_ == "sklearn.linear_model.LinearRegression"
    assert config.paths.artifacts_dir == str(tmp_path / "artifacts")


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_option_composes_and_validates(make_config, group: str, option: str) -> None:
    prefix = "+" if group in OPTIONAL_GROUPS else ""
    config = make_config(f"{prefix}{group}={option}", *REQUIRED.get((group, option), []))
    expected = EXPECTED_TYPES.get((group, option))
    if expected is not None:
        assert type(getattr(config, group)) is expected


def test_the_server_binds_loopback_by_default(make_config) -> None:
    serve = make_config("stage=serve").serve
    assert (serve.host, serve.port, serve.model) == ("127.0.0.1", 8000, "float")
    assert serve.max_rows == 10_000


def test_export_defaults_to_onnx_of_the_configured_quantized_model(make_config) -> None:
    config = make_config("stage=export", "quantization.bits=4")
    assert (config.export.format, config.export.model) == ("onnx", None)
    assert config.quantization.resolved_tag == "default-4bit"


def test_overrides_reach_the_typed_config(make_config) -> None:
    config = make_config(
        "dataset=csv",
        "dataset.path=x.parquet",
        "dataset.target=y",
        "dataset.features=[a,b]",
        "dataset.test_size=0.3",
        "model.fit_intercept=false",
    )
    assert config.dataset.features == ["a", "b"]
    assert config.dataset.test_size == 0.3
    assert config.model.fit_intercept is False


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["dataset.test_size=1.5"], "dataset.test_size=1.5"),
        (["dataset.test_size=0"], "dataset.test_size=0"),
        (["dataset.test_size=-0.1"], "dataset.test_size=-0.1"),
        (["model.n_jobs=0"], "model.n_jobs=0"),
        (["model=ridge", "model.alpha=-1"], "model.alpha=-1.0"),
        (["model=ridge", "model.alpha=inf"], "model.alpha=inf"),
        (["model=ridge", "model.solver=qr"], "model.solver='qr'"),
        (["model=ridge", "model.solver=lbfgs"], "model.solver='lbfgs'"),
        (["model=ridge", "model.positive=true", "model.solver=svd"], "model.solver='svd'"),
        (["model=ridge", "model.max_iter=0"], "model.max_iter=0"),
        (["model=ridge", "model.tol=-1"], "model.tol=-1.0"),
        (["model=lasso", "model.alpha=0"], "model.alpha=0.0"),
        (["model=lasso", "model.alpha=nan"], "model.alpha=nan"),
        (["model=lasso", "model.max_iter=0"], "model.max_iter=0"),
        (["model=lasso", "model.selection=greedy"], "model.selection='greedy'"),
        (["model=lasso", "model.random_state=-1"], "model.random_state=-1"),
        (["model=ridge", "model.random_state=4294967296"], "model.random_state=4294967296"),
        (["dataset.random_state=4294967296"], "dataset.random_state=4294967296"),
        (
            [
                "dataset=csv",
                "dataset.path=a.csv",
                "dataset.target=y",
                "dataset.missing_target=skip",
            ],
            "dataset.missing_target='skip'",
        ),
        (["model=elastic_net", "model.l1_ratio=1.5"], "model.l1_ratio=1.5"),
        (["model=elastic_net", "model.alpha=-0.1"], "model.alpha=-0.1"),
        (
            ["model=ridge", "model.positive=true", "engine=stream", "dataset.split=hash"],
            "model='sklearn.linear_model.Ridge with positive=true'",
        ),
        (["dataset=csv", "dataset.target=y"], "dataset.path is required"),
        (["dataset=csv", "dataset.path=a.csv"], "dataset.target is required"),
        (
            ["dataset=csv", "dataset.path=a.csv", "dataset.target=y", "dataset.features=[y]"],
            "dataset.features",
        ),
        (
            ["dataset=csv", "dataset.path=a.csv", "dataset.target=y", "dataset.features=[a,a]"],
            "dataset.features",
        ),
        (["dataset=csv", "dataset.path=' '", "dataset.target=y"], "dataset.path"),
        (["serve.port=-1"], "serve.port=-1"),
        (["serve.port=65536"], "serve.port=65536"),
        (["serve.host=' '"], "serve.host"),
        (["serve.model=../x"], "serve.model='../x'"),
        (["serve.max_rows=0"], "serve.max_rows=0"),
        (["serve.max_body_bytes=100"], "serve.max_body_bytes=100"),
        (["serve.shutdown_timeout=-1"], "serve.shutdown_timeout=-1"),
        (["serve.log_level=loud"], "serve.log_level='loud'"),
        (["export.format=pdf"], "export.format='pdf'"),
        (["export.model=../x"], "export.model='../x'"),
        (["dataset.split=shuffle"], "dataset.split='shuffle'"),
        (["dataset.random_state=-1"], "dataset.random_state=-1"),
        (["engine=stream", "dataset.split=hash", "engine.threads=0"], "engine.threads=0"),
        (["engine=dask", "dataset.split=hash", "engine.n_workers=0"], "engine.n_workers=0"),
        (["engine.batch_rows=0"], "engine.batch_rows=0"),
    ],
)
def test_impossible_values_are_refused_naming_the_key(make_config, overrides, key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key}".replace("[", r"\[")):
        make_config(*overrides)


def test_unknown_options_and_wrong_types_fail_while_composing(compose_cfg) -> None:
    with pytest.raises(MissingConfigException, match="dataset/nope"):
        compose_cfg("dataset=nope")
    with pytest.raises(ConfigCompositionException, match="test_size"):
        compose_cfg("dataset.test_size=abc")
    with pytest.raises(ConfigCompositionException, match="unknown_key"):
        compose_cfg("dataset.unknown_key=1")
    # Always copied: the stages score and calibrate on the training split after the fit.
    with pytest.raises(ConfigCompositionException, match="copy_X"):
        compose_cfg("model.copy_X=false")


@pytest.mark.parametrize(
    ("overrides", "tag", "expected"),
    [
        ([], "default-8bit", {"scheme": "symmetric", "rounding": "auto"}),
        (["quantization.bits=4"], "default-4bit", {"bits": 4}),
        (["quantization=uint8"], "uint8", {"scheme": "asymmetric", "granularity": "per_tensor"}),
        (["quantization=uint8", "quantization.bits=4"], "uint8-4bit", {"bits": 4}),
        (["quantization=int8"], "int8", {"scheme": "symmetric", "rounding": "nearest"}),
        (["quantization=int16"], "int16", {"bits": 16, "scale": "minmax"}),
        (["quantization.tag=mine"], "mine", {}),
    ],
)
def test_quantization_presets_and_tags(make_config, overrides, tag: str, expected) -> None:
    quantization = make_config(*overrides).quantization
    assert quantization.resolved_tag == tag
    for key, value in expected.items():
        assert getattr(quantization, key) == value


@pytest.mark.parametrize(
    "override",
    [
        "quantization.bits=1",
        "quantization.bits=17",
        "quantization.rounding=stochastic",
        "quantization.granularity=per_row",
        "quantization.scale=auto",
        "quantization.intercept_dtype=int8",
        "quantization.max_nodes=0",
        "quantization.tag=../escape",
        "quantization.quality.good=0.001",
        "stage=deploy",
    ],
)
def test_impossible_quantization_values_are_refused(make_config, override: str) -> None:
    key = override.split("=")[0]
    if key.startswith("quantization.quality."):
        key = "quantization.quality"  # the thresholds are checked together
    with pytest.raises(ConfigError, match=f"^{key}"):
        make_config(override)


def test_default_preset_estimator_and_core_agree(make_config) -> None:
    """conf/quantization/default.yaml, QuantizedLinearRegression() and default_spec() are one
    setting written three times (YAML, a scikit-learn signature, the core); keep them equal."""
    import dataclasses

    from mlops_lr import QuantizedLinearRegression
    from mlops_lr.quantize import default_spec

    preset = make_config().quantization
    estimator = QuantizedLinearRegression().get_params()
    for field in dataclasses.fields(default_spec()):
        core = getattr(default_spec(), field.name)
        assert getattr(preset, field.name) == core, field.name
        assert estimator[field.name] == core, field.name
