"""Out-of-core training: the ``stream`` and ``dask`` engines.

Both run the same functions on every batch (``stream``: batches of the files read in this
process, a few at a time on threads; ``dask``: the partitions of a Dask DataFrame on a
cluster) and merge the results as a balanced tree:

1. :func:`batch_design_statistics`: the sufficient statistics of the batch's training rows
   over a folded model's design — or, with preprocessing still to be learnt,
   :func:`batch_table_statistics` over the table's raw design
   (:class:`~mlops_lr.sufficient.TableStats`), from which preprocessing and the folded
   design's statistics both follow (one-hot blocks from per-category sums, never spelled
   out);
3. :func:`batch_evaluation`: with the fitted model, exact error sums of its training and test
   rows and its first test rows (the sample predictions saved with the model).

A classifier (:mod:`mlops_lr.newton`) takes more passes: :func:`batch_labelled_statistics`
(the training rows' classes, with the raw design's statistics when preprocessing is to be
learnt), then one :func:`batch_newton_statistics` pass per point Newton's method evaluates
(loss, gradient and Hessian sums at given coefficients), then
:func:`batch_classifier_evaluation` (training accuracy, the test rows' classes and
probabilities). Quantizing one takes :func:`batch_fisher_moments` (the training design's
moments, Fisher-weighted per row of scores) and :func:`batch_classifier_comparison`.

Rows are split by :func:`mlops_lr.data.hash_test_rows`, so every engine (``memory`` included,
with ``dataset.split=hash``) splits the same rows the same way.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from mlops_lr.config import (
    Config,
    DaskEngineConfig,
    EngineConfig,
    StreamEngineConfig,
    TableDatasetConfig,
    is_classifier,
)
from mlops_lr.data import hash_words_test_rows, load_dataset
from mlops_lr.exceptions import ConfigError, DataError
from mlops_lr.folded import FoldedModel, MissingValueError
from mlops_lr.folded_classifier import LOGISTIC, FoldedClassifier, class_indices, probabilities
from mlops_lr.newton import NewtonStats
from mlops_lr.quantized_classifier import fisher_weights
from mlops_lr.sources import (
    TEXT_LABELS,
    Batch,
    FileSource,
    MemorySource,
    file_source,
    frame_batch,
)
from mlops_lr.sufficient import (
    ClassCounts,
    ClassifierScores,
    ErrorStats,
    LinearStats,
    TableStats,
    TooManyLevels,
    WeightedMoments,
    merge_all,
)

Result = TypeVar("Result")


@dataclass(frozen=True)
class SplitRule:
    """``dataset.split=hash`` with its test fraction and seed, applied batch by batch.

    A batch read again in a later pass (same ``origin``) gets its rows' sides from the first
    pass, kept as bits (2.5 MB for 20 M rows): the hash is a fifth of a pass's work. Origins
    name batches of one source: :class:`StreamingFit` keeps one rule per source."""

    test_size: float
    random_state: int
    _sides: dict[tuple[int, int, int], np.ndarray] = field(
        default_factory=dict, compare=False, repr=False
    )

    def test_rows(self, batch: Batch) -> np.ndarray:
        key = None if batch.origin is None else (*batch.origin, len(batch))
        if key in self._sides:
            return np.unpackbits(self._sides[key], count=len(batch)).astype(bool)
        test = hash_words_test_rows(
            batch.hashed_columns(), batch.y, self.test_size, self.random_state
        )
        if key is not None:
            self._sides[key] = np.packbits(test)
        return test


@dataclass(frozen=True)
class Evaluation:
    """Exact error sums of the training and test rows, and the first ``n`` test rows."""

    train: ErrorStats
    test: ErrorStats
    samples: pd.DataFrame
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
    samples: pd.DataFrame
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


@dataclass(frozen=True)
class Labelled:
    """The training rows' class counts, and their raw-design statistics (None when
    preprocessing is not learnt)."""

    classes: ClassCounts
    table: TableStats | None

    def merge(self, other: Labelled) -> Labelled:
        table = None if self.table is None else self.table.merge(other.table)
        return Labelled(self.classes.merge(other.classes), table)


@dataclass(frozen=True)
class ClassifierEvaluation:
    """A classifier's correct labels among the training rows, its test rows' classes and
    probabilities (ROC AUC needs them all) and the first ``n`` test rows."""

    n_train: int
    train_correct: int
    test: ClassifierScores
    samples: pd.DataFrame
    samples_y: np.ndarray
    n_samples: int

    def merge(self, other: ClassifierEvaluation) -> ClassifierEvaluation:
        return ClassifierEvaluation(
            self.n_train + other.n_train,
            self.train_correct + other.train_correct,
            self.test.merge(other.test),
            *_first_rows(self, other),
            self.n_samples,
        )


@dataclass(frozen=True)
class FisherMoments:
    """A classifier's training design: its unweighted moments (which also count each one-hot
    column's rows) and, per row of scores, its moments weighted by the Fisher information."""

    uniform: WeightedMoments
    weighted: tuple[WeightedMoments, ...]

    def merge(self, other: FisherMoments) -> FisherMoments:
        return FisherMoments(
            self.uniform.merge(other.uniform),
            tuple(a.merge(b) for a, b in zip(self.weighted, other.weighted, strict=True)),
        )


