"""Out of core with real tables: every model and preprocessing option fitted by the stream and
Dask engines from merged statistics equals the memory engine's scikit-learn fit on the same
(hash) split; quantization calibrates from the same statistics; bad tables are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_lr import training
from mlops_lr.artifacts import load_folded
from mlops_lr.config import DaskEngineConfig
from mlops_lr.engines import SplitRule, StreamingFit, make_source
from mlops_lr.folded import CategoricalInput, FoldedModel, NumericInput
from mlops_lr.sources import categories
from mlops_lr.sufficient import LinearStats, TableStats, merge_all
from tests.conftest import PENGUINS_TARGET, assert_one_line_error, mixed_table

MODELS = ("linear_regression", "ridge", "lasso", "elastic_net")
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def mixed_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic table in three Parquet files of uneven sizes and small row groups; the
    colour "late" appears in the last file only."""
    directory = tmp_path_factory.mktemp("mixed") / "data"
    directory.mkdir()
    frame = mixed_table(6000, seed=3, late_category=True)
    for index, (start, stop) in enumerate([(0, 2500), (2500, 4100), (4100, 6000)]):
        frame.iloc[start:stop].to_parquet(directory / f"part-{index}.parquet", row_group_size=700)
    return directory


@pytest.fixture(scope="module")
def penguins_parquet(tmp_path_factory: pytest.TempPathFactory, penguins_csv: Path) -> Path:
    """palmerpenguins in two Parquet files (text categories, NA cells, missing targets)."""
    directory = tmp_path_factory.mktemp("penguins") / "data"
    directory.mkdir()
    frame = pd.read_csv(penguins_csv)
    frame.iloc[:200].to_parquet(directory / "a.parquet")
    frame.iloc[200:].to_parquet(directory / "b.parquet")
    return directory


def assert_same_model(got: FoldedModel, expected: FoldedModel) -> None:
    """The same inputs (fills, indicators, categories) and parameters to 1e-9 relative."""
    assert got.design_names() == expected.design_names()
    for mine, theirs in zip(got.inputs, expected.inputs, strict=True):
        if mine.kind == "numeric":
            assert (mine.fill is None) == (theirs.fill is None)
            if mine.fill is not None:
                assert mine.fill == pytest.approx(theirs.fill, rel=TOLERANCE)
    scale = np.abs(expected.design_coef()).max()
    assert np.abs(got.design_coef() - expected.design_coef()).max() <= TOLERANCE * scale
    assert got.intercept == pytest.approx(expected.intercept, rel=TOLERANCE)


def mixed_layout(
    size_fill: float, offset_fill: float | None, levels: dict[str, list[str]]
) -> FoldedModel:
    """A folded model over :func:`mixed_table`'s ``size`` (filled, with an indicator),
    ``offset`` and the text columns ``levels`` names, every parameter 0: a design to take
    statistics over."""
    texts = [
        CategoricalInput(name, tuple(known), np.zeros(len(known)), 0.0, 0.0)
        for name, known in levels.items()
    ]
    numbers = [NumericInput("size", 0.0, size_fill, 0.0), NumericInput("offset", 0.0, offset_fill)]
    return FoldedModel(0.0, (*numbers, *texts), "y")


def table_overrides(path: Path, target: str, *more: str) -> tuple[str, ...]:
    return (
        "dataset=parquet",
        f"dataset.path={path}",
        f"dataset.target={target}",
        "dataset.split=hash",
        "preprocess=standard",
        *more,
    )


def trained(cli, tmp_path: Path, name: str, *overrides: str) -> tuple[FoldedModel, dict]:
    directory = tmp_path / name
    result = cli(*overrides, f"paths.artifacts_dir={directory}")
    assert result.returncode == 0, result.stderr
    return load_folded(directory), json.loads((directory / "metrics.json").read_text())


