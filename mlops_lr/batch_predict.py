"""Predictions for files of any size: CSV or Parquet rows in, the same rows plus a float64
``prediction`` column out (CSV or Parquet), one batch at a time.

One loop (:func:`predict_files`) drives one of two readers: pyarrow's (CSV and Parquet, parsed
in C++) or, where pyarrow is not installed (the Docker image), pandas' (CSV only). Both parse
the model's numeric inputs as float64, correctly rounded, and read its categorical inputs as
text, as :func:`mlops_lr.sources.categories` and the folded model take them everywhere else;
a CSV's other columns are read as text and written back as they were (a Parquet file's keep
their types). Both read a CSV as training does (pandas' rules): a line of nothing but spaces
and tabs is no row, and a cell that is not a number (``nan`` included, unless it is one of the
missing-value markers) is an error. Each row's prediction is the sum of its own terms, in a
fixed order (:meth:`mlops_lr.folded.FoldedModel.predict`), so it is bit for bit the one
:meth:`~mlops_lr.predictor.LinearPredictor.predict_table` gives it on the rows pandas reads,
whatever batch it is in.

With pyarrow, reading, predicting and writing overlap: CSV text is formatted, and Parquet row
groups written, on threads while the next batch is read. Either way a few batches are in
memory at a time, whatever the size of the input.

Errors name the file, the column and the CSV line (or the Parquet row). The line is the file's
physical line: the fast parsers count records, not lines, once a file has blank lines or quoted
line breaks, so when a batch fails a second, slower look with Python's csv module finds it.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import importlib.util
import itertools
import math
import os
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mlops_lr import artifacts
from mlops_lr.config import DEFAULT_NA_VALUES, PREDICTION_OUTPUT_SUFFIXES, PredictConfig
from mlops_lr.exceptions import ConfigError, DataError, first_line
from mlops_lr.files import is_parquet, numbers, numeric_markers, resolve_paths
from mlops_lr.folded import NUMERIC, FoldedModel
from mlops_lr.folded_classifier import integer_classes
from mlops_lr.predictor import PREDICTION_COLUMN, LinearPredictor

# Which reader predict_files uses: "auto" is pyarrow where it is installed, else pandas.
READERS = ("auto", "pyarrow", "pandas")
PARQUET_NEEDS_PYARROW = "Parquet needs pyarrow (pip install 'mlops-lr[parquet]')"
# A number both parsers accept: what the second look calls a number when it looks for a bad
# cell. Not "nan": pandas refuses it (unless it is one of the na_values), and so does the
# pyarrow path, which parses it (see _ArrowFiles.batches).
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?)", re.I | re.A)
# What can be wrong with a numeric input's cell.
_NOT_NUMERIC, _INFINITE, _MISSING = "not numeric", "infinite", "missing"
# The characters that make a CSV cell need quotes (Python's csv.QUOTE_MINIMAL, as pandas).
_NEEDS_QUOTES = re.compile(r'[",\r\n]')
# What pandas' skip_blank_lines takes for blank: a line of nothing but these (or nothing).
_BLANK = " \t"
# Bytes that are not UTF-8, as the second look reads them (errors="surrogateescape").
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
# The bytes at the end of a CSV that hold a number cut short by an unclosed quote.
_NUMBER_TAIL_BYTES = 64
# Rows formatted as CSV at a time (the text of a slice, not of a whole batch, at once).
_FORMAT_ROWS = 16_384
# pyarrow's CSV block size (it reads up to 32 blocks ahead), the bytes at the top of a CSV
# sampled for its widest line, and the factor a block grows by when a record is wider.
_BLOCK_BYTES, _SAMPLE_BYTES, _BLOCK_GROWTH = 1 << 18, 1 << 20, 4
# The largest block pyarrow takes, and the largest field the second look reads (32-bit sizes).
_MAX_BLOCK_BYTES = _MAX_FIELD_CHARS = (1 << 31) - 1


def _usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit), else the
    machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# Batches formatted as CSV at once, on as many threads (the usable cores, up to 4).
_FORMATTERS = min(_usable_cores(), 4)


@dataclass(frozen=True)
class _Batch:
    """``rows`` rows read from one file: ``table`` (the file's columns, in the output's
    order, as the writer writes them back), ``inputs`` (the model's inputs by name: float64
    arrays with NaN where missing, and :class:`pandas.Categorical` text), and ``first`` (the
    0-based index of the first row among the file's data rows)."""

    table: Any
    inputs: dict[str, Any]
    first: int
    rows: int


# The writer's call: a batch's rows, their predictions, and the file they came from.
Write = Callable[[Any, np.ndarray, Path], None]


class _Reader(Protocol):
    def header(self, path: Path) -> list[str]: ...

    def batches(
        self,
        path: Path,
        columns: Sequence[str],
        folded: FoldedModel,
        batch_rows: int,
        na_values: Sequence[str],
    ) -> Iterator[_Batch]: ...

    def csv_writer(self, temporary: Path) -> contextlib.AbstractContextManager[Write]: ...


def predict_files(
    predictor: LinearPredictor,
    input_spec: str | Path,
    output: str | Path | None = None,
    batch_rows: int = 100_000,
    na_values: Sequence[str] | None = None,
    reader: str = "auto",
) -> int:
    """Write ``predictor``'s predictions for every row of ``input_spec`` to ``output``: the
    input's columns, in order, plus a ``prediction`` column (float64; a classifier's labels:
    text, or int64 for integer classes).

    Parameters
    ----------
    predictor : LinearPredictor
        The float model or a quantized one (:func:`mlops_lr.predictor.load_predictor`).
    input_spec : str or Path
        A CSV (with a header) or Parquet file, a directory of them (recursively) or a glob;
        several files must have the same columns (in any order: the first file's is kept).
        Features are matched by name; other columns are kept as they are (Parquet files'
        types unified: a column of nulls in one file takes another file's type).
    output : str or Path, optional
        A ``.csv``, ``.parquet`` or ``.pq`` file (see :func:`output_path` for the default);
        written atomically: on any error, nothing is.
    batch_rows : int, default=100_000
        Rows read, predicted and written at a time (at least 1): memory depends on it, not
        on the size of the input.
    na_values : sequence of str, optional
        The CSV cells that mean "missing" in a model input (default: the datasets'
        :data:`~mlops_lr.config.DEFAULT_NA_VALUES`); a marker that is a number matches it
        however written. A missing categorical value is the model's "missing", an unseen one
        its "unknown"; a missing number takes the model's fill. Parquet has its own nulls.
    reader : {"auto", "pyarrow", "pandas"}, default="auto"
        pyarrow's readers and writers where pyarrow is installed; pandas' (CSV only) reads
        and predicts the same.

    Returns
    -------
    int
        The number of rows written.

    Raises
    ------
    ValueError
        ``batch_rows`` is less than 1, or ``reader`` is not one of :data:`READERS`.
    ConfigError
        The output's suffix is not one of :data:`PREDICTION_OUTPUT_SUFFIXES`, or no output is
        given for a directory or a glob.
    DataError
        No input, an output that would overwrite one or is a directory; a missing or
        duplicated column, a ``prediction`` column already there, files with other columns
        (or, Parquet to Parquet, types that do not unify); an empty or unreadable file, a
        row with another number of fields than the header, bytes that are not UTF-8, a
        quoted field the file ends in, a non-number, an infinite value or a missing value the
        model has no fill for (named with the file, the column and the CSV line or the
        Parquet row); Parquet without pyarrow.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows={batch_rows!r} is not allowed: a positive integer")
    paths = input_paths(input_spec)
    target = output_path(input_spec, output)
    if target.resolve() in {path.resolve() for path in paths}:
        raise DataError(f"{target}: the output would overwrite an input")
    if target.is_dir():
        raise DataError(f"{target}: the output is a directory")
    if not target.parent.is_dir():
        raise DataError(f"{target}: the output directory {target.parent} does not exist")
    files = _choose_reader(reader, [paths[0], target])
    na_values = tuple(DEFAULT_NA_VALUES if na_values is None else na_values)
    folded = predictor.folded
    columns = _common_columns(files, paths, folded.feature_names)
    parquet_to_parquet = is_parquet(paths[0]) and is_parquet(target)
    # The output's types, from every file's before any row is read.
    schema = _parquet_schema(paths, columns, folded) if parquet_to_parquet else None
    written = 0
    with (
        artifacts.atomic_path(target) as temporary,
        _writer(files, temporary, target, schema) as write,
    ):
        for path, batch in _checked_batches(files, paths, columns, folded, batch_rows, na_values):
            write(batch.table, predictor.predict_table(batch.inputs), path)
            written += batch.rows
        if not written:
            raise DataError(f"{input_spec}: no data rows")
    return written


def input_paths(input_spec: str | Path) -> tuple[Path, ...]:
    """The CSV or Parquet files ``input_spec`` names (see :func:`mlops_lr.files.resolve_paths`).

    Raises
    ------
    DataError
        Nothing there, or CSV and Parquet files mixed.
    """
    spec = str(input_spec)
    if not any(character in spec for character in "*?[") and not Path(spec).exists():
        raise DataError(f"prediction input not found: {spec}")
    return resolve_paths(spec)


def output_path(input_spec: str | Path, output: str | Path | None) -> Path:
    """``output``, or by default ``<stem>.predictions<suffix>`` beside a single input file
    (``.csv`` for a ``.txt`` input).

    Raises
    ------
    ConfigError
        ``output`` has another suffix than :data:`PREDICTION_OUTPUT_SUFFIXES` (the CLI's own
        check and message, :class:`~mlops_lr.config.PredictConfig`), or is None for a
        directory or a glob.
    """
    if output is not None:
        # The CLI's own check (PredictConfig's), so that one rule says one thing everywhere.
        PredictConfig(input=str(input_spec), output=str(output))
        return Path(output)
    source = Path(input_spec)
    if not source.is_file():
        raise ConfigError(
            f"predict.input={str(input_spec)!r} is a directory or a glob: set predict.output "
            "(a .csv or .parquet file)"
        )
    suffix = source.suffix if source.suffix.lower() in PREDICTION_OUTPUT_SUFFIXES else ".csv"
    return source.with_name(f"{source.stem}.predictions{suffix}")


# ---------------------------------------------------------------------- the shared checks
def _choose_reader(choice: str, files: Sequence[Path]) -> _Reader:
    if choice not in READERS:
        raise ValueError(f"reader={choice!r}: one of {', '.join(READERS)}")
    if choice == "auto":
        choice = "pyarrow" if _has_pyarrow() else "pandas"
    if choice == "pyarrow":
        return _ArrowFiles()
    parquet = [path for path in files if is_parquet(path)]
    if parquet:
        raise DataError(f"{parquet[0]}: {PARQUET_NEEDS_PYARROW}")
    return _PandasFiles()


def _has_pyarrow() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def _writer(
    files: _Reader, temporary: Path, target: Path, schema: Any
) -> contextlib.AbstractContextManager[Write]:
    """Parquet with pyarrow (whichever reader read the rows), or the reader's own CSV."""
    return _parquet_writer(temporary, schema) if is_parquet(target) else files.csv_writer(temporary)


def _common_columns(files: _Reader, paths: Sequence[Path], features: Sequence[str]) -> list[str]:
    """The first file's columns, checked (every feature, no ``prediction``, no name twice), and
    checked to be every other file's too, before any row is read."""
    columns = _header(files, paths[0])
    missing = [name for name in features if name not in columns]
    if missing:
        raise DataError(
            f"{paths[0]}: feature column(s) {missing} not found; the model needs {list(features)}"
        )
    if PREDICTION_COLUMN in columns:
        raise DataError(f"{paths[0]}: already has a {PREDICTION_COLUMN!r} column")
    for path in paths[1:]:
        other = _header(files, path)
        if set(other) != set(columns):
            lacks, extra = sorted(set(columns) - set(other)), sorted(set(other) - set(columns))
            raise DataError(
                f"{path}: other columns than {paths[0]}: lacks {lacks}, has {extra} besides"
            )
    return columns


def _header(files: _Reader, path: Path) -> list[str]:
    columns = files.header(path)
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise DataError(f"{path}: column name(s) {repeated} appear more than once")
    return columns


def _checked_batches(
    files: _Reader,
    paths: Sequence[Path],
    columns: Sequence[str],
    folded: FoldedModel,
    batch_rows: int,
    na_values: Sequence[str],
) -> Iterator[tuple[Path, _Batch]]:
    """Every file's batches in turn, each checked as soon as it is read (so the first bad
    row of the input is the one reported)."""
    for path in paths:
        for batch in files.batches(path, columns, folded, batch_rows, na_values):
            _check_numbers(batch, folded, path)
            yield path, batch


def _check_numbers(batch: _Batch, folded: FoldedModel, path: Path) -> None:
    """Raise for the batch's first row with an infinite value, or a missing one where the
    model has no fill, in a numeric input (a categorical input takes anything)."""
    first: tuple[int, str, str] | None = None
    for item in folded.inputs:
        if item.kind != NUMERIC:
            continue
        values = batch.inputs[item.name]
        bad = np.isinf(values) if item.fill is not None else ~np.isfinite(values)
        if bad.any():
            row = int(np.argmax(bad))
            if first is None or row < first[0]:
                first = (row, item.name, _INFINITE if np.isinf(values[row]) else _MISSING)
    if first is not None:
        row, name, problem = first
        raise _cell_error(path, name, problem, _where(path, batch.first + row))


def _cell_error(path: Path, name: str, problem: str, where: str, cell: str = "") -> DataError:
    if problem == _NOT_NUMERIC:
        shown = cell if len(cell) <= 40 else cell[:40] + "…"
        return DataError(f"{path}: column {name!r} is not numeric: {shown!r} on {where}")
    if problem == _INFINITE:
        return DataError(f"{path}: column {name!r} has an infinite value on {where}")
    return DataError(
        f"{path}: column {name!r} has a missing value on {where} (the model has no fill for it)"
    )


def _where(path: Path, record: int) -> str:
    """The Parquet row, or the physical CSV line, of the file's ``record``-th data row."""
    if is_parquet(path):
        return f"row {record + 1}"
    line = _line_of(path, record)
    return f"line {line}" if line is not None else f"data row {record + 1}"


# ---------------------------------------------------------------------- the second look
@dataclass(frozen=True)
class _CsvHeader:
    """A CSV's column ``names``, the physical ``lines`` up to the end of the header (blank
    lines before it, quoted line breaks in it), and whether the file ``ends`` with it (no line
    break after it: no data rows)."""

    names: list[str]
    lines: int
    ends: bool


class _TrackedLines:
    """A text file's lines, as an iterator for :func:`csv.reader` that keeps the last one
    read: the text of a record that spans one line, to tell a blank line (no record, for
    pandas) from a quoted cell of spaces (a record)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.last = ""

    def __iter__(self) -> _TrackedLines:
        return self

    def __next__(self) -> str:
        self.last = next(self._handle)
        return self.last


def _nonblank_records(lines: _TrackedLines) -> Iterator[tuple[int, int, list[str]]]:
    """The records of a CSV (its header first), each with the physical lines it starts and
    ends on, quoted line breaks counted. A line of nothing but spaces and tabs is no record:
    pandas' skip_blank_lines, which training reads with and both readers follow (pandas' by
    itself, pyarrow's through :func:`_skip_blank_row`)."""
    # The csv module's limit (128 kB a field) is lower than what either reader takes.
    csv.field_size_limit(max(csv.field_size_limit(), _MAX_FIELD_CHARS))
    reader = csv.reader(lines)
    start = 1
    for fields in reader:
        end = reader.line_num
        blank = end == start and not lines.last.strip(_BLANK + "\r\n")
        if not blank:
            yield start, end, fields
        start = end + 1


def _csv_opened(path: Path) -> Any:
    """A CSV open as text as both readers decode it (a byte-order mark skipped), bytes that
    are not UTF-8 kept as lone surrogates (:data:`_NOT_UTF8`), for their line to be found."""
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _csv_header(path: Path) -> _CsvHeader:
    """The first record of a CSV that is not a blank line (Python's csv module).

    Raises
    ------
    DataError
        The file is empty (or blank), unreadable, or its header is not UTF-8.
    """
    try:
        with _csv_opened(path) as handle:
            lines = _TrackedLines(handle)
            for start, end, names in _nonblank_records(lines):
                if any(_NOT_UTF8.search(name) for name in names):
                    raise _not_utf8(path, start)
                return _CsvHeader(names, end, ends=not lines.last.endswith(("\n", "\r")))
    except (OSError, csv.Error) as error:
        raise DataError(f"{path}: cannot be read: {error}") from None
    raise DataError(f"{path}: the file is empty")


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The data records of a CSV, each with the physical line it starts on (see
    :func:`_nonblank_records`). Slow (Python's csv module), and only for finding a line.

    Raises
    ------
    DataError
        The file ends inside a quoted field (after its other records): pandas refuses such a
        file; pyarrow, and the csv module, would take the rest of the file as one cell.
    """
    with _csv_opened(path) as handle:
        records = _nonblank_records(_TrackedLines(handle))
        next(records, None)  # the header
        # One record behind: whether the last one is cut short is known at the end only.
        previous = None
        for record in records:
            if previous is not None:
                yield previous[0], previous[2]
            previous = record
        if previous is not None:
            start, _, fields = previous
            if fields and _ends_inside_quotes(path, fields[-1]):
                raise DataError(
                    f"{path}: the record on line {start} ends inside a quoted field: its "
                    "closing quote is missing"
                )
            yield start, fields


def _ends_inside_quotes(path: Path, last_cell: str) -> bool:
    """Whether a CSV ends inside the quoted field that its last record's last cell,
    ``last_cell``, then is (the rest of the file, as pyarrow and the csv module read it): the
    file's last bytes are an opening quote (after a comma or a line break) and the cell with
    its quotes doubled."""
    ending = ('"' + last_cell.replace('"', '""')).encode("utf-8", "surrogateescape")
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size <= len(ending):  # a record before it: the header, at least
            return False
        handle.seek(size - len(ending) - 1)
        before, rest = handle.read(1), handle.read()
    return rest == ending and before in b",\r\n"


def _line_of(path: Path, record: int) -> int | None:
    """The physical line of the ``record``-th data row of a CSV (None if unreadable)."""
    try:
        found = next(itertools.islice(_records(path), record, None), None)
    except (OSError, csv.Error):
        return None
    return found[0] if found else None


def _not_utf8(path: Path, line: int) -> DataError:
    return DataError(f"{path}: line {line} is not UTF-8 text")


def _bad_record(
    path: Path, folded: FoldedModel, na_values: Collection[str], start: int
) -> DataError | None:
    """Why a parser failed from the ``start``-th data row of a CSV on: the first row with
    bytes that are not UTF-8, with another number of fields than the header, or with a
    numeric input's cell that is not a number (or that :func:`_check_numbers` would refuse,
    as it may come first); None if no row is found.

    Raises
    ------
    DataError
        The file ends inside a quoted field (see :func:`_records`).
    """
    header = _csv_header(path).names
    numeric = [
        (item.name, header.index(item.name), item.fill is None)
        for item in folded.inputs
        if item.kind == NUMERIC
    ]
    markers = set(numeric_markers(na_values).tolist())
    try:
        for line, fields in itertools.islice(_records(path), start, None):
            if any(_NOT_UTF8.search(field) for field in fields):
                return _not_utf8(path, line)
            if len(fields) != len(header):
                return DataError(
                    f"{path}: line {line} has {len(fields)} fields, the header {len(header)}"
                )
            for name, position, needs_value in numeric:
                cell = fields[position]
                problem = _cell_problem(cell, na_values, markers, needs_value)
                if problem:
                    return _cell_error(path, name, problem, f"line {line}", cell)
    except (OSError, csv.Error):
        return None
    return None


def _second_look(
    path: Path, folded: FoldedModel, na_values: Collection[str], start: int, otherwise: str
) -> DataError:
    """The error :func:`_bad_record` finds from the ``start``-th data row of a CSV on, where a
    parser failed, or one that says ``otherwise``."""
    return _bad_record(path, folded, na_values, start) or DataError(f"{path}: {otherwise}")


def _cell_problem(
    cell: str, na_values: Collection[str], markers: Collection[float], needs_value: bool
) -> str | None:
    if cell in na_values:
        return _MISSING if needs_value else None
    if not _NUMBER.fullmatch(cell.strip(_BLANK)):
        return _NOT_NUMERIC
    number = float(cell)
    if number in markers:
        return _MISSING if needs_value else None
    return _INFINITE if math.isinf(number) else None


def _numeric_names(folded: FoldedModel) -> list[str]:
    return [item.name for item in folded.inputs if item.kind == NUMERIC]


# ---------------------------------------------------------------------- pyarrow
class _ArrowFiles:
    """pyarrow: CSV and Parquet in, CSV and Parquet out, parsed and formatted in C++."""

    def header(self, path: Path) -> list[str]:
        if not is_parquet(path):
            return _csv_header(path).names
        import pyarrow as pa
        from pyarrow import parquet

        try:
            return list(parquet.read_schema(path).names)
        except (pa.ArrowException, OSError) as error:
            raise DataError(f"{path}: cannot be read: {first_line(error)}") from None

    def batches(
        self,
        path: Path,
        columns: Sequence[str],
        folded: FoldedModel,
        batch_rows: int,
        na_values: Sequence[str],
    ) -> Iterator[_Batch]:
        import pyarrow as pa

        if folded.categorical_names:  # pandas: only categorical inputs need it
            from mlops_lr.sources import categories
        numeric = _numeric_names(folded)
        parquet = is_parquet(path)
        markers = np.empty(0) if parquet else numeric_markers(na_values)
        # Parquet has its own nulls; a CSV's text cells are all text, "NA" too (see _csv_batches).
        missing_texts = () if parquet else frozenset(na_values)
        # Generators: the file is opened (and a CSV's first block read) by the first next().
        read = (
            _parquet_batches(path, folded, batch_rows)
            if parquet
            else _csv_batches(path, folded, batch_rows, na_values)
        )
        first = 0
        last_text: str | None = None  # a CSV's last cell, if it is text (see _ends_unclosed)
        while True:
            try:
                table = next(read, None)
            except pa.ArrowException as error:
                unreadable = f"cannot be read: {first_line(error)}"
                if parquet:
                    raise DataError(f"{path}: {unreadable}") from None
                raise _second_look(path, folded, na_values, first, unreadable) from None
            except OSError as error:
                raise DataError(f"{path}: cannot be read: {error}") from None
            if table is None:
                break
            if not parquet:
                if _parsed_nan(table, numeric):
                    # pyarrow takes "nan" (any case, any sign) for a number; pandas, and so
                    # training, do not: the second look names the cell.
                    raise _second_look(path, folded, na_values, first, "a number is 'nan'")
                last_text = _last_text(table)
            inputs = {name: numbers(table.column(name), name, path, markers) for name in numeric}
            for name in folded.categorical_names:
                inputs[name] = categories(table.column(name), markers, missing_texts)
            yield _Batch(table.select(columns), inputs, first, table.num_rows)
            first += table.num_rows
        if not parquet and first and _ends_unclosed(path, last_text):
            raise _second_look(path, folded, na_values, first - 1, "it ends inside quotes")

    def csv_writer(self, temporary: Path) -> contextlib.AbstractContextManager[Write]:
        return _arrow_csv_writer(temporary)


def _csv_batches(
    path: Path, folded: FoldedModel, batch_rows: int, na_values: Sequence[str]
) -> Iterator[Any]:
    """A CSV's data rows in record batches of ``batch_rows`` rows (the last one fewer):
    pyarrow's streaming reader, the header and the blank lines as :func:`_csv_header` and
    :func:`_nonblank_records` find them."""
    import pyarrow as pa
    from pyarrow import csv as arrow_csv

    header = _csv_header(path)
    if header.ends:  # pyarrow would say "Empty CSV file" (and cannot skip such a header)
        return
    text = pa.dictionary(pa.int32(), pa.string())
    types = {
        **dict.fromkeys(header.names, pa.string()),
        **dict.fromkeys(_numeric_names(folded), pa.float64()),
        # Each distinct category once, as the stream engine reads them for training.
        **dict.fromkeys(folded.categorical_names, text),
    }
    parse = arrow_csv.ParseOptions(
        # Quoted fields may hold line breaks (at some cost to pyarrow's chunking).
        newlines_in_values=True,
        invalid_row_handler=_skip_blank_row,
    )
    convert = arrow_csv.ConvertOptions(
        column_types=types,
        null_values=list(na_values),
        # Text stays text, "NA" and "" too, so that other columns pass through as written: a
        # categorical input's markers are made missing by categories().
        strings_can_be_null=False,
    )
    yield from _rebatched(_csv_record_batches(path, header, parse, convert), batch_rows)


def _csv_record_batches(path: Path, header: _CsvHeader, parse: Any, convert: Any) -> Iterator[Any]:
    """pyarrow's record batches of a CSV's data rows, in blocks of :func:`_block_bytes`. A
    record wider than a block stops pyarrow ("straddling object straddles two block
    boundaries"): then the file is read again in bigger blocks, the rows already given
    skipped."""
    import pyarrow as pa
    from pyarrow import csv as arrow_csv

    block = _block_bytes(path)
    largest = min(path.stat().st_size, _MAX_BLOCK_BYTES)
    given = 0
    while True:
        read = arrow_csv.ReadOptions(
            block_size=block,
            # The names _csv_header read, after the lines it read them from (pyarrow counts
            # every line there, blank or quoted): whatever blank lines come before them.
            column_names=header.names,
            skip_rows=header.lines,
        )
        skip = given
        try:
            with arrow_csv.open_csv(
                path, read_options=read, parse_options=parse, convert_options=convert
            ) as reader:
                for batch in reader:
                    if skip >= batch.num_rows:
                        skip -= batch.num_rows
                        continue
                    batch, skip = batch.slice(skip), 0
                    yield batch
                    given += batch.num_rows
            return
        except pa.ArrowInvalid as error:
            if "straddl" not in str(error) or block >= largest:
                raise
            block = min(block * _BLOCK_GROWTH, _MAX_BLOCK_BYTES)


def _skip_blank_row(row: Any) -> str:
    """What pyarrow does with a row of another number of fields than the header: skip a line
    of nothing but spaces and tabs (no row for pandas either: see :func:`_nonblank_records`),
    stop at any other (the second look says where).

    A file of one column has no such row: there a line of spaces is a cell of spaces."""
    return "skip" if not row.text.strip(_BLANK + "\r\n") else "error"


def _block_bytes(path: Path) -> int:
    """pyarrow's CSV block size: small, as it reads up to 32 blocks ahead of the parser (a
    memory that grows with the block), but 16 times the widest line of the file's first
    :data:`_SAMPLE_BYTES`, as every block must hold a whole record (a wider one later makes
    :func:`_csv_record_batches` read again in bigger blocks)."""
    with open(path, "rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    width = max(map(len, sample.splitlines()), default=0)
    return max(_BLOCK_BYTES, 16 * width)


def _parsed_nan(table: Any, numeric: Sequence[str]) -> bool:
    """Whether pyarrow parsed a numeric input's cell as NaN (not null: a missing-value marker
    is null)."""
    import pyarrow.compute as pc

    return any(pc.any(pc.is_nan(table.column(name))).as_py() for name in numeric)


def _ends_unclosed(path: Path, last_text: str | None) -> bool:
    """Whether a CSV that pyarrow read ends inside a quoted field (see
    :func:`_ends_inside_quotes`), given its last cell if that is text: pyarrow took the rest
    of the file for it. A number's cell is its own text after the quote (a line break in it
    would not have parsed): ``"4`` at the very end, which pyarrow reads as 4."""
    if last_text is None:
        with open(path, "rb") as handle:
            handle.seek(max(handle.seek(0, os.SEEK_END) - _NUMBER_TAIL_BYTES, 0))
            tail = handle.read()
        if b'"' not in tail:
            return False
        last_text = tail[tail.rindex(b'"') + 1 :].decode("utf-8", "surrogateescape")
    return _ends_inside_quotes(path, last_text)


