"""The exported C of a folded model with category tables: integer codes in, rows per second.

Usage: python benchmarks/c_folded_throughput.py [--rows 1000000] [--bits 8]

No data needed: a synthetic folded model with 8 numeric inputs (two with missing values: fills
and missing indicators; the others filled too, as preprocess=standard makes them) and 3
categorical inputs of 12, 30 and 50 categories, quantized with the default preset at --bits
(nearest rounding: the C is the same, the search is faster) on 100 k synthetic training rows.
The exported header (gcc -std=c99 -O2, one core, through ``benchmarks/c_throughput.c``)
predicts 65,536 rows in cache and --rows rows streamed from memory, taking the numeric inputs
as doubles (5 % NaN in two of them) and the categorical ones as the codes their ``_code``
lookups give (2 % unknown, 2 % missing). For comparison, the plain model of the same 8 numeric
inputs (no tables, no fills). Every output is checked bit for bit against the Python model of
the arithmetic. Goal: ≥ 30 M rows/s in cache with the 3 tables. Needs gcc.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_lr.export_c import c_identifier, constant_bytes, render_header
from mlops_lr.fixed_point import FixedPointPlan, c_inputs, input_ranges, plan_fixed_point
from mlops_lr.folded import CategoricalInput, FoldedModel, NumericInput
from mlops_lr.quantize import default_spec, quantize_linear_model
from mlops_lr.quantized_folded import calibrate, quantize_folded

HERE = Path(__file__).resolve().parent
CACHE_ROWS = 65_536
N_NUMERIC = 8
LEVELS = (12, 30, 50)
WITH_MISSING = ("x0", "x1")  # the numeric inputs with missing values (and indicators)


def synthetic_table(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """Numeric columns of different scales (5 % NaN in two), and category texts with 2 %
    missing and 2 % never seen in training."""
    columns = {}
    for j in range(N_NUMERIC):
        values = rng.normal(0.0, 10.0 ** (j % 4 - 1), rows) + 10.0 * j
        if f"x{j}" in WITH_MISSING:
            values[rng.random(rows) < 0.05] = np.nan
        columns[f"x{j}"] = values
    for k, levels in enumerate(LEVELS):
        texts = rng.choice(np.array([f"c{k}-{i}" for i in range(levels)], dtype=object), rows)
        draw = rng.random(rows)
        texts[draw < 0.02] = None
        texts[(draw >= 0.02) & (draw < 0.04)] = "never seen"
        columns[f"c{k}"] = texts
    return pd.DataFrame(columns)


def synthetic_model(rng: np.random.Generator, train: pd.DataFrame) -> FoldedModel:
    numeric = [
        NumericInput(
            f"x{j}",
            float(rng.normal()),
            fill=float(np.nanmean(train[f"x{j}"])),
            indicator=float(rng.normal()) if f"x{j}" in WITH_MISSING else None,
        )
        for j in range(N_NUMERIC)
    ]
    categorical = [
        CategoricalInput(
            f"c{k}",
            tuple(f"c{k}-{i}" for i in range(levels)),
            rng.normal(size=levels),
            unknown=0.0,
            missing=float(rng.normal()),
        )
        for k, levels in enumerate(LEVELS)
    ]
    return FoldedModel(5.0, (*numeric, *categorical))


def c_rate(
    work: Path, plan: FixedPointPlan, name: str, numeric: np.ndarray, codes: np.ndarray | None,
    repeats: int,
) -> tuple[float, bool]:  # fmt: skip
    """Rows per second of the header of ``plan`` on these rows, and whether its predictions
    are the Python model's bit for bit."""
    prefix = c_identifier(name)
    names = [f"x{j}" for j in range(N_NUMERIC)] + [f"c{k}" for k in range(len(plan.tables))]
    header = render_header(plan, prefix, names, "")
    rate, outputs = kernel_rate(work, header, prefix, f"{prefix}_predict", numeric, codes, repeats)
    return rate, outputs.tobytes() == plan.predict(numeric, codes).tobytes()


