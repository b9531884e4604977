"""Prediction throughput in memory, against numpy and scikit-learn.

Usage: python benchmarks/predict_throughput.py [--rows 2000000]

Needs the trained artifacts (`make quantize`: the float model and `default-8bit`) and
SCIKIT_LEARN_DATA: rows/s of a bare numpy ``X @ w + b``, of the float and the dequantized model
through mlops_lr.predictor, and of scikit-learn's ``predict`` on the same float64 array (best
of 7). Files end to end (CSV and Parquet): benchmarks/file_predict.py.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from timing import best_rate

from mlops_lr import training
from mlops_lr.data import load_california
from mlops_lr.predictor import load_predictor


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--artifacts", default="artifacts")
    args = parser.parse_args(argv)
    in_memory(args.artifacts, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
