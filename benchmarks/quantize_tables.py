"""Accuracy, size and time of the quantized folded model on two real tables with categories.

Usage: python benchmarks/quantize_tables.py [--datasets penguins,diamonds]
       [--bits 2,3,4,6,8,10,12,16] [--rounding optimal] [--time-limit 300] [--output table.md]

For palmerpenguins (target ``body_mass_g``, rows with a missing target dropped; species, island
and sex categorical) and plotnine's bundled diamonds (target ``price``; cut, color and clarity
categorical), each read by ``mlops_lr.data.load_table`` from a CSV: split 0.2 / seed 42, fit
``Pipeline(ColumnTransformer, Ridge())`` (preprocess=standard) on the training split, fold it,
calibrate (centre the tables, design moments of the training split), then for every width
quantize with ``default_spec(bits)`` (``--rounding`` overrides its rounding) and print one
Markdown row: test R² of the float and the dequantized folded model, ΔR², mean and max
|Δpred| on the test split (also as % of std(y_test)), stored bytes and the time to quantize.
Two more columns probe what the test split never reaches: the max |Δpred| (% of std(y_test))
on the test split with one categorical column at a time set to a category unseen in training,
or to missing - rows priced by a table's unknown / missing entry.

Goals, checked per dataset (a PASS/FAIL line each): 8 bits ΔR² ≥ -0.001 and mean |Δpred| ≤
0.5 % of std(y_test); 16 bits max |Δpred| ≤ 0.01 % of std(y_test). A width whose quantization
raises (e.g. SearchBudgetExceeded) or runs past ``--time-limit`` seconds is a row saying so.
Needs palmerpenguins and plotnine (for its CSV only).
"""

from __future__ import annotations

import argparse
import importlib.resources
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from mlops_lr.config import StandardPreprocessConfig
from mlops_lr.data import Dataset, load_table, split_dataset
from mlops_lr.metrics import prediction_difference, regression_metrics
from mlops_lr.preprocess import build_model, fold
from mlops_lr.quantize import ROUNDINGS, default_spec
from mlops_lr.quantized_folded import calibrate, float_storage_bytes, quantize_folded
from mlops_lr.report import markdown_table

DATASETS = ("penguins", "diamonds")
GOAL_8BIT_DELTA_R2 = -0.001
GOAL_8BIT_MEAN_PCT = 0.5  # mean |Δpred|, % of std(y_test)
GOAL_16BIT_MAX_PCT = 0.01  # max |Δpred|, % of std(y_test)


# The test split with one categorical column at a time set to a category no training row has,
# or to missing: rows that reach a table's unknown / missing entry.
PROBES = {"unseen": "\x00never seen\x00", "missing": None}


class TimeLimit(Exception):
    """Quantizing one width took longer than ``--time-limit``."""


def load(name: str, tmp: Path) -> Dataset:
    if name == "penguins":
        import palmerpenguins

        path = tmp / "penguins.csv"
        palmerpenguins.load_penguins().to_csv(path, index=False)
        return load_table(path, "body_mass_g", missing_target="drop", preprocessed=True)
    path = importlib.resources.files("plotnine") / "data" / "diamonds.csv"
    return load_table(str(path), "price", missing_target="drop", preprocessed=True)


def probe_frames(test: pd.DataFrame, categorical: list[str], value: object) -> list[pd.DataFrame]:
    """``test`` once per categorical column, that column set to ``value``."""
    frames = []
    for name in categorical:
        frame = test.copy()
        frame[name] = pd.Series([value] * len(frame), index=frame.index, dtype=object)
        frames.append(frame)
    return frames


