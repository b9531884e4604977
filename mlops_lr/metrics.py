"""Regression metrics (pure functions of arrays)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """R², MSE, RMSE and MAE of ``y_pred`` against ``y_true``."""
    mse = float(mean_squared_error(y_true, y_pred))
    return {
        "r2": float(r2_score(y_true, y_pred)),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
    }


def prediction_difference(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Max and mean absolute difference between two models' predictions on the same rows."""
    difference = np.abs(np.asarray(other, dtype=float) - np.asarray(reference, dtype=float))
    return {
        "max_abs_pred_diff": float(difference.max()),
        "mean_abs_pred_diff": float(difference.mean()),
    }
