"""Hydra callbacks of a multirun: its parent run when tracked (mlops_lr.tracking), and at the
end its results table and plot (mlops_lr.sweep)."""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mlops_lr.config import MlflowTrackingConfig
from mlops_lr.exceptions import ConfigError, MlopsLrError, first_line
from mlops_lr.sweep import write_reports


class SweepReport(Callback):
    """Before a multirun, create its MLflow parent run (``tracking=mlflow``). After it, write
    ``sweep_results.{csv,md}`` and ``sweep.png`` into the sweep directory, log them on the
    parent run, print where they are, and fail the multirun if any job failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns a callback's exceptions into warnings and goes on: ours end the sweep.
        with _one_line():
            settings = _tracking(config)
            if settings is not None:
                from mlops_lr import tracking

                # As written: resolving them would fail on a job's own ${hydra:…} values.
                overrides = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
                tracking.sweep_start(settings, config.hydra.sweep.dir, overrides)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        rows = write_reports(sweep_dir)
        failed = [row for row in rows if row["status"] != "ok"]
        print(f"Sweep report: {sweep_dir}/sweep_results.md, sweep_results.csv, sweep.png")
        try:
            with _one_line():
                settings = _tracking(config)
                if settings is not None:
                    from mlops_lr import tracking

                    registered = tracking.sweep_end(settings, sweep_dir, rows)
                    if registered is not None:
                        print(registered)
        finally:
            if failed:
                first = failed[0]
                raise SystemExit(
                    f"error: {len(failed)} of {len(rows)} sweep jobs failed "
                    f"(job {first['job']}: {first['error']}); the others are in the report"
                )


def _tracking(config: DictConfig) -> MlflowTrackingConfig | None:
    """The sweep's MLflow settings (None: not tracked), validated as a job's would be.

    Raises
    ------
    ConfigError
        A setting is impossible, or cannot be resolved without a job (a store under a job's
        own directory: each job would have its own).
    """
    node = OmegaConf.select(config, "tracking")
    if node is None or node.get("name") != "mlflow":
        return None
    node = node.copy()
    node.run_name = None  # a job's own name (it may say ${hydra:job.num}); the parent has its own
    try:
        settings = OmegaConf.to_object(node)
    except OmegaConfBaseException as error:
        raise ConfigError(
            f"tracking: {first_line(error)} (a tracked sweep keeps one store for all its jobs: "
            "set paths.tracking_dir to a directory of its own)"
        ) from None
    return settings if isinstance(settings, MlflowTrackingConfig) else None


@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    """A user's error (the tracking store is unreachable, the extra not installed) as one line
    and its exit code, as the command line reports it; anything else with its traceback. Either
    ends the multirun: Hydra would make an exception a warning and go on."""
    try:
        yield
    except MlopsLrError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(error.exit_code) from None
    except Exception:  # a bug: Hydra would make it a warning and exit 0
        traceback.print_exc()
        raise SystemExit(1) from None
