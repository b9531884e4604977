"""MLflow runs, logged models and the registry for ``tracking=mlflow``: the only module of the
pipeline that imports MLflow (``pyfunc_model.py`` is the logged model's own code, which MLflow
runs). See :mod:`mlops_lr.tracking`.

Runs are created with :class:`mlflow.MlflowClient` and made active by id, never by
``start_run(parent_run_id=…)``: with ``MLFLOW_RUN_ID`` set, that silently resumes the parent
instead (mlflow #15713). A local SQLite store is created under a file lock, so that runs
started at once (a parallel sweep, two terminals) do not race to create its tables.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec
from mlflow.types.schema import AnyType
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

import mlops_lr
from mlops_lr import artifacts
from mlops_lr.artifacts import MANIFEST, MODEL_FILE
from mlops_lr.config import (
    Config,
    MlflowTrackingConfig,
    as_dict,
    registry_parts,
    sqlite_database,
)
from mlops_lr.exceptions import ArtifactError, ConfigError, TrackingError, first_line
from mlops_lr.predictor import LinearPredictor, load_model_directory, saved_samples
from mlops_lr.sweep import best_setting, measures_of
from mlops_lr.tracking import PARENT_RUN_FILE

# MLflow logs at INFO what it does (creating tables, validating examples, registering): the
# stages print their own one-line summaries instead.
logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)
# Each retry against an unreachable server is a warning of urllib3's: the error is one line.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

# Our tags (MLflow's own start with "mlflow.").
TAG = "mlops_lr."
MODEL_SHA256 = TAG + "model_sha256"  # of the JSON a predictor loads: folded.json or model.json
MODEL_URI = TAG + "model_uri"  # the pyfunc model this run logged
# The config groups logged as params by every stage, and each stage's own.
MODEL_GROUPS = ("dataset", "preprocess", "engine", "model")
STAGE_GROUPS = {"quantize": ("quantization",), "export": ("export",), "register": ("register",)}
# The packages whose versions a run records (and a pyfunc model pins).
VERSIONS = ("numpy", "scipy", "pandas", "scikit-learn", "mlflow-skinny")
PYFUNC_REQUIREMENTS = ("numpy", "pandas", "mlflow-skinny")
PACKAGE_DIR = Path(mlops_lr.__file__).parent
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
# The pyfunc model's one artifact: the saved model's directory, as logged.
ARTIFACT = "mlops_lr"
FINISHED, FAILED, KILLED = (
    RunStatus.to_string(status)
    for status in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED)
)


def client(settings: MlflowTrackingConfig) -> MlflowClient:
    """A client of the configured store; a local SQLite database is created (under a lock)
    if it does not exist yet."""
    uri = settings.tracking_uri
    with _errors(f"the tracking store {uri}"):
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        database = _sqlite_path(uri)
        if database is None:
            return MlflowClient(uri, uri)
        if database.is_dir():  # MLflow would retry opening it for almost two minutes
            raise TrackingError(f"the tracking store {uri}: {database} is a directory")
        with artifacts.locked(database.parent):
            tracking = MlflowClient(uri, uri)
            tracking.search_experiments(max_results=1)  # creates or upgrades the tables
    return tracking


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a local SQLite store (None: another store)."""
    database = sqlite_database(uri)
    return None if database is None else Path(database)


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    """MLflow's, the database's and the network's errors as one line naming ``what`` failed."""
    try:
        yield
    except MlflowException as error:
        raise TrackingError(f"{what}: {first_line(error.message)}") from None
    except ModuleNotFoundError as error:  # a database driver MLflow needs (psycopg, MySQLdb)
        raise TrackingError(
            f"{what}: needs the Python module {error.name} (install the database's driver)"
        ) from None
    except Exception as error:  # SQLAlchemy's (not a database, unwritable) and requests' errors
        if not _is_store_error(error):
            raise
        raise TrackingError(f"{what}: {first_line(error)}") from None


def _is_store_error(error: Exception) -> bool:
    """An error of the store's or the connection's: SQLAlchemy's, or an OSError (requests'
    connection errors are OSErrors)."""
    if isinstance(error, OSError):
        return True
    return type(error).__module__.split(".")[0] == "sqlalchemy"


