"""Accuracy of every quantization method at every bit width on the reference split.

Usage: python benchmarks/quantization_table.py [--bits 2-16] [--output table.md]

Quantizes the float LinearRegression fitted on California Housing (test_size 0.2,
random_state 42) with bits × rounding × granularity × scale (all else as in the default
preset: symmetric codes, bias correction, float32 intercept), plus the textbook asymmetric
per-tensor baseline, and prints one Markdown row per setting: test R², mean and max |Δpred|
against the float model, the calibration objective
(train-split mean squared prediction change, what the methods minimise), stored parameter bytes
and the time to quantize. Needs SCIKIT_LEARN_DATA (or a network) for the data.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import replace

from sklearn.linear_model import LinearRegression

from mlops_lr.data import load_california, split_dataset
from mlops_lr.metrics import prediction_difference, regression_metrics
from mlops_lr.quantize import (
    GRANULARITIES,
    ROUNDINGS,
    SCALES,
    calibration_objective,
    default_spec,
    quantize_linear_model,
)
from mlops_lr.report import markdown_table


def parse_bits(text: str) -> list[int]:
    """``"2-16"`` or ``"2,4,8"`` → a list of bit widths."""
    if "-" in text:
        low, high = (int(part) for part in text.split("-"))
        return list(range(low, high + 1))
    return [int(part) for part in text.split(",")]


def settings(bits: list[int]):
    """(label, spec) for every benchmarked setting: the textbook baseline (the uint8 preset's
    method), then the default preset with each granularity × rounding × scale."""
    for width in bits:
        default = default_spec(width)
        yield (
            "textbook uint",
            replace(
                default,
                scheme="asymmetric",
                granularity="per_tensor",
                rounding="nearest",
                scale="minmax",
                bias_correction=False,
            ),
        )
        for granularity, rounding, scale in itertools.product(GRANULARITIES, ROUNDINGS, SCALES):
            yield "", replace(default, granularity=granularity, rounding=rounding, scale=scale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", default="2-16", help="bit widths: 2-16 or 2,4,8")
    parser.add_argument("--output", help="also write the table to this file")
    args = parser.parse_args(argv)

    split = split_dataset(load_california(), 0.2, 42)
    model = LinearRegression().fit(split.X_train, split.y_train)
    pred_float = model.predict(split.X_test)
    r2_float = regression_metrics(split.y_test, pred_float)["r2"]

    rows = []
    for label, spec in settings(parse_bits(args.bits)):
        start = time.perf_counter()
        quantized = quantize_linear_model(model.coef_, model.intercept_, spec, split.X_train)
        elapsed_ms = 1000 * (time.perf_counter() - start)
        pred = quantized.predict(split.X_test)
        r2 = regression_metrics(split.y_test, pred)["r2"]
        difference = prediction_difference(pred_float, pred)
        objective = calibration_objective(
            model.coef_,
            quantized.coef(),
            split.X_train,
            model.intercept_,
            quantized.intercept_value(),
        )
        rows.append(
            [
                spec.bits,
                label or spec.granularity,
                spec.rounding,
                spec.scale,
                f"{r2:.6f}",
                f"{r2 - r2_float:+.6f}",
                f"{difference['mean_abs_pred_diff']:.2e}",
                f"{difference['max_abs_pred_diff']:.2e}",
                f"{objective:.3e}",
                quantized.storage_bytes(),
                f"{elapsed_ms:.0f}",
            ]
        )
        print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    table = markdown_table(
        [
            "bits",
            "granularity",
            "rounding",
            "scale",
            "R² test",
            "ΔR²",
            "mean abs Δpred",
            "max abs Δpred",
            "calib. objective",
            "bytes",
            "ms",
        ],
        rows,
    )
    text = f"Float model: R² {r2_float:.6f} on the test split.\n\n{table}\n"
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
