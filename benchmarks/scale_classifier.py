"""Out-of-core logistic regression at scale: the stream engine's Newton passes against a
read-only pass over the same files.

Usage: python benchmarks/scale_classifier.py [--rows 20000000] [--files 10]
                                             [--batch-rows 250000] [--out DIR]

Generates 8 numeric features (normal, with offsets and scales of different sizes) and a binary
label drawn from a logistic model of them, as Parquet in a temporary directory (or --out DIR,
kept: `make train DATASET=parquet ENGINE=stream ARGS="dataset.path=DIR dataset.target=label
model=logistic_regression"` trains on it). Then, each in a fresh process (so its peak RSS is its
own): a read-only pass (twice; the second, warm one is timed) and `engine=stream
model=logistic_regression` (the train stage's fit and evaluation, dataset.split=hash), every
pass over the data timed, then the read again (the ratio is to the mean of both). Goals:
total ≤ (passes + 1) × the warm read, peak RSS ≤ 600 MB.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scale_stream import peak_rss_mb, run_child

TARGET = "label"
CONF = Path(__file__).resolve().parent.parent / "conf"


def generate(directory: Path, rows: int, files: int) -> None:
    import pyarrow as pa
    from pyarrow import parquet

    rng = np.random.default_rng(0)
    offsets = np.array([0.0, 10.0, -3.0, 1e3, 0.5, 50.0, -20.0, 2.0])
    scales = np.array([1.0, 2.0, 0.5, 100.0, 1.0, 10.0, 3.0, 0.1])
    coef = np.array([0.8, -0.4, 1.2, 0.004, 0.0, -0.05, 0.1, 3.0])
    per_file = -(-rows // files)
    for index in range(files):
        n = min(per_file, rows - index * per_file)
        X = offsets + scales * rng.standard_normal((n, 8))
        logit = (X - offsets) @ coef - 0.3
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
        columns = {f"x{j}": X[:, j] for j in range(8)}
        table = pa.table({**columns, TARGET: y})
        parquet.write_table(
            table, directory / f"part-{index:03d}.parquet", row_group_size=1_000_000
        )


def child(method: str, directory: Path, batch_rows: int) -> dict:
    """Run one method; return its timings."""
    result: dict = {}
    start = time.perf_counter()
    if method == "read":
        from mlops_lr.sources import file_source

        source = file_source(str(directory), TARGET, None, batch_rows)
        for _ in range(2):  # the second pass is the warm one
            start, cpu = time.perf_counter(), time.process_time()
            total = sum(float(batch.y.sum()) for batch in source.batches())
        result["checksum"] = total
    else:
        from hydra import compose, initialize_config_dir

        from mlops_lr import training
        from mlops_lr.config import register_configs, to_config
        from mlops_lr.engines import SplitRule, StreamingFit, make_source

        register_configs()
        overrides = [
            "dataset=parquet",
            f"dataset.path={directory}",
            f"dataset.target={TARGET}",
            "model=logistic_regression",
            "engine=stream",
            f"engine.batch_rows={batch_rows}",
        ]
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            config = to_config(compose("config", overrides=overrides))
        start, cpu = time.perf_counter(), time.process_time()
        rule = SplitRule(config.dataset.test_size, config.dataset.random_state)
        passes: list[float] = []
        with StreamingFit(config.engine, make_source(config)) as streaming:
            run = streaming._run  # each pass over the data, timed

            def timed(compute):  # type: ignore[no-untyped-def]
                begin = time.perf_counter()
                merged = run(compute)
                passes.append(time.perf_counter() - begin)
                return merged

            streaming._run = timed
            trained = training.fit_classifier_out_of_core(config, streaming, rule)
        result["passes"] = passes
        result["n_iter"] = int(trained.model.n_iter_[0])
        result["accuracy"] = trained.metrics["accuracy"]
    result["seconds"] = time.perf_counter() - start
    # CPU seconds (every thread): what other jobs on the machine do not change.
    result["cpu_seconds"] = time.process_time() - cpu
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--batch-rows", type=int, default=250_000)
    parser.add_argument("--out", help="generate into this directory and keep it")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, Path(args.dir), args.batch_rows)))
        return 0

    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(args.out or temporary)
        directory.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        generate(directory, args.rows, args.files)
        size = sum(p.stat().st_size for p in directory.iterdir()) / 1e6
        print(
            f"{args.rows:,} rows × 8 features and a binary label in {args.files} Parquet files "
            f"({size:.0f} MB), generated in {time.perf_counter() - start:.1f} s; batches of "
            f"{args.batch_rows:,}\n"
        )
        # The read is timed before and after the fit: the machine's load may change between.
        reads = [run_child("read", directory, args.batch_rows, script=__file__)]
        stream = run_child("stream", directory, args.batch_rows, script=__file__)
        reads.append(run_child("read", directory, args.batch_rows, script=__file__))
    warm = sum(read["seconds"] for read in reads) / 2
    passes = stream["passes"]
    total = stream["seconds"]
    before, after = (read["seconds"] for read in reads)
    read_rss = max(read["peak_rss_mb"] for read in reads)
    print(
        f"warm Parquet read (pyarrow, one pass): {warm:.2f} s (before the fit {before:.2f} s, "
        f"after {after:.2f} s); peak RSS {read_rss:.0f} MB"
    )
    print(
        f"stream: {stream['n_iter']} Newton step(s); {len(passes)} passes over the data (classes, "
        f"{len(passes) - 2} Newton, evaluation): "
        + ", ".join(f"{seconds:.2f}" for seconds in passes)
        + " s"
    )
    read_cpu = sum(read["cpu_seconds"] for read in reads) / 2
    print(
        f"CPU: the read {read_cpu:.2f} s, the fit and evaluation {stream['cpu_seconds']:.2f} s "
        f"= {stream['cpu_seconds'] / read_cpu:.2f}× (on 2 cores, wall time ≥ half the CPU time)"
    )
    print(
        f"total {total:.2f} s = {total / warm:.2f}× the warm read (goal ≤ passes + 1 = "
        f"{len(passes) + 1}); slowest pass {max(passes) / warm:.2f}× the read; peak RSS "
        f"{stream['peak_rss_mb']:.0f} MB (goal ≤ 600); test accuracy {stream['accuracy']:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