@pytest.mark.parametrize("model", MODELS)
def test_the_stream_engine_fits_every_model_like_memory(
    cli, tmp_path: Path, mixed_parquet: Path, model: str
) -> None:
    """Odd batches (333 rows) across files and row groups, missing numbers, a 1e6 offset,
    rare and late categories."""
    common = table_overrides(
        mixed_parquet, "y", f"model={model}", "preprocess.add_indicator=true", "model.alpha=0.05"
    )
    if model == "linear_regression":
        common = tuple(o for o in common if not o.startswith("model.alpha"))
    expected, expected_metrics = trained(cli, tmp_path, "memory", *common)
    got, metrics = trained(
        cli, tmp_path, "stream", *common, "engine=stream", "engine.batch_rows=333"
    )
    assert_same_model(got, expected)
    assert "colour=late" in got.design_names()
    for name in ("r2", "mse", "mae", "train_r2"):
        assert metrics[name] == pytest.approx(expected_metrics[name], rel=TOLERANCE)
    assert (metrics["n_train"], metrics["n_test"]) == (
        expected_metrics["n_train"],
        expected_metrics["n_test"],
    )


@pytest.mark.parametrize(
    "options",
    [
        ("preprocess.min_frequency=40", "preprocess.drop=first"),
        ("preprocess.min_frequency=0.02", "preprocess.scale=none"),
        ("preprocess.impute=constant", "preprocess.fill_value=-3", "preprocess.drop=if_binary"),
    ],
    ids=["rare-pooled", "share-unscaled", "constant-fill"],
)
def test_preprocessing_options_fit_like_memory(
    cli, tmp_path: Path, mixed_parquet: Path, options: tuple[str, ...]
) -> None:
    common = table_overrides(mixed_parquet, "y", "model=elastic_net", "model.alpha=0.02", *options)
    expected, _ = trained(cli, tmp_path, "memory", *common)
    got, _ = trained(cli, tmp_path, "stream", *common, "engine=stream", "engine.batch_rows=1000")
    assert_same_model(got, expected)


@pytest.mark.parametrize("model", ["ridge", "lasso"])
def test_penguins_stream_like_memory(
    cli, tmp_path: Path, penguins_parquet: Path, model: str
) -> None:
    """NA cells in numbers and text, rows without a target dropped, batches of 50."""
    common = table_overrides(
        penguins_parquet, PENGUINS_TARGET, f"model={model}", "dataset.missing_target=drop"
    )
    expected, expected_metrics = trained(cli, tmp_path, "memory", *common)
    got, metrics = trained(
        cli, tmp_path, "stream", *common, "engine=stream", "engine.batch_rows=50"
    )
    assert_same_model(got, expected)
    assert metrics["r2"] == pytest.approx(expected_metrics["r2"], rel=TOLERANCE)


def test_the_dask_engine_fits_tables_like_memory(
    make_config, tmp_path: Path, mixed_parquet: Path, penguins_csv: Path
) -> None:
    """One LocalCluster, every model, from CSV (text columns read as text by Dask)."""
    frame = mixed_table(6000, seed=3, late_category=True)
    for index, (start, stop) in enumerate([(0, 3000), (3000, 6000)]):
        frame.iloc[start:stop].to_csv(
            tmp_path / f"part-{index}.csv", index=False, float_format="%.17g"
        )
    rule = SplitRule(0.2, 42)
    for model in MODELS:
        overrides = [
            "dataset=csv",
            f"dataset.path={tmp_path}/part-*.csv",
            "dataset.target=y",
            "dataset.split=hash",
            "preprocess=standard",
            f"model={model}",
        ]
        if model != "linear_regression":
            overrides.append("model.alpha=0.05")
        memory = make_config(*overrides)
        dataset, split = training.prepare_data(memory)
        expected = training.fit_and_evaluate(memory, dataset, split)
        config = make_config(*overrides, "engine=dask", "engine.batch_rows=1000")
        if model == MODELS[0]:
            streaming = StreamingFit(config.engine, make_source(config)).__enter__()
        got, _ = training.fit_out_of_core(config, streaming, rule)
        assert_same_model(got.folded, expected.folded)
        assert got.metrics["r2"] == pytest.approx(expected.metrics["r2"], rel=TOLERANCE)
    streaming.__exit__(None, None, None)
    assert isinstance(config.engine, DaskEngineConfig)


