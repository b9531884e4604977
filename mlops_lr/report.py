"""Human-readable reports (Markdown tables) from results computed elsewhere: pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; numbers right-aligned."""
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [bool(rows) and all(_is_number(row[i]) for row in rows) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        ("-" * (w + 1)) + (":" if n else "-") for w, n in zip(widths, numeric, strict=True)
    )
    return "\n".join([line(cells[0]), rule + "|", *(line(row) for row in cells[1:])])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}" if abs(value) < 1e-3 and value != 0 else f"{value:.6f}"
    # Text (a class label, a category) may hold what ends a cell or a row.
    return " ".join(str(value).splitlines()).replace("|", "\\|")


def quantization_report(
    *,
    title: str,
    parameter_names: Sequence[str],
    coef: np.ndarray,
    intercept: float,
    coef_quant: np.ndarray,
    intercept_quant: float,
    metrics: dict[str, Any],
    y_true: np.ndarray,
    pred_float: np.ndarray,
    pred_quant: np.ndarray,
    groups: Sequence[str] | None = None,
    n_predictions: int = 5,
) -> str:
    """The five tables of a quantization run: size, accuracy, performance, coefficients and
    the first test predictions side by side.

    ``parameter_names`` name the coefficients; ``groups`` (optional) the input each belongs
    to, shown once above its parameters (a category table under its column).
    """
    size = size_table(metrics)
    accuracy = markdown_table(
        ["measure", "value"],
        [
            ["max coefficient error", metrics["max_coef_error"]],
            ["intercept error", metrics["intercept_error"]],
            ["max abs prediction difference (test)", metrics["max_abs_pred_diff"]],
            ["mean abs prediction difference (test)", metrics["mean_abs_pred_diff"]],
            [
                "calibration objective (train, mean squared difference)",
                metrics["calibration_objective"],
            ],
            ["quality (by mean abs difference)", metrics["quality"]],
        ],
    )
    performance = markdown_table(
        ["metric", "original", "quantized", "change"],
        [
            [
                "R²",
                metrics["r2_float"],
                metrics["r2_quant"],
                metrics["r2_quant"] - metrics["r2_float"],
            ],
            [
                "MSE",
                metrics["mse_float"],
                metrics["mse_quant"],
                metrics["mse_quant"] - metrics["mse_float"],
            ],
        ],
    )
    coefficients = coefficient_table(
        parameter_names, coef, intercept, coef_quant, intercept_quant, groups
    )
    n = min(n_predictions, len(y_true))
    predictions = markdown_table(
        ["#", "actual", "original", "quantized", "difference"],
        [
            [
                i + 1,
                float(y_true[i]),
                float(pred_float[i]),
                float(pred_quant[i]),
                float(pred_quant[i] - pred_float[i]),
            ]
            for i in range(n)
        ],
    )
    sections = [
        f"# {title}",
        "## Model size",
        size,
        "## Quantization accuracy",
        accuracy,
        "## Performance (test split)",
        performance,
        "## Coefficients",
        coefficients,
        f"## First {n} test predictions",
        predictions,
    ]
    return "\n\n".join(sections) + "\n"


def size_table(metrics: dict[str, Any]) -> str:
    """The float and quantized models' file and parameter sizes."""
    return markdown_table(
        ["artifact", "bytes", "KB"],
        [
            [label, metrics[key], f"{metrics[key] / 1024:.3f}"]
            for label, key in (
                ("float model file (model.joblib)", "size_bytes_float"),
                ("quantized model file (model.json)", "size_bytes_quant"),
                ("float parameters (float64)", "payload_bytes_float"),
                (
                    f"quantized parameters ({metrics['bits']}-bit codes, packed)",
                    "payload_bytes_quant",
                ),
            )
        ],
    )


def coefficient_table(
    parameter_names: Sequence[str],
    coef: np.ndarray,
    intercept: float,
    coef_quant: np.ndarray,
    intercept_quant: float,
    groups: Sequence[str] | None = None,
) -> str:
    """Each parameter (under its input, when ``groups`` name them) and the intercept:
    original, dequantized and their difference."""
    rows = [
        [name, float(a), float(b), float(b - a)]
        for name, a, b in zip(parameter_names, coef, coef_quant, strict=True)
    ]
    header = ["parameter", "original", "dequantized", "error"]
    intercept_row = [
        "intercept",
        float(intercept),
        float(intercept_quant),
        float(intercept_quant - intercept),
    ]
    if groups is not None:
        header = ["input", *header]
        rows = [
            [group if i == 0 or groups[i - 1] != group else "", *row]
            for i, (group, row) in enumerate(zip(groups, rows, strict=True))
        ]
        intercept_row = ["", *intercept_row]
    return markdown_table(header, [*rows, intercept_row])


def classifier_quantization_report(
    *,
    title: str,
    metrics: dict[str, Any],
    coefficients: Sequence[tuple[str, str]],
    samples: Sequence[Sequence[Any]],
) -> str:
    """A quantized classifier's tables: size; agreement with the float model; its test
    scores before and after; per row of scores (``coefficients``: a heading and its
    :func:`coefficient_table`) the parameters; the first test rows (``samples``: actual,
    original and quantized label, and the two models' probabilities of the original's)."""
    agreement = markdown_table(
        ["measure", "value"],
        [
            ["class agreement with the float model (test)", metrics["class_agreement"]],
            ["max abs probability difference (test)", metrics["max_abs_proba_diff"]],
            ["mean abs probability difference (test)", metrics["mean_abs_proba_diff"]],
            ["max coefficient error", metrics["max_coef_error"]],
            ["max intercept error", metrics["intercept_error"]],
            [
                "calibration objective (train, Fisher-weighted mean squared logit change)",
                metrics["calibration_objective"],
            ],
        ],
    )
    performance = markdown_table(
        ["metric", "original", "quantized", "change"],
        [
            [
                label,
                metrics[f"{key}_float"],
                metrics[f"{key}_quant"],
                None
                if metrics[f"{key}_float"] is None or metrics[f"{key}_quant"] is None
                else metrics[f"{key}_quant"] - metrics[f"{key}_float"],
            ]
            for label, key in (
                ("accuracy", "accuracy"),
                ("balanced accuracy", "balanced_accuracy"),
                ("log loss", "log_loss"),
                ("ROC AUC", "roc_auc"),
            )
        ],
    )
    predictions = markdown_table(
        ["#", "actual", "original", "quantized", "P original", "P quantized"],
        [[i + 1, *row] for i, row in enumerate(samples)],
    )
    sections = [
        f"# {title}",
        "## Model size",
        size_table(metrics),
        "## Agreement with the float model",
        agreement,
        "## Performance (test split)",
        performance,
    ]
    for heading, table in coefficients:
        sections += [f"## Coefficients: {heading}", table]
    sections += [f"## First {len(samples)} test predictions", predictions]
    return "\n\n".join(sections) + "\n"
