"""Stage ``register``: put a saved model in MLflow's registry (``tracking=mlflow``) and point
an alias at it, so that ``serve.model=models:/<name>@<alias>`` serves it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops_lr import tracking
from mlops_lr.config import Config
from mlops_lr.predictor import FLOAT_MODEL, load_predictor, quantized_model_dir


def run(config: Config) -> dict[str, Any]:
    """Register ``register.model`` (default: the quantization config's tag), refusing a stale
    one as predict and serve do. Returns what was registered."""
    tag = config.register.model or config.quantization.resolved_tag
    paths = config.paths
    predictor = load_predictor(
        paths.artifacts_dir, tag, paths.quantized_dir, allow_stale=config.allow_stale
    )
    directory = (
        Path(paths.artifacts_dir)
        if tag == FLOAT_MODEL
        else quantized_model_dir(paths.artifacts_dir, tag, paths.quantized_dir)
    )
    registered = tracking.register(config, predictor, directory)
    version = f"{registered['registered_model']!r} version {registered['version']}"
    print(
        (
            f"Registered {tag!r} as {version}"
            if registered["new_version"]
            else f"{tag!r} is {version}"
        )
        + f" (logged by run {registered['run_id']}); "
        f"alias {registered['alias']!r} → {registered['uri']}"
    )
    return registered
