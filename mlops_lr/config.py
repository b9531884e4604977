"""Typed structured configs: the schema behind every YAML file under ``conf/``.

Each group option in ``conf/`` extends one of these dataclasses (``schema/<group>/<name>``),
so OmegaConf rejects wrong types while composing and ``__post_init__`` rejects impossible values
when :func:`to_config` turns the composed config into these objects. Nothing here imports Hydra
except :func:`register_configs`, so the schema is usable without it.
"""

import math
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, ClassVar, List, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from mlops_lr.exceptions import ConfigError
from mlops_lr.quantize import (
    GRANULARITIES,
    INTERCEPT_DTYPES,
    MAX_BITS,
    MIN_BITS,
    ROUNDINGS,
    SCALES,
    SCHEMES,
)


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise a one-line :class:`ConfigError` naming ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, key, value, "one of " + ", ".join(choices))


def _is_name(text: str) -> bool:
    """A safe directory name: letters, digits, '-', '_', '.'; not starting with '.'."""
    return bool(re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", text))


# A registered model's name (what a models:/ URI carries unquoted), and a version in MLflow's
# registry as predict.model and serve.model take it (tracking=mlflow): models:/<name>@<alias>
# or models:/<name>/<version>.
_REGISTRY_NAME = r"[A-Za-z0-9][A-Za-z0-9 ._-]*"
_REGISTRY_URI = re.compile(rf"models:/({_REGISTRY_NAME})(?:@([A-Za-z0-9_-]+)|/([1-9][0-9]*))")


def registry_parts(uri: str) -> tuple[str, str | None, int | None]:
    """``(name, alias, version)`` of a registry URI, one of alias and version None."""
    match = _REGISTRY_URI.fullmatch(uri)
    if match is None:
        raise ValueError(f"not a models:/<name>@<alias> or models:/<name>/<version> URI: {uri}")
    name, alias, version = match.groups()
    return name, alias, None if version is None else int(version)


def is_registry_uri(text: str) -> bool:
    """Whether ``text`` names a registered model version: ``models:/<name>@<alias>`` or
    ``models:/<name>/<version>``."""
    return _REGISTRY_URI.fullmatch(text) is not None


# What `python -m mlops_lr stage=...` can do (mlops_lr.cli maps each to its stages/ module).
STAGES = ("train", "quantize", "predict", "serve", "export", "models", "register")


# How rows are split: scikit-learn's shuffled train_test_split, or a hash of each row's values
# (the same on every engine and for streams of any length; see mlops_lr.data.hash_test_rows).
SPLITS = ("random", "hash")

# The largest random_state scikit-learn takes (NumPy's legacy seeding).
MAX_SEED = 2**32 - 1


@dataclass
class DatasetConfig:
    """Where the data comes from and how it is split into train and test sets."""

    GROUP: ClassVar[str] = "dataset"
    name: str = MISSING
    test_size: float = 0.2
    random_state: int = 42
    split: str = "random"

    def __post_init__(self) -> None:
        _check(
            0.0 < self.test_size < 1.0,
            f"{self.GROUP}.test_size",
            self.test_size,
            "a fraction strictly between 0 and 1",
        )
        _check(
            0 <= self.random_state <= MAX_SEED,
            f"{self.GROUP}.random_state",
            self.random_state,
            f"an integer 0 to {MAX_SEED}",
        )
        _check_choice(f"{self.GROUP}.split", self.split, SPLITS)


@dataclass
class CaliforniaDatasetConfig(DatasetConfig):
    """scikit-learn's California Housing (20,640 rows, 8 features)."""

    name: str = "california"
    # None: scikit-learn's data home ($SCIKIT_LEARN_DATA, else ~/scikit_learn_data).
    data_home: Optional[str] = None
    download_if_missing: bool = True


@dataclass
class BreastCancerDatasetConfig(DatasetConfig):
    """scikit-learn's bundled breast cancer data (569 rows, 30 features, classes benign and
    malignant): needs no download."""

    name: str = "breast_cancer"


@dataclass
class DiabetesDatasetConfig(DatasetConfig):
    """scikit-learn's bundled diabetes data (442 rows, 10 features): needs no download."""

    name: str = "diabetes"


# What a CSV cell may say for "missing" (other text in a number column is an error).
DEFAULT_NA_VALUES = ("", "NA", "N/A", "NaN", "nan", "null")
# A row whose target is missing: a one-line error naming the column, the count and the first
# line, or dropped (counted in the log).
MISSING_TARGETS = ("error", "drop")


@dataclass
class TableDatasetConfig(DatasetConfig):
    """CSV or Parquet data with a header row and a named target column: a file, a directory
    or a glob of files."""

    name: str = "csv"
    path: str = MISSING
    target: str = MISSING
    # None: every column but the target. Matched by name, so column order does not matter.
    features: Optional[List[str]] = None
    # Columns that are neither target nor feature (an id, a leak), left out of the default.
    drop: List[str] = field(default_factory=list)
    # "auto": every feature column that is not numeric (text, booleans); or a list of
    # columns read as categories even when their values look like numbers (a year, a code).
    categorical: Any = "auto"
    na_values: List[str] = field(default_factory=lambda: list(DEFAULT_NA_VALUES))
    missing_target: str = "error"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice(f"{self.GROUP}.missing_target", self.missing_target, MISSING_TARGETS)
        if not isinstance(self.categorical, str):
            self.categorical = list(self.categorical)
        _check(
            self.categorical == "auto"
            or (
                isinstance(self.categorical, list)
                and all(isinstance(name, str) and name for name in self.categorical)
                and len(set(self.categorical)) == len(self.categorical)
                and self.target not in self.categorical
            ),
            f"{self.GROUP}.categorical",
            self.categorical,
            "auto, or a list of distinct feature column names (not the target)",
        )
        _check(
            bool(self.path.strip()), f"{self.GROUP}.path", self.path, "a file, directory or glob"
        )
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
            _check(
                not set(features) & set(self.drop),
                f"{self.GROUP}.drop",
                list(self.drop),
                "columns that are not also in dataset.features",
            )
        _check(
            self.target not in self.drop,
            f"{self.GROUP}.drop",
            list(self.drop),
            f"must not contain the target column {self.target!r}",
        )


# How features become the model's inputs (mlops_lr.preprocess): nothing (numeric columns
# without missing values), or imputation, scaling and one-hot encoding.
PREPROCESSORS = ("none", "standard")
IMPUTERS = ("mean", "median", "constant")
SCALERS = ("standard", "robust", "none")
# Which one-hot column each categorical input leaves out: "auto" is "first" for a model
# without a penalty (least squares with an intercept is singular on a full one-hot block) and
# "none" (every level) for Ridge, Lasso and ElasticNet, whose penalty keeps them unique.
ONE_HOT_DROPS = ("auto", "first", "if_binary", "none")


@dataclass
class PreprocessConfig:
    """How the feature columns become the model's inputs."""

    GROUP: ClassVar[str] = "preprocess"
    name: str = MISSING


@dataclass
class NoPreprocessConfig(PreprocessConfig):
    """Numeric columns as they are; a text column or a missing value is an error."""

    name: str = "none"


@dataclass
class StandardPreprocessConfig(PreprocessConfig):
    """Numeric columns imputed (optionally with a missing-indicator input) and scaled;
    categorical columns one-hot encoded, missing as its own level, unknown categories adding
    nothing."""

    name: str = "standard"
    impute: str = "mean"
    fill_value: float = 0.0  # the fill of impute=constant
    add_indicator: bool = False  # a 0/1 input per numeric column with missing training values
    scale: str = "standard"
    # null, a count >= 1 (an integer) or a fraction in (0, 1): rarer categories share one level.
    min_frequency: Optional[float] = None
    max_categories: int = 1000  # more distinct values in a column is an error, not a model
    drop: str = "auto"

    def __post_init__(self) -> None:
        _check_choice(f"{self.GROUP}.impute", self.impute, IMPUTERS)
        _check(
            math.isfinite(self.fill_value),
            f"{self.GROUP}.fill_value",
            self.fill_value,
            "a finite number",
        )
        _check_choice(f"{self.GROUP}.scale", self.scale, SCALERS)
        frequency = self.min_frequency
        _check(
            frequency is None
            or (0 < frequency < 1)
            or (frequency >= 1 and math.isfinite(frequency) and float(frequency).is_integer()),
            f"{self.GROUP}.min_frequency",
            frequency,
            "null, an integer count >= 1, or a fraction strictly between 0 and 1",
        )
        _check(
            self.max_categories >= 1,
            f"{self.GROUP}.max_categories",
            self.max_categories,
            "a positive integer",
        )
        _check_choice(f"{self.GROUP}.drop", self.drop, ONE_HOT_DROPS)


# Where training runs (mlops_lr.engines).
ENGINES = ("memory", "stream", "dask")


@dataclass
class EngineConfig:
    """How the data is read and the model fitted: ``memory`` loads everything (scikit-learn),
    ``stream`` and ``dask`` merge exact sufficient statistics of batches."""

    GROUP: ClassVar[str] = "engine"
    name: str = MISSING
    # Rows per batch (stream; dask: per CSV block or in-memory partition, while Dask sizes
    # Parquet partitions from the row groups). Small enough to stay in cache.
    batch_rows: int = 250_000

    def __post_init__(self) -> None:
        _check_choice(f"{self.GROUP}.name", self.name, ENGINES)
        _check(self.batch_rows > 0, f"{self.GROUP}.batch_rows", self.batch_rows, "positive")


@dataclass
class MemoryEngineConfig(EngineConfig):
    name: str = "memory"


@dataclass
class StreamEngineConfig(EngineConfig):
    name: str = "stream"
    # Batches whose statistics are computed at once (reading stays sequential).
    threads: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.threads > 0, f"{self.GROUP}.threads", self.threads, "a positive integer")


