"""Stage ``quantize``: trained model → quantized coefficients → evaluation → report.

Reuses ``<artifacts_dir>/model.joblib`` when it was trained on this config and data, trains it
first otherwise, and writes ``<quantized_dir>/<tag>/`` (default ``artifacts/quantized/<tag>/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlops_lr import artifacts, training
from mlops_lr.config import Config, QualityConfig, QuantizationConfig, as_dict
from mlops_lr.data import Split
from mlops_lr.exceptions import ConfigError, DataError
from mlops_lr.metrics import prediction_difference, regression_metrics
from mlops_lr.quantize import (
    QuantizedLinearModel,
    SearchBudgetExceeded,
    calibration_objective,
    quantize_linear_model,
    spec_from,
)
from mlops_lr.report import quantization_report

MODEL_FILE = artifacts.QUANTIZED_MODEL
METRICS_FILE = training.METRICS_FILE
REPORT_FILE = "report.md"


def quality_verdict(mean_abs_pred_diff: float, thresholds: QualityConfig) -> str:
    """``excellent``/``good``/``fair``/``poor`` from the thresholds in the config."""
    for verdict in ("excellent", "good", "fair"):
        if mean_abs_pred_diff <= getattr(thresholds, verdict):
            return verdict
    return "poor"


def run(config: Config) -> dict[str, Any]:
    """Quantize the trained model as configured, evaluate it, save and print the report.

    Returns the metrics written to ``metrics.json``.
    """
    qconfig = config.quantization
    dataset, split = training.prepare_data(config)
    trained, source_manifest, reason = training.load_or_train(config, dataset, split)
    if reason is not None:
        print(f"Trained the float model first ({reason}).")
    float_model = trained.model
    coef = np.asarray(float_model.coef_, dtype=np.float64)
    intercept = float(float_model.intercept_)
    try:
        spec = spec_from(qconfig, fit_intercept=config.model.fit_intercept)
        quantized = quantize_linear_model(coef, intercept, spec, split.X_train)
    except SearchBudgetExceeded as error:
        raise ConfigError(
            f"quantization.max_nodes={qconfig.max_nodes} is too small: {error}"
        ) from None
    except ValueError as error:  # a model the format cannot hold (float32 range)
        raise DataError(f"cannot quantize this model: {error}") from None

    model_bytes = artifacts.json_bytes(quantized.to_dict())
    source_model = source_manifest["files"][training.MODEL_FILE]
    pred_float = float_model.predict(split.X_test)
    pred_quant = quantized.predict(split.X_test)
    metrics = {
        **_metrics(qconfig, quantized, coef, intercept, split, pred_float, pred_quant),
        "size_bytes_float": source_model["bytes"],
        "size_bytes_quant": len(model_bytes),
        "payload_bytes_float": 8 * (coef.size + 1),
        "payload_bytes_quant": quantized.storage_bytes(),
        "created_at": training.utc_now(),
    }
    tag = qconfig.resolved_tag
    report = quantization_report(
        title=f"Quantization report: {tag}",
        feature_names=dataset.feature_names,
        coef=coef,
        intercept=intercept,
        coef_quant=quantized.coef(),
        intercept_quant=quantized.intercept_value(),
        metrics=metrics,
        y_true=split.y_test,
        pred_float=pred_float,
        pred_quant=pred_quant,
    )
    directory = Path(config.paths.quantized_dir) / tag
    artifacts.write_artifacts(
        directory,
        {
            MODEL_FILE: model_bytes,
            METRICS_FILE: artifacts.json_bytes(metrics),
            REPORT_FILE: report.encode(),
        },
        {
            "created_at": metrics["created_at"],
            "source_model": source_model,
            "data_fingerprint": source_manifest["data_fingerprint"],
            "training": source_manifest["training"],
            "feature_names": list(dataset.feature_names),
            "quantization": as_dict(qconfig),
        },
    )
    print(report)
    print(f"Artifacts: {directory}/{{{MODEL_FILE}, {METRICS_FILE}, {REPORT_FILE}}}")
    print(f"R² Score (quantized, {tag}): {metrics['r2_quant']:.4f}")
    print(f"MSE Loss (quantized, {tag}): {metrics['mse_quant']:.4f}")
    return metrics


def _metrics(
    qconfig: QuantizationConfig,
    quantized: QuantizedLinearModel,
    coef: np.ndarray,
    intercept: float,
    split: Split,
    pred_float: np.ndarray,
    pred_quant: np.ndarray,
) -> dict[str, Any]:
    """What the quantization did to the parameters and to the test-split predictions."""
    float_scores = regression_metrics(split.y_test, pred_float)
    quant_scores = regression_metrics(split.y_test, pred_quant)
    differences = prediction_difference(pred_float, pred_quant)
    coef_quant, intercept_quant = quantized.coef(), quantized.intercept_value()
    return {
        "tag": qconfig.resolved_tag,
        "preset": qconfig.name,
        "bits": qconfig.bits,
        "scheme": qconfig.scheme,
        "granularity": qconfig.granularity,
        "rounding": qconfig.rounding,
        "scale": qconfig.scale,
        "bias_correction": qconfig.bias_correction,
        "intercept_dtype": qconfig.intercept_dtype,
        "r2_float": float_scores["r2"],
        "r2_quant": quant_scores["r2"],
        "mse_float": float_scores["mse"],
        "mse_quant": quant_scores["mse"],
        "rmse_quant": quant_scores["rmse"],
        "mae_quant": quant_scores["mae"],
        **differences,
        "max_coef_error": float(np.max(np.abs(coef_quant - coef))),
        "intercept_error": abs(intercept_quant - intercept),
        "calibration_objective": calibration_objective(
            coef, coef_quant, split.X_train, intercept, intercept_quant
        ),
        "quality": quality_verdict(differences["mean_abs_pred_diff"], qconfig.quality),
        "n_test": int(split.X_test.shape[0]),
    }
