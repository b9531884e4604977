"""Hydra callbacks of a multirun: its parent run when tracked (mlops_lr.tracking), and at the
end its results table and plot (mlops_lr.sweep)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mlops_lr.config import MlflowTrackingConfig
from mlops_lr.exceptions import MlopsLrError
from mlops_lr.sweep import write_reports


class SweepReport(Callback):
    """Before a multirun, create its MLflow parent run (``tracking=mlflow``). After it, write
    ``sweep_results.{csv,md}`` and ``sweep.png`` into the sweep directory, log them on the
    parent run, print where they are, and fail the multirun if any job failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        settings = _tracking(config)
        if settings is not None:
            from mlops_lr import tracking

            overrides = list(config.hydra.overrides.task)
            with _one_line():
                tracking.sweep_start(settings, config.hydra.sweep.dir, overrides)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        rows = write_reports(sweep_dir)
        failed = [row for row in rows if row["status"] != "ok"]
        print(f"Sweep report: {sweep_dir}/sweep_results.md, sweep_results.csv, sweep.png")
        settings = _tracking(config)
        if settings is not None:
            from mlops_lr import tracking

            with _one_line():
                registered = tracking.sweep_end(settings, sweep_dir, rows)
            if registered is not None:
                print(registered)
        if failed:
            first = failed[0]
            raise SystemExit(
                f"error: {len(failed)} of {len(rows)} sweep jobs failed "
                f"(job {first['job']}: {first['error']}); the others are in the report"
            )


def _tracking(config: DictConfig) -> MlflowTrackingConfig | None:
    """The sweep's MLflow settings (None: not tracked). Only the tracking group is resolved:
    the rest may refer to a job's directory, which a multirun does not have."""
    node = OmegaConf.select(config, "tracking")
    if node is None or node.get("name") != "mlflow":
        return None
    settings = OmegaConf.to_object(node)
    return settings if isinstance(settings, MlflowTrackingConfig) else None


@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    """A user's error (the tracking store is unreachable, the extra not installed) as one line
    and its exit code, as the command line reports it."""
    try:
        yield
    except MlopsLrError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(error.exit_code) from None
