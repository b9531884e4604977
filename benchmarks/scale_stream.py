"""Out-of-core training at scale: the stream and Dask engines against a read-only pass,
scikit-learn in memory, dask-ml, and an extended-precision reference.

Usage: python benchmarks/scale_stream.py [--kind numeric|tables] [--rows 20000000] [--files 10]
                                          [--batch-rows 250000] [--skip sklearn,dask-ml]
                                          [--out DIR [--generate-only]]

Generates California-like data (California rows resampled with multiplicative jitter, a linear
target plus noise) as Parquet in a temporary directory (or --out DIR, which is kept: `make train
DATASET=parquet ENGINE=stream ARGS="dataset.path=DIR"` trains on it), then measures each
method in a fresh process (so its peak RSS is its own): wall time, rows/s, peak RSS, and the
coefficients' norm-wise relative error against a long-double reference and scikit-learn.
All fits use dataset.split=hash (test_size 0.2, random_state 42). Goals (issue 8): stream ≤ 3×
the warm Parquet read and ≤ 500 MB; dask ≤ 1.5× Dask's own read-only pass (same cluster).

``--kind tables`` adds three text columns (50, 20 and 5 levels, skewed) and 5 % missing values
in two numeric columns, and fits ``preprocess=standard`` with Ridge from one pass (the raw
table's statistics, which give both what preprocessing learns and the folded design's Gram).
Goals (issue 14): the fit pass ≤ 4× the warm read, ≤ 600 MB; dask ≤ 1.5× Dask's own read.
The in-memory methods are skipped (a dense one-hot copy of 20 M rows is what the engines
avoid); the tests hold the engines to the memory engine at small scale.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPLIT = (0.2, 42)
TARGET = "MedHouseVal"
# --kind tables: text columns and their level counts.
LEVELS = {"district": 50, "kind": 20, "grade": 5}


def generate(directory: Path, rows: int, files: int, kind: str = "numeric") -> None:
    import pyarrow as pa
    from pyarrow import parquet

    from mlops_lr.data import load_california

    data = load_california()
    rng = np.random.default_rng(0)
    coef = np.array([0.45, 0.0097, -0.12, 0.78, -2e-6, -0.0035, -0.42, -0.43])
    per_file = -(-rows // files)
    for index in range(files):
        n = min(per_file, rows - index * per_file)
        X = data.X[rng.integers(0, data.n_rows, n)] * rng.uniform(0.95, 1.05, (n, 8))
        y = X @ coef - 37.0 + rng.normal(0, 0.7, n)
        columns = {name: X[:, j] for j, name in enumerate(data.feature_names)}
        if kind == "tables":
            for name, count in LEVELS.items():
                shares = np.geomspace(1.0, 0.02, count)
                codes = rng.choice(count, n, p=shares / shares.sum())
                y += np.linspace(-0.5, 0.5, count)[codes]
                levels = pa.array([f"{name}-{level:02d}" for level in range(count)])
                columns[name] = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), levels)
            for name in ("AveRooms", "AveOccup"):
                columns[name] = np.where(rng.random(n) < 0.05, np.nan, columns[name])
        table = pa.table({**columns, TARGET: y})
        parquet.write_table(
            table, directory / f"part-{index:03d}.parquet", row_group_size=1_000_000
        )


def fit(streaming, rule, kind: str):  # type: ignore[no-untyped-def]
    """The folded model the engines fit: OLS on the numbers, or Ridge with preprocessing on
    the tables (the pass `make train ENGINE=stream` makes before its evaluation pass)."""
    from sklearn.linear_model import LinearRegression, Ridge

    from mlops_lr import preprocess, statistics_fit
    from mlops_lr.config import StandardPreprocessConfig

    source = streaming.source
    names, categorical = source.feature_names, source.categorical
    model = LinearRegression()
    if kind == "tables":
        table = streaming.table_statistics(rule, 1000)
        model = statistics_fit.fit_preprocessing(
            StandardPreprocessConfig(), Ridge(), table.summary(), names, categorical
        )
        layout = statistics_fit.layout(model, names, categorical, TARGET)
        design = table.design_statistics(layout)
    else:
        layout = statistics_fit.layout(model, names, categorical, TARGET)
        design = streaming.design_statistics(rule, layout)
    statistics_fit.fit_estimator(model, layout, design)
    return preprocess.fold(model, names, categorical, TARGET)


def child(method: str, directory: Path, batch_rows: int, kind: str) -> dict:
    """Run one method; return its timings and coefficients."""
    from mlops_lr.config import DaskEngineConfig, StreamEngineConfig
    from mlops_lr.engines import SplitRule, StreamingFit
    from mlops_lr.sources import file_source

    source = file_source(str(directory), TARGET, None, batch_rows, allow_missing=kind == "tables")
    rule = SplitRule(*SPLIT)
    result: dict = {}
    start = time.perf_counter()
    if method == "read":
        for _ in range(2):  # the second pass is the warm one
            start = time.perf_counter()
            total = sum(float(batch.y.sum()) for batch in source.batches())
        result["checksum"] = total
    elif method == "stream":
        with StreamingFit(StreamEngineConfig(batch_rows=batch_rows), source) as streaming:
            model = fit(streaming, rule, kind)
            result["fit_seconds"] = time.perf_counter() - start
            streaming.evaluate(rule, model, 5)
        result["coef"] = model.design_coef().tolist()
    elif method == "dask":
        import logging

        import dask.dataframe as dd
        import distributed

        cluster_start = time.perf_counter()
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
            silence_logs=logging.ERROR,
        )  # fmt: skip
        with cluster, distributed.Client(cluster) as client:
            result["cluster_seconds"] = time.perf_counter() - cluster_start
            read_start = time.perf_counter()
            columns = [*source.feature_names, TARGET]
            files = [str(p) for p in source.paths]
            frame = dd.read_parquet(files, columns=columns, split_row_groups="adaptive")
            client.compute(frame.map_partitions(len).sum()).result()  # Dask's own read
            result["dask_read_seconds"] = time.perf_counter() - read_start
            # The engine connects to this cluster (engine.address), as to any other.
            engine = DaskEngineConfig(batch_rows=batch_rows, address=cluster.scheduler_address)
            start = time.perf_counter()
            with StreamingFit(engine, source) as streaming:
                model = fit(streaming, rule, kind)
                result["fit_seconds"] = time.perf_counter() - start
                streaming.evaluate(rule, model, 5)
        result["coef"] = model.design_coef().tolist()
    elif method in ("sklearn", "dask-ml", "reference"):
        result.update(_in_memory(method, source, directory))
    result["seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not getrusage's ru_maxrss: that survives
    fork + exec, so every child would report at least its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_memory(method: str, source, directory: Path) -> dict:  # type: ignore[no-untyped-def]
    from mlops_lr.data import hash_test_rows

    start = time.perf_counter()
    if method == "reference":
        return {"coef": _extended_reference(source).tolist()}
    import pandas as pd

    frame = pd.read_parquet(directory)
    X = frame[list(source.feature_names)].to_numpy(np.float64)
    y = frame[TARGET].to_numpy(np.float64)
    train = ~hash_test_rows(X, y, *SPLIT)
    X, y = X[train], y[train]
    load = time.perf_counter() - start
    if method == "sklearn":
        from sklearn.linear_model import LinearRegression

        coef = LinearRegression().fit(X, y).coef_
    else:
        import dask.array as da
        from dask_ml.linear_model import LinearRegression as DaskLinearRegression

        model = DaskLinearRegression(solver="lbfgs", fit_intercept=True)
        chunks = (1_000_000, X.shape[1])
        coef = model.fit(da.from_array(X, chunks=chunks), da.from_array(y, chunks=1_000_000)).coef_
    return {"load_seconds": load, "coef": np.asarray(coef).tolist()}


def _extended_reference(source) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Long-double sums of the shifted training rows, solved exactly in fractions."""
    from mlops_lr.data import hash_test_rows
    from mlops_lr.sufficient import exact_solution

    n, shift, s1, s2, sy, sxy = 0, None, None, None, None, None
    for batch in source.batches():
        train = ~hash_test_rows(batch.X, batch.y, *SPLIT)
        X, y = batch.X[train].astype(np.longdouble), batch.y[train].astype(np.longdouble)
        if shift is None:
            shift = (X[0].copy(), y[0])
            s1, s2 = np.zeros(X.shape[1], np.longdouble), np.zeros((X.shape[1],) * 2, np.longdouble)
            sy, sxy = np.longdouble(0), np.zeros(X.shape[1], np.longdouble)
        X, y = X - shift[0], y - shift[1]
        n += len(y)
        s1 += X.sum(axis=0)
        s2 += X.T @ X
        sy += y.sum()
        sxy += X.T @ y
    gram = s2 - np.outer(s1, s1) / n
    cross = sxy - s1 * sy / n
    return exact_solution(gram, cross)


