"""Loading, validating, fingerprinting and splitting tabular data.

Every loader returns a :class:`Dataset`: a typed feature table (float64 numeric columns, where
NaN means missing, and categorical columns of text or None) and a target: finite float64 for a
regressor, class labels (text, or integers) for a classifier; or it raises a
:class:`~mlops_lr.exceptions.DataError` whose message names the file, column and line at fault.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_lr.config import (
    DEFAULT_NA_VALUES,
    BreastCancerDatasetConfig,
    CaliforniaDatasetConfig,
    DatasetConfig,
    DiabetesDatasetConfig,
    TableDatasetConfig,
)
from mlops_lr.exceptions import DataError
from mlops_lr.files import CSV_SUFFIXES, PARQUET_SUFFIXES, resolve_paths
from mlops_lr.folded import category_text

log = logging.getLogger(__name__)

# Fewer test rows make R² undefined; fewer training rows make the fit meaningless.
MIN_SPLIT_ROWS = 2
# More distinct values than this in a classifier's target: it holds measurements, not classes.
MAX_CLASSES = 100
# What a text column gets in an error when the model cannot take it.
PREPROCESS_HINT = "preprocess=standard imputes missing values and one-hot encodes text columns"


@dataclass(frozen=True)
class Dataset:
    """Feature table ``features`` (n_rows, n_features), target ``y`` (n_rows,) and names.

    ``y`` is float64 for a regressor; for a classifier its labels, an int64 array (integer
    classes) or an object array of text. ``features`` has float64 columns (NaN: missing)
    and, for the names in ``categorical``, object columns of text (None: missing). Its index
    labels are the rows' positions in the source, which is how errors name a line.
    """

    features: pd.DataFrame
    y: np.ndarray
    target_name: str
    name: str
    categorical: tuple[str, ...] = ()
    # Rows left out because their target was missing (dataset.missing_target=drop).
    dropped_rows: int = 0

    @classmethod
    def from_arrays(
        cls, X: np.ndarray, y: np.ndarray, feature_names: Sequence[str], target: str, name: str
    ) -> Dataset:
        """A numeric dataset from a matrix (as validated loaders produce)."""
        frame = pd.DataFrame(np.asarray(X, dtype=np.float64), columns=list(feature_names))
        return cls(frame, np.asarray(y, dtype=np.float64), target, name)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(str(name) for name in self.features.columns)

    @property
    def n_rows(self) -> int:
        return len(self.features)

    @property
    def n_features(self) -> int:
        return self.features.shape[1]

    @cached_property
    def X(self) -> np.ndarray:
        """The features as a C-contiguous float64 matrix (NaN where missing); only for a
        dataset without categorical columns."""
        if self.categorical:
            raise ValueError(f"{self.name} has categorical columns {list(self.categorical)}")
        return np.ascontiguousarray(self.features.to_numpy(dtype=np.float64))


@dataclass(frozen=True)
class Split:
    """A train/test split of a :class:`Dataset`: feature tables and targets."""

    train: pd.DataFrame
    test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray

    @cached_property
    def X_train(self) -> np.ndarray:
        """The training features as a float64 matrix (numeric tables only)."""
        return np.ascontiguousarray(self.train.to_numpy(dtype=np.float64))

    @cached_property
    def X_test(self) -> np.ndarray:
        """The test features as a float64 matrix (numeric tables only)."""
        return np.ascontiguousarray(self.test.to_numpy(dtype=np.float64))


def load_dataset(
    config: DatasetConfig, preprocessed: bool = False, classes: bool = False
) -> Dataset:
    """Load the dataset that ``config`` describes.

    ``preprocessed`` says whether the model imputes and encodes its inputs (``preprocess``
    other than ``none``): then categorical columns and missing feature values are kept;
    otherwise each is an error that names the column and its first line. ``classes`` reads
    the target as a classifier's labels (:func:`class_labels`), else as numbers.
    """
    if isinstance(config, CaliforniaDatasetConfig):
        dataset = load_california(config.data_home, config.download_if_missing)
        return dataset if not classes else _with_labels(dataset)
    if isinstance(config, (DiabetesDatasetConfig, BreastCancerDatasetConfig)):
        return _bundled(config.name, classes)
    if isinstance(config, TableDatasetConfig):
        dataset = load_table(
            config.path,
            config.target,
            config.features,
            config.na_values,
            config.missing_target,
            config.drop,
            config.categorical,
            preprocessed,
            classes,
        )
        if dataset.dropped_rows:
            log.info(
                "Dropped %d row(s) whose target %r is missing (dataset.missing_target=drop)",
                dataset.dropped_rows,
                dataset.target_name,
            )
        return dataset
    raise TypeError(f"no loader for {type(config).__name__}")


def _bundled(name: str, classes: bool) -> Dataset:
    """One of scikit-learn's bundled data sets: diabetes, or breast cancer (its target, the
    diagnosis, as the names ``benign``/``malignant``)."""
    # Deferred: streaming needs no scikit-learn.
    from sklearn.datasets import load_breast_cancer, load_diabetes

    if name == "diabetes":
        frame, target = load_diabetes(as_frame=True).frame, "target"
    else:
        bunch = load_breast_cancer(as_frame=True)
        target = "diagnosis"
        names = np.asarray(bunch.target_names, dtype=object)
        frame = bunch.data.assign(**{target: names[bunch.target.to_numpy()]})
    return _from_frame(frame, target, None, source=name, first_line=None, classes=classes)


def _with_labels(dataset: Dataset) -> Dataset:
    """``dataset`` with its numeric target read as class labels (an error unless they are)."""
    where = _locator(dataset.features, None)
    y = class_labels(pd.Series(dataset.y), dataset.target_name, dataset.name, where)
    return replace(dataset, y=y)


def class_labels(
    column: pd.Series, name: str, source: str, where: Callable[[int], str]
) -> np.ndarray:
    """A classifier's target column as labels: int64 when it holds integers (as numbers),
    else an object array of text.

    Raises
    ------
    DataError
        A missing value, numbers that are not integers (a regression target), or more than
        :data:`MAX_CLASSES` distinct values.
    """
    missing = np.flatnonzero(column.isna().to_numpy())
    if missing.size:
        raise DataError(
            f"{source}: target column {name!r} has {missing.size} missing value(s), first on "
            f"{where(int(missing[0]))} (dataset.missing_target=drop leaves those rows out)"
        )
    if pd.api.types.is_integer_dtype(column):
        values = column.to_numpy()
        if values.dtype == np.uint64 and values.max() > np.iinfo(np.int64).max:
            row = int(np.argmax(values > np.iinfo(np.int64).max))
            raise DataError(
                f"{source}: target column {name!r} has a class beyond int64 ({values[row]} on "
                f"{where(row)}): list the classes as text"
            )
        labels = values.astype(np.int64)
    elif pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=np.float64)
        # Integers as floats (a column with gaps, read by pandas) are exact up to 2**53 only.
        fractional = np.flatnonzero(
            ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) > 2.0**53)
        )
        if fractional.size:
            row = int(fractional[0])
            raise DataError(
                f"{source}: target column {name!r} holds numbers, not classes "
                f"({float(values[row])!r} on {where(row)}): a classifier needs text or integer "
                "classes (integers as floats up to 2^53); use a regression model "
                "(model=linear_regression, ridge, lasso, elastic_net)"
            )
        labels = values.astype(np.int64)
    else:
        labels = _categorical_column(column)
    count = len(pd.unique(labels))
    if count > MAX_CLASSES:
        raise DataError(
            f"{source}: target column {name!r} has {count} distinct values, more than a "
            f"classifier's {MAX_CLASSES} classes: is it a measurement? use a regression model"
        )
    return labels


def load_california(data_home: str | None = None, download_if_missing: bool = True) -> Dataset:
    """Load California Housing from scikit-learn's data home (``$SCIKIT_LEARN_DATA``).

    Raises
    ------
    DataError
        The data is not in the data home and cannot (or may not) be downloaded.
    """
    from sklearn.datasets import fetch_california_housing

    try:
        bunch = fetch_california_housing(
            data_home=data_home, download_if_missing=download_if_missing, as_frame=True
        )
    except OSError as error:  # not cached and download disabled, or the download failed
        # Not get_data_home(): it creates the directory, which may be what just failed.
        home = os.path.expanduser(
            data_home or os.environ.get("SCIKIT_LEARN_DATA", "~/scikit_learn_data")
        )
        why = f"could not be downloaded ({error})" if download_if_missing else "downloads are off"
        raise DataError(
            f"California Housing is not in the scikit-learn data home {home} and {why}: "
            "set SCIKIT_LEARN_DATA to a data home that holds it, or use dataset=diabetes"
        ) from None
    return _from_frame(bunch.frame, "MedHouseVal", None, source="california", first_line=None)


def load_table(
    path: str | Path,
    target: str,
    features: list[str] | None = None,
    na_values: Sequence[str] = DEFAULT_NA_VALUES,
    missing_target: str = "error",
    drop: Sequence[str] = (),
    categorical: str | Sequence[str] = "auto",
    preprocessed: bool = False,
    classes: bool = False,
) -> Dataset:
    """Load a CSV or Parquet file with a header row, or every such file of a directory
    (recursively) or of a glob pattern, one after the other in sorted path order.

    Parameters
    ----------
    path : str or Path
        ``.csv``/``.txt`` (comma separated, UTF-8, a byte-order mark is fine) or
        ``.parquet``/``.pq`` files; a directory or a glob of one kind of them.
    target : str
        Name of the column to predict.
    features : list of str, optional
        Feature columns, matched by name in any order; default: every column but ``target``
        in the first file (the same names are then read from every other file).
    na_values : sequence of str, default=DEFAULT_NA_VALUES
        The CSV cells that mean "missing" (exactly these; Parquet has its own nulls).
    missing_target : {"error", "drop"}, default="error"
        A row whose target is missing: an error naming the column, the count and the first
        line, or left out (counted in ``Dataset.dropped_rows``).
    drop : sequence of str, default=()
        Columns left out of the default features (each must exist).
    categorical : "auto" or sequence of str, default="auto"
        The categorical features: those listed (read as text, so ``2007`` stays ``"2007"``),
        or every feature column whose values are mostly not numbers (text, booleans). A column
        of mostly numbers with some text is a numeric column with bad cells: an error.
    preprocessed : bool, default=False
        Keep categorical columns and missing feature values (the model encodes and imputes
        them); otherwise either is an error.
    classes : bool, default=False
        Read the target as a classifier's labels (:func:`class_labels`), else as numbers.

    Raises
    ------
    DataError
        No such file, no file matches, the kinds are mixed, or a file fails validation (the
        message names that file, its column and line).
    """
    spec = str(path)
    single = Path(spec)
    if not single.is_file() and not single.is_dir() and not any(c in spec for c in "*?["):
        raise DataError(f"dataset file not found: {single}")
    files = (single,) if single.is_file() else resolve_paths(spec)
    listed = () if isinstance(categorical, str) else tuple(categorical)
    raw = [(file, *_read_file(file, na_values, listed)) for file in files]
    first, frame, _ = raw[0]
    columns = [str(column) for column in frame.columns]
    if target not in columns:
        raise DataError(f"{first}: target column {target!r} not found; columns: {columns}")
    features = choose_features(columns, target, features, drop, str(first))
    if isinstance(categorical, str):  # "auto": decided on all files, so every part agrees
        present = [f for f in features if all(f in part.columns for _, part, _ in raw)]
        whole = pd.concat([part[present] for _, part, _ in raw], ignore_index=True)
        listed = tuple(name for name in present if looks_categorical(whole[name]))
        # A CSV category pandas parsed as something else ("true" as a bool, "07" as 7) is
        # read again as the text prediction reads.
        raw = [
            (file, *_read_file(file, na_values, listed))
            if first_line and any(not pd.api.types.is_string_dtype(part[n]) for n in listed)
            else (file, part, first_line)
            for file, part, first_line in raw
        ]
    absent = [name for name in listed if name not in features]
    if absent:
        raise DataError(f"{spec}: categorical column(s) {absent} are not features")
    single_file = len(raw) == 1
    parts = [
        _from_frame(
            part,
            target,
            features,
            str(file),
            first_line,
            missing_target,
            drop if file == first else (),
            require_rows=single_file,
            categorical=listed,
            preprocessed=preprocessed,
            classes=classes,
        )
        for file, part, first_line in raw
    ]
    if not sum(part.n_rows for part in parts):  # a part may be empty, the whole may not
        dropped = any(part.dropped_rows for part in parts)
        raise DataError(
            f"{spec}: every row's target {target!r} is missing"
            if dropped
            else f"{spec}: no data rows in any file"
        )
    if single_file:
        return parts[0]
    y = np.concatenate([part.y for part in parts])
    if classes and any(part.y.dtype == object for part in parts):
        # Integer labels in one file and text in another: all are the classes' texts.
        y = np.array([category_text(label) for label in y], dtype=object)
    return Dataset(
        features=pd.concat([part.features for part in parts], ignore_index=True),
        y=y,
        target_name=target,
        name=spec,
        categorical=listed,
        dropped_rows=sum(part.dropped_rows for part in parts),
    )


def choose_features(
    columns: Sequence[str],
    target: str,
    features: Sequence[str] | None,
    drop: Sequence[str],
    source: str,
) -> list[str]:
    """The feature columns: ``features`` as given, else every column but the target and
    ``drop``, each of which must exist."""
    absent = [name for name in drop if name not in columns]
    if absent:
        raise DataError(f"{source}: column(s) {absent} to drop not found; columns: {list(columns)}")
    if features is None:
        return [name for name in columns if name != target and name not in drop]
    return list(features)


def _read_file(
    path: Path, na_values: Sequence[str], categorical: Sequence[str]
) -> tuple[pd.DataFrame, int | None]:
    """One CSV or Parquet file as read (``categorical`` columns of a CSV as text), and the
    file line of its first row (None for Parquet: rows are counted instead)."""
    suffix = path.suffix.lower()
    if suffix not in PARQUET_SUFFIXES + CSV_SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    first_line = None if suffix in PARQUET_SUFFIXES else 2
    try:
        if first_line is None:
            from pyarrow import parquet  # deferred: CSV needs no pyarrow

            # The file's own columns, as the streaming engines see them: a stored pandas index
            # is a column (or nothing, for a range), and the rows count from 0.
            frame = parquet.read_table(path).to_pandas(ignore_metadata=True)
        else:
            # pandas 3 parses floats correctly rounded by default (the hash split relies on it).
            frame = pd.read_csv(
                path,
                encoding="utf-8-sig",
                low_memory=False,
                na_values=list(na_values),
                keep_default_na=False,
                dtype=dict.fromkeys(categorical, str),
            )
    except ImportError as error:  # pandas needs pyarrow for Parquet
        raise DataError(
            f"{path}: reading Parquet needs pyarrow (pip install 'mlops-lr[parquet]'): {error}"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as error:
        lines = str(error).strip().splitlines()
        raise DataError(f"{path}: cannot be read: {lines[0] if lines else error!r}") from None
    if not isinstance(frame.index, pd.RangeIndex):  # pandas took the first field as an index
        raise DataError(f"{path}: rows have more fields than the header")
    return frame.set_axis([str(column) for column in frame.columns], axis=1), first_line


def looks_categorical(column: pd.Series) -> bool:
    """A column of categories: not numeric, and fewer than half of its values parse as
    numbers (more is a numeric column with bad cells, which must be an error, not a
    category)."""
    if pd.api.types.is_bool_dtype(column):
        return True
    if pd.api.types.is_numeric_dtype(column):
        return False
    values = column.dropna()
    return 2 * int(pd.to_numeric(values, errors="coerce").notna().sum()) < len(values)


def _from_frame(
    frame: pd.DataFrame,
    target: str,
    features: list[str] | None,
    source: str,
    first_line: int | None,
    missing_target: str = "error",
    drop: Sequence[str] = (),
    require_rows: bool = True,
    categorical: Sequence[str] = (),
    preprocessed: bool = False,
    classes: bool = False,
) -> Dataset:
    """Validate a frame and turn it into a :class:`Dataset` named after ``source`` (its target
    as class labels when ``classes``).

    ``first_line`` is the file line of the first data row (2 for a CSV with a header), used to
    point at bad values; ``None`` reports 1-based row numbers instead. Rows left out by
    ``missing_target="drop"`` keep their line numbers in later messages.
    """
    columns = [str(column) for column in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    if not columns:
        raise DataError(f"{source}: no columns")
    if target not in columns:
        raise DataError(f"{source}: target column {target!r} not found; columns: {columns}")
    features = choose_features(columns, target, features, drop, source)
    missing = [name for name in features if name not in columns]
    if missing:
        raise DataError(f"{source}: feature column(s) {missing} not found; columns: {columns}")
    if not features:
        raise DataError(
            f"{source}: no feature columns besides the target {target!r} (and dataset.drop)"
        )
    if len(frame) == 0 and require_rows:
        raise DataError(f"{source}: no data rows")
    dropped = 0
    if missing_target == "drop":
        # Text in the target is still an error (numeric_matrix names it); missing is dropped.
        missing = frame[target].isna().to_numpy()
        dropped = int(missing.sum())
        frame = frame[~missing]
        if len(frame) == 0 and require_rows:
            raise DataError(f"{source}: every row's target {target!r} is missing")
    where = _locator(frame, first_line)
    if classes:
        y = class_labels(frame[target], target, source, where)
    else:
        y = _numeric_column(
            frame[target],
            target,
            source,
            where,
            hint="a regression model's target; model=logistic_regression takes classes",
        )
    typed = {}
    for name in features:
        if name in categorical:
            if not preprocessed:
                raise DataError(
                    f"{source}: column {name!r} is categorical (text): {PREPROCESS_HINT}"
                )
            typed[name] = _categorical_column(frame[name])
        else:
            typed[name] = _numeric_column(
                frame[name],
                name,
                source,
                where,
                allow_missing=preprocessed,
                hint="list it in dataset.categorical if it holds categories"
                if preprocessed
                else PREPROCESS_HINT,
            )
    table = pd.DataFrame(typed, index=frame.index, columns=features)
    return Dataset(
        features=table,
        y=y,
        target_name=target,
        name=source,
        categorical=tuple(name for name in features if name in categorical),
        dropped_rows=dropped,
    )


def _categorical_column(column: pd.Series) -> np.ndarray:
    """The column's values as text (object array; None where missing), each distinct value
    converted once."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    texts = np.array([*(category_text(value) for value in uniques), None], dtype=object)
    return texts[codes]  # code -1 (missing) picks the appended None


