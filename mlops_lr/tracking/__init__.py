"""Run tracking: what train, quantize, export and register record, and where.

``tracking=none`` (the default) records nothing and imports nothing. ``tracking=mlflow``
records each of those stages as an MLflow run (:mod:`mlops_lr.tracking.mlflow_runs`, the only
module that imports MLflow): the resolved config as params, the metrics, the data fingerprint
and package versions as tags, the reports and manifests as artifacts, and the model as an
MLflow pyfunc model built on its folded JSON. A sweep is one parent run with a child per job.

Stages use :func:`start_run` and :func:`load_model`; the sweep callbacks and the command line
use the ``sweep_*`` functions and :data:`PARENT_RUN_FILE`. Nothing here knows Hydra.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from mlops_lr.config import Config, MlflowTrackingConfig, is_registry_uri
from mlops_lr.exceptions import ConfigError
from mlops_lr.predictor import LinearPredictor, load_predictor

# Written into a sweep directory when its parent run is created: the jobs nest under it.
PARENT_RUN_FILE = "mlflow_parent_run.json"
# Overrides that say where things go, not what a sweep job does: left out of its run's name.
_PLUMBING = ("paths.", "hydra.", "tracking", "sweep=")


class Run(Protocol):
    """A stage's run: ``run_id`` is None when nothing is tracked."""

    run_id: str | None

    def log_outcome(
        self, metrics: Mapping[str, Any], directory: str | Path, model: str | None = None
    ) -> None:
        """Record ``metrics`` and the files of ``directory`` (those in its manifest), and,
        when ``model`` names the model that directory holds, log it as a pyfunc model."""


class _Untracked:
    """The run of a stage when ``tracking=none``: it records nothing."""

    run_id = None

    def log_outcome(
        self, metrics: Mapping[str, Any], directory: str | Path, model: str | None = None
    ) -> None:
        return None


@contextlib.contextmanager
def start_run(config: Config, name: str) -> Iterator[Run]:
    """The run of one stage, named ``name`` unless ``tracking.run_name`` says otherwise.

    With ``tracking=mlflow`` it ends FINISHED when the block does, FAILED (with the error as
    the tag ``mlops_lr.error``) when it raises, KILLED on Ctrl-C or SIGTERM.
    """
    if config.tracking.name == "none":
        yield _Untracked()
        return
    mlflow_runs = _mlflow_runs()
    with mlflow_runs.stage_run(config, name) as run:
        yield run


def load_model(config: Config, model: str) -> LinearPredictor:
    """``model``: a saved model (``float`` or a quantized tag, checked for staleness), or a
    registered version (``models:/<name>@<alias>``, ``models:/<name>/<version>``)."""
    if is_registry_uri(model):
        return _mlflow_runs().load_registered(config.tracking, model)
    return load_predictor(
        config.paths.artifacts_dir,
        model,
        config.paths.quantized_dir,
        allow_stale=config.allow_stale,
    )


def register(config: Config, predictor: LinearPredictor, directory: Path) -> dict[str, Any]:
    """Register ``predictor`` (saved in ``directory``) under ``tracking.registered_model`` and
    point ``tracking.alias`` at the new version; returns what was registered."""
    return _mlflow_runs().register_saved(config, predictor, directory)


def sweep_start(
    settings: MlflowTrackingConfig, sweep_dir: str | Path, overrides: list[str]
) -> None:
    """Create the sweep's parent run (and the store, before parallel jobs could race to) and
    write its id to ``<sweep_dir>/mlflow_parent_run.json`` for the jobs."""
    _mlflow_runs().start_sweep(settings, Path(sweep_dir), overrides)


def sweep_parent(sweep_dir: str | Path) -> str | None:
    """The parent run id of the sweep in ``sweep_dir`` (None: the sweep is not tracked)."""
    path = Path(sweep_dir) / PARENT_RUN_FILE
    if not path.exists():
        return None
    return str(json.loads(path.read_text(encoding="utf-8"))["run_id"])


def sweep_end(
    settings: MlflowTrackingConfig, sweep_dir: str | Path, rows: list[dict[str, Any]]
) -> str | None:
    """Log the sweep report on the parent run, register the best setting if asked, and end
    the parent FINISHED (FAILED if a job failed). Returns a line saying what was registered."""
    run_id = sweep_parent(sweep_dir)
    if run_id is None:
        return None
    return _mlflow_runs().end_sweep(settings, run_id, Path(sweep_dir), rows)


def job_run_name(job: int, overrides: list[str]) -> str:
    """A sweep job's run name: its number and the overrides that say what it does."""
    chosen = [o for o in overrides if not o.lstrip("+~").startswith(_PLUMBING)]
    return f"job {job}: {' '.join(chosen)}" if chosen else f"job {job}"


def _mlflow_runs() -> Any:
    """The MLflow side, imported on first use (MLflow takes a second to import)."""
    # Before MLflow's first import: its telemetry is on by default (since 3.2); a user who
    # set the variable keeps their choice.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # An unreachable server: MLflow's default retries take 4 minutes to give up; these, about
    # 15 seconds (the variables are MLflow's own, for a user to set otherwise).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    try:
        from mlops_lr.tracking import mlflow_runs
    except ModuleNotFoundError as error:
        raise ConfigError(
            f"tracking=mlflow needs {error.name}: pip install 'mlops-lr[tracking]' "
            "(or -r requirements-tracking.txt)"
        ) from None
    return mlflow_runs


def run_reference(run: Run) -> dict[str, str]:
    """``{"mlflow_run_id": …}`` for a tracked run (a sweep's report links rows to runs), else
    nothing."""
    return {} if run.run_id is None else {"mlflow_run_id": run.run_id}
