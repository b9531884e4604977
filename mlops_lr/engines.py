"""Out-of-core training: the ``stream`` and ``dask`` engines.

Both run the same two functions on every batch (``stream``: batches of the files read in this
process, a few at a time on threads; ``dask``: the partitions of a Dask DataFrame on a
cluster) and merge the results as a balanced tree:

1. :func:`batch_statistics`: the sufficient statistics of the batch's training rows;
2. :func:`batch_evaluation`: with the fitted model, exact error sums of its training and test
   rows and its first test rows (the sample predictions saved with the model).

Rows are split by :func:`mlops_lr.data.hash_test_rows`, so every engine (``memory`` included,
with ``dataset.split=hash``) splits the same rows the same way.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from mlops_lr.config import (
    Config,
    DaskEngineConfig,
    EngineConfig,
    StreamEngineConfig,
    TableDatasetConfig,
)
from mlops_lr.data import hash_test_rows, load_dataset
from mlops_lr.exceptions import ConfigError, DataError
from mlops_lr.sources import Batch, FileSource, MemorySource, file_source
from mlops_lr.sufficient import ErrorStats, LinearStats, merge_all

Result = TypeVar("Result")


@dataclass(frozen=True)
class SplitRule:
    """``dataset.split=hash`` with its test fraction and seed, applied batch by batch."""

    test_size: float
    random_state: int

    def test_rows(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        return hash_test_rows(X, y, self.test_size, self.random_state)


@dataclass(frozen=True)
class Evaluation:
    """Exact error sums of the training and test rows, and the first ``n`` test rows."""

    train: ErrorStats
    test: ErrorStats
    samples_X: np.ndarray
    samples_y: np.ndarray
    n_samples: int

    def merge(self, other: Evaluation) -> Evaluation:
        """Both row sets, ``self``'s rows first (the samples stay the first test rows)."""
        return Evaluation(
            self.train.merge(other.train),
            self.test.merge(other.test),
            *_first_rows(self, other),
            self.n_samples,
        )


@dataclass(frozen=True)
class Comparison:
    """Test-row error sums of a reference and a candidate model, the sum and maximum of
    their |prediction difference|, and the first ``n`` test rows."""

    reference: ErrorStats
    candidate: ErrorStats
    sum_abs_difference: float
    max_abs_difference: float
    samples_X: np.ndarray
    samples_y: np.ndarray
    n_samples: int

    def merge(self, other: Comparison) -> Comparison:
        return Comparison(
            self.reference.merge(other.reference),
            self.candidate.merge(other.candidate),
            self.sum_abs_difference + other.sum_abs_difference,
            max(self.max_abs_difference, other.max_abs_difference),
            *_first_rows(self, other),
            self.n_samples,
        )


def _first_rows(first: Any, second: Any) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_samples`` of ``first``'s then ``second``'s sample rows."""
    n = first.n_samples
    return (
        np.concatenate([first.samples_X, second.samples_X])[:n],
        np.concatenate([first.samples_y, second.samples_y])[:n],
    )


def batch_statistics(
    X: np.ndarray, y: np.ndarray, rule: SplitRule, shift: tuple[np.ndarray, float]
) -> LinearStats:
    """The sufficient statistics of the training rows of one batch."""
    train = ~rule.test_rows(X, y)
    return LinearStats.from_batch(X[train], y[train], *shift)


def batch_evaluation(
    X: np.ndarray,
    y: np.ndarray,
    rule: SplitRule,
    coef: np.ndarray,
    intercept: float,
    n_samples: int,
) -> Evaluation:
    """Error sums of the model on one batch's training and test rows, and its test rows."""
    test = rule.test_rows(X, y)
    predictions = X @ coef + intercept
    return Evaluation(
        ErrorStats.from_batch(y[~test], predictions[~test]),
        ErrorStats.from_batch(y[test], predictions[test]),
        X[test][:n_samples],
        y[test][:n_samples],
        n_samples,
    )


