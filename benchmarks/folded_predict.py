"""In-memory prediction throughput of a folded model with categorical inputs vs scikit-learn.

Usage: python benchmarks/folded_predict.py [--rows 1000000] [--repeats 5] [--profile]

Fits ``Pipeline(ColumnTransformer, Ridge())`` (preprocess=standard: mean imputation, standard
scaling, one-hot) on plotnine's bundled diamonds table (53,940 rows; every column but ``price``
is a feature, ``cut``, ``color`` and ``clarity`` are categorical), folds it
(:func:`mlops_lr.preprocess.fold`), then tiles the features as ``pandas.read_csv`` gives them to
``--rows`` rows and measures on that one frame, best of ``--repeats`` calls:

- rows/s of ``FoldedModel.predict(frame)`` and of the fitted ``Pipeline.predict(frame)``, and
  their ratio (goals: folded ≥ 10 M rows/s and ≥ 10× the Pipeline);
- whether the two agree to 1e-9 relative: max |Δ| / max |pipeline| (normwise; the check), and
  the elementwise max |Δ| / |pipeline| for information (it is large only where a prediction is
  near 0);

once with the categorical columns in pandas' default string dtype (what ``read_csv`` gives) and
once as ``category`` dtype. ``--profile`` adds the time of each input alone (a one-input
FoldedModel), the top of a cProfile of ``FoldedModel.predict``, and timings of alternative
category lookups (checked equal to ``CategoricalInput.codes``), alone and inside a whole
prediction, as candidates for speeding it up.
Needs plotnine (for its CSV only) and, for one of the alternatives, pyarrow.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.resources
import io
import pstats
import sys
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from timing import best_rate

from mlops_lr.config import StandardPreprocessConfig
from mlops_lr.data import load_table
from mlops_lr.folded import CATEGORICAL, CategoricalInput, FoldedModel, category_text
from mlops_lr.preprocess import build_model, fold
from mlops_lr.report import markdown_table

GOAL_RATE = 10e6  # rows/s of FoldedModel.predict
GOAL_RATIO = 10.0  # × Pipeline.predict
TOLERANCE = 1e-9  # relative agreement of the two predictions


def diamonds_path() -> str:
    return str(importlib.resources.files("plotnine") / "data" / "diamonds.csv")


def best_ms(function: Callable[[], object], repeats: int) -> float:
    """Milliseconds of the fastest of ``repeats`` calls."""
    return 1000 / best_rate(function, 1, repeats)


def agreement(folded: np.ndarray, pipeline: np.ndarray) -> dict[str, float]:
    difference = np.abs(folded - pipeline)
    with np.errstate(divide="ignore", invalid="ignore"):
        elementwise = difference / np.abs(pipeline)
    worst = int(np.nanargmax(elementwise))
    return {
        "normwise": float(difference.max() / np.abs(pipeline).max()),
        "max_abs": float(difference.max()),
        "elementwise": float(elementwise[worst]),
        "worst_prediction": float(pipeline[worst]),
        "rows_over": int(np.sum(elementwise > TOLERANCE)),
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# ---------------------------------------------------------------------- profiling helpers
def arrow_codes(item: CategoricalInput, column: pd.Series) -> np.ndarray:
    """Prototype: ``item.codes`` via ``pyarrow.compute.index_in`` on the arrow-backed
    string column (no conversion to Python objects)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.array(column)
    n = len(item.categories)
    found = pc.index_in(values, value_set=pa.array(item.categories, type=values.type))
    codes = found.fill_null(n + 1).to_numpy().astype(np.int64)
    if values.null_count:
        codes[values.is_null().to_numpy(zero_copy_only=False)] = n
    return codes


def factorize_codes(item: CategoricalInput, column: pd.Series) -> np.ndarray:
    """Prototype: ``pandas.factorize`` the column, look up only its distinct values."""
    n = len(item.categories)
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    texts = np.array([category_text(v) for v in uniques], dtype=object)
    remap = pd.Index(item.categories, dtype=object).get_indexer(texts)
    remap = np.append(np.where(remap < 0, n + 1, remap), n)  # code -1 (missing) → n
    return remap[codes]


