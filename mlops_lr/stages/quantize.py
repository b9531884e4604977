"""Stage ``quantize``: trained model → quantized coefficients → evaluation → report.

Reuses ``<artifacts_dir>/model.joblib`` when it was trained on this config and data, trains it
first otherwise, and writes ``<quantized_dir>/<tag>/`` (default ``artifacts/quantized/<tag>/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlops_lr import artifacts, tracking, training
from mlops_lr.config import Config, QualityConfig, QuantizationConfig, as_dict, is_classifier
from mlops_lr.data import Split, fingerprint
from mlops_lr.exceptions import ConfigError, DataError
from mlops_lr.folded import FoldedModel
from mlops_lr.folded_classifier import FoldedClassifier
from mlops_lr.metrics import (
    class_agreement,
    classification_metrics,
    prediction_difference,
    probability_difference,
    regression_metrics,
)
from mlops_lr.quantize import (
    CalibrationMoments,
    QuantizationSpec,
    SearchBudgetExceeded,
    calibration_objective,
    spec_from,
)
from mlops_lr.quantized_classifier import (
    QuantizedFoldedClassifier,
    calibrate_classifier,
    quantize_classifier,
)
from mlops_lr.quantized_folded import (
    QuantizedFoldedModel,
    calibrate,
    float_storage_bytes,
    quantize_folded,
)
from mlops_lr.report import classifier_quantization_report, coefficient_table, quantization_report

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

    Returns the metrics written to ``metrics.json`` (and ``mlflow_run_id`` when tracked).
    """
    qconfig = config.quantization
    spec = spec_from(qconfig, fit_intercept=config.model.fit_intercept)
    tag = qconfig.resolved_tag
    with tracking.start_run(config, f"quantize {tag}") as run:
        if is_classifier(config.model):
            metrics, report, directory = _quantize_classifier(config, spec, tag)
        else:
            metrics, report, directory = _quantize_and_save(config, spec, tag)
        run.log_outcome(metrics, directory, model=tag)
    print(report)
    print(f"Artifacts: {directory}/{{{MODEL_FILE}, {METRICS_FILE}, {REPORT_FILE}}}")
    if is_classifier(config.model):
        print(f"Class agreement with the float model ({tag}): {metrics['class_agreement']:.4f}")
        print(f"Accuracy (quantized, {tag}): {metrics['accuracy_quant']:.4f}")
        print(f"Log Loss (quantized, {tag}): {metrics['log_loss_quant']:.4f}")
    else:
        print(f"R² Score (quantized, {tag}): {metrics['r2_quant']:.4f}")
        print(f"MSE Loss (quantized, {tag}): {metrics['mse_quant']:.4f}")
    return {**metrics, **tracking.run_reference(run)}


def _quantize_and_save(
    config: Config, spec: QuantizationSpec, tag: str
) -> tuple[dict[str, Any], str, Path]:
    """Quantize and evaluate a regressor; write ``<quantized_dir>/<tag>/``. Returns the
    metrics, the report and the directory."""
    qconfig = config.quantization
    if config.engine.name == "memory":
        evaluated = _in_memory(config, spec)
    else:
        evaluated = _streamed(config, spec)
    quantized, reference, dequantized = (
        evaluated.quantized,
        evaluated.reference,
        evaluated.dequantized,
    )
    source_manifest = evaluated.manifest

    model_bytes = artifacts.json_bytes(quantized.to_dict())
    source_model = source_manifest["files"][training.MODEL_FILE]
    metrics = {
        **_metrics(qconfig, reference, dequantized, evaluated),
        "rounding_used": quantized.spec.rounding,
        "size_bytes_float": source_model["bytes"],
        "size_bytes_quant": len(model_bytes),
        "payload_bytes_float": float_storage_bytes(reference),
        "payload_bytes_quant": quantized.storage_bytes(),
        "created_at": training.utc_now(),
    }
    report = quantization_report(
        title=f"Quantization report: {tag}",
        parameter_names=reference.design_names(),
        groups=None if reference.is_plain else reference.design_groups(),
        coef=reference.design_coef(),
        intercept=reference.intercept,
        coef_quant=dequantized.design_coef(),
        intercept_quant=dequantized.intercept,
        metrics=metrics,
        y_true=evaluated.samples_y,
        pred_float=evaluated.samples_float,
        pred_quant=evaluated.samples_quant,
    )
    directory = _save(config, tag, model_bytes, metrics, report, source_manifest, reference)
    return metrics, report, directory