@dataclass
class DaskEngineConfig(EngineConfig):
    name: str = "dask"
    # tcp://host:port of a running scheduler; null starts a LocalCluster on 127.0.0.1.
    address: Optional[str] = None
    n_workers: int = 2
    threads_per_worker: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.n_workers > 0, f"{self.GROUP}.n_workers", self.n_workers, "positive")
        _check(
            self.threads_per_worker > 0,
            f"{self.GROUP}.threads_per_worker",
            self.threads_per_worker,
            "a positive integer",
        )


_LINEAR_REGRESSION = "sklearn.linear_model.LinearRegression"
# The estimators the streaming engines fit from statistics (mlops_lr.statistics_fit), or by
# Newton's method from per-pass sums (mlops_lr.newton).
_STREAMED_MODELS = (
    _LINEAR_REGRESSION,
    "sklearn.linear_model.Ridge",
    "sklearn.linear_model.Lasso",
    "sklearn.linear_model.ElasticNet",
    "sklearn.linear_model.LogisticRegression",
)


@dataclass
class ModelConfig:
    """A scikit-learn linear regressor: ``_target_`` and its constructor parameters, the ones
    every option has here; each option's schema adds its own.

    ``copy_X`` is not one of them: it is always true, because the stages score and calibrate on
    the training split after the fit, and ``copy_X=false`` lets the fit centre it in place.
    """

    GROUP: ClassVar[str] = "model"
    _target_: str = MISSING
    fit_intercept: bool = True


