"""Regression and classification metrics (pure functions of arrays)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)


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


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, classes: Sequence[Any]
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, log loss, ROC AUC (binary: of the second class;
    multinomial: one-vs-rest, macro-averaged; None when the rows hold a single class) and the
    confusion matrix (rows: true class, columns: predicted, both in ``classes`` order) of
    labels ``y_pred`` and probabilities ``proba`` (columns in ``classes`` order)."""
    classes = list(classes)
    y_true = np.asarray(y_true)
    present = set(np.unique(y_true).tolist())
    if len(present) < 2:
        auc = None
    elif len(classes) == 2:
        auc = float(roc_auc_score(y_true == classes[1], proba[:, 1]))
    elif present == set(classes):
        auc = float(roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
    else:  # a class absent from these rows has no curve of its own
        auc = None
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "log_loss": float(log_loss(y_true, proba, labels=classes)),
        "roc_auc": auc,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }


def class_agreement(reference: np.ndarray, other: np.ndarray) -> float:
    """The fraction of rows on which two classifiers predict the same label."""
    return float(np.mean(np.asarray(reference) == np.asarray(other)))


def probability_difference(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Max and mean absolute difference between two classifiers' class probabilities on the
    same rows (over every row and class)."""
    difference = np.abs(np.asarray(other, dtype=float) - np.asarray(reference, dtype=float))
    return {
        "max_abs_proba_diff": float(difference.max()),
        "mean_abs_proba_diff": float(difference.mean()),
    }
