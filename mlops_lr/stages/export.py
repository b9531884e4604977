"""Stage ``export``: the float or a quantized model as ONNX, or as integer-only C, verified on
the test split before anything is written."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_lr import artifacts, tracking, training
from mlops_lr.artifacts import MODEL_FILE, QUANTIZED_MODEL
from mlops_lr.config import Config
from mlops_lr.data import Split, fingerprint
from mlops_lr.exceptions import ArtifactError, ConfigError, DataError
from mlops_lr.fixed_point import INT64_MAX, plan_fixed_point
from mlops_lr.folded_classifier import probabilities
from mlops_lr.inventory import EXPORT_DIR
from mlops_lr.metrics import regression_metrics
from mlops_lr.predictor import FLOAT_MODEL, LinearPredictor, load_predictor, quantized_model_dir
from mlops_lr.quantized_classifier import QuantizedFoldedClassifier
from mlops_lr.quantized_folded import QuantizedFoldedModel

if TYPE_CHECKING:
    import onnx

REPORT_FILE = "export.json"
# ONNX Runtime against the Python model on the same (float32-rounded) inputs: |Δ| must stay
# within absolute + relative·|prediction| (float32 rounding grows with the predictions' size).
ONNX_TOLERANCE = {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-14)}
C_FLAGS = "-std=c99 -O2 -Wall -Wextra -Werror -pedantic -Wconversion"


def run(config: Config) -> dict[str, Any]:
    """Export ``export.model`` (default: the quantization config's tag) in ``export.format``
    to ``<artifacts_dir>/export/<tag>/<format>/`` and print what was written.

    Returns the export report (also written as ``export.json``).
    """
    settings = config.export
    tag = settings.model or config.quantization.resolved_tag
    with tracking.start_run(config, f"export {tag} {settings.format}") as run:
        directory, report = _export(config, tag)
        run.log_outcome(report, directory)
    listing = ", ".join(f"{name} ({size:,} B)" for name, size in report["files"].items())
    print(f"Exported {tag!r} as {settings.format} to {directory}/: {listing}")
    for line in report["summary"]:
        print(line)
    return report


def _export(config: Config, tag: str) -> tuple[Path, dict[str, Any]]:
    """Load ``tag``, export and verify it, write its directory; returns it and the report."""
    settings = config.export
    artifacts_dir = Path(config.paths.artifacts_dir)
    predictor = load_predictor(
        artifacts_dir, tag, config.paths.quantized_dir, allow_stale=config.allow_stale
    )
    model_dir, quantized = artifacts_dir, None
    if tag != FLOAT_MODEL:
        model_dir = quantized_model_dir(artifacts_dir, tag, config.paths.quantized_dir)
        quantized = artifacts.load_quantized(model_dir)
    elif settings.format == "c":
        raise ConfigError(
            "export.format=c needs a quantized model (integer codes), not export.model=float: "
            "run `make quantize` and export its tag"
        )
    # The test split checks the export and the training split bounds the C inputs: both must
    # be the split the model was made from.
    manifest = artifacts.read_manifest(model_dir)
    if manifest.get("training") != training.training_key(config):
        raise ConfigError(
            f"{tag} was trained with other dataset or model settings than these: export with "
            "the settings it was trained with"
        )
    dataset, split = training.prepare_data(config)
    if fingerprint(dataset) != manifest.get("data_fingerprint"):
        raise DataError(f"{tag} was made from other data than dataset={dataset.name}")
    exporter = _onnx if settings.format == "onnx" else _c
    if settings.format == "c" and predictor.is_classifier:
        exporter = _c_classifier
    files, report = exporter(predictor, quantized, split)
    report = {
        "tag": tag,
        "format": settings.format,
        "files": {name: len(data) for name, data in files.items()},
        "stored_bytes": _stored_bytes(artifacts_dir, manifest, quantized is not None),
        **report,
    }
    directory = artifacts_dir / EXPORT_DIR / tag / settings.format
    artifacts.write_artifacts(
        directory,
        {**files, REPORT_FILE: artifacts.json_bytes(report)},
        {
            "created_at": training.utc_now(),
            "model": tag,
            "model_sha256": predictor.details["sha256"],
        },
    )
    return directory, report


def _onnx(
    predictor: LinearPredictor, quantized: QuantizedFoldedModel | None, split: Split
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Both ONNX variants, each run in ONNX Runtime on the test split and compared with the
    Python model on the same inputs."""
    try:
        import onnxruntime

        from mlops_lr import export_onnx  # noqa: F401  (imports onnx: checked here, used below)
    except ModuleNotFoundError as error:
        raise ConfigError(
            f"export.format=onnx needs {error.name}: pip install 'mlops-lr[export]' "
            "(or -r requirements-export.txt)"
        ) from None
    metadata = {
        "mlops_lr.model": predictor.name,
        "mlops_lr.sha256": str(predictor.details["sha256"]),
        "mlops_lr.feature_names": json.dumps(list(predictor.feature_names)),
    }
    files, checks, summary = {}, {}, []
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        graph, inputs, table, table_float64 = _onnx_graph(
            predictor, quantized, split, dtype, metadata
        )
        data = graph.SerializeToString()
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        outputs = session.run(None, inputs)
        numbers, line = (_check_classifier if predictor.is_classifier else _check_regressor)(
            predictor, outputs, table, table_float64, split, name
        )
        files[f"model.{name}.onnx"] = data
        checks[name] = {"opset": graph.opset_import[0].version, **numbers}
        summary.append(f"ONNX Runtime {onnxruntime.__version__}, {name} inputs, {line}")
    return files, {"onnx_runtime": onnxruntime.__version__, "checks": checks, "summary": summary}


def _check_regressor(
    predictor: LinearPredictor,
    outputs: list[np.ndarray],
    table: Any,
    table_float64: Any,
    split: Split,
    name: str,
) -> tuple[dict[str, Any], str]:
    """ONNX Runtime's predictions against the Python model's on the same inputs (``table``),
    within :data:`ONNX_TOLERANCE`; its numbers for the report and a summary line.

    Raises
    ------
    ArtifactError
        Beyond the tolerance.
    """
    (onnx_predictions,) = outputs
    onnx_predictions = onnx_predictions.astype(np.float64)
    expected = predictor.predict_table(table)
    difference = _max_difference(onnx_predictions, expected)
    absolute, relative = ONNX_TOLERANCE[name]
    excess = np.abs(onnx_predictions - expected) - relative * np.abs(expected)
    if not np.max(excess) <= absolute:
        raise ArtifactError(
            f"ONNX Runtime ({name}) differs from the Python model by {difference:.3g} on "
            f"the test split, more than {absolute:g} + {relative:g}·|prediction|: "
            "not exported"
        )
    r2 = regression_metrics(split.y_test, onnx_predictions)["r2"]
    numbers = {
        "max_abs_diff_vs_python": difference,
        "max_abs_diff_vs_python_float64_inputs": _max_difference(
            onnx_predictions, predictor.predict_table(table_float64)
        ),
        "r2": r2,
    }
    return numbers, (
        f"test split: R² {r2:.6f}, max |Δ| vs the Python model {difference:.2g} "
        f"(≤ {absolute:g} + {relative:g}·|prediction|)"
    )


def _check_classifier(
    predictor: LinearPredictor,
    outputs: list[np.ndarray],
    table: Any,
    table_float64: Any,
    split: Split,
    name: str,
) -> tuple[dict[str, Any], str]:
    """ONNX Runtime's labels and probabilities against the Python model's on the same inputs
    (``table``): probabilities within :data:`ONNX_TOLERANCE`, and the same label on every row
    but those whose deciding margin (``|score|``; a softmax's top two scores apart) is within
    that tolerance of the scores, where rounding may decide; numbers for the report and a
    summary line.

    Raises
    ------
    ArtifactError
        Beyond the tolerance.
    """
    labels, proba = outputs
    folded = predictor.folded
    scores = folded.decision_function(table)
    expected_labels, expected_proba = folded.labels(scores), probabilities(folded.link, scores)
    absolute, relative = ONNX_TOLERANCE[name]
    difference = _max_difference(proba.astype(np.float64), expected_proba)
    if not difference <= absolute:
        raise ArtifactError(
            f"ONNX Runtime ({name}) probabilities differ from the Python model's by "
            f"{difference:.3g} on the test split, more than {absolute:g}: not exported"
        )
    differ = np.asarray(labels).astype(object) != expected_labels
    if folded.link == "logistic":
        margin, size = np.abs(scores), np.abs(scores)
    else:
        top = np.sort(scores, axis=1)
        margin, size = top[:, -1] - top[:, -2], np.abs(top[:, -1])
    undecided = margin <= absolute + relative * size
    if np.any(differ & ~undecided):
        row = int(np.flatnonzero(differ & ~undecided)[0])
        raise ArtifactError(
            f"ONNX Runtime ({name}) predicts {labels[row]!r} for test row {row + 1}, the Python "
            f"model {expected_labels[row]!r}: not exported"
        )
    agreement = float(1.0 - differ.mean())
    accuracy = float(np.mean(np.asarray(labels).astype(object) == split.y_test))
    numbers = {
        "class_agreement_vs_python": agreement,
        "max_abs_proba_diff_vs_python": difference,
        "accuracy": accuracy,
    }
    return numbers, (
        f"test split: accuracy {accuracy:.6f}, labels agree with the Python model on "
        f"{agreement:.2%} of rows, max |ΔP| {difference:.2g} (≤ {absolute:g})"
    )


def _onnx_graph(
    predictor: LinearPredictor,
    quantized: QuantizedFoldedModel | QuantizedFoldedClassifier | None,
    split: Split,
    dtype: type,
    metadata: dict[str, str],
) -> tuple[onnx.ModelProto, dict[str, np.ndarray], Any, Any]:
    """The ``dtype`` graph of the model, its inputs for the test split, and what those inputs
    mean as a table the Python model predicts (float64), and the test split as it is.

    A plain numeric model takes one matrix ``X``, any other folded model one ``[N, 1]`` input
    per column (see :mod:`mlops_lr.export_onnx`); a classifier gives labels and probabilities.
    float32 graphs centre the numeric inputs on their training means (missing values filled).
    """
    from mlops_lr import export_onnx  # onnx is installed: _onnx checked

    folded, centred = predictor.folded, dtype is np.float32
    names = list(predictor.feature_names)
    if folded.is_plain:
        center = split.X_train.mean(axis=0) if centred else None
        if predictor.is_classifier:
            graph = export_onnx.classifier_graph(quantized or folded, dtype, metadata, center)
        elif quantized is None:
            graph = export_onnx.float_graph(
                predictor.coef, predictor.intercept, dtype, metadata, center
            )
        else:
            graph = export_onnx.quantized_graph(quantized.linear, dtype, metadata, center)
        X = split.X_test.astype(dtype)
        table = dict(zip(names, X.astype(np.float64).T, strict=True))
        return graph, {export_onnx.INPUT: X}, table, dict(zip(names, split.X_test.T, strict=True))
    layout = folded.rows[0] if predictor.is_classifier else folded
    center = export_onnx.filled_means(layout, split.train) if centred else None
    model = folded if quantized is None else quantized
    build = export_onnx.classifier_graph if predictor.is_classifier else export_onnx.folded_graph
    try:
        graph = build(model, dtype, metadata, center)
    except ValueError as error:
        raise ArtifactError(f"{predictor.name} cannot be exported as ONNX: {error}") from None
    inputs = export_onnx.table_to_inputs(layout, split.test, dtype)
    return graph, inputs, export_onnx.inputs_to_table(layout, inputs), split.test


def _c(
    predictor: LinearPredictor, quantized: QuantizedFoldedModel, split: Split
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The integer-only header and the example program, with the overflow proof, checked on
    the test split: the compiled example bit for bit against the Python model of its
    arithmetic, and that model within the proven bound of the quantized model."""
    from mlops_lr.export_c import (
        as_c_reads,
        c_identifier,
        constant_bytes,
        csv_rows,
        render_header,
        render_main,
    )
    from mlops_lr.fixed_point import c_inputs, input_ranges
    from mlops_lr.folded import NUMERIC

    layout = quantized.layout
    prefix = c_identifier(predictor.name)
    header_name = f"{prefix}.h"
    provenance = (
        f"Model {predictor.name} ({quantized.spec.bits}-bit {quantized.spec.scheme}, "
        f"{quantized.spec.granularity}), model.json sha256 {predictor.details['sha256']}."
    )
    try:
        plan = plan_fixed_point(quantized, input_ranges(layout, split.train))
        header = render_header(plan, prefix, predictor.feature_names, provenance)
        main = render_main(plan, prefix, header_name, predictor.feature_names)
    except ValueError as error:
        raise ArtifactError(f"{predictor.name} cannot be exported as integer C: {error}") from None
    test = as_c_reads(layout, split.test)
    integer_predictions = plan.predict(*c_inputs(layout, test))
    expected = predictor.predict_table(test)
    difference = _max_difference(integer_predictions, expected)
    weights = [item.weight for item in predictor.folded.inputs if item.kind == NUMERIC]
    bound = plan.error_bound(np.array(weights), float(np.max(np.abs(expected))))
    if not difference <= bound:
        raise ArtifactError(
            f"integer inference differs from {predictor.name} by {difference:.3g} > "
            f"{bound:.3g} on the test split: not exported"
        )
    compiled = _compile_and_compare(
        header_name, header, main, csv_rows(layout, test), integer_predictions
    )
    r2 = regression_metrics(split.y_test, integer_predictions)["r2"]
    data_bytes = constant_bytes(plan)
    tables = dict(zip(predictor.folded.categorical_names, plan.tables, strict=True))
    report = {
        "prefix": prefix,
        "accumulator_bound": plan.bound,
        "accumulator_bound_log2": math.log2(plan.bound) if plan.bound else None,
        "int64_max": INT64_MAX,
        "input_bits": list(plan.input_bits),
        "shifts": list(plan.shifts),
        "tables": {name: len(table.entries) for name, table in tables.items()},
        "entry_rounding": plan.entry_rounding,
        "constant_bytes": data_bytes,
        "max_abs_diff_vs_python": difference,
        "error_bound": bound,
        "compiled": compiled,
        "r2": r2,
        "summary": [
            f"Integer-only inference: worst-case |accumulator| {plan.bound:,} "
            f"(2^{math.log2(plan.bound):.2f}) ≤ 2^63 - 1 for any input; "
            f"{data_bytes} bytes of constants"
            + (f", {len(tables)} category tables" if tables else ""),
            f"Test split (the exact Python model of the C arithmetic): R² {r2:.6f}, "
            f"max |Δ| vs the quantized model {difference:.2g} (bound {bound:.2g})",
            compiled,
            f"Build the example: gcc {C_FLAGS} main.c -o predict",
        ],
    }
    return {header_name: header.encode(), "main.c": main.encode()}, report


def _c_classifier(
    predictor: LinearPredictor, quantized: QuantizedFoldedClassifier, split: Split
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """A classifier's integer-only header and example program, checked on the test split:
    the compiled example's class indices and int64 scores bit for bit against the Python model
    of its arithmetic, and its labels against the quantized model's (a row may differ only
    where the integer rounding of its inputs decides a near tie)."""
    from mlops_lr.export_c import (
        as_c_reads,
        c_identifier,
        csv_rows,
        render_classifier_header,
        render_main,
    )
    from mlops_lr.fixed_point import c_inputs, input_ranges, plan_classifier

    layout = quantized.rows[0].layout
    prefix = c_identifier(predictor.name)
    header_name = f"{prefix}.h"
    spec = quantized.spec
    provenance = (
        f"Model {predictor.name} ({spec.bits}-bit {spec.scheme}, {spec.granularity}, "
        f"{quantized.link} link, {len(quantized.classes)} classes), model.json sha256 "
        f"{predictor.details['sha256']}."
    )
    try:
        plan = plan_classifier(
            quantized.rows, quantized.link, quantized.classes, input_ranges(layout, split.train)
        )
        header = render_classifier_header(plan, prefix, predictor.feature_names, provenance)
        main = render_main(plan, prefix, header_name, predictor.feature_names)
    except ValueError as error:
        raise ArtifactError(f"{predictor.name} cannot be exported as integer C: {error}") from None
    test = as_c_reads(layout, split.test)
    inputs = c_inputs(layout, test)
    chosen = plan.decide(*inputs)
    scores, _ = plan.scores(*inputs)
    expected = "".join(
        ",".join(map(str, [int(index), *row])) + "\n"
        for index, row in zip(chosen, scores.tolist(), strict=True)
    )
    labels = np.asarray(quantized.classes, dtype=object)[chosen]
    agreement = float(np.mean(labels == predictor.predict_table(test)))
    compiled = _compile_and_compare(
        header_name, header, main, csv_rows(layout, test), expected, ["--scores"]
    )
    accuracy = float(np.mean(labels == split.y_test))
    report = {
        "prefix": prefix,
        "accumulator_bounds": [row.bound for row in plan.rows],
        "int64_max": INT64_MAX,
        "output_scale": plan.output_scale,
        "class_agreement_vs_quantized": agreement,
        "accuracy": accuracy,
        "compiled": compiled,
        "summary": [
            f"Integer-only classification: {len(plan.rows)} row(s) of int64 scores in one unit, "
            f"worst-case |score| 2^{math.log2(max(row.bound for row in plan.rows)):.2f} "
            "≤ 2^63 - 1 for any input; the decision compares integers",
            f"Test split (the exact Python model of the C arithmetic): accuracy {accuracy:.6f}, "
            f"labels agree with the quantized model on {agreement:.2%} of rows",
            compiled,
            f"Build the example: gcc {C_FLAGS} main.c -o predict "
            f"(add -D{prefix.upper()}_PROBABILITIES ... -lm for probabilities)",
        ],
    }
    return {header_name: header.encode(), "main.c": main.encode()}, report


def _compile_and_compare(
    header_name: str,
    header: str,
    main: str,
    rows: str,
    expected: np.ndarray | str,
    arguments: Sequence[str] = (),
) -> str:
    """Build the example with gcc's strict flags and require its output for the CSV ``rows``
    (run with ``arguments``) to be ``expected`` bit for bit: predictions (read from ``%a``),
    or a classifier's text; say what was done (nothing when gcc is not installed)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return "gcc not found: the header was not compiled here (the tests compile it)"
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        (work / header_name).write_bytes(header.encode())
        (work / "main.c").write_bytes(main.encode())
        build = subprocess.run(
            [gcc, *C_FLAGS.split(), "main.c", "-o", "predict"],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if build.returncode != 0 or build.stderr:
            lines = build.stderr.strip().splitlines() or ["no output"]
            # The first diagnostic, not the "In file included from" line before it.
            first = next((line for line in lines if ": error: " in line), lines[0])
            raise ArtifactError(f"the generated C does not compile cleanly: {first}")
        run = subprocess.run(
            [str(work / "predict"), *arguments],
            input=rows.encode(),
            capture_output=True,
            check=False,
        )
    if run.returncode != 0:
        first = (run.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[0]
        raise ArtifactError(f"the compiled example fails on the test rows: {first}")
    output = run.stdout.decode()
    if isinstance(expected, str):
        same, count = output == expected, expected.count("\n")
    else:
        predictions = np.array([float.fromhex(line) for line in output.split()])
        same, count = predictions.tobytes() == expected.tobytes(), len(expected)
    if not same:
        raise ArtifactError("the compiled C does not reproduce its Python model bit for bit")
    return f"Compiled with gcc {C_FLAGS}: bit-exact on all {count:,} test rows"


def _max_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)))


def _stored_bytes(artifacts_dir: Path, manifest: dict[str, Any], quantized: bool) -> dict[str, int]:
    """Bytes of the model files that exist already: joblib, and the quantized JSON (from
    ``manifest``, the exported model's)."""
    if not quantized:
        return {"joblib": manifest["files"][MODEL_FILE]["bytes"]}
    return {
        "joblib": artifacts.read_manifest(artifacts_dir)["files"][MODEL_FILE]["bytes"],
        "json": manifest["files"][QUANTIZED_MODEL]["bytes"],
    }
