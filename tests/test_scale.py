"""Out-of-core training: exact sufficient statistics, the hash split, streamed files, bad files,
and the stream and Dask engines against scikit-learn."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression

from mlops_lr.config import DaskEngineConfig, StreamEngineConfig
from mlops_lr.data import Dataset, fingerprint, hash_test_rows, load_table, split_dataset
from mlops_lr.engines import SplitRule, StreamingFit
from mlops_lr.exceptions import DataError
from mlops_lr.folded import FoldedModel
from mlops_lr.metrics import regression_metrics
from mlops_lr.sources import MemorySource, file_source
from mlops_lr.sufficient import ErrorStats, LinearStats, exact_solution, merge_all
from tests.conftest import assert_one_line_error

RULE = SplitRule(0.2, 42)


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


def stats_in_batches(X: np.ndarray, y: np.ndarray, size: int) -> LinearStats:
    shift = (X[0], float(y[0]))
    return merge_all(
        LinearStats.from_batch(X[i : i + size], y[i : i + size], *shift)
        for i in range(0, len(y), size)
    )


def extended_reference(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Coefficients from long-double centred sums, solved exactly in fractions."""
    Xl, yl = X.astype(np.longdouble), y.astype(np.longdouble)
    mean = Xl.mean(axis=0)
    mean = mean + (Xl - mean).mean(axis=0)
    Xc, yc = Xl - mean, yl - yl.mean()
    gram, cross = Xc.T @ Xc, Xc.T @ yc
    return exact_solution(gram, cross)


@pytest.fixture(scope="module")
def train(california: Dataset):
    split = split_dataset(california, 0.2, 42)
    return split.X_train, split.y_train


@pytest.mark.parametrize("size", [1, 7, 1000, 16512])
def test_batched_statistics_give_scikit_learns_fit(train, size: int) -> None:
    X, y = train
    coef, intercept = stats_in_batches(X, y, size).solve()
    reference = LinearRegression().fit(X, y)
    assert relative(coef, reference.coef_) < 1e-12
    assert abs(intercept - reference.intercept_) < 1e-12 * abs(reference.intercept_)


@pytest.mark.parametrize("offset", [0.0, 1e2, 1e4, 1e6])
def test_offsets_up_to_a_million_stay_exact(train, offset: float) -> None:
    X, y = train[0] + offset, train[1]
    coef, _ = stats_in_batches(X, y, 997).solve()
    assert relative(coef, extended_reference(X, y)) < 1e-12
    # The uncentred normal equations are what this avoids:
    if offset == 1e6:
        ones = np.column_stack([np.ones(len(y)), X])
        naive = np.linalg.solve(ones.T @ ones, ones.T @ y)[1:]
        assert relative(naive, extended_reference(X, y)) > 1e-6


def test_collinear_features_get_scikit_learns_minimum_norm_solution(train) -> None:
    X, y = train
    X = np.column_stack([X, 2 * X[:, 0]])  # an exact duplicate, scaled
    coef, intercept = stats_in_batches(X, y, 1000).solve()
    reference = LinearRegression().fit(X, y)
    assert relative(coef, reference.coef_) < 1e-6
    np.testing.assert_allclose(X[:100] @ coef + intercept, reference.predict(X[:100]), rtol=1e-9)


def test_merging_is_exact_in_any_grouping(train) -> None:
    X, y = train
    shift = (X[0], float(y[0]))
    parts = [LinearStats.from_batch(X[i : i + 3000], y[i : i + 3000], *shift) for i in (0, 3000)]
    whole = LinearStats.from_batch(X[:6000], y[:6000], *shift)
    merged = parts[0].merge(parts[1])
    assert merged.n == whole.n
    np.testing.assert_allclose(merged.sxx, whole.sxx, rtol=1e-12)
    np.testing.assert_allclose(merged.feature_means, X[:6000].mean(axis=0), rtol=1e-14)
    with pytest.raises(ValueError, match="different shifts"):
        parts[0].merge(LinearStats.from_batch(X[:10], y[:10]))


