"""File prediction: ``predict_files`` and ``stage=predict`` against a bare pyarrow floor.

Usage: python benchmarks/file_predict.py [--rows 2000000] [--rss-rows 500000,1000000,2000000]
                                         [--repeats 3] [--artifacts DIR] [--batch-rows 100000]

Writes a table of California Housing's 8 features tiled to ``--rows`` rows (each value times
1 + N(0, 1e-3), rounded to 5 decimals) to a temporary directory as CSV (pyarrow, unquoted) and
as Parquet (pyarrow's defaults), and predicts it with a float model the project trained
(``--artifacts DIR`` from `make train`, or trained here in the temporary directory). For each
format (CSV → CSV, Parquet → Parquet), best of ``--repeats``, warm:

- the floor: bare pyarrow reads the whole file, computes ``X @ w + b`` and writes the same
  output (the input's columns and the prediction) with pyarrow's own writer;
- ``predict_files`` in this process (batches of ``--batch-rows``);
- the CLI, ``python -m mlops_lr stage=predict predict.input=… predict.output=…``, start-up
  included, with its peak RSS (GNU time's maximum resident set, which does not count this
  process's memory as getrusage's ru_maxrss would after fork + exec);
- the CLI's peak RSS on the first ``--rss-rows`` rows of the table (it must not grow);
- CSV only, ``predict_files(reader="pandas")``: what the Docker image (no pyarrow) runs.

Goals (issue 15): ``predict_files`` ≥ 0.8× the floor's rows/s; the CLI ≤ 2.5× the floor's
time. Needs SCIKIT_LEARN_DATA (or a network) and GNU time (/usr/bin/time; Debian: time).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from timing import best_rate

from mlops_lr.report import markdown_table

GOAL_RATE = 0.8  # predict_files rows/s ÷ the floor's
GOAL_CLI_TIME = 2.5  # the CLI's seconds ÷ the floor's
TIME = "/usr/bin/time"
FORMATS = {"CSV": ".csv", "Parquet": ".parquet"}


def write_table(directory: Path, rows: int, sizes: list[int]) -> dict[tuple[str, int], Path]:
    """The tiled table as CSV and Parquet, whole and cut to each of ``sizes`` rows."""
    import pyarrow as pa
    from pyarrow import csv, parquet

    from mlops_lr.data import load_california

    data = load_california()
    rng = np.random.default_rng(0)
    X = data.X[np.arange(rows) % data.n_rows]
    X = np.round(X * (1 + rng.normal(0.0, 1e-3, X.shape)), 5)
    paths = {}
    for size in sorted({rows, *sizes}):
        table = pa.table({name: X[:size, j] for j, name in enumerate(data.feature_names)})
        for kind, suffix in FORMATS.items():
            path = directory / f"rows-{size}{suffix}"
            if kind == "CSV":
                options = csv.WriteOptions(quoting_style="none", quoting_header="none")
                csv.write_csv(table, path, options)
            else:
                parquet.write_table(table, path)
            paths[kind, size] = path
    return paths


def trained(artifacts: str | None, directory: Path) -> Path:
    """``--artifacts`` if it holds a float model, else a float model trained here."""
    if artifacts and (Path(artifacts) / "folded.json").is_file():
        return Path(artifacts)
    target = directory / "artifacts"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops_lr",
            "stage=train",
            f"paths.artifacts_dir={target}",
            f"hydra.run.dir={directory / 'hydra'}",
        ],
        check=True,
        capture_output=True,
    )
    return target


def floor(source: Path, target: Path, w: np.ndarray, b: float, dictionaries: bool = True) -> None:
    """Bare pyarrow: the whole file in, ``X @ w + b``, the whole file out (Parquet: with or
    without the writer's default dictionary encoding of every column)."""
    import pyarrow as pa
    from pyarrow import csv, parquet

    csv_file = source.suffix == ".csv"
    table = csv.read_csv(source) if csv_file else parquet.read_table(source)
    X = np.column_stack([column.to_numpy() for column in table.columns])
    table = table.append_column("prediction", pa.array(X @ w + b))
    if csv_file:
        csv.write_csv(table, target)
    else:
        parquet.write_table(table, target, use_dictionary=dictionaries)


def best_seconds(function: Callable[[], object], repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls."""
    return 1 / best_rate(function, 1, repeats)


def cli(artifacts: Path, source: Path, target: Path, directory: Path) -> tuple[float, float]:
    """Seconds (start-up included) and peak RSS in MB of one ``stage=predict`` process."""
    command = [
        TIME,
        "-f",
        "%M",
        sys.executable,
        "-m",
        "mlops_lr",
        "stage=predict",
        f"paths.artifacts_dir={artifacts}",
        f"hydra.run.dir={directory / 'hydra'}",
        f"predict.input={source}",
        f"predict.output={target}",
    ]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    return seconds, int(result.stderr.strip().splitlines()[-1]) / 1024


def measure(args: argparse.Namespace, directory: Path) -> dict:
    """Every timing and peak RSS, by format."""
    from mlops_lr.batch_predict import predict_files
    from mlops_lr.predictor import load_predictor

    rows, repeats = args.rows, args.repeats
    paths = write_table(directory, rows, args.sizes)
    artifacts = trained(args.artifacts, directory)
    predictor = load_predictor(artifacts)
    w, b = predictor.coef, predictor.intercept
    found: dict = {}
    for kind, suffix in FORMATS.items():
        source, target = paths[kind, rows], directory / f"out{suffix}"
        runs = [cli(artifacts, source, target, directory) for _ in range(repeats)]
        found[kind] = {
            "MB": source.stat().st_size / 1e6,
            "floor": best_seconds(partial(floor, source, target, w, b), repeats),
            "files": best_seconds(
                partial(predict_files, predictor, source, target, args.batch_rows), repeats
            ),
            "cli": min(seconds for seconds, _ in runs),
            "cli MB": max(mb for _, mb in runs),
            "RSS": [cli(artifacts, paths[kind, size], target, directory)[1] for size in args.sizes],
        }
    source = paths["Parquet", rows]
    plain = partial(floor, source, directory / "out.parquet", w, b, dictionaries=False)
    found["Parquet"]["plain floor"] = best_seconds(plain, repeats)
    source = paths["CSV", rows]
    pandas = partial(predict_files, predictor, source, directory / "out.csv", reader="pandas")
    found["CSV"]["pandas"] = best_seconds(pandas, 1)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rss-rows", default="500000,1000000,2000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--artifacts", default="artifacts")
    args = parser.parse_args(argv)
    if not Path(TIME).is_file():
        parser.error(f"{TIME} (GNU time) is needed for the CLI's peak RSS")
    args.sizes = [int(size) for size in args.rss_rows.split(",")]
    rows = args.rows
    with tempfile.TemporaryDirectory() as tmp:
        found = measure(args, Path(tmp))

    def rate(seconds: float) -> str:
        return f"{rows / seconds / 1e6:.2f}"

    table = []
    for kind, times in found.items():
        floor_s, files_s, cli_s = times["floor"], times["files"], times["cli"]
        table.append(
            [
                f"{kind} ({times['MB']:.0f} MB) → {kind}",
                f"{floor_s:.2f}",
                rate(floor_s),
                f"{files_s:.2f}",
                rate(files_s),
                f"{floor_s / files_s:.2f}×",
                f"{cli_s:.2f}",
                f"{cli_s / floor_s:.2f}×",
                round(times["cli MB"]),
            ]
        )
    csv_times, parquet_times = found["CSV"], found["Parquet"]
    pandas_s = csv_times["pandas"]
    pandas_speed = f"{csv_times['floor'] / pandas_s:.2f}×"
    label = "CSV → CSV, pandas reader (no pyarrow)"
    table.append([label, "", "", f"{pandas_s:.2f}", rate(pandas_s), pandas_speed, "", "", ""])
    header = ["input → output", "floor s", "floor M rows/s", "predict_files s", "M rows/s"]
    header += ["vs floor", "CLI s", "CLI ÷ floor", "CLI peak RSS MB"]
    print(f"{rows:,} rows × 8 float64 features, batches of {args.batch_rows:,} rows; seconds:")
    print(f"the best of {args.repeats} warm runs\n")
    print(markdown_table(header, table))
    print("\nPeak RSS of the CLI (MB) by input size:\n")
    sizes = [f"{size / 1e6:g} M rows" for size in args.sizes]
    print(
        markdown_table(["format", *sizes], [[k, *map(round, t["RSS"])] for k, t in found.items()])
    )
    plain = parquet_times["plain floor"]
    print(
        "\npyarrow's Parquet writer dictionary-encodes every column by default (predict_files: "
        f"text only). Without that the floor takes {plain:.2f} s: predict_files "
        f"{plain / parquet_times['files']:.2f}× its rows/s, the CLI "
        f"{parquet_times['cli'] / plain:.2f}× its time.\n"
    )
    ok = True
    for kind, times in found.items():
        speed, slowdown = times["floor"] / times["files"], times["cli"] / times["floor"]
        speed_ok, cli_ok = speed >= GOAL_RATE, slowdown <= GOAL_CLI_TIME
        ok = ok and speed_ok and cli_ok
        print(
            f"{kind}: predict_files {speed:.2f}× the floor's rows/s (goal ≥ {GOAL_RATE}): "
            f"{'PASS' if speed_ok else 'FAIL'}; the CLI {slowdown:.2f}× its time "
            f"(goal ≤ {GOAL_CLI_TIME}): {'PASS' if cli_ok else 'FAIL'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
