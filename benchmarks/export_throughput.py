"""Exported models: ONNX Runtime against numpy, the integer-only C kernel, and stored bytes.

Usage: python benchmarks/export_throughput.py [--model default-8bit] [--rows 1000000]

Needs the trained artifacts (`make quantize`), SCIKIT_LEARN_DATA, onnxruntime and gcc. Rows
are California test rows resampled to --rows. One thread everywhere (ONNX Runtime's
intra-op pool is set to 1), best of 7 runs:

- numpy ``X @ w + b`` on float64 and float32 arrays;
- ONNX Runtime on the float32 (centred) and float64 quantized graphs, with weight prepacking
  on (the default) and off, and on the float graph; session creation time apart (it is where
  prepacking happens);
- the exported C header (gcc -O2), on a batch that fits in cache (64 k rows) and on --rows
  rows streamed from memory, checked bit for bit against the Python model of its arithmetic.

Then the bytes each format stores for the model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
from timing import best_rate

from mlops_lr import artifacts
from mlops_lr.data import load_california, split_dataset
from mlops_lr.export_c import c_identifier, constant_bytes, render_header
from mlops_lr.export_onnx import float_graph, quantized_graph
from mlops_lr.fixed_point import plan_fixed_point
from mlops_lr.predictor import load_predictor

HERE = Path(__file__).resolve().parent
CACHE_ROWS = 65_536


def onnx_rates(graphs: dict[str, tuple[bytes, np.ndarray]]) -> dict[str, str]:
    rows = {}
    for name, (data, X) in graphs.items():
        for prepacking in ("on", "off"):
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            if prepacking == "off":
                options.add_session_config_entry("session.disable_prepacking", "1")
            start = time.perf_counter()
            session = onnxruntime.InferenceSession(
                data, options, providers=["CPUExecutionProvider"]
            )
            created = time.perf_counter() - start
            rate = best_rate(lambda s=session, X=X: s.run(None, {"X": X}), len(X))
            rows[f"ONNX Runtime, {name}, prepacking {prepacking}"] = (
                f"{rate / 1e6:7.1f} M rows/s   (session created in {created * 1e3:.1f} ms)"
            )
    return rows


def c_rates(plan, prefix: str, n_features: int, X: np.ndarray) -> tuple[dict[str, str], bool]:
    if shutil.which("gcc") is None:
        sys.exit("gcc is required (Debian: apt-get install gcc)")
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        (work / f"{prefix}.h").write_text(render_header(plan, prefix, [""] * n_features, ""))
        executable = work / "c_throughput"
        subprocess.run(
            [
                "gcc", "-std=c99", "-O2", f"-I{work}", f'-DMODEL_HEADER="{prefix}.h"',
                f"-DPREDICT={prefix}_predict", f"-DN_FEATURES={n_features}",
                str(HERE / "c_throughput.c"), "-o", str(executable),
            ],
            check=True,
        )  # fmt: skip
        rates, exact = {}, True
        for label, rows, repeats in (
            (f"{CACHE_ROWS:,} rows (in cache)", CACHE_ROWS, 200),
            (f"{len(X):,} rows (from memory)", len(X), 7),
        ):
            data = np.ascontiguousarray(X[:rows])
            data.tofile(work / "rows.f64")
            output = subprocess.run(
                [str(executable), str(work / "rows.f64"), str(rows), str(repeats),
                 str(work / "out.f64")],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            predictions = np.fromfile(work / "out.f64", dtype=np.float64)
            exact &= predictions.tobytes() == plan.predict(data).tobytes()
            rates[f"C integer kernel, gcc -O2, {label}"] = f"{float(output) / 1e6:7.1f} M rows/s"
        return rates, exact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default-8bit")
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    artifacts_dir = Path(args.artifacts)
    quantized_dir = artifacts_dir / "quantized" / args.model
    model = artifacts.load_quantized(quantized_dir).linear  # a plain model: its linear part
    predictor = load_predictor(artifacts_dir, args.model)
    float_model = load_predictor(artifacts_dir)
    split = split_dataset(load_california(), 0.2, 42)
    rng = np.random.default_rng(0)
    X = np.ascontiguousarray(split.X_test[rng.integers(0, len(split.X_test), args.rows)])
    X32 = X.astype(np.float32)
    center = split.X_train.mean(axis=0)

    coef, intercept = float_model.coef, float_model.intercept
    graphs = {
        f"{args.model} float32": (quantized_graph(model, np.float32, {}, center), X32),
        f"{args.model} float32 not centred": (quantized_graph(model, np.float32, {}), X32),
        f"{args.model} float64": (quantized_graph(model, np.float64, {}), X),
        "float model float32": (float_graph(coef, intercept, np.float32, {}, center), X32),
        "float model float64": (float_graph(coef, intercept, np.float64, {}), X),
    }
    graphs = {name: (graph.SerializeToString(), data) for name, (graph, data) in graphs.items()}
    w, b = predictor.coef, predictor.intercept
    w32, b32 = w.astype(np.float32), np.float32(b)
    numpy64 = best_rate(lambda: X @ w + b, len(X))
    numpy32 = best_rate(lambda: X32 @ w32 + b32, len(X))
    results = {
        "numpy float64 X @ w + b": f"{numpy64 / 1e6:7.1f} M rows/s",
        "numpy float32 X @ w + b": f"{numpy32 / 1e6:7.1f} M rows/s",
        **onnx_rates(graphs),
    }
    plan = plan_fixed_point(model, np.abs(split.X_train).max(axis=0))
    prefix = c_identifier(args.model)
    c_results, exact = c_rates(plan, prefix, X.shape[1], X)
    results.update(c_results)

    print(f"Model {args.model!r}, {args.rows:,} California-like rows, one thread, best of 7:")
    for name, value in results.items():
        print(f"  {name:58s} {value}")
    print(f"  C output bit-exact with the Python model of its arithmetic: {exact}")

    n = model.codes.size
    header = render_header(plan, prefix, list(predictor.feature_names), "")
    manifest = artifacts.read_manifest(quantized_dir)
    sizes = {
        "joblib file (float model)": artifacts.read_manifest(artifacts_dir)["files"][
            "model.joblib"
        ]["bytes"],
        "float64 parameters": 8 * (n + 1),
        "JSON file (quantized model)": manifest["files"]["model.json"]["bytes"],
        "packed codes + scales (storage_bytes)": model.storage_bytes(),
        "ONNX file, float32 graph": len(graphs[f"{args.model} float32"][0]),
        "ONNX file, float64 graph": len(graphs[f"{args.model} float64"][0]),
        "C constant data (codes, shifts, scales, zero point, b, u)": constant_bytes(plan),
        "C header (source text)": len(header.encode()),
    }
    print("\nStored bytes:")
    for name, size in sizes.items():
        print(f"  {name:48s} {size:6,d}")
    print(json.dumps({"rates": results, "bytes": sizes, "c_bit_exact": exact}), file=sys.stderr)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