@given(st.integers(min_value=1, max_value=500))
def test_error_sums_give_the_in_memory_metrics(size: int) -> None:
    rng = np.random.default_rng(size)
    y = rng.normal(3.0, 2.0, 1000)
    predictions = y + rng.normal(0, 0.5, 1000)
    merged = merge_all(
        ErrorStats.from_batch(y[i : i + size], predictions[i : i + size])
        for i in range(0, 1000, size)
    )
    expected = regression_metrics(y, predictions)
    for name, value in merged.metrics().items():
        assert value == pytest.approx(expected[name], rel=1e-12)


def test_the_hash_split_depends_only_on_each_row(train) -> None:
    X, y = train
    whole = hash_test_rows(X, y, 0.2, 42)
    pieces = np.concatenate(
        [hash_test_rows(X[i : i + 77], y[i : i + 77], 0.2, 42) for i in range(0, len(y), 77)]
    )
    np.testing.assert_array_equal(whole, pieces)
    assert 0.19 < whole.mean() < 0.21
    assert (hash_test_rows(X, y, 0.2, 7) != whole).any()
    assert hash_test_rows(np.array([[-0.0]]), np.array([1.0]), 0.5, 1) == hash_test_rows(
        np.array([[0.0]]), np.array([1.0]), 0.5, 1
    )


# --- files and engines -------------------------------------------------------------------


def write_files(california: Dataset, directory: Path, kind: str, parts: int = 3) -> None:
    frame = pd.DataFrame(california.X, columns=list(california.feature_names))
    frame["MedHouseVal"] = california.y
    directory.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(frame), parts + 1).astype(int)
    for index, (start, stop) in enumerate(itertools.pairwise(bounds)):
        chunk = frame.iloc[start:stop]
        path = directory / f"part-{index}.{kind}"
        if kind == "parquet":
            chunk.to_parquet(path, row_group_size=4000)
        else:
            chunk.to_csv(path, index=False, float_format="%.17g")


def memory_fit(california: Dataset) -> LinearRegression:
    split = split_dataset(california, 0.2, 42, "hash")
    return LinearRegression().fit(split.X_train, split.y_train)


def plain_layout(names: tuple[str, ...]) -> FoldedModel:
    """The design of numeric inputs as they are: the feature matrix."""
    return FoldedModel.linear(np.zeros(len(names)), 0.0, names)


def head(dataset: Dataset, rows: int) -> Dataset:
    return Dataset.from_arrays(
        dataset.X[:rows], dataset.y[:rows], dataset.feature_names, dataset.target_name, "head"
    )


@pytest.mark.parametrize("kind", ["parquet", "csv"])
@pytest.mark.parametrize("batch_rows", [1, 999, 1_000_000])
def test_streamed_files_give_scikit_learns_fit_on_the_same_split(
    california: Dataset, tmp_path: Path, kind: str, batch_rows: int
) -> None:
    if batch_rows == 1:  # batches of one row (Parquet) or a few (CSV blocks hold whole lines)
        california = head(california, 1500)
    write_files(california, tmp_path / "data", kind)
    source = file_source(str(tmp_path / "data"), "MedHouseVal", None, batch_rows)
    engine = StreamEngineConfig(batch_rows=batch_rows, threads=2)
    with StreamingFit(engine, source) as streaming:
        statistics = streaming.design_statistics(RULE, plain_layout(source.feature_names))
    coef, intercept = statistics.solve()
    reference = memory_fit(california)
    assert statistics.n == len(split_dataset(california, 0.2, 42, "hash").y_train)
    assert relative(coef, reference.coef_) < 1e-9
    assert abs(intercept - reference.intercept_) < 1e-9 * abs(reference.intercept_)


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_the_dask_engine_gives_the_same_fit(california: Dataset, tmp_path: Path, kind: str) -> None:
    write_files(california, tmp_path / "data", kind, parts=4)
    source = file_source(str(tmp_path / "data" / f"*.{kind}"), "MedHouseVal", None, 3000)
    with StreamingFit(DaskEngineConfig(batch_rows=3000, n_workers=2), source) as streaming:
        statistics = streaming.design_statistics(RULE, plain_layout(source.feature_names))
        coef, intercept = statistics.solve()
        model = FoldedModel.linear(coef, intercept, source.feature_names)
        evaluation = streaming.evaluate(RULE, model, 5)
    reference = memory_fit(california)
    assert relative(coef, reference.coef_) < 1e-9
    split = split_dataset(california, 0.2, 42, "hash")
    expected = regression_metrics(split.y_test, reference.predict(split.X_test))
    assert evaluation.test.metrics()["r2"] == pytest.approx(expected["r2"], rel=1e-9)
    np.testing.assert_array_equal(evaluation.samples.to_numpy(), split.X_test[:5])