def experiment_id(tracking: MlflowClient, settings: MlflowTrackingConfig) -> str:
    """The id of ``settings.experiment``, created if needed (on a SQLite store with
    ``artifact_location`` as its artifact root)."""
    with _errors(f"experiment {settings.experiment!r}"):
        experiment = tracking.get_experiment_by_name(settings.experiment)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                raise TrackingError(
                    f"experiment {settings.experiment!r} was deleted: restore it "
                    "(`mlflow experiments restore`) or choose another tracking.experiment"
                )
            return str(experiment.experiment_id)
        location = settings.artifact_location
        if location is not None and _sqlite_path(settings.tracking_uri) is not None:
            location = Path(location).resolve().as_uri()
        else:
            location = None
        try:
            return str(tracking.create_experiment(settings.experiment, location))
        except MlflowException:  # another process created it first
            experiment = tracking.get_experiment_by_name(settings.experiment)
            if experiment is None:
                raise
            return str(experiment.experiment_id)


@dataclass
class StageRun:
    """An active MLflow run of one stage (see :class:`mlops_lr.tracking.Run`)."""

    config: Config
    run_id: str

    def log_outcome(
        self, metrics: Mapping[str, Any], directory: str | Path, model: str | None = None
    ) -> None:
        directory = Path(directory)
        manifest = artifacts.read_manifest(directory)
        tags = _lineage_tags(manifest)
        if model is not None:
            tags[TAG + "model"] = model
        if "quality" in metrics:  # a quantized model's verdict (excellent … poor)
            tags[TAG + "quality"] = str(metrics["quality"])
        try:
            with _errors("logging the run"):
                mlflow.log_metrics(_numbers(metrics))
                mlflow.set_tags(tags)
                with tempfile.TemporaryDirectory() as staging:
                    copied = _copy_logged_files(directory, manifest, Path(staging))
                    mlflow.log_artifacts(str(copied))
            if model is not None and self.config.tracking.log_models:
                self.log_model(load_model_directory(directory, model), directory)
        except TrackingError as error:  # the stage's files are in place: say so
            raise TrackingError(f"{directory} was written, but {error}") from None

    def log_model(self, predictor: LinearPredictor, directory: Path) -> str:
        """Log ``predictor`` (saved in ``directory``) as this run's pyfunc model ``model``;
        returns its ``models:/`` URI (also the run's tag ``mlops_lr.model_uri``)."""
        manifest = artifacts.read_manifest(directory)
        sha256 = str(predictor.details["sha256"])
        search_path = list(sys.path)
        with tempfile.TemporaryDirectory() as staging, _errors("logging the model"):
            staging = Path(staging)
            packaged = _copy_logged_files(directory, manifest, staging / ARTIFACT)
            code = staging / "code" / PACKAGE_DIR.name
            shutil.copytree(PACKAGE_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
            try:
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(PYFUNC_CODE),
                    artifacts={ARTIFACT: str(packaged)},
                    code_paths=[str(code)],
                    signature=signature(predictor),
                    input_example=_input_example(self.config.paths.artifacts_dir, predictor),
                    pip_requirements=[f"{name}=={_version(name)}" for name in PYFUNC_REQUIREMENTS],
                    tags={MODEL_SHA256: sha256},
                    metadata={"feature_kinds": feature_kinds(predictor)},
                )
            finally:
                # Validating the input example puts the staged code on sys.path for good.
                sys.path[:] = search_path
            mlflow.set_tags({MODEL_SHA256: sha256, MODEL_URI: info.model_uri})
        return str(info.model_uri)


def signature(predictor: LinearPredictor) -> ModelSignature:
    """One input column per feature and one ``float64`` prediction per row.

    The columns are typed ``any``: MLflow would otherwise refuse an ``int64`` column for a
    ``double`` one ("cannot safely convert"), and integer codes for a text one, which the
    model takes as every other backend does. It checks its inputs itself; which columns are
    numbers and which categories is the model's metadata (``feature_kinds``).
    """
    inputs = Schema([ColSpec(AnyType(), name) for name in predictor.feature_names])
    return ModelSignature(inputs, Schema([TensorSpec(np.dtype(np.float64), (-1,))]))


