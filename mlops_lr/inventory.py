"""What is saved under an artifacts directory: the float model, the quantized models and the
exports, each with where it came from, its size, its test quality and whether it is stale
(made from a float or quantized model that has been replaced since).

Reads manifests and metrics only (no model is loaded): ``python -m mlops_lr stage=models``
prints it as a table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mlops_lr import artifacts
from mlops_lr.artifacts import FOLDED_FILE, METRICS_FILE, MODEL_FILE, QUANTIZED_MODEL
from mlops_lr.exceptions import ArtifactError
from mlops_lr.predictor import FLOAT_MODEL, stale_reason

EXPORT_DIR = "export"
# Digests are shown by their first characters, as git shows commits.
SHORT = 12


@dataclass(frozen=True)
class SavedModel:
    """One saved model: ``name`` (``float``, a quantized tag, or ``export/<tag>/<format>``),
    what it is, what it was made from, when, its stored bytes, its test score (``r2``, or a
    classifier's ``accuracy``; None for an export: it predicts what its model does), and why
    it is stale (None: current)."""

    name: str
    kind: str
    source: str
    created_at: str
    size_bytes: int
    r2: float | None
    stale: str | None
    accuracy: float | None = None


def saved_models(
    artifacts_dir: str | Path, quantized_dir: str | Path | None = None
) -> list[SavedModel]:
    """Every model saved under ``artifacts_dir`` (quantized ones in ``quantized_dir``,
    default ``<artifacts_dir>/quantized``): the float model, then quantized tags, then exports,
    each in name order. A directory whose manifest or metrics cannot be read is listed as
    stale, with the reason."""
    artifacts_dir = Path(artifacts_dir)
    quantized_dir = Path(quantized_dir or artifacts_dir / "quantized")
    models: list[SavedModel] = []
    current: dict[str, str] = {}  # model name → sha256 of the file a predictor loads
    try:
        manifest = artifacts.read_manifest(artifacts_dir)
        metrics = json.loads(artifacts.read_verified(artifacts_dir, METRICS_FILE))
        files = manifest["files"]
        current[FLOAT_MODEL] = files[FOLDED_FILE]["sha256"]
        settings = manifest.get("training", {})
        estimator = str(settings.get("model", {}).get("_target_", "")).rsplit(".", 1)[-1]
        preprocess = settings.get("preprocess", {}).get("name", "none")
        models.append(
            SavedModel(
                FLOAT_MODEL,
                f"{estimator or 'float'}, preprocess={preprocess}",
                f"data {str(manifest.get('data_fingerprint', ''))[:SHORT]}",
                manifest.get("created_at", ""),
                files[MODEL_FILE]["bytes"] + files[FOLDED_FILE]["bytes"],
                metrics.get("r2"),
                None,
                metrics.get("accuracy"),
            )
        )
    except (ArtifactError, KeyError, ValueError):
        pass  # no float model: the quantized ones are listed (stale) all the same
    for directory in sorted(p for p in quantized_dir.glob("*/") if p.is_dir()):
        models.append(_quantized(artifacts_dir, directory, current))
    listed = {m.name: m for m in models}
    for directory in sorted(artifacts_dir.glob(f"{EXPORT_DIR}/*/*/")):
        if directory.is_dir():
            models.append(_export(directory, current, listed))
    return models


def _quantized(artifacts_dir: Path, directory: Path, current: dict[str, str]) -> SavedModel:
    tag = directory.name
    try:
        manifest = artifacts.read_manifest(directory)
        metrics = json.loads(artifacts.read_verified(directory, METRICS_FILE))
        model_file = manifest["files"][QUANTIZED_MODEL]
    except (ArtifactError, KeyError, ValueError) as error:
        return SavedModel(tag, "quantized", "?", "", 0, None, f"unreadable: {error}")
    current[tag] = model_file["sha256"]
    source = str(manifest.get("source_model", {}).get("sha256", ""))
    return SavedModel(
        tag,
        f"quantized, {metrics.get('bits')} bits",
        f"float {source[:SHORT]}",
        manifest.get("created_at", ""),
        model_file["bytes"],
        metrics.get("r2_quant"),
        stale_reason(artifacts_dir, manifest),
        metrics.get("accuracy_quant"),
    )


def _export(directory: Path, current: dict[str, str], listed: dict[str, SavedModel]) -> SavedModel:
    name = f"{EXPORT_DIR}/{directory.parent.name}/{directory.name}"
    try:
        manifest = artifacts.read_manifest(directory)
    except ArtifactError as error:
        return SavedModel(name, directory.name, "?", "", 0, None, f"unreadable: {error}")
    model = str(manifest.get("model", ""))
    made_from = str(manifest.get("model_sha256", ""))
    stale = None
    if model not in current:
        stale = f"its model {model!r} is gone"
    elif current[model] != made_from:
        stale = f"its model {model!r} was made again since"
    elif listed[model].stale is not None:
        stale = f"its model {model!r} is stale"
    size = sum(entry["bytes"] for entry in manifest.get("files", {}).values())
    return SavedModel(
        name,
        f"{directory.name} export",
        f"{model} {made_from[:SHORT]}",
        manifest.get("created_at", ""),
        size,
        None,
        stale,
    )


def models_table(models: list[SavedModel]) -> str:
    """The models as a Markdown table."""
    lines = [
        "| model | kind | made from | created | bytes | R² test | accuracy test | stale |",
        "|---|---|---|---|---:|---:|---:|---|",
    ]
    for m in models:
        r2 = "" if m.r2 is None else f"{m.r2:.4f}"
        accuracy = "" if m.accuracy is None else f"{m.accuracy:.4f}"
        stale = "no" if m.stale is None else f"yes: {m.stale}"
        lines.append(
            f"| {m.name} | {m.kind} | {m.source} | {m.created_at} | {m.size_bytes:,} | {r2} | "
            f"{accuracy} | {stale} |"
        )
    return "\n".join(lines)
