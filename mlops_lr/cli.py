"""The command line: ``python -m mlops_lr [stage=…] [group=option] [key=value …]``.

The only module that knows Hydra's entry point. It validates the composed config, dispatches on
``stage`` and turns the errors a user can fix into one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig

from mlops_lr import artifacts, tracking
from mlops_lr.config import Config, register_configs, to_config
from mlops_lr.exceptions import ConfigError, MlopsLrError, first_line
from mlops_lr.sweep import RESULT_FILE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "conf"


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def _run(cfg: DictConfig) -> None:
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        config = to_config(cfg)
        if multirun and config.tracking.name == "mlflow":
            _nest_in_sweep(config)
        # Each stage (config.STAGES) is mlops_lr.stages.<stage>.run; only the one that runs is
        # imported, so a stage that needs neither scikit-learn nor pandas starts without them.
        stage = importlib.import_module(f"mlops_lr.stages.{config.stage}")
        result = stage.run(config)
    except MlopsLrError as error:
        print(f"error: {error}", file=sys.stderr)
        if not multirun:
            sys.exit(error.exit_code)
        # In a sweep a failed job is recorded, not raised: the other jobs go on and the
        # report callback fails the multirun at the end.
        _record(status="failed", error=str(error))
        return
    if multirun:
        _record(status="ok", metrics=result if isinstance(result, dict) else {})


def _nest_in_sweep(config: Config) -> None:
    """A tracked sweep job's run: a child of the sweep's parent run (itself a child of
    ``tracking.parent_run_id`` if set), named by its job number and overrides (unless the
    config names it)."""
    hydra_config = HydraConfig.get()
    settings = config.tracking
    settings.parent_run_id = tracking.sweep_parent(hydra_config.sweep.dir) or settings.parent_run_id
    if settings.run_name is None:
        settings.run_name = tracking.job_run_name(
            hydra_config.job.num, list(hydra_config.overrides.task)
        )


def _record(**result: object) -> None:
    """Write this job's outcome to ``<job dir>/result.json`` for the sweep report."""
    path = Path(HydraConfig.get().runtime.output_dir) / RESULT_FILE
    path.write_bytes(artifacts.json_bytes(result))


# What Hydra raises while it composes the config, before any job runs: the user's to fix.
COMPOSITION_ERRORS = (ConfigCompositionException, OverrideParseException)


def one_line(error: ConfigCompositionException | OverrideParseException) -> str:
    """A composition error of Hydra's (unknown option, wrong type, bad override) as one line:
    the override it could not parse, its first line, OmegaConf's reason when it has one, and
    the options a group offers."""
    override = getattr(error, "override", None)  # an OverrideParseException's input
    parts = [
        part
        for part in (
            f"cannot parse {override!r}" if override else "",
            first_line(str(error)).rstrip("."),
            first_line(str(error.__cause__ or "")).rstrip("."),
        )
        if part
    ]
    options = getattr(error, "options", None)
    if options:
        parts.append("options: " + ", ".join(sorted(options)))
    return "; ".join(parts) or type(error).__name__


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (``docker stop``, a scheduler's kill) ends a run as Ctrl-C does, by unwinding:
    atomic writes remove their temporaries on the way out. Exit code 128 + 15, as the shell
    reports a killed process."""
    raise SystemExit(128 + signum)


def main() -> None:
    """Entry point of ``python -m mlops_lr`` and the ``mlops-lr`` script."""
    # conf/paths/default.yaml puts artifacts under ${oc.env:PROJECT_ROOT}: the checkout root
    # unless the caller says otherwise (the Docker image, a test).
    os.environ.setdefault("PROJECT_ROOT", str(PROJECT_ROOT))
    register_configs()
    # Hydra prints its composition errors over several lines; HYDRA_FULL_ERROR=1 makes it raise
    # them, to be printed as one line like ours (unless the user set it, asking for Hydra's
    # report). Anything else that escapes a job is a bug and keeps its traceback.
    full_report = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_DFL:  # a caller's own handler stays (the server sets one too)
        signal.signal(signal.SIGTERM, _terminated)
    try:
        _run()
    except COMPOSITION_ERRORS as error:
        if full_report == "1":
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(ConfigError.exit_code)
    finally:
        signal.signal(signal.SIGTERM, previous)
        os.environ.pop("HYDRA_FULL_ERROR")
        if full_report is not None:
            os.environ["HYDRA_FULL_ERROR"] = full_report
