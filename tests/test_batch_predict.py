"""File prediction (mlops_lr.batch_predict): CSV and Parquet in and out, on the real data.

Every prediction is checked bit for bit against ``predict_table`` on the rows pandas reads,
for the float model and the default 8-bit model of California Housing (plain numeric inputs)
and of the penguins table (text categories, NA cells), through pyarrow's reader and pandas'.
Bad cells are reported at their physical CSV line, after blank lines and quoted line breaks,
and no error leaves an output or a temporary file behind.
"""

from __future__ import annotations

import csv
import io
import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyarrow import parquet

from mlops_lr.batch_predict import output_path, predict_files
from mlops_lr.config import DEFAULT_NA_VALUES, PredictConfig
from mlops_lr.data import Dataset
from mlops_lr.exceptions import ConfigError, DataError
from mlops_lr.predictor import LinearPredictor, load_predictor
from tests.conftest import (
    CALIFORNIA_FEATURES,
    PENGUINS_CATEGORICAL,
    assert_one_line_error,
    penguin_overrides,
    train_and_quantize,
)

QUANTIZED = "default-8bit"
MODELS = ("float", QUANTIZED)
READERS = ("pyarrow", "pandas")
# Text that must come out exactly as it went in: a marker, an empty cell, quotes, a comma, a
# quoted line break, spaces, a leading zero, non-ASCII.
AWKWARD_TEXT = ("NA", "", 'say "hi"', "a,b", "two\nlines", "  padded ", "007", "Zürich", "null")


@pytest.fixture(scope="module")
def california_models(trained_artifacts: Path) -> dict[str, LinearPredictor]:
    return {model: load_predictor(trained_artifacts, model) for model in MODELS}


@pytest.fixture(scope="module")
def penguin_models(
    tmp_path_factory: pytest.TempPathFactory, penguins_csv: Path
) -> dict[str, LinearPredictor]:
    """Ridge with preprocess=standard on the penguins CSV, float and default 8-bit."""
    directory = tmp_path_factory.mktemp("penguin-models") / "artifacts"
    train_and_quantize(directory, *penguin_overrides(penguins_csv, "model=ridge"))
    return {model: load_predictor(directory, model) for model in MODELS}


@pytest.fixture(scope="module")
def california_csv(tmp_path_factory: pytest.TempPathFactory, california: Dataset) -> Path:
    """All 20,640 rows, the columns reversed, an id column of awkward text, a byte-order
    mark."""
    frame = california.features.copy()
    frame.insert(3, "house_id", [AWKWARD_TEXT[i % len(AWKWARD_TEXT)] for i in range(len(frame))])
    frame = frame[list(reversed(frame.columns))]
    path = tmp_path_factory.mktemp("california") / "houses.csv"
    path.write_text("\ufeff" + frame.to_csv(index=False), encoding="utf-8")
    return path


def pandas_rows(path: Path, categorical: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows as the in-memory loader reads them (mlops_lr.data): pandas' correctly
    rounded floats, categorical columns as text, the default missing-value markers."""
    return pd.read_csv(
        path,
        encoding="utf-8-sig",
        keep_default_na=False,
        na_values=list(DEFAULT_NA_VALUES),
        dtype=dict.fromkeys(categorical, str),
    )


def reference(predictor: LinearPredictor, frame: pd.DataFrame) -> np.ndarray:
    """``predict_table`` on the whole table at once: each row's prediction is a sum of its
    own terms, so batches of any size must give it bit for bit."""
    return predictor.predict_table(frame)


def assert_bit_for_bit(written: np.ndarray, expected: np.ndarray) -> None:
    assert written.shape == expected.shape
    assert np.max(np.abs(written - expected), initial=0.0) == 0.0
    np.testing.assert_array_equal(written, expected)


def written_predictions(path: Path) -> np.ndarray:
    if path.suffix == ".parquet":
        return parquet.read_table(path).column("prediction").to_numpy()
    return pd.read_csv(path, usecols=["prediction"])["prediction"].to_numpy()


def text_column(path: Path, name: str) -> list[str]:
    """A CSV column's cells exactly as written (Python's csv module, no conversion)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return [row[name] for row in csv.DictReader(handle)]


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