def test_quantize_out_of_core_calibrates_like_memory(
    cli, tmp_path: Path, mixed_parquet: Path
) -> None:
    """The merged design statistics centre the tables and calibrate: the same codes."""
    common = table_overrides(
        mixed_parquet,
        "y",
        "model=lasso",
        "model.alpha=0.02",
        "stage=quantize",
        "quantization.bits=8",
        "quantization.rounding=hessian",
    )
    results = {}
    for engine in ("memory", "stream", "dask"):
        directory = tmp_path / engine
        result = cli(*common, f"engine={engine}", f"paths.artifacts_dir={directory}")
        assert result.returncode == 0, result.stderr
        quantized = directory / "quantized" / "default-8bit"
        results[engine] = (
            json.loads((quantized / "model.json").read_text()),
            json.loads((quantized / "metrics.json").read_text()),
        )
    (memory_model, memory_metrics) = results.pop("memory")
    for model, metrics in results.values():
        assert model["linear"]["codes"] == memory_model["linear"]["codes"]
        assert model["linear"]["exponents"] == memory_model["linear"]["exponents"]
        for name in ("r2_float", "r2_quant"):
            assert metrics[name] == pytest.approx(memory_metrics[name], rel=1e-9)
        # A difference of predictions near 30 that differ by ~1e-13 in either fit.
        assert metrics["mean_abs_pred_diff"] == pytest.approx(
            memory_metrics["mean_abs_pred_diff"], abs=1e-9
        )