def feature_kinds(predictor: LinearPredictor) -> dict[str, str]:
    """``numeric`` or ``categorical``, per feature."""
    categorical = set(predictor.folded.categorical_names)
    return {
        name: "categorical" if name in categorical else "numeric"
        for name in predictor.feature_names
    }


def _input_example(artifacts_dir: str, predictor: LinearPredictor) -> Any:
    """The first test rows saved with the float model, as a DataFrame (None: none saved for
    these features)."""
    import pandas as pd

    try:
        rows = saved_samples(artifacts_dir, predictor.feature_names)
    except ArtifactError:
        return None
    frame = pd.DataFrame(rows, columns=list(predictor.feature_names))
    kinds = feature_kinds(predictor)
    return frame.astype(
        {name: object if kind == "categorical" else "float64" for name, kind in kinds.items()}
    )


def _copy_logged_files(directory: Path, manifest: Mapping[str, Any], target: Path) -> Path:
    """Copy the files of ``directory``'s manifest (not the pickled estimator) and the manifest
    into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in [*manifest["files"], MANIFEST]:
        if name != MODEL_FILE:
            shutil.copy2(directory / name, target / name)
    return target


def _numbers(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of ``metrics``, nested ones named by their path (``checks.c.r2``)."""
    numbers = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            numbers.update(_numbers(value, f"{prefix}{key}."))
        elif (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):
            numbers[f"{prefix}{key}"] = float(value)
    return numbers


