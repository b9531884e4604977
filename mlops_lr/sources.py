"""Tabular data of any size as a stream of batches: CSV or Parquet files (a file, a directory or
a glob), read with pyarrow a batch at a time, or an in-memory dataset cut into batches.

Every batch is validated where it is read (columns, numbers, finiteness), and the error names
the file and the row, so a bad row late in a large file stops the run with one clear line.
Text columns arrive as :class:`pandas.Categorical` columns (each distinct text once). A
classifier's target is its labels: numbers that must be integers, or text (an object array, None
for missing), as the first rows of the first file show (the in-memory loader sees every row).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_lr.config import DEFAULT_NA_VALUES
from mlops_lr.data import (
    PREPROCESS_HINT,
    Dataset,
    choose_features,
    fingerprint,
    looks_categorical,
    numeric_words,
    text_words,
)
from mlops_lr.exceptions import DataError, first_line
from mlops_lr.files import (
    is_parquet,
    number_or_nan,
    numbers,
    numeric_markers,
    resolve_paths,
)
from mlops_lr.folded import category_text

# Rows of the first file read to decide which columns are categorical (dataset.categorical=auto).
SNIFF_ROWS = 10_000
# A classifier's labels (FileSource.labels): integers (read as float64) or text.
INTEGER_LABELS, TEXT_LABELS = "integer", "text"


@dataclass(frozen=True)
class Batch:
    """Rows of a table: the numeric features ``X`` (float64; NaN is missing, where the
    source allows it), the categorical ones as :class:`pandas.Categorical` columns of text
    (each distinct text once), the target ``y`` (float64, or a classifier's labels: numbers,
    or an object array of text); ``first_row`` is the 0-based index of the first row in its
    file or dataset. ``origin`` (the file's index and ``first_row``) names
    the batch across passes over the same source (None: a subset, or a Dask partition)."""

    X: np.ndarray
    text: tuple[pd.Categorical, ...]
    y: np.ndarray
    first_row: int
    feature_names: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    origin: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.y)

    def columns(self) -> dict[str, Any]:
        """The features by name, as :meth:`mlops_lr.folded.FoldedModel.predict` takes them."""
        numeric = [name for name in self.feature_names if name not in self.categorical]
        return {
            **dict(zip(numeric, self.X.T, strict=True)),
            **dict(zip(self.categorical, self.text, strict=True)),
        }

    def hashed_columns(self) -> list[tuple[np.ndarray, Any]]:
        """The features' 64-bit words as the hash split mixes them, in blocks with their
        positions in the table (see :func:`mlops_lr.data.hash_words_test_rows`): the numeric
        matrix at once, then each text column."""
        positions = {name: j for j, name in enumerate(self.feature_names)}
        numeric = [positions[name] for name in self.feature_names if name not in self.categorical]
        blocks: list[tuple[np.ndarray, Any]] = [
            (numeric_words(self.X), np.array(numeric, dtype=np.intp))
        ]
        for name, column in zip(self.categorical, self.text, strict=True):
            blocks.append((text_words(column), positions[name]))
        return blocks

    def rows(self, mask: np.ndarray) -> Batch:
        """The rows where ``mask`` is True."""
        return Batch(
            self.X[mask],
            tuple(column[mask] for column in self.text),
            self.y[mask],
            self.first_row,
            self.feature_names,
            self.categorical,
        )

    def head(self, n: int) -> pd.DataFrame:
        """The first ``n`` rows as a table (text, NaN for missing), in feature order."""
        columns = self.columns()
        return pd.DataFrame({name: columns[name][:n] for name in self.feature_names})


@dataclass(frozen=True)
class FileSource:
    """CSV or Parquet files read in batches of ``batch_rows`` rows (CSV: about that many).

    ``categorical`` features are read as text; ``allow_missing``: numeric features may be
    missing (NaN), as preprocessing fills them; ``drop_missing_target``: rows without a
    target are left out rather than an error; ``labels``: the target holds a classifier's
    labels, :data:`INTEGER_LABELS` or :data:`TEXT_LABELS` (None: a regressor's numbers)."""

    paths: tuple[Path, ...]
    target: str
    feature_names: tuple[str, ...]
    batch_rows: int
    categorical: tuple[str, ...] = ()
    allow_missing: bool = False
    drop_missing_target: bool = False
    na_values: tuple[str, ...] = DEFAULT_NA_VALUES
    labels: str | None = None

    @property
    def target_name(self) -> str:
        return self.target

    @property
    def numeric_names(self) -> tuple[str, ...]:
        return tuple(name for name in self.feature_names if name not in self.categorical)

    @property
    def name(self) -> str:
        """The file, or the folder of the files, as messages name it."""
        return str(self.paths[0].parent if len(self.paths) > 1 else self.paths[0])

    @property
    def is_parquet(self) -> bool:
        return is_parquet(self.paths[0])

    def batches(self) -> Iterator[Batch]:
        for part, path in enumerate(self.paths):
            yield from read_file(path, self, part=part)

    def batch_calls(self) -> Iterator[Callable[[], Batch | None]]:
        """The batches as calls that finish reading them (see :func:`file_batches`)."""
        for part, path in enumerate(self.paths):
            yield from file_batches(path, self, part=part)

    def first_row(self) -> Batch | None:
        """The first row of the data (read alone), or None if there are no rows."""
        for path in self.paths:
            for batch in read_file(path, self, batch_rows=1):
                if len(batch):
                    return batch
        return None

    def fingerprint(self) -> str:
        """SHA-256 of the file list with each file's size and modification time (reading
        every byte would cost as much as the fit), and of the reading settings."""
        digest = hashlib.sha256("\x1f".join([*self.feature_names, self.target]).encode())
        if self.categorical or self.allow_missing or self.drop_missing_target:
            settings = [*self.categorical, str(self.allow_missing), str(self.drop_missing_target)]
            digest.update("\x1e".join([*settings, *self.na_values]).encode())
        if self.labels is not None:
            digest.update(f"\x1dlabels:{self.labels}".encode())
        for path in self.paths:
            status = path.stat()
            digest.update(f"{path.resolve()}\x1f{status.st_size}\x1f{status.st_mtime_ns}".encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class MemorySource:
    """An in-memory dataset of numeric features, served in batches of ``batch_rows`` rows."""

    dataset: Dataset
    batch_rows: int

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.dataset.feature_names

    @property
    def numeric_names(self) -> tuple[str, ...]:
        return self.dataset.feature_names

    @property
    def categorical(self) -> tuple[str, ...]:
        return ()

    @property
    def target_name(self) -> str:
        return self.dataset.target_name

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def labels(self) -> str | None:
        """A classifier's labels (as :func:`mlops_lr.data.class_labels` read them), or None."""
        kind = self.dataset.y.dtype.kind
        return TEXT_LABELS if kind == "O" else INTEGER_LABELS if kind in "iu" else None

    def first_row(self) -> Batch | None:
        if self.dataset.n_rows == 0:
            return None
        return next(MemorySource(self.dataset, 1).batches())

    def batches(self) -> Iterator[Batch]:
        X, y = self.dataset.X, self.dataset.y
        for start in range(0, len(y), self.batch_rows):
            stop = start + self.batch_rows
            yield Batch(
                X[start:stop], (), y[start:stop], start, self.feature_names, origin=(0, start)
            )

    def batch_calls(self) -> Iterator[Callable[[], Batch | None]]:
        for batch in self.batches():
            yield partial(_itself, batch)

    def fingerprint(self) -> str:
        return fingerprint(self.dataset)

    # Built-in datasets are complete and numeric.
    allow_missing = False
    drop_missing_target = False


def file_source(
    spec: str,
    target: str,
    features: Sequence[str] | None,
    batch_rows: int,
    drop: Sequence[str] = (),
    categorical: str | Sequence[str] = "auto",
    allow_missing: bool = False,
    drop_missing_target: bool = False,
    na_values: Sequence[str] = DEFAULT_NA_VALUES,
    classes: bool = False,
) -> FileSource:
    """The files ``spec`` names, with the features found in the first one (but ``drop``) when
    not given. ``categorical="auto"`` takes the features whose values in the first
    :data:`SNIFF_ROWS` rows of the first file are mostly not numbers (the in-memory rule,
    which sees every row); ``classes`` reads the target as labels, text by the same rule."""
    paths = resolve_paths(spec)
    columns = _columns(paths[0])
    if target not in columns:
        raise DataError(f"{paths[0]}: target column {target!r} not found; columns: {columns}")
    features = choose_features(columns, target, features, drop, str(paths[0]))
    if not features:
        raise DataError(
            f"{paths[0]}: no feature columns besides the target {target!r} (and dataset.drop)"
        )
    if isinstance(categorical, str):
        categorical = _sniff_categorical(paths[0], features, tuple(na_values))
    absent = [name for name in categorical if name not in features]
    if absent:
        raise DataError(f"{spec}: categorical column(s) {absent} are not features")
    labels = None
    if classes:
        text = _sniff_categorical(paths[0], [target], tuple(na_values))
        labels = TEXT_LABELS if text else INTEGER_LABELS
    return FileSource(
        paths,
        target,
        tuple(features),
        batch_rows,
        tuple(name for name in features if name in categorical),
        allow_missing,
        drop_missing_target,
        tuple(na_values),
        labels,
    )


def _columns(path: Path) -> list[str]:
    import pyarrow as pa
    from pyarrow import csv, parquet

    try:
        if is_parquet(path):
            return list(parquet.read_schema(path).names)
        with csv.open_csv(path, read_options=csv.ReadOptions(block_size=1 << 16)) as reader:
            return list(reader.schema.names)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{path}: cannot be read: {first_line(error)}") from None


def _sniff_categorical(
    path: Path, features: Sequence[str], na_values: tuple[str, ...]
) -> tuple[str, ...]:
    """The features whose first values in ``path`` are mostly not numbers (text or
    booleans)."""
    import pyarrow as pa
    from pyarrow import csv, parquet

    try:
        if is_parquet(path):
            batches = parquet.ParquetFile(path).iter_batches(SNIFF_ROWS, columns=list(features))
            sample = next(batches, None)
        else:
            options = csv.ConvertOptions(
                include_columns=list(features),
                column_types=dict.fromkeys(features, pa.string()),
                null_values=list(na_values),
                strings_can_be_null=True,
            )
            with csv.open_csv(path, convert_options=options) as reader:
                sample = next(iter(reader), None)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{path}: cannot be read: {first_line(error)}") from None
    if sample is None:
        return ()
    frame = sample.to_pandas(ignore_metadata=True).head(SNIFF_ROWS)
    return tuple(name for name in features if looks_categorical(frame[name]))


def read_file(
    path: Path, source: FileSource, batch_rows: int | None = None, part: int = 0
) -> Iterator[Batch]:
    """The batches of one CSV or Parquet file of ``source``, each validated.

    Raises
    ------
    DataError
        The file is unreadable or corrupt, lacks a column, changes its columns midway, has a
        non-numeric value in a numeric column, a missing target, or a missing (where not
        allowed) or infinite value; named with its column and row or line.
    """
    for finish in file_batches(path, source, batch_rows, part):
        batch = finish()
        if batch is not None:
            yield batch


def file_batches(
    path: Path, source: FileSource, batch_rows: int | None = None, part: int = 0
) -> Iterator[Callable[[], Batch | None]]:
    """:func:`read_file`'s batches as calls that convert and validate what was read (None
    for no rows left): a runner makes the calls on its threads, so that only the reading
    itself stays in order."""
    import pyarrow as pa
    from pyarrow import csv, parquet

    batch_rows = batch_rows or source.batch_rows
    columns = [*source.feature_names, source.target]
    text_target = source.labels == TEXT_LABELS
    numeric = [*source.numeric_names, *([] if text_target else [source.target])]
    texts = [*source.categorical, *([source.target] if text_target else [])]
    parquet_file = is_parquet(path)
    # CSV line numbers: the header is line 1.
    line_offset = 0 if parquet_file else 2
    row = 0
    try:
        if parquet_file:
            # Column chunks read in 1 MB buffers as they are decoded, not whole row groups
            # up front: 40 MB less resident for 1 M-row row groups, and faster here.
            handle = parquet.ParquetFile(
                path,
                read_dictionary=texts,
                pre_buffer=False,
                buffer_size=1 << 20,
            )
            missing = [name for name in columns if name not in handle.schema_arrow.names]
            if missing:
                raise DataError(f"{path}: column(s) {missing} not found")
            reader = handle.iter_batches(batch_size=batch_rows, columns=columns)
        else:
            text = pa.dictionary(pa.int32(), pa.string())
            reader = csv.open_csv(
                path,
                read_options=csv.ReadOptions(block_size=max(1 << 16, batch_rows * 100)),
                convert_options=csv.ConvertOptions(
                    include_columns=columns,
                    column_types={
                        **dict.fromkeys(numeric, pa.float64()),
                        **dict.fromkeys(texts, text),
                    },
                    null_values=list(source.na_values),
                    strings_can_be_null=True,
                ),
            )
        for record_batch in reader:
            where = _locator(path, row + line_offset, parquet_file)
            yield partial(_finished, record_batch, source, path, (part, row), where)
            row += record_batch.num_rows
    except pa.ArrowException as error:
        raise DataError(f"{path}: cannot be read: {first_line(error)}") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read: {error}") from None


def _finished(
    record_batch: Any, source: FileSource, path: Path, origin: tuple[int, int], where: Any
) -> Batch | None:
    import pyarrow as pa

    try:
        batch = replace(_batch(record_batch, source, path, origin[1]), origin=origin)
    except pa.ArrowException as error:
        raise DataError(f"{path}: cannot be read: {first_line(error)}") from None
    batch = _checked(batch, source, path, where)
    return batch if len(batch) else None


def _batch(record_batch: Any, source: FileSource, path: Path, first_row: int) -> Batch:
    markers = numeric_markers(source.na_values) if not is_parquet(path) else np.empty(0)
    hint = " (list it in dataset.categorical if it holds categories)"

    def number(name: str) -> np.ndarray:
        return numbers(record_batch.column(name), name, path, markers, hint)

    # Column-major: each feature contiguous, as the per-column work (fills, sums) reads it.
    columns = [number(name) for name in source.numeric_names]
    X = np.asarray(columns, dtype=np.float64).reshape(len(columns), record_batch.num_rows).T
    text = tuple(
        categories(record_batch.column(name), missing=markers) for name in source.categorical
    )
    if source.labels == TEXT_LABELS:
        y = label_texts(categories(record_batch.column(source.target), missing=markers))
    else:
        y = number(source.target)
    return Batch(
        X,
        text,
        y,
        first_row,
        source.feature_names,
        source.categorical,
    )


def frame_batch(frame: pd.DataFrame, source: FileSource | MemorySource, name: str) -> Batch:
    """A pandas partition of ``source``'s columns as a validated batch (errors count rows
    from the partition's first, as a partition does not know its file line)."""
    numeric = frame[list(source.numeric_names)].to_numpy(dtype=np.float64)
    target = frame[source.target_name]
    batch = Batch(
        numeric,
        tuple(categories(frame[column]) for column in source.categorical),
        label_texts(categories(target))
        if source.labels == TEXT_LABELS
        else target.to_numpy(dtype=np.float64),
        0,
        source.feature_names,
        source.categorical,
    )
    return _checked(batch, source, name, lambda row: f"row {row + 1} of a partition")


def categories(
    values: Any, missing: np.ndarray | None = None, missing_texts: Collection[str] = ()
) -> pd.Categorical:
    """An Arrow (or pandas) column as a :class:`pandas.Categorical` of the texts its values
    are known by (:func:`mlops_lr.folded.category_text`: ``2007`` as ``"2007"``, booleans as
    ``"True"``/``"False"``), each distinct value converted once; a text that reads as one of
    the numbers ``missing``, or is one of ``missing_texts``, is missing (pandas'
    ``na_values`` rule)."""
    import pyarrow as pa

    array = (
        pa.array(values, from_pandas=True)
        if not isinstance(values, (pa.Array, pa.ChunkedArray))
        else values
    )
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not pa.types.is_dictionary(array.type):
        array = array.dictionary_encode()
    codes = array.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return categories_from_codes(codes, array.dictionary.to_pylist(), missing, missing_texts)


def categories_from_codes(
    codes: np.ndarray,
    distinct: Sequence[Any],
    missing: np.ndarray | None = None,
    missing_texts: Collection[str] = (),
) -> pd.Categorical:
    """:func:`categories` of a column given as ``codes`` into its ``distinct`` values (-1:
    missing), as a dictionary array or :func:`pandas.factorize` gives it; needs no pyarrow."""
    texts = [category_text(value) for value in distinct]
    if missing_texts:
        texts = [None if text in missing_texts else text for text in texts]
    if missing is not None and missing.size:
        texts = [None if _number_in(text, missing) else text for text in texts]
    inner, uniques = pd.factorize(np.array(texts, dtype=object), use_na_sentinel=True)
    if len(uniques) != len(texts):  # 1 and 1.0, or a null in the dictionary: merge them
        codes = np.append(inner, -1)[codes]
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(uniques), dtype=object))


def label_texts(column: pd.Categorical) -> np.ndarray:
    """A text target's labels as the in-memory loader holds them: an object array of text,
    None where missing."""
    return np.append(np.asarray(column.categories, dtype=object), None)[column.codes]


def _number_in(text: str | None, values: np.ndarray) -> bool:
    return bool(np.isin(number_or_nan(text), values))


def _itself(batch: Batch) -> Batch:
    return batch


def _locator(path: Path, first: int, rows: bool):  # type: ignore[no-untyped-def]
    def where(row: int) -> str:
        return f"row {first + row + 1}" if rows else f"line {first + row}"

    return where


def _checked(
    batch: Batch, source: FileSource | MemorySource, path: Path | str, where: Any
) -> Batch:
    """``batch`` validated: finite targets (rows without one dropped when the source says
    so; a classifier's numbers must be integers), finite numbers (NaN allowed where the
    source allows missing values)."""
    kept = np.arange(len(batch))
    if source.drop_missing_target:
        present = ~pd.isna(batch.y)
        if not present.all():  # the same rows on every pass: still the same batch
            batch, kept = replace(batch.rows(present), origin=batch.origin), kept[present]
    if source.labels == TEXT_LABELS:
        bad_y = pd.isna(batch.y)
    else:
        bad_y = ~np.isfinite(batch.y)
        if source.labels is not None and not bad_y.any():
            fractional = np.flatnonzero(batch.y != np.round(batch.y))
            if fractional.size:
                row = int(fractional[0])
                raise DataError(
                    f"{path}: target column {source.target_name!r} holds numbers, not classes "
                    f"({float(batch.y[row])!r} on {where(int(kept[row]))}): a classifier needs "
                    "text or integer classes"
                )
    bad_X = np.isinf(batch.X) if source.allow_missing else ~np.isfinite(batch.X)
    if not (bad_y.any() or bad_X.any()):
        return batch
    names = [*source.numeric_names, source.target_name]
    row, column = np.argwhere(np.column_stack([bad_X, bad_y]))[0]
    hint = ""
    if column < len(source.numeric_names) and np.isnan(batch.X[row, column]):
        hint = f" ({PREPROCESS_HINT})"
    raise DataError(
        f"{path}: column {names[column]!r} has a missing or infinite value on "
        f"{where(int(kept[row]))}{hint}"
    )