def _save(
    config: Config,
    tag: str,
    model_bytes: bytes,
    metrics: dict[str, Any],
    report: str,
    source_manifest: dict[str, Any],
    reference: FoldedModel | FoldedClassifier,
) -> Path:
    """Write ``<quantized_dir>/<tag>/``: the model, its metrics and report, and a manifest
    naming the float model (and data) it was made from."""
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
            "source_model": source_manifest["files"][training.MODEL_FILE],
            "data_fingerprint": source_manifest["data_fingerprint"],
            "training": source_manifest["training"],
            "feature_names": list(reference.feature_names),
            "quantization": as_dict(config.quantization),
        },
    )
    return directory


def _quantize_classifier(
    config: Config, spec: QuantizationSpec, tag: str
) -> tuple[dict[str, Any], str, Path]:
    """Quantize a classifier row by row against the Fisher-weighted training design
    (:mod:`mlops_lr.quantized_classifier`), compare it with the float model on the test
    split; write ``<quantized_dir>/<tag>/``. Returns the metrics, the report and the
    directory."""
    qconfig = config.quantization
    if config.engine.name == "memory":
        evaluated = _classifier_in_memory(config, spec)
    else:
        evaluated = _classifier_streamed(config, spec)
    quantized, reference, manifest = evaluated.quantized, evaluated.reference, evaluated.manifest
    scores_float, scores_quant = evaluated.float_scores, evaluated.quant_scores
    classes = reference.classes
    rows = list(zip(reference.rows, evaluated.dequantized.rows, evaluated.moments, strict=True))
    coef_errors = [np.abs(q.design_coef() - r.design_coef()).max() for r, q, _ in rows]
    model_bytes = artifacts.json_bytes(quantized.to_dict())
    metrics = {
        "task": "classification",
        **_settings(qconfig),
        # Rows may differ under rounding=auto: each says whether its search fitted max_nodes.
        "rounding_used": ", ".join(dict.fromkeys(row.spec.rounding for row in quantized.rows)),
        "class_agreement": evaluated.agreement,
        **evaluated.differences,
        **{f"{key}_float": scores_float[key] for key in _CLASSIFIER_SCORES},
        **{f"{key}_quant": scores_quant[key] for key in _CLASSIFIER_SCORES},
        "confusion_matrix_quant": scores_quant["confusion_matrix"],
        "max_coef_error": float(max(coef_errors)),
        "intercept_error": max(abs(q.intercept - r.intercept) for r, q, _ in rows),
        "calibration_objective": sum(
            calibration_objective(r.design_coef(), q.design_coef(), m, r.intercept, q.intercept)
            for r, q, m in rows
        ),
        "n_test": evaluated.n_test,
        "size_bytes_float": manifest["files"][training.MODEL_FILE]["bytes"],
        "size_bytes_quant": len(model_bytes),
        "payload_bytes_float": sum(float_storage_bytes(row) for row in reference.rows),
        "payload_bytes_quant": quantized.storage_bytes(),
        "created_at": training.utc_now(),
    }
    headings = (
        [f"score of {classes[-1]!r}"]
        if reference.link == "logistic"
        else [f"score of {label!r}" for label in classes]
    )
    coefficients = [
        (
            heading,
            coefficient_table(
                r.design_names(),
                r.design_coef(),
                r.intercept,
                q.design_coef(),
                q.intercept,
                None if r.is_plain else r.design_groups(),
            ),
        )
        for heading, (r, q, _) in zip(headings, rows, strict=True)
    ]
    report = classifier_quantization_report(
        title=f"Quantization report: {tag}",
        metrics=metrics,
        coefficients=coefficients,
        samples=evaluated.samples,
    )
    directory = _save(config, tag, model_bytes, metrics, report, manifest, reference)
    return metrics, report, directory


@dataclass(frozen=True)
class _ClassifierEvaluated:
    """A quantized classifier with what its report needs: the float model it was made from
    (tables centred, as quantized), its dequantized form, each row's calibration moments,
    both models' test scores, their class agreement and probability differences, and the
    first test rows (target, both labels and both probabilities of the float label)."""

    quantized: QuantizedFoldedClassifier
    reference: FoldedClassifier
    dequantized: FoldedClassifier
    moments: list[CalibrationMoments]
    float_scores: dict[str, Any]
    quant_scores: dict[str, Any]
    agreement: float
    differences: dict[str, float]
    n_test: int
    samples: list[list[Any]]
    manifest: dict[str, Any]


def _classifier_in_memory(config: Config, spec: QuantizationSpec) -> _ClassifierEvaluated:
    """Load and split the data, reuse or train the float classifier, quantize, predict."""
    split, folded, manifest = _float_model_in_memory(config)
    reference, moments = calibrate_classifier(folded, split.train)
    quantized = _quantize_rows(config, reference, spec, moments)
    dequantized = quantized.dequantized()
    classes = folded.classes
    labels_float, labels_quant = folded.predict(split.test), dequantized.predict(split.test)
    proba_float = folded.predict_proba(split.test)
    proba_quant = dequantized.predict_proba(split.test)
    return _ClassifierEvaluated(
        quantized,
        reference,
        dequantized,
        moments,
        classification_metrics(split.y_test, labels_float, proba_float, classes),
        classification_metrics(split.y_test, labels_quant, proba_quant, classes),
        class_agreement(labels_float, labels_quant),
        probability_difference(proba_float, proba_quant),
        len(split.y_test),
        _classifier_samples(folded, dequantized, split.test, split.y_test),
        manifest,
    )