def _check_nonnegative(key: str, value: float) -> None:
    _check(math.isfinite(value) and value >= 0, key, value, "a finite number >= 0")


def _check_seed(key: str, value: Optional[int]) -> None:
    _check(
        value is None or 0 <= value <= MAX_SEED, key, value, f"null or an integer 0 to {MAX_SEED}"
    )


@dataclass
class LinearRegressionConfig(ModelConfig):
    """``sklearn.linear_model.LinearRegression``: ordinary least squares."""

    _target_: str = _LINEAR_REGRESSION
    positive: bool = False
    n_jobs: Optional[int] = None

    def __post_init__(self) -> None:
        _check(
            self.n_jobs is None or self.n_jobs != 0,
            f"{self.GROUP}.n_jobs",
            self.n_jobs,
            "null, a positive count, or -1 for all cores",
        )


# Ridge's solvers; only "lbfgs" (or "auto", which then picks it) takes positive=true.
RIDGE_SOLVERS = ("auto", "svd", "cholesky", "lsqr", "sparse_cg", "sag", "saga", "lbfgs")


@dataclass
class RidgeConfig(ModelConfig):
    """``sklearn.linear_model.Ridge``: least squares plus ``alpha·‖w‖²``."""

    _target_: str = "sklearn.linear_model.Ridge"
    alpha: float = 1.0
    solver: str = "auto"
    max_iter: Optional[int] = None  # iterative solvers only; null: the solver's default
    tol: float = 1e-4
    positive: bool = False
    random_state: Optional[int] = None  # "sag" and "saga" shuffle with it

    def __post_init__(self) -> None:
        _check_nonnegative(f"{self.GROUP}.alpha", self.alpha)
        _check_choice(f"{self.GROUP}.solver", self.solver, RIDGE_SOLVERS)
        if self.positive:
            _check(
                self.solver in ("auto", "lbfgs"),
                f"{self.GROUP}.solver",
                self.solver,
                "auto or lbfgs with positive=true (the one solver that keeps weights >= 0)",
            )
        else:
            _check(
                self.solver != "lbfgs",
                f"{self.GROUP}.solver",
                self.solver,
                "lbfgs only with positive=true (scikit-learn's rule)",
            )
        _check(
            self.max_iter is None or self.max_iter > 0,
            f"{self.GROUP}.max_iter",
            self.max_iter,
            "null or a positive integer",
        )
        _check_nonnegative(f"{self.GROUP}.tol", self.tol)
        _check_seed(f"{self.GROUP}.random_state", self.random_state)