def _lineage_tags(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Where a saved model came from: its data, and the float model it was made from."""
    tags = {}
    if "data_fingerprint" in manifest:
        tags[TAG + "data_fingerprint"] = str(manifest["data_fingerprint"])
    source = manifest.get("source_model", {}).get("sha256")
    if source is None and MODEL_FILE in manifest.get("files", {}):
        source = manifest["files"][MODEL_FILE]["sha256"]
    if source is not None:
        tags[TAG + "source_model_sha256"] = str(source)
    if "model_sha256" in manifest:  # an export: the model it was made from
        tags[TAG + "exported_model_sha256"] = str(manifest["model_sha256"])
    return tags


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _params(config: Config) -> dict[str, str]:
    """The resolved config of the groups that made this run's model, flattened
    (``model.alpha``, ``quantization.bits``)."""
    params = {"stage": config.stage}
    for group in (*MODEL_GROUPS, *STAGE_GROUPS.get(config.stage, ())):
        params.update(_flatten(group, as_dict(getattr(config, group))))
    return params


def _flatten(prefix: str, node: Any) -> dict[str, str]:
    if isinstance(node, dict):
        flat: dict[str, str] = {}
        for key, value in node.items():
            flat.update(_flatten(f"{prefix}.{key}", value))
        return flat
    return {prefix: json.dumps(node) if isinstance(node, list) else str(node)}


@contextlib.contextmanager
def stage_run(config: Config, name: str) -> Iterator[StageRun]:
    """Create the run (nested under ``tracking.parent_run_id`` if set), log the config and the
    versions, make it active for the block, and end it with the block's outcome. The process's
    MLflow state (tracking URI, experiment) becomes this run's; another active run is refused."""
    settings = config.tracking
    tracking = client(settings)
    experiment = experiment_id(tracking, settings)
    tags = {
        TAG + "stage": config.stage,
        **{f"{TAG}version.{package}": _version(package) for package in VERSIONS},
        TAG + "version.mlops-lr": mlops_lr.__version__,
        TAG + "version.python": platform.python_version(),
    }
    if mlflow.active_run() is not None:
        raise TrackingError(
            f"an MLflow run ({mlflow.active_run().info.run_id}) is active in this process: end "
            "it first, or nest under it with tracking.parent_run_id"
        )
    if settings.parent_run_id is not None:
        try:
            tracking.get_run(settings.parent_run_id)
        except MlflowException:
            raise ConfigError(
                f"tracking.parent_run_id={settings.parent_run_id!r}: there is no such run"
            ) from None
        tags[MLFLOW_PARENT_RUN_ID] = settings.parent_run_id
    with _errors("starting the run"):
        run_id = tracking.create_run(
            experiment, tags=tags, run_name=settings.run_name or name
        ).info.run_id
    status = FAILED
    try:
        with _errors("starting the run"):
            # The fluent API (which log_model needs) checks the run against the process's
            # active experiment: make it this one.
            mlflow.set_experiment(experiment_id=experiment)
            mlflow.start_run(run_id=run_id)
            mlflow.log_params(_params(config))
        yield StageRun(config, run_id)
        status = FINISHED
        print(
            f"MLflow run {run_id} (experiment {settings.experiment!r} at {settings.tracking_uri})"
        )
    except (KeyboardInterrupt, SystemExit):
        status = KILLED
        raise
    except Exception as error:
        with contextlib.suppress(Exception):
            tracking.set_tag(run_id, TAG + "error", first_line(error)[:5000])
        raise
    finally:
        if mlflow.active_run() is not None:
            mlflow.end_run(status)
        else:
            with contextlib.suppress(Exception):
                tracking.set_terminated(run_id, status)


def register_saved(config: Config, predictor: LinearPredictor, directory: Path) -> dict[str, Any]:
    """Register ``predictor``: the pyfunc model an earlier run logged of this very file (by its
    sha256), or else one logged now by a ``register`` run; then point the alias at it."""
    settings = config.tracking
    tracking = client(settings)
    experiment = experiment_id(tracking, settings)
    sha256 = str(predictor.details["sha256"])
    with _errors("searching the runs"):
        runs = tracking.search_runs(
            [experiment],
            filter_string=f"tags.`{MODEL_SHA256}` = '{sha256}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=20,
        )
    logged = [run for run in runs if MODEL_URI in run.data.tags]
    if logged:
        run_id, model_uri = logged[0].info.run_id, logged[0].data.tags[MODEL_URI]
    else:
        with stage_run(config, f"register {predictor.name}") as run:
            model_uri = run.log_model(predictor, directory)
            run_id = run.run_id
    version = register_version(tracking, settings, model_uri, predictor.name, run_id)
    return {"model_uri": model_uri, "run_id": run_id, **version}


def register_version(
    tracking: MlflowClient, settings: MlflowTrackingConfig, model_uri: str, model: str, run_id: str
) -> dict[str, Any]:
    """The version of ``settings.registered_model`` made from ``model_uri`` (a new one unless
    it was registered before), with ``settings.alias`` pointing at it."""
    name = settings.registered_model
    with _errors(f"registering {model!r} as {name!r}"):
        try:
            tracking.create_registered_model(name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        existing = [
            version
            for version in tracking.search_model_versions(f"name = '{name}'")
            if version.source == model_uri
        ]
        if existing:
            version, new = existing[0], False
        else:
            version = tracking.create_model_version(
                name, model_uri, run_id=run_id, tags={TAG + "model": model}
            )
            new = True
        tracking.set_registered_model_alias(name, settings.alias, version.version)
    return {
        "registered_model": name,
        "version": int(version.version),
        "new_version": new,
        "alias": settings.alias,
        "uri": f"models:/{name}@{settings.alias}",
    }


def load_registered(settings: MlflowTrackingConfig, uri: str) -> LinearPredictor:
    """The registered version ``uri`` names (an alias resolved now), loaded from its folded
    JSON and verified against its manifest, as a saved model is loaded. Its name is the
    registered model's; ``details`` say which version and which saved model it was."""
    tracking = client(settings)
    name, alias, number = registry_parts(uri)
    with _errors(f"loading {uri}"):
        version = (
            tracking.get_model_version_by_alias(name, alias)
            if alias is not None
            else tracking.get_model_version(name, str(number))
        )
        with tempfile.TemporaryDirectory() as staging:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version.version}/artifacts/{ARTIFACT}",
                dst_path=staging,
            )
            loaded = load_model_directory(path, name)
    details = {
        **loaded.details,
        "registry_uri": uri,
        "registered_version": int(version.version),
        "source_tag": version.tags.get(TAG + "model"),
    }
    return LinearPredictor(name=name, folded=loaded.folded, details=details)


