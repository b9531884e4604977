"""Load test of the model server on loopback with wrk: req/s, rows/s, p50 and p99 latency.

Usage: python benchmarks/serve_load.py [--model float] [--duration 1] [--artifacts artifacts]

Needs a trained model (`make train`; `make quantize` for a quantized --model) and wrk (Debian:
`apt-get install wrk`). Starts `python -m mlops_lr stage=serve` on a free 127.0.0.1 port and
runs wrk (one thread, so the server and the load generator each have a core of a 2-core
machine) at concurrency 1, 8 and 32, for single-row and 1,000-row bodies in four forms: our
`/predict` with named rows ("instances") and positional rows ("inputs"), and the Open
Inference Protocol's `/v2/models/<name>/infer` with a JSON tensor ("v2-json") and with the
binary tensor extension, in and out ("v2-binary"): 24 runs of --duration seconds after a 1 s
warm-up; then --rounds rounds of the six 1 s runs the issue 15 goals compare, at concurrency
8, back to back in a rotated order (runs vary by ±30 % over a minute here, so each goal takes
the median of the rounds' ratios): about 2 minutes in all. Then, in this process, where the
time of one 1,000-row request goes.

Goals (issue 6): single-row ≥ 1,000 req/s with p99 ≤ 20 ms at concurrency 8; 1,000-row bodies
≥ 250,000 rows/s through "inputs". Issue 15: single-row "v2-json" ≥ 0.8× the req/s of the
faster single-row `/predict` form; 1,000-row "v2-binary" ≥ 1.5× the rows/s of the faster
1,000-row JSON form ("inputs" or "v2-json"); both at concurrency 8. Exits 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from mlops_lr.inference_protocol import decode_request, encode_response
from mlops_lr.predictor import load_predictor
from mlops_lr.serve import input_limit, parse_rows

HERE = Path(__file__).resolve().parent
CONCURRENCY = (1, 8, 32)
ROWS = (1, 1000)
FORMS = ("instances", "inputs", "v2-json", "v2-binary")
# The runs the issue 15 goals compare, taking turns (form, rows per request).
GOAL_RUNS = (("instances", 1), ("inputs", 1), ("v2-json", 1), ("inputs", 1000), ("v2-json", 1000),
             ("v2-binary", 1000))  # fmt: skip


def request_rows(n_features: int, rows: int) -> np.ndarray:
    """``rows`` California-like rows (reproducible)."""
    rng = np.random.default_rng(rows)
    base = np.array([3.9, 28.6, 5.4, 1.1, 1425.0, 3.1, 35.6, -119.6])[:n_features]
    return base * rng.uniform(0.5, 1.5, size=(rows, n_features))


def request_body(feature_names: tuple[str, ...], rows: int, form: str) -> tuple[bytes, int | None]:
    """A body of ``rows`` rows in ``form``, and the length of its JSON header when binary
    data follows (the Open Inference Protocol's binary extension)."""
    X = request_rows(len(feature_names), rows)
    if form == "inputs":
        return orjson.dumps({"inputs": X.tolist()}), None
    if form == "instances":
        rows_by_name = [dict(zip(feature_names, r, strict=True)) for r in X.tolist()]
        return orjson.dumps({"instances": rows_by_name}), None
    tensor = {"name": "input", "shape": list(X.shape), "datatype": "FP64"}
    if form == "v2-json":
        return orjson.dumps({"inputs": [{**tensor, "data": X.tolist()}]}), None
    data = np.ascontiguousarray(X, dtype="<f8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": len(data)}}],
            "parameters": {"binary_data_output": True},
        }
    )
    return header + data, len(header)


def start_server(artifacts: str, model: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    command = [
        sys.executable, "-m", "mlops_lr", "stage=serve", "serve.port=0",
        f"serve.model={model}", "serve.log_level=warning",
        f"paths.artifacts_dir={Path(artifacts).resolve()}", f"hydra.run.dir={workdir / 'hydra'}",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=workdir)
    line = process.stdout.readline()
    if not line.startswith("Serving model"):
        process.kill()
        sys.exit(f"the server did not start: {line}")
    return process, line.split(" at ")[1].split()[0]


def wrk(
    url: str, body_path: Path, connections: int, duration: int, header_length: int | None = None
) -> dict:
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s",
        "-s", str(HERE / "serve_load.lua"), url,
    ]  # fmt: skip
    env = {**os.environ, "MLOPS_LR_BODY": str(body_path)}
    if header_length is not None:
        env["MLOPS_LR_HEADER_LENGTH"] = str(header_length)
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    seconds = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / seconds
    return result