# How coordinate descent picks the next coefficient to update.
SELECTIONS = ("cyclic", "random")


@dataclass
class LassoConfig(ModelConfig):
    """``sklearn.linear_model.Lasso``: least squares (halved, per row) plus ``alpha·‖w‖₁``,
    by coordinate descent."""

    _target_: str = "sklearn.linear_model.Lasso"
    alpha: float = 1.0
    max_iter: int = 1000
    tol: float = 1e-4
    positive: bool = False
    selection: str = "cyclic"
    random_state: Optional[int] = None  # selection="random" draws with it
    precompute: bool = False  # use the Gram matrix XᵀX (faster for many rows, few features)

    def __post_init__(self) -> None:
        _check(
            math.isfinite(self.alpha) and self.alpha > 0,
            f"{self.GROUP}.alpha",
            self.alpha,
            "a finite number > 0 (alpha=0 is least squares: use model=linear_regression)",
        )
        _check(self.max_iter > 0, f"{self.GROUP}.max_iter", self.max_iter, "a positive integer")
        _check_nonnegative(f"{self.GROUP}.tol", self.tol)
        _check_choice(f"{self.GROUP}.selection", self.selection, SELECTIONS)
        _check_seed(f"{self.GROUP}.random_state", self.random_state)


@dataclass
class ElasticNetConfig(LassoConfig):
    """``sklearn.linear_model.ElasticNet``: the Lasso's penalty mixed with Ridge's,
    ``alpha·(l1_ratio·‖w‖₁ + (1 - l1_ratio)/2·‖w‖²)``."""

    _target_: str = "sklearn.linear_model.ElasticNet"
    l1_ratio: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            0.0 <= self.l1_ratio <= 1.0,
            f"{self.GROUP}.l1_ratio",
            self.l1_ratio,
            "a number from 0 (ridge-like) to 1 (lasso)",
        )


# LogisticRegression's penalty: ridge-like (l2, of strength 1/C) or none (C is then unused).
PENALTIES = ("l2", "none")
# Its solvers that take an l2 penalty; newton-cholesky (the default) is the one the streamed
# Newton fit reproduces.
LOGISTIC_SOLVERS = ("newton-cholesky", "lbfgs", "newton-cg", "sag", "saga")


@dataclass
class LogisticRegressionConfig(ModelConfig):
    """``sklearn.linear_model.LogisticRegression``: a linear classifier, binary (a logistic
    link) or multinomial (softmax), minimising the log loss plus ``‖w‖²/(2C)``."""

    TASK: ClassVar[str] = "classification"
    _target_: str = "sklearn.linear_model.LogisticRegression"
    C: float = 1.0
    penalty: str = "l2"
    solver: str = "newton-cholesky"
    max_iter: int = 100
    tol: float = 1e-4
    # null: every row weighs 1; "balanced": rows weigh n / (classes · rows of their class).
    class_weight: Optional[str] = None

    def __post_init__(self) -> None:
        _check(
            math.isfinite(self.C) and self.C > 0,
            f"{self.GROUP}.C",
            self.C,
            "a finite number > 0 (the inverse penalty strength; penalty=none for no penalty)",
        )
        _check_choice(f"{self.GROUP}.penalty", self.penalty, PENALTIES)
        _check_choice(f"{self.GROUP}.solver", self.solver, LOGISTIC_SOLVERS)
        _check(self.max_iter > 0, f"{self.GROUP}.max_iter", self.max_iter, "a positive integer")
        _check(
            math.isfinite(self.tol) and self.tol > 0,
            f"{self.GROUP}.tol",
            self.tol,
            "a finite number > 0",
        )
        _check(
            self.class_weight in (None, "balanced"),
            f"{self.GROUP}.class_weight",
            self.class_weight,
            "null or balanced",
        )


def is_classifier(model: ModelConfig) -> bool:
    """Whether the model config is a classifier's (its task is set by the model)."""
    return getattr(model, "TASK", "regression") == "classification"


@dataclass
class QualityConfig:
    """Verdict thresholds on the test split's mean |Δpred| (target units), best first."""

    excellent: float = 0.005
    good: float = 0.02
    fair: float = 0.1

    def __post_init__(self) -> None:
        _check(
            0 < self.excellent <= self.good <= self.fair,
            "quantization.quality",
            (self.excellent, self.good, self.fair),
            "0 < excellent <= good <= fair",
        )


