"""Loading and validating data: the real California set, CSV/Parquet files, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from mlops_lr.data import Dataset, fingerprint, load_table, split_dataset
from mlops_lr.exceptions import DataError
from mlops_lr.sources import file_source
from tests.conftest import CALIFORNIA_FEATURES


def california_frame(dataset: Dataset) -> pd.DataFrame:
    frame = pd.DataFrame(dataset.X, columns=list(dataset.feature_names))
    frame[dataset.target_name] = dataset.y
    return frame


def test_california_shape_names_and_target_range(california: Dataset) -> None:
    assert california.X.shape == (20640, 8)
    assert california.y.shape == (20640,)
    assert california.feature_names == CALIFORNIA_FEATURES
    assert california.target_name == "MedHouseVal"
    # Median house values are in $100,000 and capped by the census at 5.00001.
    assert 0.14 < california.y.min() < 0.15
    assert california.y.max() == pytest.approx(5.00001)
    assert np.isfinite(california.X).all()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_round_trip_with_shuffled_columns_gives_the_same_model(
    california: Dataset, tmp_path: Path, suffix: str
) -> None:
    frame = california_frame(california)
    shuffled = frame[list(np.random.default_rng(0).permutation(frame.columns))]
    assert list(shuffled.columns) != list(frame.columns)
    path = tmp_path / f"houses{suffix}"
    if suffix == ".csv":
        shuffled.to_csv(path, index=False, float_format="%.17g")
    else:
        shuffled.to_parquet(path, index=False)

    loaded = load_table(path, "MedHouseVal", list(CALIFORNIA_FEATURES))

    assert loaded.feature_names == CALIFORNIA_FEATURES
    np.testing.assert_array_equal(loaded.X, california.X)
    np.testing.assert_array_equal(loaded.y, california.y)
    assert fingerprint(loaded) == fingerprint(california)
    original = split_dataset(california, 0.2, 42)
    again = split_dataset(loaded, 0.2, 42)
    a = LinearRegression().fit(original.X_train, original.y_train)
    b = LinearRegression().fit(again.X_train, again.y_train)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.intercept_ == b.intercept_


def test_features_default_to_every_column_but_the_target(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffa,y,b\n1,2,3\n4,5,6\n".encode())  # a UTF-8 byte-order mark
    loaded = load_table(path, "y")
    assert loaded.feature_names == ("a", "b")
    np.testing.assert_array_equal(loaded.X, [[1.0, 3.0], [4.0, 6.0]])
    np.testing.assert_array_equal(loaded.y, [2.0, 5.0])


def test_fingerprint_changes_with_any_value(california: Dataset) -> None:
    y = california.y.copy()
    y[-1] += 1e-9
    changed = Dataset.from_arrays(california.X, y, california.feature_names, "MedHouseVal", "x")
    assert fingerprint(changed) != fingerprint(california)


BAD_CSVS = {
    "nan": (
        "a,b,y\n1,2,3\n4,,6\n",
        "column 'b' has 1 missing or infinite value(s), first on line 3",
    ),
    "inf": ("a,b,y\n1,2,3\n4,inf,6\n", "column 'b' has 1 missing or infinite value(s)"),
    "text": ("a,b,y\n1,2,3\n4,five,6\n", "column 'b' is not numeric: 'five' on line 3"),
    "no_target": ("a,b,c\n1,2,3\n", "target column 'y' not found"),
    "empty": ("", "the file is empty"),
    "header_only": ("a,b,y\n", "no data rows"),
    "only_target": ("y\n1\n2\n", "no feature columns besides the target"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_csv_is_refused_with_a_message_naming_the_problem(tmp_path: Path, case: str) -> None:
    content, message = BAD_CSVS[case]
    path = tmp_path / f"{case}.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_table(path, "y")


def test_missing_feature_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,y\n1,2\n")
    with pytest.raises(DataError, match=r"feature column\(s\) \['b'\] not found"):
        load_table(path, "y", ["a", "b"])


def test_missing_file_unsupported_type_and_corrupt_parquet(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset file not found"):
        load_table(tmp_path / "nope.csv", "y")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"unsupported file type '\.xlsx'"):
        load_table(tmp_path / "data.xlsx", "y")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="cannot be read"):
        load_table(tmp_path / "broken.parquet", "y")


def test_split_needs_two_rows_on_each_side(tmp_path: Path) -> None:
    path = tmp_path / "tiny.csv"
    path.write_text("a,y\n1,2\n2,3\n3,5\n")
    dataset = load_table(path, "y")
    with pytest.raises(DataError, match=r"too few rows \(3\)"):
        split_dataset(dataset, 0.2, 42)


def test_reference_split_sizes(california: Dataset) -> None:
    split = split_dataset(california, 0.2, 42)
    assert split.X_train.shape == (16512, 8)
    assert split.X_test.shape == (4128, 8)


def test_missing_markers_are_exactly_the_configured_ones(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b,y\n1,2,3\n4,?,6\n7,8,9\n")
    with pytest.raises(DataError, match=r"column 'b' is not numeric: '\?' on line 3"):
        load_table(path, "y")
    with pytest.raises(DataError, match="column 'b' has 1 missing or infinite value"):
        load_table(path, "y", na_values=["?"])
    # Markers beyond the configured ones are text, not missing (pandas would read "None" as NA).
    path.write_text("a,b,y\n1,2,3\n4,None,6\n")
    with pytest.raises(DataError, match=r"column 'b' is not numeric: 'None' on line 3"):
        load_table(path, "y")


def test_a_missing_target_is_an_error_or_dropped_as_configured(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b,y\n1,2,3\n4,5,NA\n7,8,9\n10,11,\n13,14,15\n16,17,18\n")
    with pytest.raises(DataError, match=r"column 'y' has 2 missing .* first on line 3"):
        load_table(path, "y")
    dataset = load_table(path, "y", missing_target="drop")
    assert dataset.dropped_rows == 2
    np.testing.assert_array_equal(dataset.y, [3, 9, 15, 18])
    np.testing.assert_array_equal(dataset.X[:, 0], [1, 7, 13, 16])
    # Lines after the dropped rows keep their numbers; text in the target stays an error.
    path.write_text("a,y\n1,NA\n2,3\nx,4\n")
    with pytest.raises(DataError, match=r"column 'a' is not numeric: 'x' on line 4"):
        load_table(path, "y", missing_target="drop")
    path.write_text("a,y\n1,NA\n2,three\n")
    with pytest.raises(DataError, match=r"column 'y' is not numeric: 'three' on line 3"):
        load_table(path, "y", missing_target="drop")
    path.write_text("a,y\n1,NA\n2,\n")
    with pytest.raises(DataError, match="every row's target 'y' is missing"):
        load_table(path, "y", missing_target="drop")


def test_parquet_is_read_as_its_columns_whatever_index_was_stored(tmp_path: Path) -> None:
    """A stored pandas index is a column, as the streaming engines see it; rows count from 1."""
    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan], "y": [1.0, 2.0, 3.0]})
    frame.index = pd.Index([100, 101, 102], name="id")
    frame.to_parquet(tmp_path / "data.parquet")
    with pytest.raises(DataError, match=r"column 'a' has 1 missing or infinite value.*row 3"):
        load_table(tmp_path / "data.parquet", "y")
    frame.fillna(0.0).to_parquet(tmp_path / "data.parquet")
    assert load_table(tmp_path / "data.parquet", "y").feature_names == ("a", "id")
    assert load_table(tmp_path / "data.parquet", "y", drop=["id"]).feature_names == ("a",)
    source = file_source(str(tmp_path / "data.parquet"), "y", None, 100)
    assert source.feature_names == ("a", "id")


def test_rows_longer_than_the_header_are_an_error(tmp_path: Path) -> None:
    """pandas would silently make the first field an index (and lose that column)."""
    path = tmp_path / "data.csv"
    path.write_text("a,y\nk1,1,2\nk2,3,4\n")
    with pytest.raises(DataError, match="rows have more fields than the header"):
        load_table(path, "y")


def test_empty_parts_are_fine_while_the_whole_has_rows(tmp_path: Path) -> None:
    (tmp_path / "p0.csv").write_text("a,y\n")
    (tmp_path / "p1.csv").write_text("a,y\n1,NA\n2,\n")
    (tmp_path / "p2.csv").write_text("a,y\n3,4\n5,6\n")
    dataset = load_table(tmp_path, "y", missing_target="drop")
    np.testing.assert_array_equal(dataset.y, [4, 6])
    assert dataset.dropped_rows == 2
    (tmp_path / "p2.csv").write_text("a,y\n")
    with pytest.raises(DataError, match="every row's target 'y' is missing"):
        load_table(tmp_path, "y", missing_target="drop")
    (tmp_path / "p1.csv").write_text("a,y\n")
    with pytest.raises(DataError, match="no data rows in any file"):
        load_table(tmp_path, "y")


def test_dropped_columns_are_left_out_of_the_default_features(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("id,a,leak,b,y\n1,2,3,4,5\n2,3,4,5,6\n")
    dataset = load_table(path, "y", drop=["id", "leak"])
    assert dataset.feature_names == ("a", "b")
    np.testing.assert_array_equal(dataset.X, [[2, 4], [3, 5]])
    assert file_source(str(path), "y", None, 100, drop=["id", "leak"]).feature_names == ("a", "b")
    with pytest.raises(DataError, match=r"column\(s\) \['nope'\] to drop not found"):
        load_table(path, "y", drop=["nope"])
