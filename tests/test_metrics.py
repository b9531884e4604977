"""Regression metrics against hand-computed values."""

import numpy as np
import pytest

from mlops_lr.metrics import regression_metrics


def test_metrics_match_their_definitions() -> None:
    y_true = np.array([1.0, 2.0, 3.0, 4.0])
    y_pred = np.array([1.5, 2.0, 2.0, 4.0])
    metrics = regression_metrics(y_true, y_pred)
    # errors 0.5, 0, -1, 0 → SSE 1.25; SST around the mean 2.5 is 5.
    assert metrics["mse"] == pytest.approx(1.25 / 4)
    assert metrics["rmse"] == pytest.approx(np.sqrt(1.25 / 4))
    assert metrics["mae"] == pytest.approx(1.5 / 4)
    assert metrics["r2"] == pytest.approx(1 - 1.25 / 5)


def test_perfect_prediction() -> None:
    y = np.array([0.5, 1.5, 7.0])
    assert regression_metrics(y, y) == {"r2": 1.0, "mse": 0.0, "rmse": 0.0, "mae": 0.0}