@dataclass
class QuantizationConfig:
    """Post-training quantization of the coefficients and intercept (see mlops_lr.quantize)."""

    GROUP: ClassVar[str] = "quantization"
    name: str = MISSING
    bits: int = 8
    scheme: str = "symmetric"
    granularity: str = "per_feature_pow2"
    # optimal, or auto: optimal when its search fits max_nodes, else hessian.
    rounding: str = "auto"
    scale: str = "search"
    bias_correction: bool = True
    intercept_dtype: str = "float32"
    # Search nodes `rounding=optimal` may visit before it gives up with a clear error (auto
    # then falls back to hessian).
    max_nodes: int = 1_000_000
    # Output directory name under <artifacts_dir>/quantized/; null derives it from name and bits.
    tag: Optional[str] = None
    quality: QualityConfig = field(default_factory=QualityConfig)

    def __post_init__(self) -> None:
        group = self.GROUP
        _check(_is_name(self.name), f"{group}.name", self.name, "a preset name (a safe file name)")
        _check(
            MIN_BITS <= self.bits <= MAX_BITS,
            f"{group}.bits",
            self.bits,
            f"an integer from {MIN_BITS} to {MAX_BITS}",
        )
        _check_choice(f"{group}.scheme", self.scheme, SCHEMES)
        _check_choice(f"{group}.granularity", self.granularity, GRANULARITIES)
        _check_choice(f"{group}.rounding", self.rounding, ROUNDINGS)
        _check_choice(f"{group}.scale", self.scale, SCALES)
        _check_choice(f"{group}.intercept_dtype", self.intercept_dtype, INTERCEPT_DTYPES)
        _check(self.max_nodes > 0, f"{group}.max_nodes", self.max_nodes, "a positive integer")
        if self.tag is not None:
            _check(
                _is_name(self.tag),
                f"{group}.tag",
                self.tag,
                "letters, digits, '-', '_' or '.', not starting with '.'",
            )

    @property
    def resolved_tag(self) -> str:
        """``tag`` if set; else ``name`` when it ends in the bit width (``uint8`` at 8 bits),
        else ``<name>-<bits>bit`` (``default-4bit``)."""
        if self.tag is not None:
            return self.tag
        width = re.search(r"\d+$", self.name)
        if width is not None and int(width.group()) == self.bits:
            return self.name
        return f"{self.name}-{self.bits}bit"


# What stage predict writes, by the output's suffix: CSV, or Parquet (needs pyarrow).
PREDICTION_OUTPUT_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass
class PredictConfig:
    """Which saved model predicts, and on what."""

    GROUP: ClassVar[str] = "predict"
    # "float" (artifacts/model.joblib) or a quantized tag (artifacts/quantized/<tag>/).
    model: str = "float"
    # The rows to predict: a CSV (header naming the model's features, any order, extra
    # columns kept) or Parquet file, a directory of them (recursively) or a glob, all of one
    # kind and with the same columns; null: print the model's first test-split predictions
    # (saved with the model).
    input: Optional[str] = None
    # Where the input rows plus a `prediction` column go: a .csv, .parquet or .pq file,
    # whatever the input's kind; null: <input stem>.predictions<input suffix> beside a
    # single input file (a directory or a glob needs it).
    output: Optional[str] = None
    # Rows per batch (read, predicted and written at a time): memory depends on it, not on
    # the size of the input.
    chunk_size: int = 100_000
    # A classifier's class probabilities beside its labels (a regressor has none).
    proba: bool = False

    def __post_init__(self) -> None:
        group = self.GROUP
        _check(
            _is_name(self.model) or is_registry_uri(self.model),
            f"{group}.model",
            self.model,
            "'float', a quantized tag, or models:/<registered name>@<alias> (or /<version>)",
        )
        _check(self.chunk_size > 0, f"{group}.chunk_size", self.chunk_size, "a positive integer")
        _check(
            self.output is None or self.input is not None,
            f"{group}.output",
            self.output,
            "needs predict.input (the rows to predict)",
        )
        _check(
            self.output is None or self.output.lower().endswith(PREDICTION_OUTPUT_SUFFIXES),
            f"{group}.output",
            self.output,
            "a file ending in " + ", ".join(PREDICTION_OUTPUT_SUFFIXES),
        )