# ---------------------------------------------------------------------- exact predictions
@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("model", MODELS)
def test_california_csv_is_predict_table_bit_for_bit(
    california_models, california_csv: Path, tmp_path: Path, model: str, reader: str
) -> None:
    predictor = california_models[model]
    target = tmp_path / "out.csv"

    rows = predict_files(predictor, california_csv, target, batch_rows=1000, reader=reader)

    frame = pandas_rows(california_csv)
    assert rows == len(frame) == 20640
    np.testing.assert_array_equal(written_predictions(target), reference(predictor, frame))
    with open(target, encoding="utf-8", newline="") as handle:
        assert next(csv.reader(handle)) == [*frame.columns, "prediction"]
    assert text_column(target, "house_id") == text_column(california_csv, "house_id")


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("model", MODELS)
def test_penguins_csv_is_predict_table_bit_for_bit(
    penguin_models, penguins_csv: Path, tmp_path: Path, model: str, reader: str
) -> None:
    """Text categories, NA cells in numbers (filled) and categories (missing), rows whose
    target is NA: every row is predicted, every cell written back as it was."""
    predictor = penguin_models[model]
    target = tmp_path / "out.csv"

    rows = predict_files(predictor, penguins_csv, target, batch_rows=50, reader=reader)

    frame = pandas_rows(penguins_csv, PENGUINS_CATEGORICAL)
    assert frame.isna().any().sum() >= 5  # NA cells in numbers and in text
    assert rows == len(frame) == 344
    np.testing.assert_array_equal(written_predictions(target), reference(predictor, frame))
    for name in ("species", "sex", "body_mass_g"):
        assert text_column(target, name) == text_column(penguins_csv, name)


@pytest.mark.parametrize(("source_kind", "target_kind"), [("csv", "parquet"), ("parquet", "csv")])
def test_parquet_in_or_out_gives_the_same_predictions(
    penguin_models, penguins_csv: Path, tmp_path: Path, source_kind: str, target_kind: str
) -> None:
    predictor = penguin_models["float"]
    frame = pandas_rows(penguins_csv, PENGUINS_CATEGORICAL)
    source = penguins_csv
    if source_kind == "parquet":
        source = tmp_path / "penguins.parquet"
        frame.to_parquet(source, row_group_size=100)
    target = tmp_path / f"out.{target_kind}"

    predict_files(predictor, source, target, batch_rows=64)

    np.testing.assert_array_equal(written_predictions(target), reference(predictor, frame))
    if target_kind == "parquet":
        table = parquet.read_table(target)
        assert table.schema.names == [*frame.columns, "prediction"]
        assert str(table.schema.field("prediction").type) == "double"
        assert table.column("island").to_pylist() == text_column(penguins_csv, "island")


def test_parquet_to_parquet_keeps_types(california_models, california: Dataset, tmp_path) -> None:
    predictor = california_models[QUANTIZED]
    frame = california.features.assign(
        tract=np.arange(california.n_rows), urban=np.arange(california.n_rows) % 3 == 0
    )
    source = tmp_path / "houses.parquet"
    frame.to_parquet(source, row_group_size=5000)

    rows = predict_files(predictor, source, tmp_path / "out.pq", batch_rows=3000)

    table = parquet.read_table(tmp_path / "out.pq")
    assert rows == california.n_rows
    assert [str(t) for t in table.schema.types[-3:]] == ["int64", "bool", "double"]
    assert table.column("tract").to_pylist() == list(range(california.n_rows))
    np.testing.assert_array_equal(
        table.column("prediction").to_numpy(), reference(predictor, frame)
    )


def test_a_directory_of_csv_files_in_any_column_order(
    california_models, california: Dataset, tmp_path: Path
) -> None:
    """Three files (one with its columns in another order) are read in sorted order and
    written in the first file's column order; predictions as for the whole table."""
    predictor = california_models["float"]
    frame = california.features.assign(block=[f"b{i}" for i in range(california.n_rows)])
    parts = tmp_path / "parts"
    (parts / "later").mkdir(parents=True)
    frame.iloc[:7000].to_csv(parts / "a.csv", index=False)
    frame.iloc[7000:15001, ::-1].to_csv(parts / "b.csv", index=False)
    frame.iloc[15001:].to_csv(parts / "later" / "c.csv", index=False)
    target = tmp_path / "out.csv"

    rows = predict_files(predictor, parts, target, batch_rows=999)

    written = pd.read_csv(target)
    assert rows == california.n_rows
    assert list(written.columns) == [*frame.columns, "prediction"]
    assert written["block"].tolist() == frame["block"].tolist()
    np.testing.assert_array_equal(written["prediction"], reference(predictor, frame))
    # A glob, into Parquet: the same.
    predict_files(predictor, str(parts / "**" / "*.csv"), tmp_path / "out.parquet")
    np.testing.assert_array_equal(
        written_predictions(tmp_path / "out.parquet"), written["prediction"]
    )