def test_design_statistics_match_the_spelled_out_design() -> None:
    """One-hot blocks from per-category sums and co-occurrence counts equal the statistics of
    the dense design, in any batching."""
    frame = mixed_table(3000, seed=5)
    model = mixed_layout(50.0, None, {"colour": ["c00", "c01", "c02"], "grade": ["A", "B"]})
    columns = {name: frame[name] for name in ("size", "offset")}
    columns |= {name: categories(frame[name]) for name in ("colour", "grade")}
    dense = model.design(columns)
    y = frame["y"].to_numpy()
    shift = (dense[0], float(y[0]))
    expected = LinearStats.from_batch(dense, y, *shift)
    for size in (3000, 701):
        got = merge_all(
            LinearStats.from_design(
                model.design_parts({k: v[i : i + size] for k, v in columns.items()}),
                y[i : i + size],
                *shift,
            )
            for i in range(0, len(y), size)
        )
        assert got.n == expected.n
        np.testing.assert_allclose(got.mean_x, expected.mean_x, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.sxx, expected.sxx, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(got.sxy, expected.sxy, rtol=1e-12, atol=1e-9)


def test_one_pass_gives_preprocessing_and_any_design() -> None:
    """The raw table's statistics, merged over batches that see different categories (one
    only in the last batch), give the present values' moments and the category counts, and
    the statistics of a folded design with fills and indicators, as computed directly."""
    frame = mixed_table(2000, seed=7, late_category=True)
    X = frame[["size", "offset"]].to_numpy()
    text = (categories(frame["colour"]), categories(frame["grade"]))
    y = frame["y"].to_numpy()
    train = np.arange(2000) % 5 != 0
    shift = (X[1], float(y[0]))  # size is missing in row 0: any shift works
    table = merge_all(
        TableStats.from_batch(
            X[i : i + 333],
            tuple(t[i : i + 333] for t in text),
            y[i : i + 333],
            train[i : i + 333],
            shift,
            1000,
        )
        for i in range(0, 2000, 333)
    )
    summary = table.summary()
    assert summary.n == train.sum()
    np.testing.assert_array_equal(summary.count, (~np.isnan(X[train])).sum(axis=0))
    np.testing.assert_allclose(summary.mean, np.nanmean(X[train], axis=0), rtol=1e-14)
    np.testing.assert_allclose(summary.m2, np.nanvar(X[train], axis=0) * summary.count, rtol=1e-9)
    colour = frame["colour"][train]
    assert summary.counts[0] == {
        **colour.value_counts().to_dict(),
        None: int(colour.isna().sum()),
    }
    assert summary.seen[0] == frozenset(frame["colour"].dropna())
    layout = mixed_layout(49.5, 1e6, {"colour": ["c00", "c03", "late"], "grade": ["A", "B", "C"]})
    columns = {"size": X[train, 0], "offset": X[train, 1]}
    columns |= {"colour": text[0][train], "grade": text[1][train]}
    expected = LinearStats.from_batch(layout.design(columns), y[train])
    got = table.design_statistics(layout)
    assert got.n == expected.n
    np.testing.assert_allclose(got.feature_means, expected.feature_means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.sxx, expected.sxx, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(got.sxy, expected.sxy, rtol=1e-9, atol=1e-8)


def test_a_column_that_changes_type_between_files_names_file_and_line(cli, tmp_path: Path) -> None:
    frame = mixed_table(400, seed=1).drop(columns=["region"])
    frame.iloc[:200].to_csv(tmp_path / "a.csv", index=False)
    late = frame.iloc[200:].astype({"size": object})
    late.iloc[37, 0] = "n/a (sensor off)"
    late.to_csv(tmp_path / "b.csv", index=False)
    result = cli(
        "dataset=csv",
        f"dataset.path={tmp_path}/*.csv",
        "dataset.target=y",
        "dataset.split=hash",
        "preprocess=standard",
        "engine=stream",
    )
    assert_one_line_error(result, "b.csv: cannot be read", exit_code=3)
    assert "Row #39" in result.stderr  # pyarrow's count: the header is row 1
    assert not (tmp_path / "artifacts" / "model.joblib").exists()
    parquet = tmp_path / "parquet"
    parquet.mkdir()
    frame.iloc[:200].to_parquet(parquet / "a.parquet")
    frame.iloc[200:].astype({"size": str}).to_parquet(parquet / "b.parquet")
    result = cli(
        *table_overrides(parquet, "y"), "engine=stream", f"paths.artifacts_dir={tmp_path / 'p'}"
    )
    assert_one_line_error(result, "b.parquet: column 'size' is not numeric", exit_code=3)
    assert not (tmp_path / "p" / "model.joblib").exists()


def test_too_many_categories_on_a_stream_is_one_line(cli, tmp_path: Path) -> None:
    frame = mixed_table(3000, seed=2)
    frame["region"] = [f"id-{i}" for i in range(len(frame))]
    frame.to_parquet(tmp_path / "t.parquet")
    result = cli(
        *table_overrides(tmp_path / "t.parquet", "y"), "engine=stream", "engine.batch_rows=500"
    )
    assert_one_line_error(
        result, "column 'region' has more than preprocess.max_categories=1000 distinct values", 3
    )
    assert not (tmp_path / "artifacts" / "model.joblib").exists()


def test_streaming_refuses_what_needs_every_row(cli) -> None:
    common = ("engine=stream", "dataset.split=hash", "preprocess=standard")
    result = cli(*common, "preprocess.impute=median")
    assert_one_line_error(result, "preprocess.impute='median' is not allowed: mean or constant", 2)
    result = cli(*common, "preprocess.scale=robust")
    assert_one_line_error(result, "preprocess.scale='robust' is not allowed: standard or none", 2)
    result = cli(*common, "model=lasso", "model.positive=true")
    assert_one_line_error(result, "with positive=true", 2)


def test_text_only_features_and_listed_integer_and_boolean_categories(cli, tmp_path: Path) -> None:
    """No numeric feature at all; an integer column listed as categorical (its decimal text)
    and a boolean one (True/False) in Parquet; every level pooled as infrequent."""
    frame = mixed_table(3000, seed=4)
    frame["year"] = np.random.default_rng(0).integers(2007, 2010, len(frame))
    frame["flag"] = frame["count"] > 10
    parts = tmp_path / "data"
    parts.mkdir()
    frame.iloc[:1700].to_parquet(parts / "a.parquet")
    frame.iloc[1700:].to_parquet(parts / "b.parquet")
    cases = {
        "text-only": ("dataset.features=[colour,grade,region]", "model=ridge"),
        "listed": (
            "dataset.features=[size,year,flag,grade]",
            "dataset.categorical=[year,flag,grade]",
            "model=lasso",
            "model.alpha=0.05",
        ),
        "all-infrequent": ("preprocess.min_frequency=0.9", "model=linear_regression"),
    }
    models = {}
    for name, options in cases.items():
        common = table_overrides(parts, "y", *options)
        expected, _ = trained(cli, tmp_path, f"{name}-memory", *common)
        models[name], _ = trained(cli, tmp_path, f"{name}-stream", *common, "engine=stream")
        assert_same_model(models[name], expected)
    inputs = {item.name: item for item in models["listed"].inputs}
    year, flag = inputs["year"], inputs["flag"]
    assert (year.categories, flag.categories) == (("2007", "2008", "2009"), ("False", "True"))


def test_one_csv_with_numeric_markers_streams_like_memory(cli, tmp_path: Path) -> None:
    """dataset.na_values as pandas reads them: the marker -999 also matches -999.0, in number
    and text columns; a CSV's text columns read as text by the stream."""
    frame = mixed_table(2500, seed=6)
    frame.loc[frame.index % 37 == 0, "count"] = -999.0
    frame["grade"] = frame["grade"].where(frame.index % 41 != 0, "-999.0")
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False, float_format="%.17g")
    common = (
        "dataset=csv",
        f"dataset.path={path}",
        "dataset.target=y",
        "dataset.split=hash",
        "dataset.na_values=['',-999]",
        "preprocess=standard",
        "preprocess.add_indicator=true",
        "model=ridge",
    )
    expected, _ = trained(cli, tmp_path, "memory", *common)
    got, _ = trained(cli, tmp_path, "stream", *common, "engine=stream", "engine.batch_rows=400")
    assert_same_model(got, expected)
    assert "count <missing>" in got.design_names()
    assert "grade=-999.0" not in got.design_names()


def test_no_training_rows_is_one_line(cli, tmp_path: Path) -> None:
    frame = mixed_table(10, seed=8)
    frame.iloc[:0].to_parquet(tmp_path / "empty.parquet")
    result = cli(*table_overrides(tmp_path / "empty.parquet", "y"), "engine=stream")
    assert_one_line_error(result, "no data rows", exit_code=3)
    frame.iloc[:1].to_parquet(tmp_path / "one.parquet")
    result = cli(*table_overrides(tmp_path / "one.parquet", "y"), "engine=stream")
    assert_one_line_error(result, "training row(s) with test_size=0.2: at least 2", exit_code=3)
    assert not (tmp_path / "artifacts" / "model.joblib").exists()


def test_an_all_missing_column_in_one_parquet_file(cli, tmp_path: Path) -> None:
    """pandas writes a column of None as Arrow's null type: missing numbers, as in memory."""
    frame = mixed_table(2000, seed=9)
    parts = tmp_path / "data"
    parts.mkdir()
    frame.iloc[:1200].to_parquet(parts / "a.parquet")
    frame.iloc[1200:].assign(size=None).to_parquet(parts / "b.parquet")
    common = table_overrides(parts, "y", "model=ridge")
    expected, _ = trained(cli, tmp_path, "memory", *common)
    got, _ = trained(cli, tmp_path, "stream", *common, "engine=stream")
    assert_same_model(got, expected)
