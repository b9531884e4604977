"""Stage ``export``: the float or a quantized model as ONNX, or as integer-only C, verified on
the test split before anything is written."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mlops_lr import artifacts, training
from mlops_lr.artifacts import MODEL_FILE, QUANTIZED_MODEL
from mlops_lr.config import Config
from mlops_lr.data import Split, fingerprint
from mlops_lr.exceptions import ArtifactError, ConfigError, DataError
from mlops_lr.fixed_point import INT64_MAX, plan_fixed_point
from mlops_lr.metrics import regression_metrics
from mlops_lr.predictor import FLOAT_MODEL, LinearPredictor, load_predictor, quantized_model_dir
from mlops_lr.quantized_folded import QuantizedFoldedModel

EXPORT_DIR = "export"
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
    artifacts_dir = Path(config.paths.artifacts_dir)
    predictor = load_predictor(artifacts_dir, tag, config.paths.quantized_dir)
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
    listing = ", ".join(f"{name} ({size:,} B)" for name, size in report["files"].items())
    print(f"Exported {tag!r} as {settings.format} to {directory}/: {listing}")
    for line in report["summary"]:
        print(line)
    return report


def _onnx(
    predictor: LinearPredictor, quantized: QuantizedFoldedModel | None, split: Split
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Both ONNX variants, each run in ONNX Runtime on the test split and compared with the
    Python model on the same inputs."""
    try:
        import onnxruntime

        from mlops_lr import export_onnx
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
        # float32 graphs centre the inputs on the training mean (see mlops_lr.export_onnx).
        center = split.X_train.mean(axis=0) if dtype is np.float32 else None
        if quantized is None:
            graph = export_onnx.float_graph(
                predictor.coef, predictor.intercept, dtype, metadata, center
            )
        else:
            graph = export_onnx.quantized_graph(quantized.linear, dtype, metadata, center)
        data = graph.SerializeToString()
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        X = split.X_test.astype(dtype)
        (onnx_predictions,) = session.run(None, {export_onnx.INPUT: X})
        onnx_predictions = onnx_predictions.astype(np.float64)
        expected = predictor.predict(X.astype(np.float64))
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
        files[f"model.{name}.onnx"] = data
        checks[name] = {
            "opset": graph.opset_import[0].version,
            "max_abs_diff_vs_python": difference,
            "max_abs_diff_vs_python_float64_inputs": _max_difference(
                onnx_predictions, predictor.predict(split.X_test)
            ),
            "r2": r2,
        }
        summary.append(
            f"ONNX Runtime {onnxruntime.__version__}, {name} inputs, test split: R² {r2:.6f}, "
            f"max |Δ| vs the Python model {difference:.2g} (≤ {absolute:g} + "
            f"{relative:g}·|prediction|)"
        )
    return files, {"onnx_runtime": onnxruntime.__version__, "checks": checks, "summary": summary}


def _c(
    predictor: LinearPredictor, quantized: QuantizedFoldedModel, split: Split
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The integer-only header and the example program, with the overflow proof."""
    from mlops_lr.export_c import c_identifier, constant_bytes, render_header, render_main

    try:
        plan = plan_fixed_point(quantized.linear, np.abs(split.X_train).max(axis=0))
    except ValueError as error:
        raise ArtifactError(f"{predictor.name} cannot be exported as integer C: {error}") from None
    prefix = c_identifier(predictor.name)
    header_name = f"{prefix}.h"
    provenance = (
        f"Model {predictor.name} ({quantized.spec.bits}-bit {quantized.spec.scheme}, "
        f"{quantized.spec.granularity}), model.json sha256 {predictor.details['sha256']}."
    )
    header = render_header(plan, prefix, predictor.feature_names, provenance)
    main = render_main(prefix, header_name)
    integer_predictions = plan.predict(split.X_test)
    expected = predictor.predict(split.X_test)
    difference = _max_difference(integer_predictions, expected)
    bound = plan.error_bound(predictor.coef, float(np.max(np.abs(expected))))
    if not difference <= bound:
        raise ArtifactError(
            f"integer inference differs from {predictor.name} by {difference:.3g} > "
            f"{bound:.3g} on the test split: not exported"
        )
    compiled = _compile_and_compare(header_name, header, main, split.X_test, integer_predictions)
    r2 = regression_metrics(split.y_test, integer_predictions)["r2"]
    data_bytes = constant_bytes(plan)
    report = {
        "prefix": prefix,
        "accumulator_bound": plan.bound,
        "accumulator_bound_log2": math.log2(plan.bound) if plan.bound else None,
        "int64_max": INT64_MAX,
        "input_bits": list(plan.input_bits),
        "shifts": list(plan.shifts),
        "constant_bytes": data_bytes,
        "max_abs_diff_vs_python": difference,
        "error_bound": bound,
        "compiled": compiled,
        "r2": r2,
        "summary": [
            f"Integer-only inference: worst-case |accumulator| {plan.bound:,} "
            f"(2^{math.log2(plan.bound):.2f}) ≤ 2^63 - 1 for any input; "
            f"{data_bytes} bytes of constants",
            f"Test split (the exact Python model of the C arithmetic): R² {r2:.6f}, "
            f"max |Δ| vs the quantized model {difference:.2g} (bound {bound:.2g})",
            compiled,
            f"Build the example: gcc {C_FLAGS} main.c -o predict",
        ],
    }
    return {header_name: header.encode(), "main.c": main.encode()}, report


def _compile_and_compare(
    header_name: str, header: str, main: str, X: np.ndarray, expected: np.ndarray
) -> str:
    """Build the example with gcc's strict flags and require its predictions on ``X`` to be
    ``expected`` bit for bit; say what was done (nothing when gcc is not installed)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return "gcc not found: the header was not compiled here (the tests compile it)"
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        (work / header_name).write_text(header)
        (work / "main.c").write_text(main)
        build = subprocess.run(
            [gcc, *C_FLAGS.split(), "main.c", "-o", "predict"],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if build.returncode != 0 or build.stderr:
            first = (build.stderr.strip().splitlines() or ["no output"])[0]
            raise ArtifactError(f"the generated C does not compile cleanly: {first}")
        rows = "".join(" ".join(float.hex(float(v)) for v in row) + "\n" for row in X)
        run = subprocess.run(
            [str(work / "predict")], input=rows, capture_output=True, text=True, check=False
        )
    predictions = np.array([float.fromhex(line) for line in run.stdout.split()])
    if run.returncode != 0 or predictions.tobytes() != expected.tobytes():
        raise ArtifactError("the compiled C does not reproduce its Python model bit for bit")
    return f"Compiled with gcc {C_FLAGS}: bit-exact on all {len(X):,} test rows"


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
