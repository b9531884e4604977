"""Prediction throughput: in memory and CSV end to end, against numpy and scikit-learn.

Usage: python benchmarks/predict_throughput.py [--rows 2000000] [--csv-rows 1000000]

Needs the trained artifacts (`make quantize`: the float model and `default-8bit`) and
SCIKIT_LEARN_DATA. In memory: rows/s of a bare numpy ``X @ w + b``, of the float and the
dequantized model through mlops_lr.predictor, and of scikit-learn's ``predict`` on the same
float64 array (best of 7). CSV: a file of California-like rows (resampled from the data, written
to a temporary directory) through ``predict_csv`` (streamed in chunks) and through
``pandas.read_csv`` + predict + ``to_csv``, each in a fresh process so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from timing import best_rate

from mlops_lr import training
from mlops_lr.data import load_california
from mlops_lr.predictor import load_predictor, predict_csv


def in_memory(artifacts: str, rows: int) -> None:
    data = load_california()
    X = np.ascontiguousarray(data.X[np.random.default_rng(0).integers(0, data.n_rows, rows)])
    float_model = load_predictor(artifacts)
    quantized = load_predictor(artifacts, "default-8bit")
    estimator = training.load(artifacts)
    w, b = float_model.coef, float_model.intercept
    rates = {
        "numpy X @ w + b": best_rate(lambda: X @ w + b, rows),
        "mlops_lr float": best_rate(lambda: float_model.predict(X), rows),
        "mlops_lr default-8bit (dequantized)": best_rate(lambda: quantized.predict(X), rows),
        "scikit-learn predict": best_rate(lambda: estimator.predict(X), rows),
    }
    print(f"In memory, {rows:,} rows × {X.shape[1]} float64 features:")
    for name, rate in rates.items():
        print(f"  {name:38s} {rate / 1e6:8.1f} M rows/s  ({rate / rates['numpy X @ w + b']:.2f}×)")


def csv_child(mode: str, artifacts: str, source: str, target: str) -> None:
    """One CSV run in this process; prints JSON with seconds and peak RSS."""
    predictor = load_predictor(artifacts)
    start = time.perf_counter()
    if mode == "stream":
        rows = predict_csv(predictor, source, target, chunk_size=100_000)
    else:
        frame = pd.read_csv(source)
        frame["prediction"] = predictor.predict(frame[list(predictor.feature_names)].to_numpy())
        frame.to_csv(target, index=False)
        rows = len(frame)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak_mb}))


def csv_end_to_end(artifacts: str, rows: int) -> None:
    data = load_california()
    frame = pd.DataFrame(
        data.X[np.random.default_rng(1).integers(0, data.n_rows, rows)],
        columns=list(data.feature_names),
    )
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "rows.csv"
        frame.to_csv(source, index=False)
        size_mb = source.stat().st_size / 1e6
        print(f"\nCSV end to end, {rows:,} rows ({size_mb:.0f} MB):")
        for mode, label in (
            ("stream", "predict_csv (chunks of 100k)"),
            ("pandas", "pandas read_csv + predict + to_csv"),
        ):
            result = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--csv-child",
                    mode,
                    artifacts,
                    str(source),
                    str(Path(tmp) / f"{mode}.csv"),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            stats = json.loads(result.stdout.strip().splitlines()[-1])
            print(
                f"  {label:38s} {stats['rows'] / stats['seconds'] / 1e3:8.0f} k rows/s  "
                f"{stats['seconds']:6.2f} s  peak RSS {stats['peak_mb']:5.0f} MB"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--csv-rows", type=int, default=1_000_000)
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--csv-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.csv_child:
        csv_child(*args.csv_child)
        return 0
    in_memory(args.artifacts, args.rows)
    csv_end_to_end(args.artifacts, args.csv_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