@dataclass(frozen=True)
class ClassifierComparison:
    """Two classifiers on the test rows: each one's classes and probabilities, the rows where
    their labels agree, the sum and maximum of their |probability difference| over every row
    and class, and the first ``n`` test rows."""

    reference: ClassifierScores
    candidate: ClassifierScores
    agreeing: int
    sum_abs_difference: float
    max_abs_difference: float
    samples: pd.DataFrame
    samples_y: np.ndarray
    n_samples: int

    def merge(self, other: ClassifierComparison) -> ClassifierComparison:
        return ClassifierComparison(
            self.reference.merge(other.reference),
            self.candidate.merge(other.candidate),
            self.agreeing + other.agreeing,
            self.sum_abs_difference + other.sum_abs_difference,
            max(self.max_abs_difference, other.max_abs_difference),
            *_first_rows(self, other),
            self.n_samples,
        )


def _first_rows(first: Any, second: Any) -> tuple[pd.DataFrame, np.ndarray]:
    """The first ``n_samples`` of ``first``'s then ``second``'s sample rows."""
    n = first.n_samples
    if len(first.samples_y) >= n:
        return first.samples, first.samples_y
    return (
        pd.concat([first.samples, second.samples], ignore_index=True).head(n),
        np.concatenate([first.samples_y, second.samples_y])[:n],
    )


def batch_table_statistics(
    batch: Batch, rule: SplitRule, shift: tuple[np.ndarray, float], max_levels: int
) -> TableStats:
    """The raw-design statistics of the training rows of one batch."""
    return TableStats.from_batch(
        batch.X, batch.text, batch.y, ~rule.test_rows(batch), shift, max_levels
    )


def batch_labelled_statistics(
    batch: Batch, rule: SplitRule, shift: tuple[np.ndarray, float], max_levels: int | None
) -> Labelled:
    """The class counts of one batch's training rows, and their raw-design statistics unless
    ``max_levels`` is None."""
    train = ~rule.test_rows(batch)
    table = None
    if max_levels is not None:  # labels are no numbers: the statistics' target is a 0
        zeros = np.zeros(len(batch))
        table = TableStats.from_batch(batch.X, batch.text, zeros, train, shift, max_levels)
    return Labelled(ClassCounts.from_labels(batch.y[train]), table)