# Levels uvicorn logs at (serve.log_level).
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@dataclass
class ServeConfig:
    """The HTTP model server (``stage=serve``, see mlops_lr.serve)."""

    GROUP: ClassVar[str] = "serve"
    # "float" or a quantized tag, as for predict.model.
    model: str = "float"
    # The model's name and version in the Open Inference Protocol's /v2 routes; null: the
    # served tag. On KServe the name is the InferenceService's (the image reads
    # MLOPS_LR_MODEL_NAME).
    model_name: Optional[str] = None
    # null: the registered version when serve.model is models:/…, else 1.
    model_version: Optional[str] = None
    # Loopback by default: nothing outside this machine can connect unless asked (the Docker
    # image binds 0.0.0.0 inside its own network namespace).
    host: str = "127.0.0.1"
    # 0: any free port (the chosen one is printed).
    port: int = 8000
    # Rows one POST /predict may carry, and bytes its body may have.
    max_rows: int = 10_000
    max_body_bytes: int = 16 * 1024 * 1024
    # Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    shutdown_timeout: float = 10.0
    log_level: str = "info"
    # One log line per request: useful for debugging, costly under load.
    access_log: bool = False

    def __post_init__(self) -> None:
        group = self.GROUP
        _check(
            _is_name(self.model) or is_registry_uri(self.model),
            f"{group}.model",
            self.model,
            "'float', a quantized tag, or models:/<registered name>@<alias> (or /<version>)",
        )
        _check(
            self.model_name is None or _is_name(self.model_name),
            f"{group}.model_name",
            self.model_name,
            "null or a name of letters, digits, '-', '_' and '.'",
        )
        _check(
            self.model_version is None or _is_name(self.model_version),
            f"{group}.model_version",
            self.model_version,
            "a version of letters, digits, '-', '_' and '.' (e.g. 1)",
        )
        _check(bool(self.host.strip()), f"{group}.host", self.host, "an address to bind")
        _check(0 <= self.port <= 65535, f"{group}.port", self.port, "0 (any free port) to 65535")
        _check(self.max_rows > 0, f"{group}.max_rows", self.max_rows, "a positive integer")
        _check(
            self.max_body_bytes >= 1024,
            f"{group}.max_body_bytes",
            self.max_body_bytes,
            "at least 1024 bytes",
        )
        _check(
            self.shutdown_timeout >= 0,
            f"{group}.shutdown_timeout",
            self.shutdown_timeout,
            "seconds, 0 or more",
        )
        _check_choice(f"{group}.log_level", self.log_level, LOG_LEVELS)


# What `stage=export` writes (mlops_lr.export_onnx, mlops_lr.export_c).
EXPORT_FORMATS = ("onnx", "c")


@dataclass
class ExportConfig:
    """Export a model out of Python (``stage=export``): ONNX, or integer-only C."""

    GROUP: ClassVar[str] = "export"
    format: str = "onnx"
    # "float", a quantized tag, or null for the model the quantization config names
    # (quantization.tag, else e.g. default-8bit: `make quantize BITS=4 && make export BITS=4`).
    model: Optional[str] = None

    def __post_init__(self) -> None:
        group = self.GROUP
        _check_choice(f"{group}.format", self.format, EXPORT_FORMATS)
        if self.model is not None:
            _check(_is_name(self.model), f"{group}.model", self.model, "'float' or a quantized tag")


# Where runs are recorded (mlops_lr.tracking): nowhere, or MLflow.
TRACKERS = ("none", "mlflow")


# Where MLflow keeps runs: a database (sqlite:///<path>, postgresql://…), a tracking server
# (http(s)://), or Databricks; MLflow 3.13+ refuses the file store (a path, file:).
_TRACKING_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:.+|databricks(-uc)?")


def sqlite_database(uri: str) -> str | None:
    """The database file of a ``sqlite:///<path>`` URI, decoded as SQLAlchemy decodes it
    (None: not such a URI)."""
    if not uri.startswith("sqlite:///"):
        return None
    return urllib.parse.unquote(uri[len("sqlite:///") :].partition("?")[0])


def _tracking_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be a tracking store (None: it can)."""
    if uri.lower().startswith("file:") or _TRACKING_URI.fullmatch(uri) is None:
        return "MLflow 3.13+ refuses the file store (a path or file:)"
    if uri.lower().startswith("sqlite:"):
        database = sqlite_database(uri)
        in_memory = database in (None, "", ":memory:") or database.startswith("file::memory:")
        if in_memory or "mode=memory" in uri.partition("?")[2]:
            return "an in-memory or unnamed SQLite database keeps nothing"
    return None


@dataclass
class TrackingConfig:
    """Where train, quantize, export and register record their runs."""

    GROUP: ClassVar[str] = "tracking"
    name: str = MISSING

    def __post_init__(self) -> None:
        _check_choice(f"{self.GROUP}.name", self.name, TRACKERS)


@dataclass
class NoTrackingConfig(TrackingConfig):
    """Nothing is recorded beyond the artifacts' own files (MLflow is not even imported)."""

    name: str = "none"