def test_the_pandas_reader_writes_the_same_predictions(
    penguin_models, california_models, penguins_csv, california_csv, tmp_path: Path
) -> None:
    """What the Docker image (no pyarrow) writes: byte-identical predictions, the same text."""
    for predictor, source in (
        (penguin_models[QUANTIZED], penguins_csv),
        (california_models["float"], california_csv),
    ):
        outputs = {}
        for reader in READERS:
            outputs[reader] = tmp_path / f"{reader}-{source.stem}.csv"
            predict_files(predictor, source, outputs[reader], batch_rows=500, reader=reader)
        arrow, pandas = (written_predictions(outputs[reader]) for reader in READERS)
        assert arrow.tobytes() == pandas.tobytes()
        arrow_text, pandas_text = (
            pd.read_csv(outputs[reader], dtype=str, keep_default_na=False) for reader in READERS
        )
        kept = [name for name in arrow_text.columns if name not in predictor.feature_names]
        kept.remove("prediction")
        pd.testing.assert_frame_equal(arrow_text[kept], pandas_text[kept])


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("model", MODELS)
def test_a_short_last_batch_is_predict_table_bit_for_bit(
    california_models, california: Dataset, tmp_path: Path, model: str, reader: str
) -> None:
    """1003 rows in batches of 1002 (n % 4 != 0): the last batch's one row is predicted as in
    the whole table."""
    predictor = california_models[model]
    source = tmp_path / "rows.csv"
    california.features.iloc[:1003].to_csv(source, index=False)

    rows = predict_files(predictor, source, tmp_path / "out.csv", batch_rows=1002, reader=reader)

    assert rows == 1003
    expected = reference(predictor, pandas_rows(source))
    assert_bit_for_bit(written_predictions(tmp_path / "out.csv"), expected)


@pytest.mark.parametrize("kind", ["csv-pyarrow", "csv-pandas", "parquet"])
@pytest.mark.parametrize("model", MODELS)
def test_a_one_row_last_file_is_predict_table_bit_for_bit(
    california_models, california: Dataset, tmp_path: Path, model: str, kind: str
) -> None:
    """Files of 4097 rows and of 1 row: each file's last batch is short, predicted as in the
    whole table."""
    predictor = california_models[model]
    frame = california.features.iloc[:4098]
    parts = tmp_path / "parts"
    parts.mkdir()
    suffix, reader = kind.split("-") if "-" in kind else (kind, "pyarrow")
    for name, part in (("a", frame.iloc[:4097]), ("b", frame.iloc[4097:])):
        if suffix == "csv":
            part.to_csv(parts / f"{name}.csv", index=False)
        else:
            part.to_parquet(parts / f"{name}.parquet", index=False)
    target = tmp_path / f"out.{suffix}"

    rows = predict_files(predictor, parts, target, reader=reader)

    assert rows == 4098
    assert_bit_for_bit(written_predictions(target), reference(predictor, frame))


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("batch_rows", [1, 7, 1000])
def test_lines_of_spaces_are_no_rows(
    california_models, tmp_path: Path, reader: str, batch_rows: int
) -> None:
    """pandas' skip_blank_lines, as training reads: a line of nothing but spaces and tabs
    (before the header too) is no row for either reader, whatever the batch size, and the
    lines after it are counted right. A quoted cell of spaces is a row (a short one here)."""
    predictor = california_models["float"]
    header, good = ",".join(HEADER), ",".join(GOOD)
    blank = ["  ", "\t", " \t ", ""]
    lines = [" ", header, *itertools.chain.from_iterable((good, blank[i % 4]) for i in range(9))]
    source = tmp_path / "rows.csv"
    source.write_text("\n".join(lines) + "\n")
    target = tmp_path / "out.csv"

    rows = predict_files(predictor, source, target, batch_rows=batch_rows, reader=reader)

    assert rows == 9
    assert_bit_for_bit(written_predictions(target), reference(predictor, pandas_rows(source)))
    bad = good.replace("322", "many")
    source.write_text("\n".join([*lines, "\t \t", bad]) + "\n")
    with pytest.raises(DataError) as error:
        predict_files(predictor, source, target, batch_rows=batch_rows, reader=reader)
    assert str(error.value) == (
        f"{source}: column 'Population' is not numeric: 'many' on line {len(lines) + 2}"
    )
    source.write_text("\n".join([*lines, '"   "', good]) + "\n")
    with pytest.raises(DataError) as error:
        predict_files(predictor, source, target, batch_rows=batch_rows, reader=reader)
    assert str(error.value) == f"{source}: line {len(lines) + 1} has 1 fields, the header 9"


