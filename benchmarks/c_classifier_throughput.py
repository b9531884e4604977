"""The exported C of a binary classifier: rows per second of its integer decision.

Usage: python benchmarks/c_classifier_throughput.py [--rows 1000000] [--bits 8]

Two binary LogisticRegression models, quantized with the default preset at --bits (Fisher-
weighted calibration, as ``make quantize`` does) and exported with
``render_classifier_header``: breast_cancer's (30 numeric inputs) and a synthetic one of 8
normal inputs (100 k training rows). ``<prefix>_predict_class`` (the class index: int64 scores
compared, no floating point decides) runs through ``benchmarks/c_throughput.c`` (gcc -std=c99
-O2, one core) on 65,536 rows in cache and --rows rows streamed from memory (the data's rows
resampled with noise). Every output is checked against the Python model of the arithmetic.
Goal: ≥ 50 M rows/s on one core. Needs gcc.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from c_folded_throughput import CACHE_ROWS, kernel_rate
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from mlops_lr.config import QuantizationConfig
from mlops_lr.export_c import c_identifier, render_classifier_header
from mlops_lr.fixed_point import ClassifierPlan, input_ranges, plan_classifier
from mlops_lr.preprocess import fold
from mlops_lr.quantize import spec_from
from mlops_lr.quantized_classifier import calibrate_classifier, quantize_classifier


def plan_of(X: np.ndarray, y: np.ndarray, bits: int) -> ClassifierPlan:
    """The integer plan of LogisticRegression fitted on ``(X, y)``, quantized at ``bits``."""
    names = [f"x{j}" for j in range(X.shape[1])]
    folded = fold(LogisticRegression(solver="newton-cholesky").fit(X, y), names)
    columns = dict(zip(names, X.T, strict=True))
    reference, moments = calibrate_classifier(folded, columns)
    spec = spec_from(QuantizationConfig(name="default", bits=bits))
    quantized = quantize_classifier(reference, spec, moments)
    ranges = input_ranges(quantized.rows[0].layout, columns)
    return plan_classifier(quantized.rows, quantized.link, quantized.classes, ranges)


def resampled(rng: np.random.Generator, X: np.ndarray, rows: int) -> np.ndarray:
    """``rows`` rows of ``X`` drawn with replacement, each value moved by 1 % of its
    column's deviation."""
    picked = X[rng.integers(0, len(X), rows)]
    return picked + rng.normal(size=picked.shape) * 0.01 * X.std(axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bits", type=int, default=8)
    args = parser.parse_args(argv)
    if shutil.which("gcc") is None:
        sys.exit("gcc is required (Debian: apt-get install gcc)")
    rng = np.random.default_rng(0)
    cancer = load_breast_cancer()
    X_synthetic = rng.normal(size=(100_000, 8))
    y_synthetic = X_synthetic @ rng.normal(size=8) + rng.logistic(size=100_000) > 0
    models = {
        "breast_cancer, 30 inputs": (cancer.data, cancer.target),
        "synthetic, 8 inputs": (X_synthetic, y_synthetic.astype(int)),
    }
    exact = True
    print(f"C integer decision, gcc -O2, one core, {args.bits}-bit, best of 200 (cache) / 7:")
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        for label, (X, y) in models.items():
            plan = plan_of(X, y, args.bits)
            prefix = c_identifier(f"bench_{X.shape[1]}")
            names = [f"x{j}" for j in range(X.shape[1])]
            header = render_classifier_header(plan, prefix, names, "")
            rows = resampled(rng, X, args.rows)
            for where, count, repeats in (
                ("in cache", CACHE_ROWS, 200),
                ("from memory", args.rows, 7),
            ):
                part = np.ascontiguousarray(rows[:count])
                rate, outputs = kernel_rate(
                    work, header, prefix, f"{prefix}_predict_class", part, None, repeats
                )
                same = np.array_equal(outputs, plan.decide(part).astype(np.float64))
                exact &= same
                print(f"  {label}, {count:,} rows ({where}): {rate / 1e6:7.1f} M rows/s")
    print(f"  decisions identical to the Python model of the arithmetic: {exact}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