@dataclass
class MlflowTrackingConfig(TrackingConfig):
    """MLflow runs, logged models and registry (needs the ``tracking`` extra)."""

    name: str = "mlflow"
    # A local SQLite store (sqlite:////abs/path.db), another database MLflow supports, or a
    # tracking server (http://host:5000).
    tracking_uri: str = MISSING
    # Where a new experiment keeps its artifacts when the store is a local sqlite: one
    # (a tracking server chooses its own); null: MLflow's default (./mlruns).
    artifact_location: Optional[str] = None
    experiment: str = "mlops-lr"
    # `stage=register` (and a sweep with register_best) registers under this name and points
    # the alias at the new version.
    registered_model: str = "mlops-lr"
    alias: str = "champion"
    # The run's name; null: the stage and the model (a sweep job: its number and overrides).
    run_name: Optional[str] = None
    # Nest this run under another (a sweep sets it to its parent run).
    parent_run_id: Optional[str] = None
    # Log each model as an MLflow pyfunc model (a few hundred kB each).
    log_models: bool = True
    # At the end of a sweep, register the smallest bit width whose test R² is at most
    # max_r2_loss below its float model's (the best R² among that width's settings); a
    # classifier's: its test accuracy at most max_accuracy_loss below.
    register_best: bool = False
    max_r2_loss: float = 0.001
    max_accuracy_loss: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        group = self.GROUP
        problem = _tracking_uri_problem(self.tracking_uri)
        _check(
            problem is None,
            f"{group}.tracking_uri",
            self.tracking_uri,
            f"sqlite:////path/to/mlflow.db, another database or a server's http(s):// address: "
            f"{problem}",
        )
        _check(
            bool(self.experiment.strip()) and self.experiment.isprintable(),
            f"{group}.experiment",
            self.experiment,
            "a non-empty name",
        )
        _check(
            re.fullmatch(_REGISTRY_NAME, self.registered_model) is not None,
            f"{group}.registered_model",
            self.registered_model,
            "letters, digits, spaces, '.', '_' and '-', starting with a letter or digit",
        )
        _check(
            re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", self.alias) is not None
            and re.fullmatch(r"[vV][0-9]+|latest", self.alias) is None,
            f"{group}.alias",
            self.alias,
            "letters, digits, '_' and '-', starting with a letter (not v<n> or latest: "
            "MLflow reserves them)",
        )
        _check(
            math.isfinite(self.max_r2_loss) and self.max_r2_loss >= 0,
            f"{group}.max_r2_loss",
            self.max_r2_loss,
            "a finite number >= 0 (R² points the quantized model may lose)",
        )
        _check(
            0.0 <= self.max_accuracy_loss <= 1.0,
            f"{group}.max_accuracy_loss",
            self.max_accuracy_loss,
            "a fraction from 0 to 1 (the accuracy a quantized classifier may lose)",
        )
        _check(
            self.log_models or not self.register_best,
            f"{group}.register_best",
            self.register_best,
            "false with tracking.log_models=false (it registers a job's logged model)",
        )


@dataclass
class RegisterConfig:
    """Which saved model ``stage=register`` puts in the registry (``tracking=mlflow``)."""

    GROUP: ClassVar[str] = "register"
    # "float", a quantized tag, or null for the model the quantization config names.
    model: Optional[str] = None

    def __post_init__(self) -> None:
        if self.model is not None:
            _check(
                _is_name(self.model),
                f"{self.GROUP}.model",
                self.model,
                "'float' or a quantized tag",
            )


@dataclass
class PathsConfig:
    """Where artifacts go. Relative paths are relative to the working directory."""

    root_dir: str = MISSING
    artifacts_dir: str = MISSING
    # Quantized models, one directory per tag (a sweep puts them in each job's directory).
    quantized_dir: str = MISSING
    # The local MLflow store of tracking=mlflow (mlflow.db, mlflow-artifacts/): one for every
    # job of a sweep, even when each job has its own artifacts directory.
    tracking_dir: str = MISSING