def kernel_rate(
    work: Path, header: str, prefix: str, function: str, numeric: np.ndarray,
    codes: np.ndarray | None, repeats: int,
) -> tuple[float, np.ndarray]:  # fmt: skip
    """Rows per second of ``function`` (declared in the C ``header``, named ``<prefix>.h``)
    on these rows through ``c_throughput.c``, and its outputs as doubles."""
    (work / f"{prefix}.h").write_text(header)
    executable = work / f"c_throughput_{prefix}"
    categorical = [] if codes is None else [f"-DN_CATEGORICAL={codes.shape[1]}"]
    subprocess.run(
        [
            "gcc", "-std=c99", "-O2", f"-I{work}", f'-DMODEL_HEADER="{prefix}.h"',
            f"-DPREDICT={function}", f"-DN_FEATURES={numeric.shape[1]}", *categorical,
            str(HERE / "c_throughput.c"), "-o", str(executable),
        ],
        check=True,
    )  # fmt: skip
    np.ascontiguousarray(numeric).tofile(work / "rows.f64")
    arguments = [str(work / "rows.f64"), str(len(numeric)), str(repeats), str(work / "out.f64")]
    if codes is not None:
        np.ascontiguousarray(codes, dtype=np.int32).tofile(work / "codes.i32")
        arguments.append(str(work / "codes.i32"))
    output = subprocess.run(
        [str(executable), *arguments], capture_output=True, text=True, check=True
    ).stdout
    return float(output), np.fromfile(work / "out.f64", dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bits", type=int, default=8)
    args = parser.parse_args(argv)
    if shutil.which("gcc") is None:
        sys.exit("gcc is required (Debian: apt-get install gcc)")
    rng = np.random.default_rng(0)
    train = synthetic_table(rng, 100_000)
    spec = replace(default_spec(args.bits), rounding="nearest")
    centred, moments = calibrate(synthetic_model(rng, train), train)
    quantized = quantize_folded(centred, spec, moments)
    plan = plan_fixed_point(quantized, input_ranges(quantized.layout, train))
    rows = synthetic_table(rng, args.rows)
    numeric, codes = c_inputs(quantized.layout, rows)
    # The plain comparison: the same numeric weights, no tables, no missing values.
    filled = np.nan_to_num(numeric[:, :N_NUMERIC], nan=0.0)
    weights = np.array([item.weight for item in centred.inputs[:N_NUMERIC]])
    plain_model = quantize_linear_model(weights, centred.intercept, spec, filled[:100_000])
    plain = plan_fixed_point(plain_model, np.abs(filled).max(axis=0))

    results, exact = {}, True
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        for label, count, repeats in (
            (f"{CACHE_ROWS:,} rows (in cache)", CACHE_ROWS, 200),
            (f"{args.rows:,} rows (from memory)", args.rows, 7),
        ):
            for model, (model_plan, X, C) in {
                f"{N_NUMERIC} numeric + {len(LEVELS)} tables": (plan, numeric, codes),
                f"{N_NUMERIC} numeric, plain": (plain, filled, None),
            }.items():
                rate, same = c_rate(
                    work, model_plan, "folded" if C is not None else "plain", X[:count],
                    None if C is None else C[:count], repeats,
                )  # fmt: skip
                exact &= same
                results[f"{model}, {label}"] = f"{rate / 1e6:7.1f} M rows/s"
    print(f"C integer kernel, gcc -O2, one core, {args.bits}-bit, best of 200 (cache) / 7 passes:")
    for name, value in results.items():
        print(f"  {name:50s} {value}")
    print(f"  bit-exact with the Python model of the arithmetic: {exact}")
    print(
        f"  accumulator bound 2^{np.log2(plan.bound):.2f}; {constant_bytes(plan):,} bytes of "
        f"constants (plain: {constant_bytes(plain)})"
    )
    print(json.dumps({"rates": results, "c_bit_exact": exact}), file=sys.stderr)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
