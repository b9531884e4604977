"""Stage ``train``: load → validate → split → fit → evaluate → save."""

from __future__ import annotations

from typing import Any

from mlops_lr import tracking, training
from mlops_lr.config import Config
from mlops_lr.predictor import FLOAT_MODEL


def run(config: Config) -> dict[str, Any]:
    """Train the configured model, save its artifacts and print the scores.

    Returns the metrics written to ``metrics.json`` (and ``mlflow_run_id`` when tracked).
    """
    with tracking.start_run(config, "train") as run:
        if config.engine.name == "memory":
            dataset, split = training.prepare_data(config)
            trained = training.fit_and_evaluate(config, dataset, split)
        else:
            trained = training.fit_streamed(config)
        training.save(trained, config, config.paths.artifacts_dir)
        run.log_outcome(trained.metrics, config.paths.artifacts_dir, model=FLOAT_MODEL)
    metrics = trained.metrics
    print(
        f"Dataset: {metrics['dataset']} ({metrics['n_train'] + metrics['n_test']} rows, "
        f"{len(metrics['feature_names'])} features; train {metrics['n_train']}, "
        f"test {metrics['n_test']}; engine {config.engine.name})"
    )
    print(f"Model: {trained.model!r}")
    if metrics["task"] == "classification":
        _print_classifier_scores(metrics)
    else:
        print(
            f"Test: R² {metrics['r2']:.6f}  MSE {metrics['mse']:.6f}  "
            f"RMSE {metrics['rmse']:.6f}  MAE {metrics['mae']:.6f}  "
            f"(train R² {metrics['train_r2']:.6f})"
        )
    print(
        f"Artifacts: {config.paths.artifacts_dir}/"
        f"{{{training.MODEL_FILE}, {training.FOLDED_FILE}, {training.METRICS_FILE}}}"
    )
    if metrics["task"] == "classification":
        print(f"Accuracy: {metrics['accuracy']:.4f}")
        print(f"Log Loss: {metrics['log_loss']:.4f}")
    else:
        print(f"R² Score: {metrics['r2']:.4f}")
        print(f"MSE Loss: {metrics['mse']:.4f}")
    return {**metrics, **tracking.run_reference(run)}


def _print_classifier_scores(metrics: dict[str, Any]) -> None:
    """The test scores and the confusion matrix (rows: true class, columns: predicted)."""
    auc = "n/a" if metrics["roc_auc"] is None else f"{metrics['roc_auc']:.6f}"
    print(
        f"Test: accuracy {metrics['accuracy']:.6f}  balanced accuracy "
        f"{metrics['balanced_accuracy']:.6f}  log loss {metrics['log_loss']:.6f}  "
        f"ROC AUC {auc}  (train accuracy {metrics['train_accuracy']:.6f})"
    )
    names = [str(label) for label in metrics["classes"]]
    width = max(len(name) for name in names)
    print("Confusion matrix (rows: true class, columns: predicted):")
    print("  " + " " * width + "".join(f"  {name:>{max(len(name), 6)}}" for name in names))
    for name, counts in zip(names, metrics["confusion_matrix"], strict=True):
        cells = "".join(
            f"  {count:>{max(len(label), 6)}}" for label, count in zip(names, counts, strict=True)
        )
        print(f"  {name:<{width}}{cells}")