@dataclass
class Config:
    """The whole composed configuration of one run."""

    stage: str = "train"
    # Use a quantized model (predict, serve, export) whose float model has been retrained
    # since it was made: it no longer matches the float model's data or settings.
    allow_stale: bool = False
    dataset: Any = MISSING
    preprocess: Any = MISSING
    engine: Any = MISSING
    model: Any = MISSING
    quantization: QuantizationConfig = MISSING
    predict: PredictConfig = field(default_factory=PredictConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    tracking: Any = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)

    def __post_init__(self) -> None:
        _check_choice("stage", self.stage, STAGES)
        _check(
            isinstance(self.dataset, DatasetConfig),
            "dataset",
            type(self.dataset).__name__,
            "a dataset config from conf/dataset/ (its YAML must extend /schema/dataset)",
        )
        _check(
            isinstance(self.model, ModelConfig),
            "model",
            type(self.model).__name__,
            "a model config from conf/model/ (its YAML must extend /schema/model)",
        )
        _check(
            isinstance(self.preprocess, PreprocessConfig),
            "preprocess",
            type(self.preprocess).__name__,
            "a preprocess config from conf/preprocess/ (its YAML must extend /schema/preprocess)",
        )
        _check(
            isinstance(self.engine, EngineConfig),
            "engine",
            type(self.engine).__name__,
            "an engine config from conf/engine/ (its YAML must extend /schema/engine)",
        )
        _check(
            isinstance(self.tracking, TrackingConfig),
            "tracking",
            type(self.tracking).__name__,
            "a tracking config from conf/tracking/ (its YAML must extend /schema/tracking)",
        )
        if self.tracking.name != "mlflow":
            _check(
                self.stage != "register",
                "stage",
                self.stage,
                "register only with tracking=mlflow (the registry is MLflow's)",
            )
            for group in ("predict", "serve"):
                model = getattr(self, group).model
                _check(
                    not is_registry_uri(model),
                    f"{group}.model",
                    model,
                    "a saved model (float or a quantized tag) unless tracking=mlflow",
                )
        if self.engine.name != "memory":
            engine = f"engine={self.engine.name}"
            _check(
                self.dataset.split == "hash",
                "dataset.split",
                self.dataset.split,
                f"hash with {engine} (a stream cannot be shuffled)",
            )
            _check(
                not getattr(self.model, "positive", False) and self.model.fit_intercept,
                "model",
                self.model._target_
                + (" with positive=true" if getattr(self.model, "positive", False) else "")
                + ("" if self.model.fit_intercept else " with fit_intercept=false"),
                f"a model with an intercept and without positive=true with {engine} "
                "(its statistics are centred; positive weights need the rows)",
            )
            _check(
                self.model._target_ in _STREAMED_MODELS,
                "model._target_",
                self.model._target_,
                f"one of {', '.join(_STREAMED_MODELS)} with {engine}",
            )
            _check(
                not is_classifier(self.model) or self.model.solver == "newton-cholesky",
                "model.solver",
                getattr(self.model, "solver", None),
                f"newton-cholesky with {engine} (the solver the streamed Newton passes follow)",
            )
            if isinstance(self.preprocess, StandardPreprocessConfig):
                _check(
                    self.preprocess.impute != "median",
                    "preprocess.impute",
                    self.preprocess.impute,
                    f"mean or constant with {engine} (a median needs every value at once)",
                )
                _check(
                    self.preprocess.scale != "robust",
                    "preprocess.scale",
                    self.preprocess.scale,
                    f"standard or none with {engine} (robust scaling needs quantiles)",
                )
            _check(
                self.stage in ("train", "quantize"),
                "stage",
                self.stage,
                f"train or quantize with {engine} (the other stages read models, not data)",
            )


# Stored under schema/<group>/ so they do not show up as options of the groups themselves;
# a YAML option extends one with `defaults: [/schema/<group>@_here_: <name>]`.
SCHEMAS = {
    "dataset": {
        "california": CaliforniaDatasetConfig,
        "diabetes": DiabetesDatasetConfig,
        "breast_cancer": BreastCancerDatasetConfig,
        "table": TableDatasetConfig,
    },
    "preprocess": {
        "none": NoPreprocessConfig,
        "standard": StandardPreprocessConfig,
    },
    "engine": {
        "memory": MemoryEngineConfig,
        "stream": StreamEngineConfig,
        "dask": DaskEngineConfig,
    },
    "model": {
        "linear_regression": LinearRegressionConfig,
        "ridge": RidgeConfig,
        "lasso": LassoConfig,
        "elastic_net": ElasticNetConfig,
        "logistic_regression": LogisticRegressionConfig,
    },
    "quantization": {"quantization": QuantizationConfig},
    "predict": {"predict": PredictConfig},
    "serve": {"serve": ServeConfig},
    "export": {"export": ExportConfig},
    "register": {"register": RegisterConfig},
    "tracking": {
        "none": NoTrackingConfig,
        "mlflow": MlflowTrackingConfig,
    },
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


def as_dict(node: Any) -> dict[str, Any]:
    """A config dataclass as plain, JSON-serialisable containers."""
    return OmegaConf.to_container(OmegaConf.structured(node))


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
    except OmegaConfBaseException as error:  # e.g. an interpolation that cannot be resolved
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        key = getattr(error, "full_key", None)
        raise ConfigError(f"{key}: {reason}" if key else reason) from None
    if not isinstance(config, Config):
        raise ConfigError("the root config must extend config_schema (see conf/config.yaml)")
    return config