def _classifier_streamed(config: Config, spec: QuantizationSpec) -> _ClassifierEvaluated:
    """Out of core: the float classifier (reused, or fitted by passes over the data), a pass
    for the training design's moments (unweighted: they centre the tables; Fisher-weighted
    per row of scores: they calibrate), another that compares both models on the test rows."""
    from mlops_lr.engines import SplitRule, StreamingFit, label_array, label_values, make_source

    rule = SplitRule(config.dataset.test_size, config.dataset.random_state)
    source = make_source(config)
    with StreamingFit(config.engine, source) as streaming:
        folded, manifest, reason = training.load_or_train(
            config,
            source.fingerprint(),
            lambda: training.fit_classifier_out_of_core(config, streaming, rule),
        )
        _say_trained(reason)
        fisher = streaming.fisher_moments(rule, folded)
        # A one-hot column's sum counts its rows: whole numbers, as in memory.
        counts = np.rint(fisher.uniform.weight * fisher.uniform.mean)
        rows = tuple(row.centred(counts) for row in folded.rows)
        reference = FoldedClassifier(folded.link, folded.classes, rows, folded.target)
        # A row of scores certain of every training row has no Fisher weight: uniform then.
        moments = [
            (weighted if weighted.weight > 0 else fisher.uniform).moments()
            for weighted in fisher.weighted
        ]
        quantized = _quantize_rows(config, reference, spec, moments)
        dequantized = quantized.dequantized()
        labels = label_array(folded.classes, source)
        comparison = streaming.compare_classifiers(
            rule, folded, dequantized, labels, training.N_SAMPLES
        )
    n_test = comparison.reference.n
    if n_test == 0:
        raise DataError("no test rows to compare the quantized classifier on")
    samples_y = label_values(comparison.samples_y, source)
    return _ClassifierEvaluated(
        quantized,
        reference,
        dequantized,
        moments,
        comparison.reference.metrics(),
        comparison.candidate.metrics(),
        comparison.agreeing / n_test,
        {
            "max_abs_proba_diff": comparison.max_abs_difference,
            "mean_abs_proba_diff": comparison.sum_abs_difference / (n_test * len(labels)),
        },
        n_test,
        _classifier_samples(folded, dequantized, comparison.samples, samples_y),
        manifest,
    )


def _quantize_rows(
    config: Config,
    classifier: FoldedClassifier,
    spec: QuantizationSpec,
    moments: list[CalibrationMoments],
) -> QuantizedFoldedClassifier:
    try:
        return quantize_classifier(classifier, spec, moments)
    except (SearchBudgetExceeded, ValueError) as error:
        raise _quantization_error(config, error) from None


def _classifier_samples(
    folded: FoldedClassifier, dequantized: FoldedClassifier, rows: Any, y: np.ndarray
) -> list[list[Any]]:
    """The first test rows: target, float and quantized labels, and both models'
    probabilities of the float label."""
    n = training.N_SAMPLES
    rows, y = rows[:n], y[:n]
    labels_float, labels_quant = folded.predict(rows), dequantized.predict(rows)
    proba_float, proba_quant = folded.predict_proba(rows), dequantized.predict_proba(rows)
    picked = [folded.classes.index(label) for label in labels_float]
    return [
        [y[i], labels_float[i], labels_quant[i], proba_float[i, k], proba_quant[i, k]]
        for i, k in enumerate(picked)
    ]


@dataclass(frozen=True)
class _Evaluated:
    """A quantized model with what its report needs: its dequantized form, the float model it
    was made from (tables centred, as quantized), the calibration moments, both models' test
    scores, their prediction differences and the first test rows' targets and predictions."""

    quantized: QuantizedFoldedModel
    dequantized: FoldedModel
    reference: FoldedModel
    moments: CalibrationMoments
    float_scores: dict[str, float]
    quant_scores: dict[str, float]
    differences: dict[str, float]
    n_test: int
    samples_y: np.ndarray
    samples_float: np.ndarray
    samples_quant: np.ndarray
    manifest: dict[str, Any]


