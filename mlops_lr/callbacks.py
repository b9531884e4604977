"""Hydra callback: every multirun ends with its results table and plot (mlops_lr.sweep)."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mlops_lr.sweep import write_reports


class SweepReport(Callback):
    """After a multirun, write ``sweep_results.{csv,md}`` and ``sweep.png`` into the sweep
    directory, print where they are, and fail the multirun if any job failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        rows = write_reports(sweep_dir)
        failed = [row for row in rows if row["status"] != "ok"]
        print(f"Sweep report: {sweep_dir}/sweep_results.md, sweep_results.csv, sweep.png")
        if failed:
            first = failed[0]
            raise SystemExit(
                f"error: {len(failed)} of {len(rows)} sweep jobs failed "
                f"(job {first['job']}: {first['error']}); the others are in the report"
            )
