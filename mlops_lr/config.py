"""Typed structured configs: the schema behind every YAML file under ``conf/``.

Each group option in ``conf/`` extends one of these dataclasses (``schema/<group>/<name>``),
so OmegaConf rejects wrong types while composing and ``__post_init__`` rejects impossible values
when :func:`to_config` turns the composed config into these objects. Nothing here imports Hydra
except :func:`register_configs`, so the schema is usable without it.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, List, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from mlops_lr.exceptions import ConfigError


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise a one-line :class:`ConfigError` naming ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


class Stage(str, Enum):
    """What ``python -m mlops_lr`` does; names are the command-line values."""

    train = "train"


@dataclass
class DatasetConfig:
    """Where the data comes from and how it is split into train and test sets."""

    GROUP: ClassVar[str] = "dataset"
    name: str = MISSING
    test_size: float = 0.2
    random_state: int = 42

    def __post_init__(self) -> None:
        _check(
            0.0 < self.test_size < 1.0,
            f"{self.GROUP}.test_size",
            self.test_size,
            "a fraction strictly between 0 and 1",
        )


@dataclass
class CaliforniaDatasetConfig(DatasetConfig):
    """scikit-learn's California Housing (20,640 rows, 8 features)."""

    name: str = "california"
    # None: scikit-learn's data home ($SCIKIT_LEARN_DATA, else ~/scikit_learn_data).
    data_home: Optional[str] = None
    download_if_missing: bool = True


@dataclass
class DiabetesDatasetConfig(DatasetConfig):
    """scikit-learn's bundled diabetes data (442 rows, 10 features): needs no download."""

    name: str = "diabetes"


@dataclass
class TableDatasetConfig(DatasetConfig):
    """A CSV or Parquet file with a header row and a named target column."""

    name: str = "csv"
    path: str = MISSING
    target: str = MISSING
    # None: every column but the target. Matched by name, so column order does not matter.
    features: Optional[List[str]] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(bool(self.path.strip()), f"{self.GROUP}.path", self.path, "a file path")
        _check(bool(self.target.strip()), f"{self.GROUP}.target", self.target, "a column name")
        if self.features is not None:
            features = list(self.features)
            _check(
                len(features) > 0 and len(set(features)) == len(features),
                f"{self.GROUP}.features",
                features,
                "a non-empty list of distinct column names, or null for all but the target",
            )
            _check(
                self.target not in features,
                f"{self.GROUP}.features",
                features,
                f"must not contain the target column {self.target!r}",
            )


@dataclass
class LinearRegressionConfig:
    """``sklearn.linear_model.LinearRegression`` and its constructor parameters."""

    GROUP: ClassVar[str] = "model"
    _target_: str = "sklearn.linear_model.LinearRegression"
    fit_intercept: bool = True
    positive: bool = False
    copy_X: bool = True
    n_jobs: Optional[int] = None

    def __post_init__(self) -> None:
        _check(
            self.n_jobs is None or self.n_jobs != 0,
            f"{self.GROUP}.n_jobs",
            self.n_jobs,
            "null, a positive count, or -1 for all cores",
        )


@dataclass
class PathsConfig:
    """Where artifacts go. Relative paths are relative to the working directory."""

    root_dir: str = MISSING
    artifacts_dir: str = MISSING


@dataclass
class Config:
    """The whole composed configuration of one run."""

    stage: Stage = Stage.train
    dataset: Any = MISSING
    model: Any = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)

    def __post_init__(self) -> None:
        _check(
            isinstance(self.dataset, DatasetConfig),
            "dataset",
            type(self.dataset).__name__,
            "a dataset config from conf/dataset/ (its YAML must extend /schema/dataset)",
        )
        _check(
            isinstance(self.model, LinearRegressionConfig),
            "model",
            type(self.model).__name__,
            "a model config from conf/model/ (its YAML must extend /schema/model)",
        )


# Stored under schema/<group>/ so they do not show up as options of the groups themselves;
# a YAML option extends one with `defaults: [/schema/<group>@_here_: <name>]`.
SCHEMAS = {
    "dataset": {
        "california": CaliforniaDatasetConfig,
        "diabetes": DiabetesDatasetConfig,
        "table": TableDatasetConfig,
    },
    "model": {"linear_regression": LinearRegressionConfig},
    "paths": {"paths": PathsConfig},
}


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore so that YAML files can extend them."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="config_schema", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=node)


def to_config(cfg: DictConfig) -> Config:
    """Turn a composed ``DictConfig`` into validated :class:`Config` objects.

    Raises
    ------
    ConfigError
        A value is missing or impossible; the message names the key and what is allowed.
    """
    try:
        config = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as error:
        raise ConfigError(
            f"{error.full_key} is required: set it on the command line, e.g. {error.full_key}=..."
        ) from None
    if not isinstance(config, Config):
        raise ConfigError("the root config must extend config_schema (see conf/config.yaml)")
    return config