def encoded_design(
    batch: Batch, layout: FoldedModel, encoding: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """The estimator's inputs for a batch: ``layout``'s design, mapped by the
    preprocessing's ``encoding`` (see :func:`mlops_lr.statistics_fit.encoding`; None: the
    design is the input)."""
    design = batch.X if layout.is_plain else layout.design(batch.columns())
    if encoding is None:
        return design
    matrix, centre = encoding
    return (design - centre) @ matrix


def label_array(classes: Sequence[Any], source: FileSource | MemorySource) -> np.ndarray:
    """A classifier's ``classes`` as ``source``'s batches type their labels (text, or
    numbers), to find them there."""
    return np.array(classes, dtype=object if source.labels == TEXT_LABELS else np.float64)


def label_values(y: np.ndarray, source: FileSource | MemorySource) -> np.ndarray:
    """Labels read from ``source`` as the in-memory loader types them (integer classes as
    int64, not the float64 they are read as)."""
    return y if source.labels == TEXT_LABELS else y.astype(np.int64)


def label_positions(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Each label's position in the sorted ``classes``.

    Raises
    ------
    DataError
        A label that is not one of them (a class only the test rows have).
    """
    if len(classes) <= _COMPARED_CLASSES:  # no branch to mispredict per row
        index = np.zeros(len(y), dtype=np.intp)
        for label in classes[:-1]:  # a class's position: the classes below it
            index += y > label
    else:
        index = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
    unknown = classes[index] != y
    if unknown.any():
        raise DataError(
            f"the label {y[np.argmax(unknown)]!r} is in the test rows but not in the training "
            "rows: the classifier cannot score it"
        )
    return index


# Up to this many classes, label positions come from a comparison per class (a binary
# search per row took 10 % of a Newton pass, its branches unpredictable).
_COMPARED_CLASSES = 8


def batch_newton_statistics(
    batch: Batch,
    rule: SplitRule,
    layout: FoldedModel,
    encoding: tuple[np.ndarray, np.ndarray] | None,
    classes: np.ndarray,
    class_weight: np.ndarray | None,
    coef: np.ndarray,
) -> NewtonStats:
    """The loss, gradient and Hessian sums of one batch's training rows at ``coef``."""
    train = batch.rows(~rule.test_rows(batch))
    y = label_positions(train.y, classes)
    weights = None if class_weight is None else class_weight[y]
    return NewtonStats.from_batch(encoded_design(train, layout, encoding), y, coef, weights)


def batch_classifier_evaluation(
    batch: Batch, rule: SplitRule, model: FoldedClassifier, classes: np.ndarray, n_samples: int
) -> ClassifierEvaluation:
    """A classifier's correct training labels and its test rows' classes and probabilities
    (``classes``: its classes as the batches' labels are typed)."""
    test = rule.test_rows(batch)
    truth = label_positions(batch.y, classes)
    picked, proba = _classified(model, batch)
    proba = proba[test]
    train = ~test
    return ClassifierEvaluation(
        int(train.sum()),
        int((picked[train] == truth[train]).sum()),
        ClassifierScores.from_batch(truth[test], picked[test], proba),
        batch.rows(test).head(n_samples),
        batch.y[test][:n_samples],
        n_samples,
    )


def batch_fisher_moments(batch: Batch, rule: SplitRule, model: FoldedClassifier) -> FisherMoments:
    """The moments of one batch's training rows over ``model``'s design, unweighted and
    weighted by each row of scores' Fisher information."""
    train = batch.rows(~rule.test_rows(batch))
    design = train.X if model.is_plain else model.rows[0].design(train.columns())
    with np.errstate(over="ignore"):  # exp(-score) of a certain row: its weight is 0
        weights = fisher_weights(model, train.columns())
    return FisherMoments(
        WeightedMoments.from_batch(design, np.ones(len(train))),
        tuple(WeightedMoments.from_batch(design, w) for w in weights),
    )


def batch_classifier_comparison(
    batch: Batch,
    rule: SplitRule,
    reference: FoldedClassifier,
    candidate: FoldedClassifier,
    classes: np.ndarray,
    n_samples: int,
) -> ClassifierComparison:
    """Two classifiers on one batch's test rows."""
    test = batch.rows(rule.test_rows(batch))
    truth = label_positions(test.y, classes)
    (first, first_proba), (second, second_proba) = (
        _classified(reference, test),
        _classified(candidate, test),
    )
    difference = np.abs(second_proba - first_proba)
    return ClassifierComparison(
        ClassifierScores.from_batch(truth, first, first_proba),
        ClassifierScores.from_batch(truth, second, second_proba),
        int((first == second).sum()),
        float(difference.sum()),
        float(difference.max(initial=0.0)),
        test.head(n_samples),
        test.y[:n_samples],
        n_samples,
    )


def _classified(model: FoldedClassifier, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """The classes (positions) ``model`` picks for a batch's rows, and its probabilities."""
    scores = np.column_stack([predict_batch(row, batch) for row in model.rows])
    if model.link == LOGISTIC:
        scores = scores[:, 0]
    with np.errstate(over="ignore"):  # exp(-score) of a certain row: its probability is 0
        return class_indices(model.link, scores), probabilities(model.link, scores)


def batch_design_statistics(
    batch: Batch, rule: SplitRule, layout: FoldedModel, shift: tuple[np.ndarray, float]
) -> LinearStats:
    """The sufficient statistics of the training rows of one batch over ``layout``'s
    design."""
    train = batch.rows(~rule.test_rows(batch))
    if layout.is_plain:  # the design is the feature matrix
        return LinearStats.from_batch(train.X, train.y, *shift)
    return LinearStats.from_design(layout.design_parts(train.columns()), train.y, *shift)


def batch_evaluation(
    batch: Batch, rule: SplitRule, model: FoldedModel, n_samples: int
) -> Evaluation:
    """Error sums of the model on one batch's training and test rows, and its test rows."""
    test = rule.test_rows(batch)
    predictions = predict_batch(model, batch)
    return Evaluation(
        ErrorStats.from_batch(batch.y[~test], predictions[~test]),
        ErrorStats.from_batch(batch.y[test], predictions[test]),
        batch.rows(test).head(n_samples),
        batch.y[test][:n_samples],
        n_samples,
    )


def batch_comparison(
    batch: Batch,
    rule: SplitRule,
    reference: FoldedModel,
    candidate: FoldedModel,
    n_samples: int,
) -> Comparison:
    """Two models on one batch's test rows."""
    test = batch.rows(rule.test_rows(batch))
    first, second = predict_batch(reference, test), predict_batch(candidate, test)
    difference = np.abs(second - first)
    return Comparison(
        ErrorStats.from_batch(test.y, first),
        ErrorStats.from_batch(test.y, second),
        float(difference.sum()),
        float(difference.max(initial=0.0)),
        test.head(n_samples),
        test.y[:n_samples],
        n_samples,
    )


def predict_batch(model: FoldedModel, batch: Batch) -> np.ndarray:
    """``model``'s predictions for a batch (numeric-only batches as one matrix)."""
    if batch.categorical:
        return model.predict(batch.columns())
    return model.predict_matrix(batch.X)


def make_source(config: Config) -> FileSource | MemorySource:
    """The configured dataset as batches: files are streamed, built-in datasets served from
    memory (they are small)."""
    dataset = config.dataset
    batch_rows = config.engine.batch_rows
    if isinstance(dataset, TableDatasetConfig):
        return file_source(
            dataset.path,
            dataset.target,
            dataset.features,
            batch_rows,
            dataset.drop,
            categorical=dataset.categorical,
            allow_missing=config.preprocess.name != "none",
            drop_missing_target=dataset.missing_target == "drop",
            na_values=dataset.na_values,
            classes=is_classifier(config.model),
        )
    return MemorySource(load_dataset(dataset, classes=is_classifier(config.model)), batch_rows)


class StreamingFit:
    """Passes over the batches of one source: the statistics of the raw table
    (``table_statistics``) or of a design (``design_statistics``), a model's scores
    (``evaluate``, ``compare``). Each batch's train/test sides are hashed once and kept for
    later passes."""

    def __init__(self, engine: EngineConfig, source: FileSource | MemorySource) -> None:
        self.engine = engine
        self.source = source
        self._splits: dict[tuple[float, int], SplitRule] = {}
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

    def _kept(self, rule: SplitRule) -> SplitRule:
        """This source's copy of ``rule``, whose kept sides are of this source's batches."""
        key = (rule.test_size, rule.random_state)
        return self._splits.setdefault(key, SplitRule(*key))

    def shift(self, layout: FoldedModel) -> tuple[np.ndarray, float]:
        """The first row of the data over ``layout``'s design: the point all statistics are
        measured from."""
        first = self.source.first_row()
        if first is None:
            raise DataError(f"{self.source.name}: no data rows")
        return layout.design(first.columns())[0], float(first.y[0])

    def table_statistics(self, rule: SplitRule, max_levels: int) -> TableStats:
        """The training rows' statistics over the raw design (a pass), measured from the
        first present value of each numeric feature.

        Raises
        ------
        TooManyLevels
            A categorical feature has more than ``max_levels`` distinct texts.
        """
        rule, shift = self._kept(rule), self._table_shift()
        return self._run(lambda batch: batch_table_statistics(batch, rule, shift, max_levels))

    def labelled_statistics(self, rule: SplitRule, max_levels: int | None) -> Labelled:
        """The training rows' classes, and unless ``max_levels`` is None their raw-design
        statistics (a pass; see :meth:`table_statistics`)."""
        rule = self._kept(rule)
        shift = self._table_shift() if max_levels is not None else (np.empty(0), 0.0)
        return self._run(lambda batch: batch_labelled_statistics(batch, rule, shift, max_levels))

    def _table_shift(self) -> tuple[np.ndarray, float]:
        """The first present value of each numeric feature (0 for none) and the first target
        (0 for labels): what raw-design statistics are measured from."""
        first = next(self.source.batches(), None)
        if first is None:
            raise DataError(f"{self.source.name}: no data rows")
        present = ~np.isnan(first.X)
        row = present.argmax(axis=0)  # the first present value, or 0 for none
        numeric = np.where(present.any(axis=0), first.X[row, np.arange(first.X.shape[1])], 0.0)
        return numeric, 0.0 if self.source.labels is not None else float(first.y[0])

    def newton_statistics(
        self,
        rule: SplitRule,
        layout: FoldedModel,
        encoding: tuple[np.ndarray, np.ndarray] | None,
        classes: np.ndarray,
        class_weight: np.ndarray | None,
        coef: np.ndarray,
    ) -> NewtonStats:
        """The training rows' loss, gradient and Hessian sums at ``coef`` (a pass)."""
        rule = self._kept(rule)
        return self._run(
            lambda batch: batch_newton_statistics(
                batch, rule, layout, encoding, classes, class_weight, coef
            )
        )

    def fisher_moments(self, rule: SplitRule, model: FoldedClassifier) -> FisherMoments:
        """The training rows' design moments, unweighted and Fisher-weighted (a pass)."""
        rule = self._kept(rule)
        return self._run(lambda batch: batch_fisher_moments(batch, rule, model))

    def compare_classifiers(
        self,
        rule: SplitRule,
        reference: FoldedClassifier,
        candidate: FoldedClassifier,
        classes: np.ndarray,
        n_samples: int,
    ) -> ClassifierComparison:
        rule = self._kept(rule)
        return self._run(
            lambda batch: batch_classifier_comparison(
                batch, rule, reference, candidate, classes, n_samples
            )
        )

    def evaluate_classifier(
        self, rule: SplitRule, model: FoldedClassifier, classes: np.ndarray, n_samples: int
    ) -> ClassifierEvaluation:
        rule = self._kept(rule)
        return self._run(
            lambda batch: batch_classifier_evaluation(batch, rule, model, classes, n_samples)
        )

    def design_statistics(self, rule: SplitRule, layout: FoldedModel) -> LinearStats:
        """The training rows' sufficient statistics over ``layout``'s design (a pass)."""
        shift, rule = self.shift(layout), self._kept(rule)
        return self._run(lambda batch: batch_design_statistics(batch, rule, layout, shift))

    def evaluate(self, rule: SplitRule, model: FoldedModel, n_samples: int) -> Evaluation:
        rule = self._kept(rule)
        return self._run(lambda batch: batch_evaluation(batch, rule, model, n_samples))

    def compare(
        self,
        rule: SplitRule,
        reference: FoldedModel,
        candidate: FoldedModel,
        n_samples: int,
    ) -> Comparison:
        rule = self._kept(rule)
        return self._run(
            lambda batch: batch_comparison(batch, rule, reference, candidate, n_samples)
        )


class _ThreadRunner:
    """Read batches in order in this thread; compute up to ``threads`` of them at once (numpy
    releases the GIL), keeping at most ``threads + 1`` batches in memory."""

    def __init__(self, threads: int, source: FileSource | MemorySource) -> None:
        self.threads = threads
        self.source = source

    def __call__(self, compute: Callable[..., Result]) -> Result:
        from threadpoolctl import threadpool_limits

        # One BLAS thread per batch thread: the pool is the parallelism, and BLAS's own
        # threads on top of it oversubscribe the cores (a pass took 1.4x as long).
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(self.threads) as pool:
            # StreamingFit.shift() has found a row already: there is something to merge.
            calls = self.source.batch_calls()
            return merge_all(_ordered(pool, compute, calls, self.threads + 1))


def _ordered(
    pool: ThreadPoolExecutor,
    compute: Callable[..., Result],
    batches: Iterable[Callable[[], Batch | None]],
    window: int,
) -> Iterator[Result]:
    """``compute`` of each batch, in order; the batches are finished (converted, validated)
    on the pool's threads too, so this thread only reads."""
    pending: collections.deque[Future[Result | None]] = collections.deque()
    for finish in batches:
        pending.append(pool.submit(_finished_and_computed, compute, finish))
        if len(pending) >= window:
            result = pending.popleft().result()
            if result is not None:
                yield result
    while pending:
        result = pending.popleft().result()
        if result is not None:
            yield result


def _finished_and_computed(
    compute: Callable[[Batch], Result], finish: Callable[[], Batch | None]
) -> Result | None:
    batch = finish()
    return None if batch is None else _computed(compute, batch)


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
        self._splits: dict[tuple[float, int], SplitRule] = {}
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

        try:
            frame = self._frame()
            level = [
                delayed(_on_partition)(part, self.source, compute) for part in frame.to_delayed()
            ]
            while len(level) > 1:
                level = [
                    delayed(_merge_pair)(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                    for i in range(0, len(level), 2)
                ]
            return self.client.compute(level[0]).result()
        except (DataError, TooManyLevels):
            raise
        except Exception as error:  # pyarrow, pandas and I/O errors raised on the workers
            lines = str(error).strip().splitlines()
            raise DataError(
                f"{self.source.name}: cannot be read: {lines[0] if lines else error!r}"
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
        texts = [*source.categorical, *([source.target] if source.labels == TEXT_LABELS else [])]
        frame = dd.read_csv(
            files,
            dtype={
                **dict.fromkeys([*source.numeric_names, source.target], "float64"),
                **dict.fromkeys(texts, "str"),
            },
            na_values=list(source.na_values),
            keep_default_na=False,
            blocksize=max(1 << 16, source.batch_rows * 100),
        )
        return frame[columns]


def _on_partition(
    frame, source: FileSource | MemorySource, compute: Callable[..., Result]
) -> Result:  # type: ignore[no-untyped-def]
    return _computed(compute, frame_batch(frame, source, source.name))


def _merge_pair(left: Result, right: Result) -> Result:
    return left.merge(right)


def _computed(compute: Callable[[Batch], Result], batch: Batch) -> Result:
    """``compute(batch)``; a missing value the model has no fill for is a data error."""
    try:
        return compute(batch)
    except MissingValueError as error:
        raise DataError(
            f"column {error.column!r} has a missing value in the batch from row "
            f"{batch.first_row + 1} and the model has no fill for it"
        ) from None
