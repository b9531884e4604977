"""Figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any


def sweep_figure_png(rows: list[dict[str, Any]]) -> bytes:
    """R² and mean |Δpred| against bits, one line per method, the float R² as a reference."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        lines[f"{row['granularity']} / {row['rounding']} / {row['scale']}"].append(row)
    figure, (ax_r2, ax_diff) = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    # Colour by granularity, line style by rounding: methods that coincide stay visible.
    colours = {"per_tensor": "tab:red", "per_feature_pow2": "tab:blue"}
    styles = {"nearest": (":", "s"), "hessian": ("--", "^"), "optimal": ("-", "o")}
    for label, points in sorted(lines.items()):
        points.sort(key=lambda r: r["bits"])
        bits = [p["bits"] for p in points]
        linestyle, marker = styles.get(points[0]["rounding"], ("-", "o"))
        look = {
            "color": colours.get(points[0]["granularity"]),
            "linestyle": linestyle,
            "marker": marker,
            "markersize": 5,
            "alpha": 0.85,
            "label": label,
        }
        ax_r2.plot(bits, [p["r2_quant"] for p in points], **look)
        ax_diff.plot(bits, [p["mean_abs_pred_diff"] for p in points], **look)
    r2_float = rows[0]["r2_float"]
    ax_r2.axhline(
        r2_float, color="black", linestyle="--", linewidth=1, label=f"float R² {r2_float:.4f}"
    )
    ax_r2.set_ylim(max(min(r["r2_quant"] for r in rows), r2_float - 0.1) - 0.005, r2_float + 0.01)
    ax_r2.set(title="Test R² of the quantized model", xlabel="bits", ylabel="R² (test split)")
    ax_diff.set_yscale("log")
    ax_diff.set(
        title="Mean |Δprediction| vs the float model",
        xlabel="bits",
        ylabel="mean |quantized − float| (log)",
    )
    for axis in (ax_r2, ax_diff):
        axis.grid(True, which="both", alpha=0.3)
        axis.set_xticks(sorted({r["bits"] for r in rows}))
    ax_r2.legend(fontsize=8, loc="lower right")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()
