"""Tabular data of any size as a stream of batches: CSV or Parquet files (a file, a directory or
a glob), read with pyarrow a batch at a time, or an in-memory dataset cut into batches.

Every batch is validated where it is read (columns, numbers, finiteness), and the error names
the file and the row, so a bad row late in a large file stops the run with one clear line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlops_lr.data import PARQUET_SUFFIXES, Dataset, choose_features, fingerprint, resolve_paths
from mlops_lr.exceptions import DataError


@dataclass(frozen=True)
class Batch:
    """Rows ``X`` (float64, finite) and target ``y``; ``first_row`` is the 0-based index of
    the first one in its file or dataset."""

    X: np.ndarray
    y: np.ndarray
    first_row: int


@dataclass(frozen=True)
class FileSource:
    """CSV or Parquet files read in batches of ``batch_rows`` rows (CSV: about that many)."""

    paths: tuple[Path, ...]
    target: str
    feature_names: tuple[str, ...]
    batch_rows: int

    @property
    def target_name(self) -> str:
        return self.target

    @property
    def is_parquet(self) -> bool:
        return self.paths[0].suffix.lower() in PARQUET_SUFFIXES

    def batches(self) -> Iterator[Batch]:
        for path in self.paths:
            yield from read_file(path, self.target, self.feature_names, self.batch_rows)

    def first_row(self) -> tuple[np.ndarray, float] | None:
        """The first row of the first file (read alone), or None if there are no rows."""
        for path in self.paths:
            for batch in read_file(path, self.target, self.feature_names, 1):
                if len(batch.y):
                    return batch.X[0], float(batch.y[0])
        return None

    def fingerprint(self) -> str:
        """SHA-256 of the file list with each file's size and modification time (reading
        every byte would cost as much as the fit)."""
        digest = hashlib.sha256("\x1f".join([*self.feature_names, self.target]).encode())
        for path in self.paths:
            status = path.stat()
            digest.update(f"{path.resolve()}\x1f{status.st_size}\x1f{status.st_mtime_ns}".encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class MemorySource:
    """An in-memory dataset, served in batches of ``batch_rows`` rows."""

    dataset: Dataset
    batch_rows: int

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.dataset.feature_names

    @property
    def target_name(self) -> str:
        return self.dataset.target_name

    def first_row(self) -> tuple[np.ndarray, float] | None:
        if self.dataset.n_rows == 0:
            return None
        return self.dataset.X[0], float(self.dataset.y[0])

    def batches(self) -> Iterator[Batch]:
        X, y = self.dataset.X, self.dataset.y
        for start in range(0, len(y), self.batch_rows):
            stop = start + self.batch_rows
            yield Batch(X[start:stop], y[start:stop], start)

    def fingerprint(self) -> str:
        return fingerprint(self.dataset)


def file_source(
    spec: str,
    target: str,
    features: Sequence[str] | None,
    batch_rows: int,
    drop: Sequence[str] = (),
) -> FileSource:
    """The files ``spec`` names, with the features found in the first one (but ``drop``) when
    not given."""
    paths = resolve_paths(spec)
    columns = _columns(paths[0])
    if target not in columns:
        raise DataError(f"{paths[0]}: target column {target!r} not found; columns: {columns}")
    features = choose_features(columns, target, features, drop, str(paths[0]))
    if not features:
        raise DataError(
            f"{paths[0]}: no feature columns besides the target {target!r} (and dataset.drop)"
        )
    return FileSource(paths, target, tuple(features), batch_rows)


def _columns(path: Path) -> list[str]:
    import pyarrow as pa
    from pyarrow import csv, parquet

    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return list(parquet.read_schema(path).names)
        with csv.open_csv(path, read_options=csv.ReadOptions(block_size=1 << 16)) as reader:
            return list(reader.schema.names)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{path}: cannot be read: {_first_line(error)}") from None


def read_file(
    path: Path, target: str, feature_names: Sequence[str], batch_rows: int
) -> Iterator[Batch]:
    """The batches of one CSV or Parquet file, each validated.

    Raises
    ------
    DataError
        The file is unreadable or corrupt, lacks a column, changes its columns midway, or has a
        non-numeric, missing or infinite value (named with its column and row or line).
    """
    import pyarrow as pa
    from pyarrow import csv, parquet

    columns = [*feature_names, target]
    parquet_file = path.suffix.lower() in PARQUET_SUFFIXES
    # CSV line numbers: the header is line 1.
    line_offset = 0 if parquet_file else 2
    row = 0
    try:
        if parquet_file:
            handle = parquet.ParquetFile(path)
            missing = [name for name in columns if name not in handle.schema_arrow.names]
            if missing:
                raise DataError(f"{path}: column(s) {missing} not found")
            reader = handle.iter_batches(batch_size=batch_rows, columns=columns)
        else:
            reader = csv.open_csv(
                path,
                read_options=csv.ReadOptions(block_size=max(1 << 16, batch_rows * 100)),
                convert_options=csv.ConvertOptions(
                    include_columns=columns,
                    column_types={name: pa.float64() for name in columns},
                ),
            )
        for record_batch in reader:
            X, y = _arrays(record_batch, feature_names, target, path)
            _check_finite(X, y, [*feature_names, target], path, row + line_offset, parquet_file)
            yield Batch(X, y, row)
            row += len(y)
    except pa.ArrowException as error:
        raise DataError(f"{path}: cannot be read: {_first_line(error)}") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read: {error}") from None


def _arrays(record_batch, feature_names: Sequence[str], target: str, path: Path):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    def column(name: str) -> np.ndarray:
        values = record_batch.column(name)
        kind = values.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise DataError(f"{path}: column {name!r} is not numeric ({kind})")
        return values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)

    X = np.column_stack([column(name) for name in feature_names])
    return np.ascontiguousarray(X), column(target)


def _check_finite(
    X: np.ndarray, y: np.ndarray, names: list[str], path: Path, first: int, rows: bool
) -> None:
    if np.isfinite(X).all() and np.isfinite(y).all():
        return
    finite = np.isfinite(np.column_stack([X, y]))
    row, column = np.argwhere(~finite)[0]
    where = f"row {first + row + 1}" if rows else f"line {first + row}"
    raise DataError(f"{path}: column {names[column]!r} has a missing or infinite value on {where}")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else repr(error)
