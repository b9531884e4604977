"""How close a quantized classifier stays to its float model at every bit width.

Usage: python benchmarks/classifier_quantization.py [--bits 2-16]

Trains LogisticRegression (the default model config: newton-cholesky, C=1) through the
pipeline's own config on breast_cancer (binary, no preprocessing) and on the penguins' species
(multinomial; preprocess=standard: text categories and missing values), then quantizes it
with the default preset at each bit width (rounding=auto, calibrated on the Fisher-weighted
training design) and prints, per data set, one Markdown row per width: class agreement with
the float model on the test split and on every row, |Δ log loss| and max |Δ probability| on
the test split, the rounding used and the time to quantize. Needs palmerpenguins (a dev
dependency).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from mlops_lr import training
from mlops_lr.config import register_configs, to_config
from mlops_lr.metrics import classification_metrics
from mlops_lr.quantize import spec_from
from mlops_lr.quantized_classifier import calibrate_classifier, quantize_classifier
from mlops_lr.report import markdown_table

CONF = Path(__file__).resolve().parent.parent / "conf"


def parse_bits(text: str) -> list[int]:
    """``"2-16"`` or ``"2,4,8"`` → a list of bit widths."""
    if "-" in text:
        low, high = (int(part) for part in text.split("-"))
        return list(range(low, high + 1))
    return [int(part) for part in text.split(",")]


def config_of(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return to_config(compose("config", overrides=["model=logistic_regression", *overrides]))


def measure(name: str, config, bits: list[int]) -> str:
    dataset, split = training.prepare_data(config)
    trained = training.fit_and_evaluate(config, dataset, split)
    folded = trained.folded
    reference, moments = calibrate_classifier(folded, split.train)
    classes = folded.classes
    labels_test, labels_all = folded.predict(split.test), folded.predict(dataset.features)
    proba_test = folded.predict_proba(split.test)
    loss = classification_metrics(split.y_test, labels_test, proba_test, classes)["log_loss"]
    rows, first_full = [], None
    for width in bits:
        spec = spec_from(replace(config.quantization, bits=width))
        start = time.perf_counter()
        quantized = quantize_classifier(reference, spec, moments)
        seconds = time.perf_counter() - start
        model = quantized.dequantized()
        agree_all = float(np.mean(model.predict(dataset.features) == labels_all))
        proba = model.predict_proba(split.test)
        quant_loss = classification_metrics(
            split.y_test, model.predict(split.test), proba, classes
        )["log_loss"]
        if agree_all == 1.0 and first_full is None:
            first_full = width
        rows.append(
            [
                width,
                f"{np.mean(model.predict(split.test) == labels_test):.4f}",
                f"{agree_all:.4f}",
                f"{abs(quant_loss - loss):.2e}",
                f"{np.abs(proba - proba_test).max():.2e}",
                ", ".join(dict.fromkeys(row.spec.rounding for row in quantized.rows)),
                f"{seconds:.2f}",
            ]
        )
    header = (
        f"### {name}: {dataset.n_rows} rows, {len(split.y_test)} test, {len(classes)} classes, "
        f"float log loss {loss:.6f}; agreement on every row first 100 % at "
        f"{first_full if first_full is not None else 'none of these'} bits\n\n"
    )
    table = markdown_table(
        [
            "bits",
            "agreement (test)",
            "agreement (all rows)",
            "abs Δ log loss (test)",
            "max abs ΔP (test)",
            "rounding used",
            "s",
        ],
        rows,
    )
    return header + table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", default="2-16", type=parse_bits)
    args = parser.parse_args()
    register_configs()
    import palmerpenguins

    with tempfile.TemporaryDirectory() as scratch:
        penguins = Path(scratch) / "penguins.csv"
        palmerpenguins.load_penguins().to_csv(penguins, index=False)
        cancer = config_of("dataset=breast_cancer", f"paths.artifacts_dir={scratch}/a")
        species = config_of(
            "dataset=csv",
            f"dataset.path={penguins}",
            "dataset.target=species",
            "dataset.missing_target=drop",
            "preprocess=standard",
            f"paths.artifacts_dir={scratch}/b",
        )
        pd.set_option("display.width", 200)
        print(measure("breast_cancer", cancer, args.bits))
        print()
        print(measure("penguins species", species, args.bits))


if __name__ == "__main__":
    main()