def category_codes(item: CategoricalInput, column: pd.Series) -> np.ndarray:
    """Prototype for ``category`` dtype: look up the dtype's categories once, then gather."""
    n = len(item.categories)
    texts = np.array([category_text(v) for v in column.cat.categories], dtype=object)
    remap = pd.Index(item.categories, dtype=object).get_indexer(texts)
    remap = np.append(np.where(remap < 0, n + 1, remap), n)  # code -1 (missing) → n
    return remap[column.cat.codes.to_numpy()]


def prototype_predict(
    folded: FoldedModel,
    frame: pd.DataFrame,
    lookup: Callable[[CategoricalInput, pd.Series], np.ndarray],
) -> np.ndarray:
    """What ``folded.predict`` computes, with ``lookup`` in place of ``CategoricalInput.codes``:
    the numeric inputs through a FoldedModel of those alone, plus one table gather per
    categorical input."""
    numeric = tuple(item for item in folded.inputs if item.kind != CATEGORICAL)
    total = FoldedModel(folded.intercept, numeric).predict(frame)
    for item in folded.inputs:
        if item.kind == CATEGORICAL:
            entries = np.append(item.table, [item.missing, item.unknown])
            total += entries.take(lookup(item, frame[item.name]))
    return total


def profile(folded: FoldedModel, frame: pd.DataFrame, label: str, repeats: int) -> None:
    print(f"\nProfile, {label}: each input alone (a one-input FoldedModel, best of {repeats}):\n")
    rows = []
    for item in folded.inputs:
        alone = FoldedModel(0.0, (item,))
        rows.append(
            [item.name, item.kind, f"{best_ms(lambda a=alone: a.predict(frame), repeats):.1f}"]
        )
    whole = best_ms(lambda: folded.predict(frame), repeats)
    rows.append(["(whole predict)", "", f"{whole:.1f}"])
    print(markdown_table(["input", "kind", "ms"], rows))

    profiler = cProfile.Profile()
    profiler.runcall(folded.predict, frame)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(8)
    body = text.getvalue().strip().splitlines()
    start = next(i for i, line in enumerate(body) if "ncalls" in line)
    print("\ncProfile of one FoldedModel.predict (top 8 by own time):\n")
    print("\n".join("    " + line for line in body[start:]))

    candidates = [("CategoricalInput.codes (current)", lambda item, column: item.codes(column))]
    if isinstance(frame[folded.categorical_names[0]].dtype, pd.CategoricalDtype):
        candidates.append(("cat.codes + remap of the categories", category_codes))
    else:
        candidates.append(("pandas.factorize + remap of the uniques", factorize_codes))
        try:
            import pyarrow  # noqa: F401

            candidates.append(("pyarrow.compute.index_in", arrow_codes))
        except ImportError:
            pass
    print(f"\nCategory lookups, {label}, ms per column (best of {repeats}; = current codes?):\n")
    rows = []
    for name, function in candidates:
        row = [name]
        for item in folded.inputs:
            if item.kind != CATEGORICAL:
                continue
            column = frame[item.name]
            try:
                same = np.array_equal(function(item, column), item.codes(column))
                ms = best_ms(lambda f=function, i=item, c=column: f(i, c), repeats)
                row.append(f"{ms:.1f} ({'yes' if same else 'NO'})")
            except Exception as error:  # a prototype that cannot take this dtype
                row.append(f"{type(error).__name__}")
        rows.append(row)
    print(markdown_table(["lookup", *folded.categorical_names], rows))

    print(f"\nWhole prediction with each lookup, {label} (best of {repeats}):\n")
    rows = []
    reference = folded.predict(frame)
    for name, function in candidates:
        try:
            prediction = prototype_predict(folded, frame, function)
            rate = best_rate(
                lambda f=function: prototype_predict(folded, frame, f), len(frame), repeats
            )
        except Exception as error:
            rows.append([name, type(error).__name__, ""])
            continue
        difference = np.abs(prediction - reference).max() / np.abs(reference).max()
        rows.append([name, f"{rate / 1e6:.2f}", f"{difference:.1e}"])
    print(markdown_table(["lookup", "M rows/s", "max abs Δ / max abs predict"], rows))


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the frame")
    parser.add_argument("--repeats", type=int, default=5, help="calls per measurement")
    parser.add_argument("--profile", action="store_true", help="add a profile of predict")
    args = parser.parse_args(argv)

    path = diamonds_path()
    dataset = load_table(path, "price", missing_target="drop", preprocessed=True)
    categorical = list(dataset.categorical)
    pipeline = build_model(StandardPreprocessConfig(), Ridge(), dataset.features, categorical)
    pipeline.fit(dataset.features, dataset.y)
    folded = fold(pipeline, dataset.feature_names, categorical, "price")

    source = pd.read_csv(path)[list(dataset.feature_names)]
    as_read = source.iloc[np.resize(np.arange(len(source)), args.rows)].reset_index(drop=True)
    frames = {
        f"{as_read[categorical[0]].dtype} (as read_csv)": as_read,
        "category": as_read.astype(dict.fromkeys(categorical, "category")),
    }
    print(
        f"Diamonds: Ridge (preprocess standard) on {dataset.n_rows:,} rows; "
        f"{len(folded.inputs)} inputs ({', '.join(categorical)} categorical), "
        f"{len(folded.design_names())} design columns. Frame: {args.rows:,} rows; "
        f"best of {args.repeats}.\n"
    )

    rows, goals = [], []
    for label, frame in frames.items():
        pipeline_prediction = pipeline.predict(frame)
        pipeline_rate = best_rate(lambda f=frame: pipeline.predict(f), args.rows, args.repeats)
        try:
            folded_prediction = folded.predict(frame)
        except Exception as error:
            rows.append([label, f"{type(error).__name__}: {error}", f"{pipeline_rate / 1e6:.2f}"])
            rows[-1] += [""] * 4
            continue
        folded_rate = best_rate(lambda f=frame: folded.predict(f), args.rows, args.repeats)
        check = agreement(folded_prediction, pipeline_prediction)
        ratio = folded_rate / pipeline_rate
        rows.append(
            [
                label,
                f"{folded_rate / 1e6:.2f}",
                f"{pipeline_rate / 1e6:.2f}",
                f"{ratio:.1f}×",
                f"{check['normwise']:.1e} ({verdict(check['normwise'] <= TOLERANCE)})",
                f"{check['max_abs']:.1e}",
                f"{check['elementwise']:.1e} at pred {check['worst_prediction']:.3g}; "
                f"{check['rows_over']} rows > {TOLERANCE:.0e}",
            ]
        )
        goals.append(
            f"{verdict(folded_rate >= GOAL_RATE)} folded ≥ {GOAL_RATE / 1e6:.0f} M rows/s "
            f"[{label}]: {folded_rate / 1e6:.2f} M rows/s"
        )
        goals.append(
            f"{verdict(ratio >= GOAL_RATIO)} folded ≥ {GOAL_RATIO:.0f}× Pipeline.predict "
            f"[{label}]: {ratio:.1f}×"
        )
        goals.append(
            f"{verdict(check['normwise'] <= TOLERANCE)} agreement ≤ {TOLERANCE:.0e} relative "
            f"(max |Δ| / max |pipeline|) [{label}]: {check['normwise']:.1e}"
        )
    header = [
        "categorical dtype",
        "folded M rows/s",
        "Pipeline M rows/s",
        "ratio",
        "max abs Δ / max abs pipe",
        "max abs Δ",
        "elementwise max abs Δ / abs pipe",
    ]
    print(markdown_table(header, rows))
    print()
    print("\n".join(goals))

    if args.profile:
        for label, frame in frames.items():
            profile(folded, frame, label, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