def run_child(
    method: str, directory: Path, batch_rows: int, *options: str, script: str = __file__
) -> dict:
    """``script --child method`` in a fresh process (its peak RSS its own); its JSON result."""
    output = subprocess.run(
        [sys.executable, script, "--child", method, "--dir", str(directory),
         "--batch-rows", str(batch_rows), *options],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if output.returncode != 0:
        sys.exit(f"{method} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["numeric", "tables"], default="numeric")
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--batch-rows", type=int, default=250_000)
    parser.add_argument("--skip", default="", help="comma-separated: sklearn,dask-ml")
    parser.add_argument("--out", help="generate into this directory and keep it")
    parser.add_argument("--generate-only", action="store_true", help="with --out: no runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, Path(args.dir), args.batch_rows, args.kind)))
        return 0

    skip = set(filter(None, args.skip.split(",")))
    if args.kind == "tables":
        skip |= {"reference", "sklearn", "dask-ml"}
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(args.out or temporary)
        directory.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        generate(directory, args.rows, args.files, args.kind)
        size = sum(p.stat().st_size for p in directory.iterdir()) / 1e6
        features = "8 features" if args.kind == "numeric" else "8 numeric + 3 text features"
        print(
            f"{args.rows:,} rows × {features} in {args.files} Parquet files ({size:.0f} MB) in "
            f"{directory}, generated in {time.perf_counter() - start:.1f} s; batches of "
            f"{args.batch_rows:,}\n"
        )
        if args.generate_only:
            return 0
        methods = ["reference", "read", "stream", "dask", "sklearn", "dask-ml"]
        results = {
            m: run_child(m, directory, args.batch_rows, "--kind", args.kind)
            for m in methods
            if m not in skip
        }
    reference = np.array(results["reference"]["coef"]) if "reference" in results else None
    sklearn = np.array(results["sklearn"]["coef"]) if "sklearn" in results else None

    def error(coef: list[float], against: np.ndarray | None) -> str:
        if against is None:
            return "-"
        return f"{np.linalg.norm(np.array(coef) - against) / np.linalg.norm(against):.1e}"

    read = results["read"]["seconds"]
    print("| method | wall s | rows/s | peak RSS MB | coef error vs long double | vs sklearn |")
    print("|---|---:|---:|---:|---:|---:|")
    for method, result in results.items():
        if method == "reference":
            continue
        coef = result.get("coef")
        print(
            f"| {method} | {result['seconds']:.2f} | {args.rows / result['seconds'] / 1e6:.1f} M "
            f"| {result['peak_rss_mb']:.0f} | {error(coef, reference) if coef else '-'} "
            f"| {error(coef, sklearn) if coef else '-'} |"
        )
    stream, dask = results["stream"], results["dask"]
    goals = (3, 500) if args.kind == "numeric" else (4, 600)
    print(f"\nwarm Parquet read (pyarrow, one pass): {read:.2f} s")
    print(f"stream: fit pass(es) {stream['fit_seconds']:.2f} s "
          f"= {stream['fit_seconds'] / read:.2f}× the read (goal ≤ {goals[0]}); fit + evaluation "
          f"{stream['seconds']:.2f} s = {stream['seconds'] / read:.2f}×; peak RSS "
          f"{stream['peak_rss_mb']:.0f} MB (goal ≤ {goals[1]})")  # fmt: skip
    difference = np.abs(np.array(stream["coef"]) - dask["coef"]).max()
    print(f"stream vs dask coefficients: max |Δ| {difference:.1e} "
          f"(largest |coef| {np.abs(stream['coef']).max():.3g})")  # fmt: skip
    print(f"dask: LocalCluster start {dask['cluster_seconds']:.1f} s; Dask's read-only pass "
          f"{dask['dask_read_seconds']:.2f} s; fit pass {dask['fit_seconds']:.2f} s "
          f"= {dask['fit_seconds'] / dask['dask_read_seconds']:.2f}× (goal ≤ 1.5); fit + "
          f"evaluation {dask['seconds']:.2f} s")  # fmt: skip
    for method in ("sklearn", "dask-ml"):
        if method in results:
            print(f"{method}: load {results[method]['load_seconds']:.1f} s (in the wall time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
