"""Which CSV or Parquet files a data spec names, and pyarrow columns as numbers: what reading
a table needs before pandas does (file prediction with a numeric model never imports pandas,
which costs a quarter of a second at start-up)."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlops_lr.exceptions import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".txt")


def is_parquet(path: Path) -> bool:
    """Whether ``path`` is read as Parquet (by its suffix), else as CSV."""
    return path.suffix.lower() in PARQUET_SUFFIXES


def resolve_paths(spec: str) -> tuple[Path, ...]:
    """The CSV or Parquet files that ``spec`` names: a file, a directory (every such file in
    it, recursively) or a glob pattern; sorted, all of one kind.

    Raises
    ------
    DataError
        Nothing matches, or CSV and Parquet files are mixed.
    """
    path = Path(spec)
    suffixes = CSV_SUFFIXES + PARQUET_SUFFIXES
    if path.is_file():
        candidates = [path]
    elif path.is_dir():
        candidates = [p for p in path.rglob("*") if p.is_file()]
    else:
        candidates = [Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file()]
    files = sorted(p for p in candidates if p.suffix.lower() in suffixes)
    if not files:
        raise DataError(f"no CSV or Parquet file matches {spec}")
    kinds = {is_parquet(p) for p in files}
    if len(kinds) > 1:
        raise DataError(f"{spec} mixes CSV and Parquet files; point at one kind")
    return tuple(files)


def numbers(
    values: Any, name: str, path: Path | str, markers: np.ndarray, hint: str = ""
) -> np.ndarray:
    """An Arrow column of numbers (integers, floats or booleans) as float64, NaN where
    missing: null, or equal to one of the numbers ``markers`` (pandas' ``na_values`` rule: a
    marker that is a number matches it however written).

    Raises
    ------
    DataError
        The column holds something else (text, dates…); ``hint`` ends the message.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = values.type
    if pa.types.is_null(kind):  # what pandas writes for a column of None: all missing
        return np.full(len(values), np.nan)
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise DataError(f"{path}: column {name!r} is not numeric ({kind}){hint}")
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    # Integers rounded to the nearest float64, as numpy does; no copy of a float64 column
    # without nulls. Read through the buffer: to_numpy() would import pandas.
    values = pc.cast(values, pa.float64(), safe=False)
    if values.null_count:
        values = pc.fill_null(values, np.nan)
    result = np.frombuffer(
        values.buffers()[1], dtype=np.float64, count=len(values), offset=8 * values.offset
    )
    if markers.size:
        result = np.where(np.isin(result, markers), np.nan, result)
    return result


def numeric_markers(na_values: Sequence[str]) -> np.ndarray:
    """The ``na_values`` that are numbers, as floats."""
    return np.array([v for v in map(number_or_nan, na_values) if not np.isnan(v)])


def number_or_nan(text: str | None) -> float:
    """``text`` as a number (Python's ``float``), or NaN."""
    try:
        return float(text) if text is not None else float("nan")
    except ValueError:
        return float("nan")