def _locator(frame: pd.DataFrame, first_line: int | None) -> Callable[[int], str]:
    def where(row: int) -> str:
        """The file line (or 1-based row) of the frame's ``row``-th row, by its index label:
        rows dropped before keep the numbers of the others right."""
        label = int(frame.index[row])
        return f"line {label + first_line}" if first_line is not None else f"row {label + 1}"

    return where


def numeric_matrix(
    frame: pd.DataFrame, columns: Sequence[str], source: str, first_line: int | None
) -> np.ndarray:
    """``frame[columns]`` as a C-contiguous float64 matrix of finite values.

    ``first_line`` is the file line of the row labelled 0 in the frame's index (``None``:
    report 1-based rows); a row's line is its label plus that.

    Raises
    ------
    DataError
        A column is not numeric, or has a missing or infinite value; the message names the
        column and the first line at fault.
    """
    where = _locator(frame, first_line)
    matrix = np.column_stack([_numeric_column(frame[c], c, source, where) for c in columns])
    return np.ascontiguousarray(matrix, dtype=np.float64)


def _numeric_column(
    column: pd.Series,
    name: str,
    source: str,
    where: Callable[[int], str],
    allow_missing: bool = False,
    hint: str = "",
) -> np.ndarray:
    """Return ``column`` as float64 values (NaN for missing ones when ``allow_missing``), or
    raise naming the first bad value (and ``hint``, in parentheses)."""
    hint = f" ({hint})" if hint else ""
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        coerced = pd.to_numeric(column, errors="coerce")
        bad = coerced.isna() & column.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{source}: column {name!r} is not numeric: {column.iloc[row]!r} on {where(row)}"
                + hint
            )
        column = coerced
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    bad_rows = np.flatnonzero(np.isinf(values) if allow_missing else ~np.isfinite(values))
    if bad_rows.size:
        what = "infinite" if allow_missing else "missing or infinite"
        raise DataError(
            f"{source}: column {name!r} has {bad_rows.size} {what} value(s), "
            f"first on {where(int(bad_rows[0]))}" + ("" if allow_missing else hint)
        )
    return values