def _last_text(table: Any) -> str | None:
    """The last cell of a batch's last column, if that column is text (None for numbers)."""
    import pyarrow as pa

    column = table.column(table.num_columns - 1)
    return column[len(column) - 1].as_py() if pa.types.is_string(_value_type(column.type)) else None


def _parquet_batches(path: Path, folded: FoldedModel, batch_rows: int) -> Iterator[Any]:
    """A Parquet file's rows in record batches of ``batch_rows`` rows (the last one fewer),
    categorical inputs as dictionaries."""
    from pyarrow import parquet

    # Column chunks read in 1 MB buffers as they are decoded, not whole row groups up front
    # (as mlops_lr.sources does): memory does not grow with the row groups.
    with parquet.ParquetFile(
        path,
        read_dictionary=list(folded.categorical_names),
        pre_buffer=False,
        buffer_size=1 << 20,
    ) as handle:
        yield from _rebatched(handle.iter_batches(batch_size=batch_rows), batch_rows)


def _parquet_schema(paths: Sequence[Path], columns: Sequence[str], folded: Any) -> Any:
    """The output schema of Parquet inputs: ``columns`` with every file's types unified (a
    column of nulls in one file takes another's type, integers widen, large text wins), as
    :func:`_plain` writes them (dictionaries as their values, no metadata), and the
    prediction.

    Raises
    ------
    DataError
        A file's types do not unify with the earlier files' (text and numbers, say).
    """
    import pyarrow as pa
    from pyarrow import parquet

    unified = None
    for path in paths:
        try:
            stored = parquet.read_schema(path)
        except (pa.ArrowException, OSError) as error:
            raise DataError(f"{path}: cannot be read: {first_line(error)}") from None
        fields = [stored.field(name) for name in columns]
        schema = pa.schema(pa.field(field.name, _value_type(field.type)) for field in fields)
        try:
            unified = (
                schema
                if unified is None
                else pa.unify_schemas([unified, schema], promote_options="permissive")
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise DataError(
                f"{path}: column types differ from the earlier files': {first_line(error)}"
            ) from None
    return unified.append(pa.field(PREDICTION_COLUMN, _prediction_type(folded)))


def _prediction_type(folded: Any) -> Any:
    """The prediction column's Arrow type: float64, or a classifier's labels' (int64 for
    integer classes, else text)."""
    import pyarrow as pa

    classes = getattr(folded, "classes", None)
    if classes is None:
        return pa.float64()
    return pa.int64() if integer_classes(classes) else pa.string()


def _value_type(kind: Any) -> Any:
    """A dictionary's value type, any other type itself."""
    import pyarrow as pa

    return kind.value_type if pa.types.is_dictionary(kind) else kind


def _rebatched(batches: Iterator[Any], rows: int) -> Iterator[Any]:
    """Record batches of exactly ``rows`` rows (the last one fewer) from batches of any size:
    slices of the larger ones, the smaller ones concatenated."""
    import pyarrow as pa

    pieces: list[Any] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            piece = batch.slice(0, rows - count)
            pieces.append(piece)
            count += piece.num_rows
            batch = batch.slice(piece.num_rows)
            if count == rows:
                yield _concatenated(pa, pieces)
                pieces, count = [], 0
    if count:
        yield _concatenated(pa, pieces)


def _concatenated(pa: Any, pieces: list[Any]) -> Any:
    if len(pieces) == 1:
        return pieces[0]
    # One chunk per column; the dictionaries of a categorical input's pieces unified.
    return pa.Table.from_batches(pieces).combine_chunks().to_batches()[0]


def _plain(table: Any) -> Any:
    """A batch with text as text (categorical inputs are read as dictionaries) and no schema
    metadata (a pandas index description would not describe the output)."""
    import pyarrow as pa

    columns = [
        column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
        for column in table.columns
    ]
    return pa.RecordBatch.from_arrays(columns, names=table.schema.names)


@contextlib.contextmanager
def _pipeline(threads: int, finish: Callable[[Any], object]) -> Iterator[Callable[..., None]]:
    """``submit(work, *args)``: ``work(*args)`` done on one of ``threads`` threads (pyarrow
    lets go of the GIL) while the caller reads on, its result given to ``finish`` on the
    caller's thread, in the order of submission. At most ``threads`` calls are pending: the
    memory of a few batches, whatever the input's size."""
    pending: collections.deque[Future[Any]] = collections.deque()
    with ThreadPoolExecutor(threads) as pool:

        def submit(work: Callable[..., Any], *args: Any) -> None:
            pending.append(pool.submit(work, *args))
            while len(pending) > threads:
                finish(pending.popleft().result())

        try:
            yield submit
            while pending:
                finish(pending.popleft().result())
        finally:
            for future in pending:
                future.cancel()


@contextlib.contextmanager
def _parquet_writer(temporary: Path, schema: Any) -> Iterator[Write]:
    """Batches written as row groups on a thread of their own (one: in order) while the next
    batch is read, with the types of ``schema`` (see :func:`_parquet_schema`; None: the first
    batch's, as every batch of CSV files has)."""
    import pyarrow as pa
    from pyarrow import parquet

    writer = None

    def write(table: Any, predictions: np.ndarray, path: Path) -> None:
        nonlocal writer
        batch = _plain(table).append_column(PREDICTION_COLUMN, _prediction_array(predictions))
        if writer is None:
            layout = schema if schema is not None else batch.schema
            text = [field.name for field in layout if _is_text(field.type)]
            # Dictionaries for text only: trying them on every number column of a batch-sized
            # row group costs 3x the rest of writing it, for no smaller file.
            writer = parquet.ParquetWriter(temporary, layout, use_dictionary=text)
        if batch.schema != writer.schema:
            try:  # a file's own types, where the files' types differ
                batch = batch.cast(writer.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise DataError(
                    f"{path}: column types differ from the other files': {first_line(error)}"
                ) from None
        submit(writer.write_batch, batch)

    try:
        with _pipeline(1, lambda _: None) as submit:
            yield write
    finally:
        if writer is not None:
            writer.close()


@contextlib.contextmanager
def _arrow_csv_writer(temporary: Path) -> Iterator[Write]:
    """Rows as CSV text formatted by pyarrow's compute functions: numbers as pyarrow's CSV
    writer prints them, and quotes only around the cells that need them (pyarrow's writer
    quotes every text cell), as pandas and Python's csv module write them.

    Formatting numbers costs more than parsing them: :data:`_FORMATTERS` batches are formatted
    at once, on threads, while the next one is read.
    """
    import pyarrow as pa

    with pa.OSFile(str(temporary), "wb") as sink:

        def write_all(texts: list[Any]) -> None:
            for text in texts:
                sink.write(text)

        def write(table: Any, predictions: np.ndarray, path: Path) -> None:
            if sink.tell() == 0:
                names = [*table.schema.names, PREDICTION_COLUMN]
                sink.write((",".join(map(_quoted_name, names)) + "\n").encode())
            submit(_csv_lines, table, predictions, path)

        with _pipeline(_FORMATTERS, write_all) as submit:
            yield write


def _csv_lines(table: Any, predictions: np.ndarray, path: Path) -> list[Any]:
    """The batch's rows and their predictions as CSV lines: the buffers to write, one per
    :data:`_FORMAT_ROWS` rows (the text of a few columns at a time, not of the batch's)."""

    table = table.append_column(PREDICTION_COLUMN, _prediction_array(predictions))
    return [
        _csv_text(table.slice(start, _FORMAT_ROWS), path)
        for start in range(0, table.num_rows, _FORMAT_ROWS)
    ]


def _csv_text(table: Any, path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = [_csv_cells(column, name, path) for name, column in _named(table)]
    # The line break rides on the last cell: one join makes whole lines.
    kind = cells[-1].type
    nothing, comma = pa.scalar("", kind), pa.scalar(",", kind)
    cells[-1] = pc.binary_join_element_wise(cells[-1], pa.scalar("\n", kind), nothing)
    lines = pc.binary_join_element_wise(*cells, comma, null_handling="replace", null_replacement="")
    _, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return data.slice(int(bounds[0]), int(bounds[-1] - bounds[0]))


def _prediction_array(values: np.ndarray) -> Any:
    """Predictions as a pyarrow array: numbers as float64, sharing their memory (not
    pyarrow.array(), which imports pandas); a classifier's labels as int64 (integer
    classes) or text (an object array)."""
    import pyarrow as pa

    if values.dtype == object:
        return pa.array(values.tolist(), type=pa.string())
    if np.issubdtype(values.dtype, np.integer):
        return pa.array(values, type=pa.int64())
    values = np.ascontiguousarray(values, dtype=np.float64)
    return pa.Array.from_buffers(pa.float64(), len(values), [None, pa.py_buffer(values)])


def _named(table: Any) -> Iterator[tuple[str, Any]]:
    return zip(table.schema.names, table.columns, strict=True)


def _csv_cells(column: Any, name: str, path: Path) -> Any:
    """A column as CSV cells (large_string; null where missing)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = _value_type(column.type)
    try:
        cells = pc.cast(column, pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise DataError(
            f"{path}: column {name!r} ({kind}) cannot be written to CSV: {first_line(error)}"
        ) from None
    if _never_quoted(kind):
        return cells
    needs = pc.match_substring_regex(cells, _NEEDS_QUOTES.pattern)
    if not pc.any(needs).as_py():
        return cells
    quote = pa.scalar('"', pa.large_string())
    doubled = pc.replace_substring(cells, '"', '""')
    quoted = pc.binary_join_element_wise(quote, doubled, quote, pa.scalar("", pa.large_string()))
    return pc.if_else(needs, quoted, cells)


def _never_quoted(kind: Any) -> bool:
    """Whether a type's text never holds a quote, a comma or a line break: numbers, booleans,
    dates and times (text, bytes and anything else are looked at)."""
    import pyarrow as pa

    types = pa.types
    return (
        types.is_integer(kind)
        or types.is_floating(kind)
        or types.is_decimal(kind)
        or types.is_boolean(kind)
        or types.is_temporal(kind)
        or types.is_null(kind)
    )


def _is_text(kind: Any) -> bool:
    """Text or bytes, of any layout: what a Parquet dictionary suits."""
    import pyarrow as pa

    types = pa.types
    return any(
        test(kind)
        for test in (
            types.is_string,
            types.is_large_string,
            types.is_string_view,
            types.is_binary,
            types.is_large_binary,
            types.is_binary_view,
        )
    )


def _quoted_name(name: str) -> str:
    return f'"{name.replace(chr(34), chr(34) * 2)}"' if _NEEDS_QUOTES.search(name) else name


# ---------------------------------------------------------------------- pandas
class _PandasFiles:
    """pandas' C parser a chunk at a time, and ``DataFrame.to_csv``: CSV only, for where
    pyarrow is not installed (the Docker image)."""

    def header(self, path: Path) -> list[str]:
        return _csv_header(path).names

    def batches(
        self,
        path: Path,
        columns: Sequence[str],
        folded: FoldedModel,
        batch_rows: int,
        na_values: Sequence[str],
    ) -> Iterator[_Batch]:
        import pandas as pd

        from mlops_lr.sources import categories_from_codes

        numeric = _numeric_names(folded)
        markers = numeric_markers(na_values)
        header = _csv_header(path).names
        # A generator: pandas opens the file (and reads its first rows) at the first next().
        frames = _csv_frames(path, header, numeric, batch_rows, na_values)
        records = None  # the second look, opened if a row may be short (see below)
        first = 0
        while True:
            try:
                frame = next(frames, None)
            except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as error:
                unreadable = f"cannot be read: {first_line(error)}"
                raise _second_look(path, folded, na_values, first, unreadable) from None
            if frame is None:
                return
            if not isinstance(frame.index, pd.RangeIndex):  # longer rows made an index
                longer = "rows have more fields than the header"
                raise _second_look(path, folded, na_values, first, longer)
            # pandas fills a short row's missing cells (pyarrow refuses the row): such a
            # row's last cell is empty, so only those rows need counting their fields.
            last = frame.iloc[:, -1]
            empty = np.flatnonzero(last.isna().to_numpy() | (last == "").to_numpy())
            if empty.size:
                records = records or _Counter(path)
                records.check(first + empty, len(header))
            inputs: dict[str, Any] = {
                name: frame[name].to_numpy(dtype=np.float64) for name in numeric
            }
            for name in folded.categorical_names:
                codes, distinct = pd.factorize(frame[name], use_na_sentinel=True)
                inputs[name] = categories_from_codes(
                    codes, list(distinct), markers, frozenset(na_values)
                )
            yield _Batch(frame[list(columns)], inputs, first, len(frame))
            first += len(frame)

    def csv_writer(self, temporary: Path) -> contextlib.AbstractContextManager[Write]:
        return _pandas_csv_writer(temporary)


def _csv_frames(
    path: Path,
    header: Sequence[str],
    numeric: Sequence[str],
    batch_rows: int,
    na_values: Sequence[str],
) -> Iterator[Any]:
    """A CSV's data rows in DataFrames of ``batch_rows`` rows (the last one fewer): pandas'
    C parser, which skips blank lines (see :func:`_nonblank_records`)."""
    import pandas as pd

    with pd.read_csv(
        path,
        chunksize=batch_rows,
        encoding="utf-8-sig",
        header=0,
        names=header,  # as the header says, even "" (pandas would say "Unnamed: 0")
        # Numbers as float64 (the markers are NaN, whatever a number marker's form); text as
        # written, every cell ("NA" too): see _csv_batches.
        dtype={**dict.fromkeys(header, str), **dict.fromkeys(numeric, "float64")},
        na_values={name: list(na_values) for name in numeric},
        keep_default_na=False,
    ) as chunks:
        yield from chunks


class _Counter:
    """Fields per data row of a CSV, read forward once (the second look, for pandas)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._records = enumerate(_records(path))

    def check(self, rows: np.ndarray, width: int) -> None:
        """Raise for the first of ``rows`` (data row indices, increasing, each past the
        previous call's) whose number of fields is not ``width``."""
        wanted = iter(rows.tolist())
        row = next(wanted, None)
        with contextlib.suppress(OSError, csv.Error):  # pandas read it
            for index, (line, fields) in self._records:
                if index != row:
                    continue
                if len(fields) != width:
                    raise DataError(
                        f"{self._path}: line {line} has {len(fields)} fields, the header {width}"
                    )
                row = next(wanted, None)
                if row is None:
                    return


@contextlib.contextmanager
def _pandas_csv_writer(temporary: Path) -> Iterator[Write]:
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        header = True

        def write(table: Any, predictions: np.ndarray, path: Path) -> None:
            nonlocal header
            table = table.assign(**{PREDICTION_COLUMN: predictions})
            table.to_csv(handle, header=header, index=False, lineterminator="\n")
            header = False

        yield write
