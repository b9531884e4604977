"""Stage ``predict``: the float or a quantized model on sample rows, or on CSV or Parquet files."""

from __future__ import annotations

import numpy as np

from mlops_lr import tracking
from mlops_lr.config import Config
from mlops_lr.exceptions import ConfigError
from mlops_lr.predictor import sample_columns


def run(config: Config) -> np.ndarray | int:
    """Print sample predictions (no ``predict.input``), or write predictions for files.

    Returns the sample predictions, or the number of rows written.
    """
    settings = config.predict
    artifacts_dir = config.paths.artifacts_dir
    predictor = tracking.load_model(config, settings.model)
    if settings.proba and not predictor.is_classifier:
        raise ConfigError(
            f"predict.proba=true: model {predictor.name!r} is a regressor, it has no class "
            "probabilities"
        )
    if settings.input is None:
        columns = sample_columns(artifacts_dir, predictor)
        predictions = predictor.predict_table(columns)
        print(f"Model: {predictor.name}")
        print(f"Sample Predictions: {predictions}")
        if settings.proba:
            classes = ", ".join(map(str, predictor.folded.classes))
            with np.printoptions(precision=6, suppress=True):
                print(f"Sample Probabilities ({classes}):")
                print(predictor.predict_proba_table(columns))
        return predictions
    if settings.proba:
        raise ConfigError(
            "predict.proba=true is for sample predictions: files get the labels (the server's "
            "/predict returns probabilities too)"
        )
    # Deferred: sample predictions need neither pandas nor the file readers.
    from mlops_lr.batch_predict import input_paths, output_path, predict_files

    # The input first: a missing file is "not found", not a directory that needs an output.
    input_paths(settings.input)
    target = output_path(settings.input, settings.output)
    na_values = getattr(config.dataset, "na_values", None)
    rows = predict_files(predictor, settings.input, target, settings.chunk_size, na_values)
    print(f"Model: {predictor.name}: wrote {rows} predictions to {target}")
    return rows