@pytest.mark.parametrize("reader", READERS)
def test_a_record_wider_than_a_block_after_the_first_megabyte(
    california_models, california: Dataset, tmp_path: Path, reader: str
) -> None:
    """A 600 kB cell (commas, quotes, line breaks) 1.4 MB into the file, wider than the blocks
    pyarrow reads (sized on the first megabyte): read, predicted and written back whole."""
    predictor = california_models["float"]
    frame = california.features.assign(note="short")
    frame.loc[15000, "note"] = 'a "wide", cell\n' * 40_000
    source = tmp_path / "rows.csv"
    frame.to_csv(source, index=False)
    target = tmp_path / "out.csv"

    rows = predict_files(predictor, source, target, batch_rows=5000, reader=reader)

    assert rows == california.n_rows
    written = pd.read_csv(target, dtype={"note": str}, keep_default_na=False)
    assert written["note"].tolist() == frame["note"].tolist()
    assert_bit_for_bit(written["prediction"].to_numpy(), reference(predictor, frame))


def test_parquet_text_of_any_layout_is_quoted_in_csv(
    california_models, california: Dataset, tmp_path: Path
) -> None:
    """Bytes, text views and large text from Parquet: quoted where they need it in CSV, so
    that commas, quotes and line breaks read back as they were."""
    import pyarrow as pa

    rows = len(AWKWARD_TEXT)
    table = pa.Table.from_pandas(california.features.iloc[:rows], preserve_index=False)
    encoded = [text.encode() for text in AWKWARD_TEXT]
    layouts = {
        "bytes": pa.array(encoded, pa.binary()),
        "large_bytes": pa.array(encoded, pa.large_binary()),
        "bytes_view": pa.array(encoded, pa.binary_view()),
        "text_view": pa.array(AWKWARD_TEXT, pa.string_view()),
        "large_text": pa.array(AWKWARD_TEXT, pa.large_string()),
    }
    for name, values in layouts.items():
        table = table.append_column(name, values)
    parquet.write_table(table, tmp_path / "rows.parquet")

    predict_files(california_models["float"], tmp_path / "rows.parquet", tmp_path / "out.csv")

    for name in layouts:
        assert text_column(tmp_path / "out.csv", name) == list(AWKWARD_TEXT), name


def test_parquet_files_types_are_unified(
    california_models, california: Dataset, tmp_path: Path
) -> None:
    """Parquet to Parquet: a column of nulls in the first file takes a later file's text,
    32-bit integers widen to a later file's 64; types that do not unify are refused before
    any row is read, with the file."""
    predictor = california_models["float"]
    frame = california.features.iloc[:100]
    parts = tmp_path / "parts"
    parts.mkdir()
    frame.iloc[:60].assign(note=None, code=np.arange(60, dtype=np.int32)).to_parquet(
        parts / "a.parquet"
    )
    notes = [f"n{i}" for i in range(60, 100)]
    frame.iloc[60:].assign(note=notes, code=np.arange(60, 100)).to_parquet(parts / "b.parquet")
    target = tmp_path / "out.parquet"

    predict_files(predictor, parts, target, batch_rows=25)

    table = parquet.read_table(target)
    note, code, prediction = table.schema.types[-3:]
    assert (str(note), str(code), str(prediction)) in {
        (text, "int64", "double") for text in ("string", "large_string")
    }
    assert table.column("note").to_pylist() == [None] * 60 + notes
    assert table.column("code").to_pylist() == list(range(100))
    assert_bit_for_bit(table.column("prediction").to_numpy(), reference(predictor, frame))
    frame.iloc[:1].assign(note=[7], code=[1]).to_parquet(parts / "c.parquet")
    with pytest.raises(DataError) as error:
        predict_files(predictor, parts, target)
    assert str(error.value).startswith(
        f"{parts / 'c.parquet'}: column types differ from the earlier files': "
    )
    assert parquet.read_table(target).num_rows == 100  # the earlier output, untouched