def batch_comparison(
    X: np.ndarray,
    y: np.ndarray,
    rule: SplitRule,
    reference: tuple[np.ndarray, float],
    candidate: tuple[np.ndarray, float],
    n_samples: int,
) -> Comparison:
    """Two linear models ``(coef, intercept)`` on one batch's test rows."""
    test = rule.test_rows(X, y)
    X, y = X[test], y[test]
    first, second = X @ reference[0] + reference[1], X @ candidate[0] + candidate[1]
    difference = np.abs(second - first)
    return Comparison(
        ErrorStats.from_batch(y, first),
        ErrorStats.from_batch(y, second),
        float(difference.sum()),
        float(difference.max(initial=0.0)),
        X[:n_samples],
        y[:n_samples],
        n_samples,
    )


def make_source(config: Config) -> FileSource | MemorySource:
    """The configured dataset as batches: files are streamed, built-in datasets served from
    memory (they are small)."""
    dataset = config.dataset
    batch_rows = config.engine.batch_rows
    if isinstance(dataset, TableDatasetConfig):
        return file_source(dataset.path, dataset.target, dataset.features, batch_rows, dataset.drop)
    return MemorySource(load_dataset(dataset), batch_rows)


class StreamingFit:
    """Fit and evaluate a linear model from batches: ``statistics`` then ``evaluate``."""

    def __init__(self, engine: EngineConfig, source: FileSource | MemorySource) -> None:
        self.engine = engine
        self.source = source
        self._stack = contextlib.ExitStack()
        self._run: Callable[[Callable[..., Any]], Any]
        if isinstance(engine, DaskEngineConfig):
            self._run = self._stack.enter_context(_DaskRunner(engine, source))
        elif isinstance(engine, StreamEngineConfig):
            self._run = _ThreadRunner(engine.threads, source)
        else:
            raise ConfigError(f"engine={engine.name} does not stream")

    def __enter__(self) -> StreamingFit:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def shift(self) -> tuple[np.ndarray, float]:
        """The first row of the data: the point all statistics are measured from."""
        first = self.source.first_row()
        if first is None:
            raise DataError(f"{_describe(self.source)}: no data rows")
        return first[0].copy(), first[1]

    def statistics(self, rule: SplitRule) -> LinearStats:
        shift = self.shift()

        def compute(X: np.ndarray, y: np.ndarray) -> LinearStats:
            return batch_statistics(X, y, rule, shift)

        return self._run(compute)

    def evaluate(
        self, rule: SplitRule, coef: np.ndarray, intercept: float, n_samples: int
    ) -> Evaluation:
        def compute(X: np.ndarray, y: np.ndarray) -> Evaluation:
            return batch_evaluation(X, y, rule, coef, intercept, n_samples)

        return self._run(compute)

    def compare(
        self,
        rule: SplitRule,
        reference: tuple[np.ndarray, float],
        candidate: tuple[np.ndarray, float],
        n_samples: int,
    ) -> Comparison:
        def compute(X: np.ndarray, y: np.ndarray) -> Comparison:
            return batch_comparison(X, y, rule, reference, candidate, n_samples)

        return self._run(compute)


class _ThreadRunner:
    """Read batches in order in this thread; compute up to ``threads`` of them at once (numpy
    releases the GIL), keeping at most ``threads + 1`` batches in memory."""

    def __init__(self, threads: int, source: FileSource | MemorySource) -> None:
        self.threads = threads
        self.source = source

    def __call__(self, compute: Callable[..., Result]) -> Result:
        with ThreadPoolExecutor(self.threads) as pool:
            # StreamingFit.shift() has found a row already: there is something to merge.
            return merge_all(_ordered(pool, compute, self.source.batches(), self.threads + 1))