def test_train_stage_streams_and_saves(run_cli, california: Dataset, tmp_path: Path) -> None:
    """In a real process: the streamed fit ends and exits like any other run."""
    write_files(california, tmp_path / "data", "parquet")
    result = run_cli(
        "dataset=parquet",
        f"dataset.path={tmp_path / 'data'}",
        "dataset.target=MedHouseVal",
        "engine=stream",
        "engine.batch_rows=5000",
    )
    assert result.returncode == 0, result.stderr
    assert "engine stream" in result.stdout
    metrics = json.loads((tmp_path / "artifacts" / "metrics.json").read_text())
    reference = memory_fit(california)
    assert relative(metrics["coef"], reference.coef_) < 1e-9
    split = split_dataset(california, 0.2, 42, "hash")
    expected = regression_metrics(split.y_test, reference.predict(split.X_test))
    for name in ("r2", "mse", "rmse", "mae"):
        assert metrics[name] == pytest.approx(expected[name], rel=1e-9)
    samples = json.loads((tmp_path / "artifacts" / "samples.json").read_text())
    assert samples["X"] == split.X_test[:5].tolist()


def test_quantize_out_of_core_matches_quantize_in_memory(
    cli, california: Dataset, tmp_path: Path
) -> None:
    write_files(california, tmp_path / "data", "parquet", parts=1)
    common = [
        "stage=quantize",
        "dataset=parquet",
        "dataset.target=MedHouseVal",
        "quantization.bits=4",
    ]
    results = {}
    for engine in ("memory", "stream"):
        artifacts_dir = tmp_path / engine
        result = cli(
            *common,
            f"dataset.path={tmp_path / 'data' / 'part-0.parquet'}",
            f"engine={engine}",
            f"paths.artifacts_dir={artifacts_dir}",
        )
        assert result.returncode == 0, result.stderr
        directory = artifacts_dir / "quantized" / "default-4bit"
        results[engine] = (
            json.loads((directory / "model.json").read_text()),
            json.loads((directory / "metrics.json").read_text()),
        )
    (memory_model, memory_metrics), (stream_model, stream_metrics) = results.values()
    assert stream_model["linear"]["codes"] == memory_model["linear"]["codes"]
    assert stream_model["linear"]["exponents"] == memory_model["linear"]["exponents"]
    for name in ("r2_float", "r2_quant", "mse_quant", "mae_quant", "mean_abs_pred_diff"):
        assert stream_metrics[name] == pytest.approx(memory_metrics[name], rel=1e-9)
    assert stream_metrics["n_test"] == memory_metrics["n_test"]


def test_memory_source_batches(california: Dataset) -> None:
    source = MemorySource(california, 4096)
    batches = list(source.batches())
    assert [len(batch.y) for batch in batches] == [4096] * 5 + [160]
    assert batches[-1].first_row == 20480


