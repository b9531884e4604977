"""Stage ``models``: list the saved models (float, quantized, exports) with their source,
size and test quality, and which are stale (see mlops_lr.inventory)."""

from __future__ import annotations

from mlops_lr.config import Config
from mlops_lr.inventory import SavedModel, models_table, saved_models


def run(config: Config) -> list[SavedModel]:
    """Print the table of saved models; returns them."""
    models = saved_models(config.paths.artifacts_dir, config.paths.quantized_dir)
    if not models:
        print(f"No saved models in {config.paths.artifacts_dir}: run `make train` first")
        return models
    print(models_table(models))
    stale = [m.name for m in models if m.stale is not None]
    if stale:
        print(
            f"Stale: {', '.join(stale)}. Predict, serve and export refuse a stale quantized "
            "model (allow_stale=true overrides); re-quantize or re-export to refresh."
        )
    return models