def _ordered(
    pool: ThreadPoolExecutor,
    compute: Callable[..., Result],
    batches: Iterable[Batch],
    window: int,
) -> Iterator[Result]:
    pending: collections.deque[Future[Result]] = collections.deque()
    for batch in batches:
        pending.append(pool.submit(compute, batch.X, batch.y))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class _DaskRunner(contextlib.AbstractContextManager):
    """Run the batch functions on the partitions of a Dask DataFrame, on a LocalCluster
    (127.0.0.1, no dashboard; the scheduler's small HTTP server for health and metrics still
    listens on 127.0.0.1) or the scheduler at ``engine.address``."""

    def __init__(self, engine: DaskEngineConfig, source: FileSource | MemorySource) -> None:
        try:
            import dask.dataframe  # noqa: F401
            import distributed
        except ModuleNotFoundError as error:
            raise ConfigError(
                f"engine=dask needs {error.name}: pip install 'mlops-lr[scale]' "
                "(or -r requirements-scale.txt)"
            ) from None
        self.engine = engine
        self.source = source
        self._stack = contextlib.ExitStack()
        # The scheduler's and nannies' INFO lines would reach the console through Hydra's
        # logging; warnings and errors still do.
        logging.getLogger("distributed").setLevel(logging.WARNING)
        try:
            if engine.address is None:
                cluster = self._stack.enter_context(
                    distributed.LocalCluster(
                        n_workers=engine.n_workers,
                        threads_per_worker=engine.threads_per_worker,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=None,
                        scheduler_kwargs={"dashboard": False},
                        silence_logs=logging.CRITICAL,
                    )
                )
                self.client = self._stack.enter_context(distributed.Client(cluster))
            else:
                self.client = self._stack.enter_context(
                    distributed.Client(engine.address, timeout="10s")
                )
        except (OSError, ValueError, TimeoutError) as error:
            self._stack.close()
            raise ConfigError(f"cannot reach the Dask scheduler: {error}") from None

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def __enter__(self) -> _DaskRunner:
        return self

    def __call__(self, compute: Callable[..., Result]) -> Result:
        from dask import delayed

        names = list(self.source.feature_names)
        target = self.source.target_name
        try:
            frame = self._frame()
            level = [
                delayed(_on_partition)(part, names, target, compute) for part in frame.to_delayed()
            ]
            while len(level) > 1:
                level = [
                    delayed(_merge_pair)(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                    for i in range(0, len(level), 2)
                ]
            return self.client.compute(level[0]).result()
        except DataError:
            raise
        except Exception as error:  # pyarrow, pandas and I/O errors raised on the workers
            lines = str(error).strip().splitlines()
            raise DataError(
                f"{_describe(self.source)}: cannot be read: {lines[0] if lines else error!r}"
            ) from None

    def _frame(self):  # type: ignore[no-untyped-def]
        import dask.dataframe as dd
        import pandas as pd

        source = self.source
        if isinstance(source, MemorySource):
            dataset = source.dataset
            frame = pd.DataFrame(dataset.X, columns=list(dataset.feature_names))
            frame[dataset.target_name] = dataset.y
            partitions = max(1, math.ceil(len(frame) / source.batch_rows))
            return dd.from_pandas(frame, npartitions=partitions, sort=False)
        columns = [*source.feature_names, source.target]
        files = [str(path) for path in source.paths]
        if source.is_parquet:
            return dd.read_parquet(files, columns=columns, split_row_groups="adaptive")
        # Correctly rounded floats (pandas 3's default): the same values, hence the same hash
        # split, as pyarrow reads. All columns are parsed, so a row with more fields than the
        # header is an error rather than silently cut.
        frame = dd.read_csv(
            files,
            dtype=dict.fromkeys(columns, "float64"),
            blocksize=max(1 << 16, source.batch_rows * 100),
        )
        return frame[columns]


def _on_partition(frame, names: list[str], target: str, compute: Callable[..., Result]) -> Result:  # type: ignore[no-untyped-def]
    X = np.ascontiguousarray(frame[names].to_numpy(dtype=np.float64))
    y = frame[target].to_numpy(dtype=np.float64)
    finite = np.isfinite(X).all(axis=1) & np.isfinite(y)
    if not finite.all():
        raise DataError(
            f"{int((~finite).sum())} row(s) with a missing or infinite value in a partition"
        )
    return compute(X, y)


def _merge_pair(left: Result, right: Result) -> Result:
    return left.merge(right)


def _describe(source: FileSource | MemorySource) -> str:
    if isinstance(source, FileSource):
        return str(source.paths[0].parent if len(source.paths) > 1 else source.paths[0])
    return source.dataset.name
