"""Aggregate a Hydra multirun: one row per job → ``sweep_results.csv``, ``sweep_results.md`` and
``sweep.png`` in the sweep directory. Used by the multirun callback and by ``make report``:
``python -m mlops_lr.sweep <sweep_dir>``.

Every job directory (``<sweep_dir>/<n>/``) holds ``result.json`` (written by the CLI: status,
metrics or error) and Hydra's ``.hydra/overrides.yaml``; a job without ``result.json`` died
before it could write one and counts as failed.

A sweep may vary the quantization (``quantization.*``), the float model (``model=…``,
``model.*``, e.g. ``model.alpha`` with ``+sweep=alpha``, ``preprocess.*`` or ``dataset.*``) or
both: a job's model, preprocess and dataset overrides name its float model, and the best
quantization is chosen per float model and bit width.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from mlops_lr import artifacts
from mlops_lr.report import markdown_table

RESULT_FILE = "result.json"
COLUMNS = (
    "job",
    "status",
    "overrides",
    "model",
    "task",
    "bits",
    "scheme",
    "granularity",
    "rounding",
    "rounding_used",
    "scale",
    "r2_float",
    "r2_quant",
    "mse_quant",
    "max_abs_pred_diff",
    "mean_abs_pred_diff",
    "accuracy_float",
    "accuracy_quant",
    "log_loss_float",
    "log_loss_quant",
    "class_agreement",
    "max_abs_proba_diff",
    "mean_abs_proba_diff",
    "calibration_objective",
    "size_bytes_quant",
    "payload_bytes_quant",
    "mlflow_run_id",
    "error",
)


@dataclass(frozen=True)
class Measures:
    """What a sweep's table and plot show for one task: the quantized model's test score
    (``<score>_quant``, beside its float model's ``<score>_float``), how close it stays to
    the float model (``closeness``, on a log scale when ``log_scale``) and the worst case
    (``worst``)."""

    score: str
    score_label: str
    closeness: str
    closeness_label: str
    worst: str
    worst_label: str
    log_scale: bool


MEASURES = {
    "regression": Measures(
        "r2",
        "R²",
        "mean_abs_pred_diff",
        "mean abs Δpred",
        "max_abs_pred_diff",
        "max abs Δpred",
        log_scale=True,
    ),
    "classification": Measures(
        "accuracy",
        "accuracy",
        "class_agreement",
        "class agreement",
        "max_abs_proba_diff",
        "max abs ΔP",
        log_scale=False,
    ),
}


def measures_of(rows: list[dict[str, Any]]) -> Measures:
    """The measures of the sweep's task (its first finished job's; a regression's if none,
    or if the job names none: a regressor's metrics, or an empty CSV cell read back)."""
    tasks = [row.get("task") for row in rows if row["status"] == "ok"]
    return MEASURES[tasks[0] if tasks and tasks[0] in MEASURES else "regression"]


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per job directory of ``sweep_dir``, in job order."""
    rows = []
    job_dirs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()]
    for job_dir in sorted(job_dirs, key=lambda p: int(p.name)):
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        overrides = _overrides(overrides_file) if overrides_file.exists() else ""
        row: dict[str, Any] = {
            "job": int(job_dir.name),
            "overrides": overrides,
            "model": model_overrides(overrides),
        }
        result_file = job_dir / RESULT_FILE
        if result_file.exists():
            result = json.loads(result_file.read_text(encoding="utf-8"))
            row.update(status=result["status"], error=result.get("error", ""))
            row.update({k: v for k, v in result.get("metrics", {}).items() if k in COLUMNS})
        else:
            row.update(status="failed", error="the job wrote no result (it crashed)")
        rows.append(row)
    return rows


def _overrides(path: Path) -> str:
    """Hydra's ``overrides.yaml`` (a YAML list of strings) as one space-separated line."""
    return " ".join(OmegaConf.load(path))


# An override of the groups that make the float model (a quantization setting does not), with
# Hydra's prefixes: +key=… adds, ++key=… forces, ~key deletes.
_FLOAT_MODEL_OVERRIDE = re.compile(r"^(?:\+\+|\+|~)?(?:model|dataset|preprocess)(?:[.=]|$)")


def model_overrides(overrides: str) -> str:
    """The overrides that choose the float model (``model``, ``preprocess``, ``dataset``), the
    group choices (``model=ridge``) first."""
    chosen = [o for o in overrides.split() if _FLOAT_MODEL_OVERRIDE.match(o)]
    return " ".join(sorted(chosen, key=lambda o: "." in _name(o)))


def _name(override: str) -> str:
    return override.lstrip("+~").partition("=")[0]


def _model_numbers(models: str) -> dict[str, float]:
    """The numeric ``model.<key>=<value>`` settings among a row's model overrides."""
    numbers = {}
    for override in models.split():
        name, _, value = override.lstrip("+~").partition("=")
        if name.startswith("model."):
            try:
                numbers[name.removeprefix("model.")] = float(value.strip("'\""))
            except ValueError:
                continue
    return numbers


def model_parameter(rows: list[dict[str, Any]]) -> str | None:
    """The one numeric ``model.<key>`` (e.g. ``alpha``) that every row sets and the rows vary,
    if there is exactly one."""
    settings = [_model_numbers(row["model"]) for row in rows]
    shared = set.intersection(*(set(numbers) for numbers in settings)) if settings else set()
    varied = [key for key in shared if len({numbers[key] for numbers in settings}) > 1]
    return varied[0] if len(varied) == 1 else None


def parameter_value(row: dict[str, Any], key: str) -> float:
    """The value of ``model.<key>`` that ``row``'s job was run with."""
    return _model_numbers(row["model"])[key]


def without_parameter(row: dict[str, Any], key: str) -> str:
    """``row``'s model overrides but the one that sets ``model.<key>``."""
    return " ".join(o for o in row["model"].split() if _name(o) != f"model.{key}")


def best_per_bits(rows: list[dict[str, Any]]) -> set[int]:
    """Job numbers of the lowest calibration objective for each float model at each bit width
    (ties: first job). Objectives of different float models are not compared."""
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        if row["status"] != "ok" or "calibration_objective" not in row:
            continue
        key = (row["model"], row["bits"])
        current = best.get(key)
        if current is None or row["calibration_objective"] < current["calibration_objective"]:
            best[key] = row
    return {row["job"] for row in best.values()}


def best_setting(rows: list[dict[str, Any]], max_loss: float) -> dict[str, Any] | None:
    """The row to ship: the smallest bit width with a setting whose test score (R², or a
    classifier's accuracy: :func:`measures_of`) is at most ``max_loss`` below its float
    model's, and at that width the setting with the highest score (ties: first job). None if
    no setting is that close."""
    score = measures_of(rows).score
    quant, reference = f"{score}_quant", f"{score}_float"
    close = [
        row
        for row in rows
        if row["status"] == "ok" and quant in row and row[reference] - row[quant] <= max_loss
    ]
    if not close:
        return None
    return min(close, key=lambda row: (row["bits"], -row[quant], row["job"]))


def write_reports(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Write the CSV, the Markdown table and the plot for ``sweep_dir``; return the rows."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    best = best_per_bits(rows)
    # The model column only when the sweep varies the float model (a bits sweep keeps its table);
    # each float model's rows together, in the order Hydra ran them.
    models = len({row["model"] for row in rows}) > 1
    first_job: dict[str, int] = {}
    for row in rows:
        first_job.setdefault(row["model"], row["job"])

    def in_table_order(row: dict[str, Any]) -> tuple[int, int, int]:
        return first_job[row["model"]], row.get("bits", 0), row["job"]

    shown = measures_of(rows)
    table = markdown_table(
        [
            "job",
            "best",
            *(["model"] if models else []),
            "bits",
            "granularity",
            "rounding",
            "scale",
            *([f"float {shown.score_label}"] if models else []),
            shown.score_label,
            shown.closeness_label,
            shown.worst_label,
            "bytes",
            "status",
        ],
        [
            [
                row["job"],
                "★" if row["job"] in best else "",
                *([row["model"]] if models else []),
                row.get("bits", ""),
                row.get("granularity", ""),
                _rounding(row),
                row.get("scale", ""),
                *([_fmt(row.get(f"{shown.score}_float"), ".6f")] if models else []),
                _fmt(row.get(f"{shown.score}_quant"), ".6f"),
                _fmt(row.get(shown.closeness), ".2e" if shown.log_scale else ".6f"),
                _fmt(row.get(shown.worst), ".2e"),
                row.get("payload_bytes_quant", ""),
                row["status"] if row["status"] == "ok" else f"failed: {row['error']}",
            ]
            for row in sorted(rows, key=in_table_order)
        ],
    )
    failed = sum(row["status"] != "ok" for row in rows)
    header = (
        f"# Sweep results: {len(rows)} jobs, {failed} failed\n\n"
        "★ marks the lowest calibration objective (train split) at each bit width"
        + (" for each float model" if models else "")
        + ".\n\n"
    )
    files = {
        "sweep_results.csv": buffer.getvalue().encode(),
        "sweep_results.md": (header + table + "\n").encode(),
    }
    ok_rows = [row for row in rows if row["status"] == "ok" and f"{shown.score}_quant" in row]
    if ok_rows:
        from mlops_lr.plots import sweep_figure_png

        files["sweep.png"] = sweep_figure_png(ok_rows, model_parameter(ok_rows), shown)
    artifacts.write_artifacts(sweep_dir, files, {"jobs": len(rows), "failed": failed})
    return rows


def _rounding(row: dict[str, Any]) -> str:
    """The rounding asked for, and what ``auto`` got."""
    asked, used = row.get("rounding", ""), row.get("rounding_used")
    return f"{asked} ({used})" if asked == "auto" and used else asked


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    """``python -m mlops_lr.sweep SWEEP_DIR``: rebuild the reports of an existing sweep."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print(
            "usage: python -m mlops_lr.sweep SWEEP_DIR (a Hydra multirun directory)",
            file=sys.stderr,
        )
        return 2
    rows = write_reports(args[0])
    failed = sum(row["status"] != "ok" for row in rows)
    print(
        f"{args[0]}: {len(rows)} jobs ({failed} failed) → "
        "sweep_results.csv, sweep_results.md, sweep.png"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