def start_sweep(settings: MlflowTrackingConfig, sweep_dir: Path, overrides: list[str]) -> None:
    """The sweep's parent run (RUNNING until :func:`end_sweep`), its id written for the jobs.
    A sweep stopped before its end (Ctrl-C, SIGTERM) ends the run KILLED on the way out."""
    tracking = client(settings)
    experiment = experiment_id(tracking, settings)
    with _errors("starting the sweep's run"):
        tags = {TAG + "stage": "sweep", TAG + "sweep_dir": str(sweep_dir)}
        if settings.parent_run_id is not None:
            tags[MLFLOW_PARENT_RUN_ID] = settings.parent_run_id
        run_id = tracking.create_run(
            experiment, run_name=f"sweep {sweep_dir.parent.name}/{sweep_dir.name}", tags=tags
        ).info.run_id
        tracking.log_param(run_id, "overrides", " ".join(overrides) or "(none)")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / PARENT_RUN_FILE).write_bytes(artifacts.json_bytes({"run_id": run_id}))
    print(
        f"MLflow run {run_id}: the sweep's, each job's run nested under it (experiment "
        f"{settings.experiment!r} at {settings.tracking_uri})"
    )
    atexit.register(_end_if_running, tracking, run_id, KILLED)


def end_sweep(
    settings: MlflowTrackingConfig, run_id: str, sweep_dir: Path, rows: list[dict[str, Any]]
) -> str | None:
    """Log the sweep's report on its parent run, register the best setting (``register_best``,
    if no job failed) and end the parent run FINISHED, or FAILED if a job failed or this
    does; children a crash left RUNNING are marked FAILED. Returns what was registered."""
    tracking = client(settings)
    failed = sum(row["status"] != "ok" for row in rows)
    status = FAILED
    try:
        with _errors("ending the sweep's run"):
            for name in ("sweep_results.csv", "sweep_results.md", "sweep.png"):
                if (sweep_dir / name).exists():
                    tracking.log_artifact(run_id, str(sweep_dir / name))
            tracking.log_metric(run_id, "jobs", len(rows))
            tracking.log_metric(run_id, "failed_jobs", failed)
            registered = (
                _register_best(settings, tracking, rows) if settings.register_best else None
            )
        status = FAILED if failed else FINISHED
    finally:
        _end_if_running(tracking, run_id, status)
    return registered


def _end_if_running(tracking: MlflowClient, run_id: str, status: str) -> None:
    """End the sweep's parent run with ``status``, and its children still RUNNING (they
    crashed or were stopped) FAILED or KILLED; nothing if the parent has ended already."""
    with contextlib.suppress(Exception):
        parent = tracking.get_run(run_id)
        if parent.info.status != "RUNNING":
            return
        children = tracking.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{run_id}' "
            "and attributes.status = 'RUNNING'",
        )
        for child in children:
            tracking.set_terminated(child.info.run_id, FAILED if status != KILLED else KILLED)
        tracking.set_terminated(run_id, status)


def _register_best(
    settings: MlflowTrackingConfig, tracking: MlflowClient, rows: list[dict[str, Any]]
) -> str:
    if any(row["status"] != "ok" for row in rows):
        return "Not registered: a sweep with failed jobs registers nothing"
    shown = measures_of(rows)
    key = "max_accuracy_loss" if shown.score == "accuracy" else "max_r2_loss"
    best = best_setting(rows, getattr(settings, key))
    if best is None:
        return (
            f"Not registered: no quantized setting's test {shown.score_label} is within "
            f"tracking.{key}={getattr(settings, key):g} of its float model's"
        )
    run_id = best.get("mlflow_run_id")
    if not isinstance(run_id, str) or not run_id:  # a job of an earlier, untracked sweep
        return f"Not registered: the best setting, job {best['job']}, has no MLflow run"
    run = tracking.get_run(run_id)
    label = f"sweep job {best['job']}"
    version = register_version(tracking, settings, run.data.tags[MODEL_URI], label, run.info.run_id)
    setting = f"{best['bits']} bits, {best['rounding']} rounding, {best['granularity']}"
    if best.get("model"):
        setting += f", {best['model']}"
    return (
        f"Registered {label} ({setting}: {shown.score_label} "
        f"{best[shown.score + '_quant']:.6f}, the float model's "
        f"{best[shown.score + '_float']:.6f}) as {version['registered_model']!r} version "
        f"{version['version']}: {version['uri']}"
    )