def _in_memory(config: Config, spec: QuantizationSpec) -> _Evaluated:
    """Load and split the data, reuse or train the float model, quantize, predict."""
    split, folded, manifest = _float_model_in_memory(config)
    reference, moments = calibrate(folded, split.train)
    quantized = _quantize(config, reference, spec, moments)
    dequantized = quantized.dequantized()
    pred_float = folded.predict(split.test)
    pred_quant = dequantized.predict(split.test)
    n = training.N_SAMPLES
    return _Evaluated(
        quantized,
        dequantized,
        reference,
        moments,
        regression_metrics(split.y_test, pred_float),
        regression_metrics(split.y_test, pred_quant),
        prediction_difference(pred_float, pred_quant),
        len(split.y_test),
        split.y_test[:n],
        pred_float[:n],
        pred_quant[:n],
        manifest,
    )


def _streamed(config: Config, spec: QuantizationSpec) -> _Evaluated:
    """Out of core: the float model (reused, or fitted from passes over the data) and the
    statistics of its design on the training rows (kept from the fit, or a pass), which
    centre its tables and calibrate; another pass compares both models on the test rows."""
    from mlops_lr.engines import SplitRule, StreamingFit, make_source

    rule = SplitRule(config.dataset.test_size, config.dataset.random_state)
    source = make_source(config)
    with StreamingFit(config.engine, source) as streaming:
        fitted = []

        def train() -> training.TrainedModel:
            trained, design = training.fit_out_of_core(config, streaming, rule)
            fitted.append(design)
            return trained

        folded, manifest, reason = training.load_or_train(config, source.fingerprint(), train)
        _say_trained(reason)
        design = fitted[0] if fitted else streaming.design_statistics(rule, folded)
        # A one-hot column's sum counts its rows (see quantized_folded.calibrate): whole
        # numbers, as in memory, whatever rounding the merged means carry.
        reference = folded.centred(np.rint(design.n * design.feature_means))
        moments = design.moments()
        quantized = _quantize(config, reference, spec, moments)
        dequantized = quantized.dequantized()
        comparison = streaming.compare(rule, folded, dequantized, training.N_SAMPLES)
    n_test = comparison.reference.n
    return _Evaluated(
        quantized,
        dequantized,
        reference,
        moments,
        comparison.reference.metrics(),
        comparison.candidate.metrics(),
        {
            "max_abs_pred_diff": comparison.max_abs_difference,
            "mean_abs_pred_diff": comparison.sum_abs_difference / n_test,
        },
        n_test,
        comparison.samples_y,
        folded.predict(comparison.samples),
        dequantized.predict(comparison.samples),
        manifest,
    )


def _float_model_in_memory(
    config: Config,
) -> tuple[Split, FoldedModel | FoldedClassifier, dict[str, Any]]:
    """The data's split, and the saved float model (folded) if it was made from this config
    and data, else one trained on the split and saved; with its manifest."""
    dataset, split = training.prepare_data(config)
    folded, manifest, reason = training.load_or_train(
        config, fingerprint(dataset), lambda: training.fit_and_evaluate(config, dataset, split)
    )
    _say_trained(reason)
    return split, folded, manifest


def _say_trained(reason: str | None) -> None:
    if reason is not None:
        print(f"Trained the float model first ({reason}).")


def _quantize(
    config: Config,
    folded: FoldedModel,
    spec: QuantizationSpec,
    moments: CalibrationMoments,
) -> QuantizedFoldedModel:
    try:
        return quantize_folded(folded, spec, moments)
    except (SearchBudgetExceeded, ValueError) as error:
        raise _quantization_error(config, error) from None


def _quantization_error(config: Config, error: Exception) -> ConfigError | DataError:
    """The one-line error of a quantization that failed: a search over its budget, or a
    model the format cannot hold (float32 range)."""
    if isinstance(error, SearchBudgetExceeded):
        return ConfigError(
            f"quantization.max_nodes={config.quantization.max_nodes} is too small: {error}"
        )
    return DataError(f"cannot quantize this model: {error}")


# A classifier's test scores, each in metrics.json as <key>_float and <key>_quant.
_CLASSIFIER_SCORES = ("accuracy", "balanced_accuracy", "log_loss", "roc_auc")


def _settings(qconfig: QuantizationConfig) -> dict[str, Any]:
    """The quantization settings a quantized model's metrics.json records."""
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
    }


def _metrics(
    qconfig: QuantizationConfig,
    reference: FoldedModel,
    dequantized: FoldedModel,
    evaluated: _Evaluated,
) -> dict[str, Any]:
    """What the quantization did to the parameters and to the test-split predictions."""
    float_scores, quant_scores = evaluated.float_scores, evaluated.quant_scores
    differences = evaluated.differences
    coef, coef_quant = reference.design_coef(), dequantized.design_coef()
    intercept, intercept_quant = reference.intercept, dequantized.intercept
    return {
        **_settings(qconfig),
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
            coef, coef_quant, evaluated.moments, intercept, intercept_quant
        ),
        "quality": quality_verdict(differences["mean_abs_pred_diff"], qconfig.quality),
        "n_test": int(evaluated.n_test),
    }