BAD_FILES = {
    "corrupt.parquet": (b"PAR1 this is not parquet", "cannot be read"),
    "columns_change.csv": (
        "a,b,y\n" + "1,2,3\n" * 50 + "1,2,3,4\n",
        "cannot be read",
    ),
    "late_nan.csv": ("a,b,y\n" + "1,2,3\n" * 50 + "1,,3\n", "column 'b' has a missing"),
    "text.csv": ("a,b,y\n" + "1,2,3\n" * 50 + "1,x,3\n", "cannot be read"),
    # Past the first read block (64 kB): a later batch, not the first.
    "very_late_nan.csv": (
        "a,b,y\n" + "1,2,3\n" * 20_000 + "1,,3\n",
        "column 'b' has a missing or infinite value on line 20002",
    ),
    "very_late_text.csv": ("a,b,y\n" + "1,2,3\n" * 20_000 + "1,x,3\n", "cannot be read"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_are_one_line_errors_and_write_nothing(cli, tmp_path: Path, name: str) -> None:
    content, message = BAD_FILES[name]
    data = tmp_path / "data"
    data.mkdir()
    path = data / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = cli(
        "dataset=parquet",
        f"dataset.path={data}",
        "dataset.target=y",
        "engine=stream",
        "engine.batch_rows=10",
    )
    assert_one_line_error(result, message, exit_code=3)
    assert str(path) in result.stderr
    assert not (tmp_path / "artifacts" / "model.joblib").exists()


def test_a_bad_second_file_is_named(cli, california: Dataset, tmp_path: Path) -> None:
    write_files(california, tmp_path / "data", "parquet", parts=2)
    (tmp_path / "data" / "part-1.parquet").write_bytes(b"PAR1 not parquet PAR1")
    result = cli("dataset=parquet", f"dataset.path={tmp_path / 'data'}", "engine=stream")
    assert_one_line_error(result, "part-1.parquet: cannot be read", exit_code=3)
    assert not (tmp_path / "artifacts" / "model.joblib").exists()


@pytest.mark.parametrize(("kind", "spec"), [("parquet", "{dir}"), ("csv", "{dir}/part-*.csv")])
def test_the_memory_engine_reads_a_directory_or_glob_as_one_table(
    california: Dataset, tmp_path: Path, kind: str, spec: str
) -> None:
    """Every file in sorted order: the same rows, names and fingerprint as the data in one
    piece, so the split and the model are the same too."""
    write_files(california, tmp_path / "parts", kind)
    dataset = load_table(spec.format(dir=tmp_path / "parts"), "MedHouseVal")
    np.testing.assert_array_equal(dataset.X, california.X)
    np.testing.assert_array_equal(dataset.y, california.y)
    assert dataset.feature_names == california.feature_names
    assert fingerprint(dataset) == fingerprint(california)


def test_the_memory_engine_names_the_file_at_fault(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,2\n3,4\n")
    (tmp_path / "b.csv").write_text("x,y\n5,6\n7,oops\n")
    with pytest.raises(DataError, match=r"b\.csv: column 'y' is not numeric: 'oops' on line 3"):
        load_table(tmp_path, "y")
    (tmp_path / "b.csv").write_text("z,y\n5,6\n")
    with pytest.raises(DataError, match=r"b\.csv: feature column\(s\) \['x'\] not found"):
        load_table(tmp_path, "y")
    (tmp_path / "b.csv").unlink()
    (tmp_path / "c.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="mixes CSV and Parquet files"):
        load_table(tmp_path, "y")


def test_a_text_column_in_parquet_is_one_line(cli, tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": ["x", "y", "z", "w"], "y": [1.0] * 4})
    (tmp_path / "data").mkdir()
    frame.to_parquet(tmp_path / "data" / "t.parquet")
    result = cli(
        "dataset=parquet", f"dataset.path={tmp_path / 'data'}", "dataset.target=y", "engine=stream"
    )
    assert_one_line_error(result, "column 'b' is categorical (text): preprocess=standard", 3)


def test_streaming_settings_are_checked(cli, tmp_path: Path) -> None:
    result = cli("engine=stream")
    assert_one_line_error(result, "dataset.split='random' is not allowed: hash", exit_code=2)
    result = cli("engine=stream", "dataset.split=hash", "model.positive=true")
    assert_one_line_error(result, "with positive=true", exit_code=2)
    result = cli("engine=stream", "dataset.split=hash", "model.fit_intercept=false")
    assert_one_line_error(result, "with fit_intercept=false", exit_code=2)
    result = cli("engine=dask", "dataset.split=hash", "stage=export")
    assert_one_line_error(result, "stage='export' is not allowed: train or quantize with", 2)
    result = cli(
        "dataset=parquet", f"dataset.path={tmp_path / 'none'}", "dataset.target=y", "engine=stream"
    )
    assert_one_line_error(result, "no CSV or Parquet file matches", exit_code=3)
