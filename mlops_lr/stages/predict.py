"""Stage ``predict``: the float or a quantized model on sample rows or on a CSV file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlops_lr.config import Config
from mlops_lr.predictor import load_predictor, predict_csv, sample_predictions


def run(config: Config) -> np.ndarray | int:
    """Print sample predictions (no ``predict.input``), or write predictions for a CSV.

    Returns the sample predictions, or the number of rows written.
    """
    settings = config.predict
    artifacts_dir = config.paths.artifacts_dir
    predictor = load_predictor(artifacts_dir, settings.model, config.paths.quantized_dir)
    if settings.input is None:
        predictions = sample_predictions(artifacts_dir, predictor)
        print(f"Model: {predictor.name}")
        print(f"Sample Predictions: {predictions}")
        return predictions
    source = Path(settings.input)
    target = Path(settings.output or source.with_name(f"{source.stem}.predictions.csv"))
    na_values = getattr(config.dataset, "na_values", None)
    rows = predict_csv(predictor, source, target, settings.chunk_size, na_values)
    print(f"Model: {predictor.name}: wrote {rows} predictions to {target}")
    return rows
