"""Figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

from mlops_lr.sweep import MEASURES, Measures, parameter_value, without_parameter


def sweep_figure_png(
    rows: list[dict[str, Any]], parameter: str | None = None, shown: Measures | None = None
) -> bytes:
    """The test score and the closeness to the float model (``shown``: R² and mean
    |Δpred| for a regressor, the default; accuracy and class agreement for a classifier)
    against bits, one line per method, the float model's score as a reference.

    With ``parameter`` (a ``model.<parameter>`` the sweep varies, e.g. ``alpha``) and one bit
    width, against that parameter instead, the float model's score a line of its own.
    """
    shown = shown or MEASURES["regression"]
    score_quant, score_float = f"{shown.score}_quant", f"{shown.score}_float"
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    bit_widths = sorted({row["bits"] for row in rows})
    if parameter is not None and len(bit_widths) > 1:
        parameter = None

    def x_of(row: dict[str, Any]) -> float:
        return row["bits"] if parameter is None else parameter_value(row, parameter)

    def model_of(row: dict[str, Any]) -> str:
        """What else tells this row's float model apart (a line of its own)."""
        return row["model"] if parameter is None else without_parameter(row, parameter)

    models = {model_of(row) for row in rows}

    def suffix(row: dict[str, Any]) -> str:
        return f" / {model_of(row)}" if len(models) > 1 else ""

    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        lines[f"{row['granularity']} / {row['rounding']} / {row['scale']}{suffix(row)}"].append(row)
    figure, (ax_r2, ax_diff) = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    # Colour by granularity, line style by rounding: methods that coincide stay visible.
    colours = {"per_tensor": "tab:red", "per_feature_pow2": "tab:blue"}
    styles = {
        "nearest": (":", "s"),
        "hessian": ("--", "^"),
        "optimal": ("-", "o"),
        "auto": ("-.", "o"),
    }
    for label, points in sorted(lines.items()):
        points.sort(key=x_of)
        xs = [x_of(p) for p in points]
        linestyle, marker = styles.get(points[0]["rounding"], ("-", "o"))
        look = {
            "color": colours.get(points[0]["granularity"]),
            "linestyle": linestyle,
            "marker": marker,
            "markersize": 5,
            "alpha": 0.85,
            "label": label,
        }
        ax_r2.plot(xs, [p[score_quant] for p in points], **look)
        ax_diff.plot(xs, [p[shown.closeness] for p in points], **look)
    floats: dict[str, set[tuple[float, float]]] = defaultdict(set)
    for row in rows:
        floats[suffix(row)].add((x_of(row), row[score_float]))
    reference = {"color": "black", "linestyle": "--", "linewidth": 1}
    if parameter is not None:
        for label, points in sorted(floats.items()):
            xs, r2s = zip(*sorted(points), strict=True)
            ax_r2.plot(xs, r2s, marker=".", label=f"float model{label}", **reference)
    elif len(models) == 1:
        (_, r2_float), *_ = floats[""]
        ax_r2.axhline(r2_float, label=f"float {shown.score_label} {r2_float:.4f}", **reference)
    all_floats = [r2 for points in floats.values() for _, r2 in points]
    best_float = max(all_floats)
    low = max(min(r[score_quant] for r in rows), min(all_floats) - 0.1)
    ax_r2.set_ylim(low - 0.005, best_float + 0.01)
    xlabel = "bits" if parameter is None else f"model.{parameter} ({bit_widths[0]} bits)"
    ax_r2.set(
        title=f"Test {shown.score_label} of the quantized model",
        xlabel=xlabel,
        ylabel=f"{shown.score_label} (test split)",
    )
    if shown.log_scale:
        ax_diff.set_yscale("log")
    ax_diff.set(
        title=f"{shown.closeness_label.capitalize()} with the float model",
        xlabel=xlabel,
        ylabel=shown.closeness_label + (" (log)" if shown.log_scale else ""),
    )
    xs_all = [x_of(r) for r in rows]
    for axis in (ax_r2, ax_diff):
        axis.grid(True, which="both", alpha=0.3)
        if parameter is None:
            axis.set_xticks(bit_widths)
        elif min(xs_all) > 0 and max(xs_all) >= 10 * min(xs_all):
            axis.set_xscale("log")
    ax_r2.legend(fontsize=8, loc="lower right")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()