# ---------------------------------------------------------------------- bad input
HEADER = [*CALIFORNIA_FEATURES, "note"]
GOOD = ["8.3", "41", "6.9", "1.0", "322", "2.5", "37.8", "-122.2", "fine"]


def awkward_csv(rows_before: int, bad: list[str], note_last: bool = True) -> str:
    """A CSV whose rows are interleaved with blank lines and quoted line breaks, then the
    ``bad`` row (its fields in the header's order; a short one lacks the last ones) on the
    last line but one."""
    order = list(range(len(HEADER))) if note_last else [8, *range(8)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([HEADER[j] for j in order])
    for i in range(rows_before):
        row = list(GOOD)
        if i % 7 == 3:
            row[8] = "a note\nover two lines"
        writer.writerow([row[j] for j in order])
        if i % 11 == 5:
            buffer.write("\n")
    ordered = [bad[j] for j in order] + bad[len(HEADER) :] if len(bad) >= len(HEADER) else []
    writer.writerow(ordered or bad)
    writer.writerow([GOOD[j] for j in order])
    return buffer.getvalue()


def bad_row(column: str, value: str) -> list[str]:
    row = list(GOOD)
    row[HEADER.index(column)] = value
    return row


BAD_ROWS = {
    "text": (bad_row("Population", "many"), "column 'Population' is not numeric: 'many' on {}"),
    "underscore": (bad_row("AveRooms", "1_0"), "column 'AveRooms' is not numeric: '1_0' on {}"),
    "infinite": (bad_row("Latitude", "-inf"), "column 'Latitude' has an infinite value on {}"),
    "overflow": (bad_row("MedInc", "1e999"), "column 'MedInc' has an infinite value on {}"),
    "missing": (
        bad_row("HouseAge", "NA"),
        "column 'HouseAge' has a missing value on {} (the model has no fill for it)",
    ),
    "longer": ([*GOOD, "extra"], "{} has 10 fields, the header 9"),
    "shorter": (GOOD[:7], "{} has 7 fields, the header 9"),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("note_last", [True, False], ids=["text-last", "number-last"])
@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_a_bad_cell_is_named_by_its_physical_line(
    california_models, tmp_path: Path, case: str, note_last: bool, reader: str
) -> None:
    """After 300 rows, 27 blank lines and 43 quoted line breaks, in a later batch: the
    message names the file, the column and the line, and nothing is written."""
    bad, message = BAD_ROWS[case]
    text = awkward_csv(300, bad, note_last)
    line = text.count("\n") - 1
    source = tmp_path / "rows.csv"
    source.write_text(text)

    with pytest.raises(DataError) as error:
        predict_files(
            california_models["float"], source, tmp_path / "out.csv", batch_rows=40, reader=reader
        )

    assert str(error.value) == f"{source}: " + message.format(f"line {line}")
    assert leftovers(tmp_path) == ["rows.csv"]


@pytest.mark.parametrize("reader", READERS)
def test_a_marker_that_is_a_number_matches_however_written(
    california_models, penguin_models, penguins_csv: Path, tmp_path: Path, reader: str
) -> None:
    """pandas' na_values rule, as the stream engine reads for training: with the marker
    "-999", a number cell -9.99e2 is missing (an error without a fill), and a category cell
    "-999.0" is the model's "missing", as an empty cell is."""
    header = ",".join(CALIFORNIA_FEATURES)
    row = ",".join(GOOD[:8])
    source = tmp_path / "rows.csv"
    source.write_text(f"{header}\n{row}\n{row.replace('41', '-9.99e2')}\n")
    with pytest.raises(DataError, match="'HouseAge' has a missing value on line 3"):
        predict_files(
            california_models["float"],
            source,
            tmp_path / "out.csv",
            na_values=["-999"],
            reader=reader,
        )
    frame = pd.read_csv(penguins_csv, dtype=str, keep_default_na=False).head(2)
    frame["island"] = ["", "-999.0"]
    frame.to_csv(source, index=False)
    predict_files(
        penguin_models["float"],
        source,
        tmp_path / "out.csv",
        na_values=["", "NA", "-999"],
        reader=reader,
    )
    missing = pandas_rows(penguins_csv, PENGUINS_CATEGORICAL).head(2).assign(island=None)
    np.testing.assert_array_equal(
        written_predictions(tmp_path / "out.csv"), reference(penguin_models["float"], missing)
    )


def test_a_bad_parquet_value_is_named_by_its_row(california_models, california, tmp_path) -> None:
    frame = california.features.copy()
    frame.loc[12345, "AveOccup"] = np.inf
    frame.to_parquet(tmp_path / "rows.parquet", row_group_size=4096)
    with pytest.raises(DataError, match=r"'AveOccup' has an infinite value on row 12346$"):
        predict_files(california_models["float"], tmp_path / "rows.parquet", tmp_path / "o.csv")
    frame["AveOccup"] = frame["AveOccup"].astype(str)
    frame.to_parquet(tmp_path / "rows.parquet")
    with pytest.raises(DataError, match=r"column 'AveOccup' is not numeric \((large_)?string\)$"):
        predict_files(california_models["float"], tmp_path / "rows.parquet", tmp_path / "o.csv")
    assert leftovers(tmp_path) == ["rows.parquet"]


@dataclass(frozen=True)
class InterruptedPredictor(LinearPredictor):
    """Ctrl-C while the second batch is predicted (the first one is written by then)."""

    calls: list[int] = field(default_factory=list, compare=False)

    def predict_table(self, columns):  # type: ignore[no-untyped-def]
        self.calls.append(1)
        if len(self.calls) == 2:
            raise KeyboardInterrupt
        return super().predict_table(columns)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_an_interrupted_run_leaves_nothing(
    california_models, california_csv: Path, tmp_path: Path, suffix: str
) -> None:
    model = california_models["float"]
    predictor = InterruptedPredictor(model.name, model.folded)
    with pytest.raises(KeyboardInterrupt):
        predict_files(predictor, california_csv, tmp_path / f"out{suffix}", batch_rows=1000)
    assert leftovers(tmp_path) == []


def test_sigterm_stops_the_cli_and_leaves_nothing(
    trained_artifacts: Path, california_csv: Path, tmp_path: Path
) -> None:
    """``docker stop`` or a scheduler's kill in the middle of a file: exit code 143, and
    neither the output nor its temporary is left."""
    import signal
    import subprocess
    import sys
    import time

    rows = tmp_path / "rows.csv"
    text = california_csv.read_text(encoding="utf-8-sig")
    header, _, body = text.partition("\n")
    rows.write_text(header + "\n" + body * 40)  # 825,600 rows: seconds of work
    process = subprocess.Popen(
        [
            sys.executable, "-m", "mlops_lr", "stage=predict",
            f"paths.artifacts_dir={trained_artifacts}", f"hydra.run.dir={tmp_path / 'hydra'}",
            f"predict.input={rows}", f"predict.output={tmp_path / 'out.csv'}",
            "predict.chunk_size=10000",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.csv.*.part")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "out.csv").exists()
    assert list(tmp_path.glob(".out.csv.*")) == []


def test_refusals(california_models, california_csv: Path, tmp_path: Path) -> None:
    predictor = california_models["float"]
    refusals = {
        "prediction input not found": lambda: predict_files(predictor, tmp_path / "no.csv"),
        "the output would overwrite an input": lambda: predict_files(
            predictor, california_csv, california_csv
        ),
        "out.json' is not allowed: a file ending in .csv": lambda: predict_files(
            predictor, california_csv, tmp_path / "out.json"
        ),
        "is a directory or a glob: set predict.output": lambda: predict_files(
            predictor, california_csv.parent
        ),
        "Parquet needs pyarrow (pip install 'mlops-lr[parquet]')": lambda: predict_files(
            predictor, california_csv, tmp_path / "out.parquet", reader="pandas"
        ),
        "does not exist": lambda: predict_files(
            predictor, california_csv, tmp_path / "missing" / "out.csv"
        ),
    }
    for message, call in refusals.items():
        with pytest.raises((DataError, ConfigError)) as error:
            call()
        assert message in str(error.value)
    (tmp_path / "in.csv").write_text("prediction,MedInc\n1,2\n")
    with pytest.raises(DataError, match=r"feature column\(s\) \['HouseAge'"):
        predict_files(predictor, tmp_path / "in.csv", tmp_path / "out.csv")
    header = ",".join(CALIFORNIA_FEATURES)
    (tmp_path / "in.csv").write_text(f"{header},prediction\n{','.join(GOOD[:8])},1\n")
    with pytest.raises(DataError, match="already has a 'prediction' column"):
        predict_files(predictor, tmp_path / "in.csv", tmp_path / "out.csv")
    (tmp_path / "in.csv").write_text(f"{header},MedInc\n{','.join(GOOD[:8])},1\n")
    with pytest.raises(DataError, match=r"column name\(s\) \['MedInc'\] appear more than once"):
        predict_files(predictor, tmp_path / "in.csv", tmp_path / "out.csv")
    assert leftovers(tmp_path) == ["in.csv"]


def test_files_with_other_columns_are_named(california_models, tmp_path: Path) -> None:
    header = ",".join(CALIFORNIA_FEATURES)
    row = ",".join(GOOD[:8])
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text(f"{header},id\n{row},1\n")
    (tmp_path / "in" / "b.csv").write_text(f"{header},code\n{row},1\n")
    with pytest.raises(DataError) as error:
        predict_files(california_models["float"], tmp_path / "in", tmp_path / "out.csv")
    assert str(error.value) == (
        f"{tmp_path / 'in' / 'b.csv'}: other columns than {tmp_path / 'in' / 'a.csv'}: "
        "lacks ['id'], has ['code'] besides"
    )
    assert leftovers(tmp_path) == ["in"]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("spelling", ["NAN", "-nan", "+NaN", "nAn"])
def test_nan_text_is_not_a_number(
    penguin_models, penguins_csv: Path, tmp_path: Path, spelling: str, reader: str
) -> None:
    """pyarrow parses any spelling of NaN; pandas, and so training, refuse one that is not a
    missing-value marker (the default ones are "NaN" and "nan"). Both readers refuse it,
    where the model has a fill too (pyarrow's NaN would have been predicted as missing)."""
    predictor = penguin_models["float"]
    lines = penguins_csv.read_text().splitlines()
    row = lines[200].split(",")
    row[2] = spelling  # bill_length_mm
    lines[200] = ",".join(row)
    source = tmp_path / "rows.csv"
    source.write_text("\n".join(lines) + "\n")

    with pytest.raises(DataError) as error:
        predict_files(predictor, source, tmp_path / "out.csv", batch_rows=64, reader=reader)

    assert str(error.value) == (
        f"{source}: column 'bill_length_mm' is not numeric: {spelling!r} on line 201"
    )
    # A marker, it is missing (and filled).
    markers = [*DEFAULT_NA_VALUES, spelling]
    rows = predict_files(predictor, source, tmp_path / "out.csv", na_values=markers, reader=reader)
    assert rows == 344


# A row that opens a quote it never closes, at the end of a file of rows (note last, or first).
UNCLOSED = {
    # The last cell, a note: pyarrow would read the rest of the file into it.
    "rest-in-a-note": (True, ",".join(GOOD[:8]) + ',"never closed\n' + ",".join(GOOD) + "\n"),
    # The first field: the record is one field (pyarrow: too few fields).
    "rest-in-one-field": (False, '"never closed,' + ",".join(GOOD[:8]) + "\n"),
    # The last cell, a number, at the very end: pyarrow would read it as the number.
    "number-at-the-end": (False, "fine," + ",".join(GOOD[:7]) + ',"-122.2'),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("rows_before", [2, 300])
@pytest.mark.parametrize("layout", sorted(UNCLOSED))
def test_a_file_that_ends_inside_quotes_is_named_by_its_line(
    california_models, tmp_path: Path, layout: str, rows_before: int, reader: str
) -> None:
    """pandas refuses a file that ends inside a quoted field, early in the file or late;
    pyarrow would take the rest of the file for one cell, or a number: both name the line
    of the record."""
    note_last, unclosed = UNCLOSED[layout]
    text = awkward_csv(rows_before, GOOD, note_last)
    line = text.count("\n") + 1
    source = tmp_path / "rows.csv"
    source.write_text(text + unclosed)

    with pytest.raises(DataError) as error:
        predict_files(
            california_models["float"], source, tmp_path / "out.csv", batch_rows=40, reader=reader
        )

    assert str(error.value) == (
        f"{source}: the record on line {line} ends inside a quoted field: its closing quote "
        "is missing"
    )
    assert leftovers(tmp_path) == ["rows.csv"]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("rows_before", "column"), [(1, "note"), (3000, "note"), (3000, "MedInc")])
def test_bytes_that_are_not_utf8_are_named_by_their_line(
    california_models, tmp_path: Path, rows_before: int, column: str, reader: str
) -> None:
    row = list(GOOD)
    row[HEADER.index(column)] = "8.3\udcff" if column == "MedInc" else "caf\udce9"
    lines = [",".join(HEADER), *[",".join(GOOD)] * rows_before, ",".join(row), ",".join(GOOD)]
    source = tmp_path / "rows.csv"
    source.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))

    with pytest.raises(DataError) as error:
        predict_files(
            california_models["float"], source, tmp_path / "out.csv", batch_rows=40, reader=reader
        )

    assert str(error.value) == f"{source}: line {rows_before + 2} is not UTF-8 text"


@pytest.mark.parametrize("reader", READERS)
def test_a_header_without_rows_or_line_break_has_no_data_rows(
    california_models, tmp_path: Path, reader: str
) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("\n  \n" + ",".join(HEADER))  # no line break after it
    with pytest.raises(DataError) as error:
        predict_files(california_models["float"], source, tmp_path / "out.csv", reader=reader)
    assert str(error.value) == f"{source}: no data rows"


@pytest.mark.parametrize("reader", READERS)
def test_batch_rows_below_one_is_refused(
    california_models, california_csv: Path, tmp_path: Path, reader: str
) -> None:
    """Refused up front (pyarrow's reader would loop forever on empty batches)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            predict_files(
                california_models["float"], california_csv, tmp_path / "o.csv", 0, reader=reader
            )
        except BaseException as error:  # handed to the test's thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "predict_files(batch_rows=0) does not return"
    assert len(errors) == 1
    assert isinstance(errors[0], ValueError)
    assert str(errors[0]) == "batch_rows=0 is not allowed: a positive integer"
    assert leftovers(tmp_path) == []


def test_an_output_that_is_a_directory_or_has_another_suffix(
    california_models, california_csv: Path, tmp_path: Path
) -> None:
    """A directory named like the output is refused before anything is read; a suffix as
    the CLI's own check says it."""
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(DataError) as error:
        predict_files(california_models["float"], california_csv, tmp_path / "out.csv")
    assert str(error.value) == f"{tmp_path / 'out.csv'}: the output is a directory"
    with pytest.raises(ConfigError) as from_config:
        PredictConfig(input="rows.csv", output="rows.txt")
    with pytest.raises(ConfigError) as from_output_path:
        output_path("rows.csv", "rows.txt")
    assert str(from_output_path.value) == str(from_config.value)


# ---------------------------------------------------------------------- the CLI
def test_cli_predicts_parquet_beside_its_input(
    cli, trained_artifacts: Path, california: Dataset, tmp_path: Path
) -> None:
    source = tmp_path / "houses.parquet"
    california.features.to_parquet(source)
    result = cli(
        "stage=predict",
        f"paths.artifacts_dir={trained_artifacts}",
        f"predict.model={QUANTIZED}",
        f"predict.input={source}",
        "predict.chunk_size=5000",
    )
    target = tmp_path / "houses.predictions.parquet"
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Model: {QUANTIZED}: wrote 20640 predictions to {target}"
    predictor = load_predictor(trained_artifacts, QUANTIZED)
    np.testing.assert_array_equal(
        written_predictions(target), reference(predictor, california.features)
    )


def test_cli_errors_are_one_line(cli, trained_artifacts: Path, tmp_path: Path) -> None:
    artifacts = f"paths.artifacts_dir={trained_artifacts}"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text(",".join(CALIFORNIA_FEATURES) + "\n")
    result = cli("stage=predict", artifacts, f"predict.input={tmp_path / 'in'}")
    assert_one_line_error(result, "is a directory or a glob: set predict.output", exit_code=2)
    result = cli(
        "stage=predict",
        artifacts,
        f"predict.input={tmp_path / 'in'}",
        f"predict.output={tmp_path / 'out.xlsx'}",
    )
    assert_one_line_error(result, "predict.output=", exit_code=2)
    result = cli(
        "stage=predict",
        artifacts,
        f"predict.input='{tmp_path / 'in' / '*.csv'}'",
        f"predict.output={tmp_path / 'out.csv'}",
    )
    assert_one_line_error(result, "no data rows", exit_code=3)
    assert not (tmp_path / "out.csv").exists()
