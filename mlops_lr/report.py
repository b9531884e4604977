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
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}" if abs(value) < 1e-3 and value != 0 else f"{value:.6f}"
    return str(value)


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
    size = markdown_table(
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
    coefficients = markdown_table(header, [*rows, intercept_row])
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