def fingerprint(dataset: Dataset) -> str:
    """SHA-256 of the data's content (values and names), independent of where it came from."""
    digest = hashlib.sha256()
    digest.update("\x1f".join([*dataset.feature_names, dataset.target_name]).encode())
    digest.update(str(dataset.features.shape).encode())
    numeric = [name for name in dataset.feature_names if name not in dataset.categorical]
    values = dataset.features[numeric].to_numpy(dtype=np.float64)
    digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    for name in dataset.categorical:  # None (missing) as a separator-free NUL
        texts = dataset.features[name].to_numpy(dtype=object, na_value=None)
        digest.update("\x1e".join("\x00" if t is None else t for t in texts).encode())
    digest.update(target_words(dataset.y).tobytes())
    return digest.hexdigest()


def target_words(y: np.ndarray) -> np.ndarray:
    """The 64-bit words a target hashes to: its numbers' (integer labels as float64), or its
    texts' (:func:`text_words`), so a classifier's labels split and fingerprint too."""
    y = np.asarray(y)
    return text_words(y) if y.dtype == object else numeric_words(y.astype(np.float64))


_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every input bit flips each output bit with probability ~1/2."""
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


def hash_test_rows(
    X: np.ndarray | pd.DataFrame, y: np.ndarray, test_size: float, random_state: int
) -> np.ndarray:
    """Which rows are test rows under ``dataset.split=hash``: those whose 64-bit hash of their
    values (and ``random_state``) falls below ``test_size``.

    A row's side depends only on the row, never on the batch, file or partition it is read
    in, so every engine splits a stream the same way without knowing its length (identical
    rows land on the same side). ``X`` is a matrix or a feature table: a categorical cell
    counts by a 64-bit hash of its text, a missing number as one NaN.
    """
    words = _row_words(X)
    return hash_words_test_rows([(words, np.arange(words.shape[1]))], y, test_size, random_state)


def hash_words_test_rows(
    columns: Sequence[tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    test_size: float,
    random_state: int,
) -> np.ndarray:
    """:func:`hash_test_rows` of rows given as their features' 64-bit words
    (:func:`numeric_words`, :func:`text_words`), in blocks: ``(words, positions)`` with
    ``words`` ``n × len(positions)`` (or ``n`` for one position), the features' positions in
    the table. Blocks in any order hash alike: the hash sums a product per cell."""
    n_features = sum(len(np.atleast_1d(positions)) for _, positions in columns)
    # One multiply-add per value (distinct odd keys per column, mixed with the seed), then
    # SplitMix64's finaliser spreads every bit over the whole hash.
    keys = _mix(np.arange(1, n_features + 2, dtype=np.uint64) + np.uint64(random_state))
    keys |= np.uint64(1)
    with np.errstate(over="ignore"):
        state = target_words(y) * keys[-1]
        for words, positions in columns:  # uint64 arithmetic wraps, as a hash should
            state += words @ keys[positions] if words.ndim == 2 else words * keys[positions]
        state = _mix(state)
    return (state >> np.uint64(11)).astype(np.float64) * 2.0**-53 < test_size


def text_words(texts: Any) -> np.ndarray:
    """The words a categorical column hashes to: pandas' 64-bit hash of each text (None for
    missing). A :class:`pandas.Categorical` hashes its categories once."""
    if isinstance(texts, pd.Categorical):
        distinct = text_words(np.asarray(texts.categories, dtype=object))
        return np.append(distinct, text_words(np.array([None], dtype=object)))[texts.codes]
    return pd.util.hash_array(np.asarray(texts, dtype=object))


def numeric_words(values: np.ndarray) -> np.ndarray:
    """Float64 values as the 64-bit words the hash mixes: -0.0 as 0.0, every NaN alike."""
    values = np.asarray(values, np.float64) + 0.0  # a copy, and -0.0 + 0.0 is 0.0
    values[np.isnan(values)] = np.nan
    return values.view(np.uint64)


def _row_words(X: np.ndarray | pd.DataFrame) -> np.ndarray:
    if not isinstance(X, pd.DataFrame):
        return numeric_words(np.asarray(X, np.float64))
    columns = [
        numeric_words(X[name].to_numpy(dtype=np.float64))
        if pd.api.types.is_numeric_dtype(X[name])
        else text_words(X[name].to_numpy(dtype=object, na_value=None))
        for name in X.columns
    ]
    return np.column_stack(columns).astype(np.uint64)


def split_dataset(
    dataset: Dataset, test_size: float, random_state: int, method: str = "random"
) -> Split:
    """Shuffle and split with scikit-learn's ``train_test_split`` (``method="random"``), or by
    :func:`hash_test_rows` (``"hash"``, rows kept in order).

    Raises
    ------
    DataError
        Either side of the split would have fewer than two rows.
    """
    if method == "hash":
        test = hash_test_rows(dataset.features, dataset.y, test_size, random_state)
        n_test = int(test.sum())
    else:
        n_test = int(np.ceil(test_size * dataset.n_rows))
    n_train = dataset.n_rows - n_test
    if min(n_train, n_test) < MIN_SPLIT_ROWS:
        raise DataError(
            f"{dataset.name}: too few rows ({dataset.n_rows}) for test_size={test_size}: "
            f"train and test need at least {MIN_SPLIT_ROWS} rows each"
        )
    frame, y = dataset.features, dataset.y
    if method == "hash":
        return Split(frame[~test], frame[test], y[~test], y[test])
    from sklearn.model_selection import train_test_split

    train, test_rows, y_train, y_test = train_test_split(
        frame, y, test_size=test_size, random_state=random_state
    )
    return Split(train, test_rows, y_train, y_test)
