"""Every config group composes; impossible values are refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from mlops_lr.config import (
    CaliforniaDatasetConfig,
    Config,
    DiabetesDatasetConfig,
    LinearRegressionConfig,
    Stage,
    TableDatasetConfig,
)
from mlops_lr.exceptions import ConfigError
from tests.conftest import CONFIG_DIR

# The extra overrides an option needs to be complete.
REQUIRED = {("dataset", "csv"): ["dataset.path=data.csv", "dataset.target=price"]}
EXPECTED_TYPES = {
    ("dataset", "california"): CaliforniaDatasetConfig,
    ("dataset", "csv"): TableDatasetConfig,
    ("dataset", "diabetes"): DiabetesDatasetConfig,
    ("model", "linear_regression"): LinearRegressionConfig,
}
OPTIONS = sorted(
    (path.parent.name, path.stem)
    for path in CONFIG_DIR.glob("*/*.yaml")
    if path.parent.name not in {"hydra"}
)


def test_defaults(make_config, tmp_path: Path) -> None:
    config = make_config()
    assert isinstance(config, Config)
    assert config.stage is Stage.train
    assert isinstance(config.dataset, CaliforniaDatasetConfig)
    assert (config.dataset.test_size, config.dataset.random_state) == (0.2, 42)
    assert config.model._target_ == "sklearn.linear_model.LinearRegression"
    assert config.paths.artifacts_dir == str(tmp_path / "artifacts")


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_option_composes_and_validates(make_config, group: str, option: str) -> None:
    config = make_config(f"{group}={option}", *REQUIRED.get((group, option), []))
    expected = EXPECTED_TYPES.get((group, option))
    if expected is not None:
        assert type(getattr(config, group)) is expected


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
    ],
)
def test_impossible_values_are_refused_naming_the_key(make_config, overrides, key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key}".replace("[", r"\[")):
        make_config(*overrides)


def test_unknown_options_and_wrong_types_fail_while_composing(compose_cfg) -> None:
    with pytest.raises(MissingConfigException, match="dataset/nope"):
        compose_cfg("dataset=nope")
    with pytest.raises(ConfigCompositionException, match="stage"):
        compose_cfg("stage=nope")
    with pytest.raises(ConfigCompositionException, match="test_size"):
        compose_cfg("dataset.test_size=abc")
    with pytest.raises(ConfigCompositionException, match="unknown_key"):
        compose_cfg("dataset.unknown_key=1")
