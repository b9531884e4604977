"""The MLflow pyfunc model of a saved mlops-lr model (MLflow's "models from code").

MLflow copies this file into every logged model and runs it when the model is loaded; the
model's folded JSON (float ``folded.json`` or quantized ``model.json``, with its manifest) is
its one artifact, and this package travels with it as code. Nothing is pickled:
``mlflow.pyfunc.load_model(uri).predict(frame)`` runs the very code ``make predict`` and the
server run.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from mlops_lr.predictor import LinearPredictor, load_model_directory


class FoldedPyfunc(PythonModel):
    """Predictions of a folded model for the rows of a DataFrame (one column per feature,
    categorical columns as text, NaN or None where missing)."""

    predictor: LinearPredictor

    def load_context(self, context: PythonModelContext) -> None:
        (directory,) = context.artifacts.values()
        self.predictor = load_model_directory(directory, "mlops-lr")

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict | None = None
    ) -> np.ndarray:
        return self.predictor.predict_table(model_input)


mlflow.models.set_model(FoldedPyfunc())