def where_the_time_goes(
    predictor, body: bytes, form: str, header_length: int | None, repeats: int = 40
) -> dict[str, float]:
    """Milliseconds per step of one request with this body, in this process (best of 5)."""
    names, limit = predictor.feature_names, input_limit(predictor)
    steps: dict[str, Callable[[], object]]
    if form.startswith("v2"):
        length = None if header_length is None else str(header_length)
        inference = decode_request(body, length, predictor.folded, 10_000, limit)
        predictions = predictor.predict(inference.X)
        steps = {
            "decode_request": lambda: decode_request(body, length, predictor.folded, 10_000, limit),
            "predict": lambda: predictor.predict(inference.X),
            "encode_response": lambda: encode_response("m", "1", inference, predictions),
        }
    else:
        X = parse_rows(body, names, 10_000, limit)
        predictions = predictor.predict(X)
        steps = {
            "orjson.loads": lambda: orjson.loads(body),
            "parse_rows (loads + checks + matrix)": lambda: parse_rows(body, names, 10_000, limit),
            "predict": lambda: predictor.predict(X),
            "encode the answer": lambda: orjson.dumps(
                {"predictions": predictions, "model": predictor.name},
                option=orjson.OPT_SERIALIZE_NUMPY,
            ),
        }
    timings = {}
    for step, function in steps.items():
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(repeats):
                function()
            best = min(best, (time.perf_counter() - start) / repeats)
        timings[step] = best * 1e3
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="float")
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--duration", type=int, default=1, help="whole seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=12, help="rounds of the goal runs")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    predictor = load_predictor(args.artifacts, args.model)
    print(f"model {args.model!r}, {os.cpu_count()} cores, wrk -t1, {args.duration} s per run\n")
    print("| body | rows/request | concurrency | req/s | rows/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    results = {}
    with tempfile.TemporaryDirectory() as temporary:
        workdir = Path(temporary)
        bodies = {}
        for rows in ROWS:
            for form in FORMS:
                body, header_length = request_body(predictor.feature_names, rows, form)
                path = workdir / f"{form}-{rows}.body"
                path.write_bytes(body)
                bodies[form, rows] = path, header_length
        process, url = start_server(args.artifacts, args.model, workdir)
        targets = {form: f"{url}/predict" for form in FORMS}
        for form in ("v2-json", "v2-binary"):
            targets[form] = f"{url}/v2/models/{args.model}/infer"
        try:
            wrk(targets["instances"], bodies["instances", 1][0], 8, 1)  # warm-up
            for rows in ROWS:
                for form in FORMS:
                    body_path, header_length = bodies[form, rows]
                    for connections in CONCURRENCY:
                        r = wrk(targets[form], body_path, connections, args.duration, header_length)
                        results[form, rows, connections] = r
                        print(
                            f"| {form} | {rows} | {connections} | {r['rps']:,.0f} | "
                            f"{r['rps'] * rows:,.0f} | {r['p50_us'] / 1e3:.2f} | "
                            f"{r['p99_us'] / 1e3:.2f} | {r['non_2xx'] + r['socket_errors']} |",
                            flush=True,
                        )
            # The issue 15 goals compare forms whose runs vary by ±30 % over a minute here (a
            # shared VM): each round runs them back to back, in a rotated order, and the goals
            # take the median over rounds of each round's ratio.
            rounds: list[dict[tuple[str, int], float]] = []
            for turn in range(args.rounds):
                rotated = GOAL_RUNS[turn % len(GOAL_RUNS) :] + GOAL_RUNS[: turn % len(GOAL_RUNS)]
                measured = {}
                for form, rows in rotated:
                    body_path, header_length = bodies[form, rows]
                    r = wrk(targets[form], body_path, 8, 1, header_length)
                    measured[form, rows] = r["rps"] * rows
                rounds.append(measured)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        single_ratio = float(np.median([
            r["v2-json", 1] / max(r["instances", 1], r["inputs", 1]) for r in rounds
        ]))  # fmt: skip
        binary_ratio = float(np.median([
            r["v2-binary", 1000] / max(r["inputs", 1000], r["v2-json", 1000]) for r in rounds
        ]))  # fmt: skip
        print(f"\nMedians over {args.rounds} rounds at concurrency 8 (rows/s):")
        for key in GOAL_RUNS:
            values = [r[key] for r in rounds]
            print(f"  {key[0]}, {key[1]} row(s)/request: {np.median(values):,.0f}")
        print("\nWhere the time of one 1,000-row request goes (in process, ms):")
        for form in FORMS:
            body_path, header_length = bodies[form, 1000]
            body = body_path.read_bytes()
            steps = where_the_time_goes(predictor, body, form, header_length)
            print(f"  {form} ({len(body) / 1e3:.0f} kB): " + ", ".join(
                f"{step} {ms:.3f}" for step, ms in steps.items()
            ))  # fmt: skip
            total = 1e3 / results[form, 1000, 1]["rps"]
            print(f"    whole request over HTTP at concurrency 1: {total:.3f} ms")

    single = results["instances", 1, 8]
    errors = sum(r["non_2xx"] + r["socket_errors"] for r in results.values())
    batch = {form: min(results[form, 1000, c]["rps"] * 1000 for c in (8, 32)) for form in FORMS}
    print("\nGoals:")
    print(
        f"  single-row at concurrency 8: {single['rps']:,.0f} req/s (goal ≥ 1,000), "
        f"p99 {single['p99_us'] / 1e3:.2f} ms (goal ≤ 20)"
    )
    print(
        f"  1,000-row bodies at concurrency 8 and 32: ≥ {batch['inputs']:,.0f} rows/s as "
        f'"inputs", the fast path (goal ≥ 250,000); ≥ {batch["instances"]:,.0f} as "instances"'
    )
    print(
        f"  V2 single-row JSON: {single_ratio:.2f}× the req/s of the faster /predict form "
        "(median of the rounds' ratios; goal ≥ 0.8×)"
    )
    print(
        f"  V2 1,000-row binary: {binary_ratio:.2f}× the rows/s of the faster 1,000-row JSON "
        "form (median of the rounds' ratios; goal ≥ 1.5×)"
    )
    print(f"  non-2xx answers and socket errors: {errors}")
    met = (
        single["rps"] >= 1000
        and single["p99_us"] <= 20_000
        and batch["inputs"] >= 250_000
        and single_ratio >= 0.8
        and binary_ratio >= 1.5
    )
    return 0 if met and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