def quantize_timed(centred, spec, moments, limit: float):
    """``quantize_folded`` and its seconds; raises TimeLimit past ``limit`` seconds."""

    def expire(signum, frame):
        raise TimeLimit(f"over the time limit of {limit:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    start = time.perf_counter()
    try:
        return quantize_folded(centred, spec, moments), time.perf_counter() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def benchmark(name: str, dataset: Dataset, bits: list[int], args: argparse.Namespace) -> str:
    split = split_dataset(dataset, 0.2, 42)
    categorical = list(dataset.categorical)
    pipeline = build_model(StandardPreprocessConfig(), Ridge(), split.train, categorical)
    pipeline.fit(split.train, split.y_train)
    folded = fold(pipeline, dataset.feature_names, categorical, dataset.target_name)
    pred_float = folded.predict(split.test)
    folding_error = float(np.abs(pred_float - pipeline.predict(split.test)).max())
    r2_float = regression_metrics(split.y_test, pred_float)["r2"]
    std = float(np.std(split.y_test))
    start = time.perf_counter()
    centred, moments = calibrate(folded, split.train)
    calibrate_s = time.perf_counter() - start
    probes = {kind: probe_frames(split.test, categorical, value) for kind, value in PROBES.items()}
    probe_float = {kind: [folded.predict(f) for f in frames] for kind, frames in probes.items()}

    rows, results = [], {}
    for width in bits:
        spec = default_spec(width)
        if args.rounding:
            spec = replace(spec, rounding=args.rounding)
        print(f"{name}: {width} bits ...", end=" ", file=sys.stderr, flush=True)
        try:
            quantized, seconds = quantize_timed(centred, spec, moments, args.time_limit)
        except Exception as error:  # SearchBudgetExceeded, TimeLimit, a bug: a row, not a crash
            print(f"{type(error).__name__}", file=sys.stderr)
            rows.append([width, f"{type(error).__name__}: {error}", *[""] * 12])
            continue
        print(f"{seconds:.2f} s", file=sys.stderr)
        pred = quantized.dequantized().predict(split.test)
        r2 = regression_metrics(split.y_test, pred)["r2"]
        difference = prediction_difference(pred_float, pred)
        mean_abs, max_abs = difference["mean_abs_pred_diff"], difference["max_abs_pred_diff"]
        probe_pct = {
            kind: max(
                100 * float(np.abs(quantized.dequantized().predict(f) - p).max()) / std
                for f, p in zip(frames, probe_float[kind], strict=True)
            )
            for kind, frames in probes.items()
        }
        results[width] = {
            "delta_r2": r2 - r2_float,
            "mean_pct": 100 * mean_abs / std,
            "max_pct": 100 * max_abs / std,
        }
        rows.append(
            [
                width,
                f"{r2_float:.6f}",
                f"{r2:.6f}",
                f"{r2 - r2_float:+.2e}",
                f"{mean_abs:.3g}",
                f"{results[width]['mean_pct']:.2g}",
                f"{max_abs:.3g}",
                f"{results[width]['max_pct']:.2g}",
                f"{probe_pct['unseen']:.2g}",
                f"{probe_pct['missing']:.2g}",
                quantized.storage_bytes(),
                f"{seconds:.2f}",
                quantized.linear.spec.rounding,
                int(np.count_nonzero(quantized.linear.codes)),
            ]
        )
    header = [
        "bits",
        "R² float",
        "R² quantized",
        "ΔR²",
        "mean abs Δpred",
        "mean, % std",
        "max abs Δpred",
        "max, % std",
        "unseen cat. max, % std",
        "missing cat. max, % std",
        "bytes",
        "quantize s",
        "rounding",
        "non-zero codes",
    ]
    lines = [
        f"## {name}: {dataset.n_rows:,} rows ({dataset.dropped_rows} dropped for a missing "
        f"target), {len(split.y_test):,} test; categorical {', '.join(categorical)}",
        "",
        f"Float folded model: R² {r2_float:.6f} on the test split; max |folded − Pipeline| "
        f"{folding_error:.1e}; {len(folded.design_names())} design columns; "
        f"{float_storage_bytes(folded)} bytes as float64; std(y_test) {std:.6g}; "
        f"calibration {calibrate_s:.3f} s.",
        "",
        markdown_table(header, rows),
        "",
    ]
    lines += goal_lines(name, results)
    return "\n".join(lines) + "\n"


def goal_lines(name: str, results: dict[int, dict[str, float]]) -> list[str]:
    def line(ok: bool | None, goal: str, measured: str) -> str:
        status = "N/A " if ok is None else ("PASS" if ok else "FAIL")
        return f"{status} {name}: {goal}: {measured}"

    eight, sixteen = results.get(8), results.get(16)
    return [
        line(
            None if eight is None else eight["delta_r2"] >= GOAL_8BIT_DELTA_R2,
            f"8 bits ΔR² ≥ {GOAL_8BIT_DELTA_R2}",
            "not measured" if eight is None else f"{eight['delta_r2']:+.2e}",
        ),
        line(
            None if eight is None else eight["mean_pct"] <= GOAL_8BIT_MEAN_PCT,
            f"8 bits mean |Δpred| ≤ {GOAL_8BIT_MEAN_PCT} % of std(y_test)",
            "not measured" if eight is None else f"{eight['mean_pct']:.3g} %",
        ),
        line(
            None if sixteen is None else sixteen["max_pct"] <= GOAL_16BIT_MAX_PCT,
            f"16 bits max |Δpred| ≤ {GOAL_16BIT_MAX_PCT} % of std(y_test)",
            "not measured" if sixteen is None else f"{sixteen['max_pct']:.3g} %",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help="penguins,diamonds")
    parser.add_argument("--bits", default="2,3,4,6,8,10,12,16", help="bit widths, e.g. 2,8,16")
    parser.add_argument("--rounding", choices=ROUNDINGS, help="override default_spec's rounding")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds allowed per width")
    parser.add_argument("--output", help="also write the tables to this file")
    args = parser.parse_args(argv)
    bits = [int(part) for part in args.bits.split(",")]
    names = args.datasets.split(",")
    unknown = [name for name in names if name not in DATASETS]
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; choose from {list(DATASETS)}")

    texts = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            texts.append(benchmark(name, load(name, Path(tmp)), bits, args))
            print(texts[-1], flush=True)
    if args.output:
        Path(args.output).write_text("\n".join(texts), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
