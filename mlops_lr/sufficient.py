"""Exact least squares and regression metrics from batches: sufficient statistics that merge.

Numeric core only (numpy + scipy), no I/O. A batch becomes :class:`LinearStats` (its size,
means and *centred* cross-products, each computed in two passes over the batch); two of them
merge exactly with Chan et al.'s parallel update, and many merge as a balanced tree, so the
result does not depend on how the data was cut. Centring is what keeps this exact: an
uncentred ``XᵀX`` loses everything once the features' offsets dwarf their spread (relative
error 0.14 at an offset of 1e6), a centred one does not.

Means are kept relative to a *shift* (any row of the data, the same for every batch): a mean
near 1e6 cannot be stored closer than 1e-10, its offset from the shift can, and the merge
subtracts means.

The fit solves the centred normal equations ``Sxx w = Sxy`` after scaling them to unit
diagonal (an equilibrated Cholesky), falling back to a least-squares solve when ``Sxx`` is
singular, and ``b = ȳ - x̄·w``: scikit-learn's ``LinearRegression`` answer.

:class:`ErrorStats` does the same for the test metrics: sums of squared and absolute errors
and the target's mean and spread, merged exactly, give R², MSE, RMSE and MAE.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

import numpy as np

from mlops_lr.folded import NUMERIC, DesignParts, FoldedModel
from mlops_lr.quantize import CalibrationMoments

Mergeable = TypeVar("Mergeable", bound=Any)


@dataclass(frozen=True)
class LinearStats:
    """Sufficient statistics of ``y ~ X`` over ``n`` rows.

    Attributes
    ----------
    n : int
        Rows.
    mean_x : np.ndarray
        Feature means minus ``shift_x``, shape ``(p,)``.
    mean_y : float
        Target mean minus ``shift_y``.
    sxx : np.ndarray
        ``Σ (x - x̄)(x - x̄)ᵀ``, shape ``(p, p)``.
    sxy : np.ndarray
        ``Σ (x - x̄)(y - ȳ)``, shape ``(p,)``.
    syy : float
        ``Σ (y - ȳ)²``.
    shift_x, shift_y : np.ndarray, float
        The point the means are measured from (statistics merge only with the same shift).
    """

    n: int
    mean_x: np.ndarray
    mean_y: float
    sxx: np.ndarray
    sxy: np.ndarray
    syy: float
    shift_x: np.ndarray
    shift_y: float

    @classmethod
    def empty(cls, shift_x: np.ndarray, shift_y: float = 0.0) -> LinearStats:
        """The statistics of no rows: the identity of :meth:`merge`."""
        p = len(shift_x)
        zeros = np.zeros(p)
        return cls(0, zeros, 0.0, np.zeros((p, p)), zeros, 0.0, shift_x, shift_y)

    @classmethod
    def from_batch(
        cls,
        X: np.ndarray,
        y: np.ndarray,
        shift_x: np.ndarray | None = None,
        shift_y: float = 0.0,
    ) -> LinearStats:
        """The statistics of one batch, measured from the shift: means, then centred
        products (two passes)."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        shift_x = np.zeros(X.shape[1]) if shift_x is None else np.asarray(shift_x, np.float64)
        if len(y) == 0:
            return cls.empty(shift_x, shift_y)
        # Shifted first (the only copies), so the means are small and exact enough that one
        # centring pass suffices; then centred in place.
        Xc, yc = X - shift_x, y - shift_y
        mean_x, mean_y = Xc.mean(axis=0), float(yc.mean())
        Xc -= mean_x
        yc -= mean_y
        return cls(len(y), mean_x, mean_y, Xc.T @ Xc, Xc.T @ yc, float(yc @ yc), shift_x, shift_y)

    @classmethod
    def from_design(
        cls,
        parts: DesignParts,
        y: np.ndarray,
        shift_x: np.ndarray,
        shift_y: float = 0.0,
        scratch: bool = False,
    ) -> LinearStats:
        """The statistics of one batch's design (:meth:`FoldedModel.design_parts
        <mlops_lr.folded.FoldedModel.design_parts>`) without spelling out its one-hot
        blocks: their centred cross-products come from per-category sums (``bincount``) of
        the centred dense columns and target, and from category co-occurrence counts.
        ``scratch``: ``parts.dense`` is measured from the shift already and may be centred in
        place (a copy of a batch saved)."""
        y = np.asarray(y, dtype=np.float64)
        if not parts.blocks and len(parts.dense_columns) == len(shift_x):  # all dense
            return LinearStats.from_batch(parts.dense, y, shift_x, shift_y)
        n, p = len(y), len(shift_x)
        if n == 0:
            return cls.empty(shift_x, shift_y)
        dense = parts.dense if scratch else parts.dense - shift_x[parts.dense_columns]
        yc = y - shift_y
        mean_x, mean_y = np.zeros(p), float(yc.mean())
        mean_x[parts.dense_columns] = dense.mean(axis=0)
        dense -= mean_x[parts.dense_columns]
        yc -= mean_y
        sxx, sxy = np.zeros((p, p)), np.zeros(p)
        index = np.ix_(parts.dense_columns, parts.dense_columns)
        sxx[index] = dense.T @ dense
        sxy[parts.dense_columns] = dense.T @ yc
        dense_totals, y_total = dense.sum(axis=0), float(yc.sum())
        shares = []
        for codes, start, width in parts.blocks:
            block = slice(start, start + width)
            counts = np.bincount(codes, minlength=width).astype(np.float64)
            share = counts / n
            shares.append(share)
            mean_x[block] = share - shift_x[block]
            # Σ (h_a - p_a)(d - d̄) = (sum of d - d̄ over the rows of a) - p_a · Σ (d - d̄)
            sums = np.column_stack(
                [np.bincount(codes, weights=column, minlength=width) for column in dense.T]
                or [np.empty((width, 0))]
            )
            cross = sums - np.outer(share, dense_totals)
            sxx[block, parts.dense_columns] = cross
            sxx[parts.dense_columns, block] = cross.T
            sxy[block] = np.bincount(codes, weights=yc, minlength=width) - share * y_total
            sxx[block, block] = np.diag(counts) - n * np.outer(share, share)
        for i, (codes, start, width) in enumerate(parts.blocks):
            for j in range(i):
                other, other_start, other_width = parts.blocks[j]
                together = np.bincount(codes * other_width + other, minlength=width * other_width)
                cross = together.reshape(width, other_width) - n * np.outer(shares[i], shares[j])
                sxx[start : start + width, other_start : other_start + other_width] = cross
                sxx[other_start : other_start + other_width, start : start + width] = cross.T
        return cls(n, mean_x, mean_y, sxx, sxy, float(yc @ yc), shift_x, shift_y)

    def merge(self, other: LinearStats) -> LinearStats:
        """The statistics of both row sets (Chan, Golub and LeVeque's pairwise update)."""
        if not (np.array_equal(self.shift_x, other.shift_x) and self.shift_y == other.shift_y):
            raise ValueError("statistics measured from different shifts do not merge")
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        dx = other.mean_x - self.mean_x
        dy = other.mean_y - self.mean_y
        weight = self.n * other.n / n
        return LinearStats(
            n=n,
            mean_x=self.mean_x + dx * (other.n / n),
            mean_y=self.mean_y + dy * (other.n / n),
            sxx=self.sxx + other.sxx + np.outer(dx, dx) * weight,
            sxy=self.sxy + other.sxy + dx * (dy * weight),
            syy=self.syy + other.syy + dy * dy * weight,
            shift_x=self.shift_x,
            shift_y=self.shift_y,
        )

    def solve(self) -> tuple[np.ndarray, float]:
        """``(coef, intercept)`` of the least-squares fit with an intercept, as scikit-learn's
        LinearRegression. (Without an intercept the normal equations would be uncentred,
        which is what this avoids: the streaming engines require ``fit_intercept=true``.)

        Raises
        ------
        ValueError
            Fewer than two rows.
        """
        self._require_rows()
        coef = _solve_symmetric(self.sxx, self.sxy)
        return coef, self.intercept(coef)

    def solve_ridge(self, alpha: float) -> tuple[np.ndarray, float]:
        """``(coef, intercept)`` minimising ``‖y - Xw - b‖² + alpha·‖w‖²``: scikit-learn's
        Ridge (its Cholesky solver on centred data, ``(XᵀX + alpha·I) w = Xᵀy``)."""
        from scipy import linalg

        self._require_rows()
        gram = self.sxx + alpha * np.eye(len(self.sxy))
        try:
            coef = linalg.solve(gram, self.sxy, assume_a="pos")
        except linalg.LinAlgError:  # alpha = 0 and singular: least squares' answer
            coef = _solve_symmetric(self.sxx, self.sxy)
        return coef, self.intercept(coef)

    def solve_elastic_net(
        self,
        alpha: float,
        l1_ratio: float,
        *,
        max_iter: int,
        tol: float,
        positive: bool = False,
        random: bool = False,
        random_state: Any = None,
    ) -> tuple[np.ndarray, float, int]:
        """``(coef, intercept, iterations)`` of scikit-learn's ElasticNet (Lasso:
        ``l1_ratio=1``): its own coordinate descent, on the centred Gram matrix instead of
        the data. scikit-learn scales the penalties by the row count; its stopping rule
        needs only ``‖y - ȳ‖²`` of the target."""
        from sklearn.linear_model import _cd_fast
        from sklearn.utils import check_random_state

        self._require_rows()
        coef = np.zeros(len(self.sxy))
        coef, _, _, iterations = _cd_fast.enet_coordinate_descent_gram(
            coef,
            alpha * l1_ratio * self.n,
            alpha * (1.0 - l1_ratio) * self.n,
            np.ascontiguousarray(self.sxx),
            np.ascontiguousarray(self.sxy),
            np.array([math.sqrt(self.syy)]),  # only its squared norm is used
            max_iter,
            tol,
            check_random_state(random_state),
            random,
            positive,
        )
        coef = np.asarray(coef, dtype=np.float64)
        return coef, self.intercept(coef), int(iterations)

    def intercept(self, coef: np.ndarray) -> float:
        """``ȳ - x̄·w``, with the shifts' part apart so the small means keep their
        precision."""
        return (self.shift_y - float(self.shift_x @ coef)) + (
            self.mean_y - float(self.mean_x @ coef)
        )

    def _require_rows(self) -> None:
        if self.n < 2:
            raise ValueError(f"a fit needs at least 2 rows, got {self.n}")

    @property
    def feature_means(self) -> np.ndarray:
        """``x̄``, the features' means."""
        return self.shift_x + self.mean_x

    def moments(self) -> CalibrationMoments:
        """Feature mean and covariance (ddof=0): what quantization calibrates on."""
        return CalibrationMoments(mean=self.feature_means, cov=self.sxx / self.n)


@dataclass(frozen=True)
class ColumnSummary:
    """What preprocessing learns from the training rows (see :meth:`TableStats.summary`).

    Attributes
    ----------
    n : int
        Training rows.
    count, mean, m2 : np.ndarray
        Per numeric feature: its present (non-missing) values' count, mean and sum of squared
        deviations.
    counts : tuple of dict
        Per categorical feature: each text's count among the training rows (None: missing).
    seen : tuple of frozenset
        Per categorical feature: the texts of *all* rows, test rows too (the cardinality cap
        counts the whole table, as it does in memory).
    """

    n: int
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    counts: tuple[dict[str | None, int], ...]
    seen: tuple[frozenset[str], ...]


class TooManyLevels(ValueError):
    """A categorical feature (``column``, its position) has ``count`` distinct texts, more
    than the statistics keep."""

    def __init__(self, column: int, count: int) -> None:
        super().__init__(f"categorical feature {column} has {count} distinct values")
        self.column, self.count = column, count


@dataclass(frozen=True)
class TableStats:
    """Sufficient statistics of a table's training rows before any preprocessing is known,
    from one pass: :class:`LinearStats` over its *raw design* — per numeric feature its value
    minus a shift (0 where missing), then per numeric feature its 0/1 missing indicator, then
    per categorical feature one 0/1 column per text (``levels``; None is missing). Batches
    see different texts: merging aligns the levels by text (a text a batch never saw is a
    column of zeros there, which centred statistics hold exactly).

    Every preprocessing this project offers is linear in the raw design (a filled value is
    ``r + (fill - shift)·m``; a one-hot column is a text's column, or none), so
    :meth:`summary` gives what preprocessing learns and :meth:`design_statistics` the
    statistics of any folded model's design, without another pass.
    """

    stats: LinearStats
    numeric_shift: np.ndarray
    levels: tuple[tuple[str | None, ...], ...]
    seen: tuple[frozenset[str], ...]
    max_levels: int

    @classmethod
    def from_batch(
        cls,
        X: np.ndarray,
        text: Sequence[Any],
        y: np.ndarray,
        train: np.ndarray,
        shift: tuple[np.ndarray, float],
        max_levels: int,
    ) -> TableStats:
        """The statistics of a batch's training rows ``train``: numeric features ``X`` (NaN:
        missing), categorical ones ``text`` (:class:`pandas.Categorical`: codes, -1 missing),
        target ``y``, numeric shift and target shift ``shift``.

        Raises
        ------
        TooManyLevels
            A categorical feature has more than ``max_levels`` distinct texts in the batch.
        """
        numeric_shift, y_shift = shift
        k = X.shape[1]
        X = X[train]
        missing = np.isnan(X)
        # Column-major, as the per-category sums read it; a missing indicator that is 0 in
        # every row of the batch is left out (a column of zeros, which the statistics imply).
        flagged = np.flatnonzero(missing.any(axis=0))
        dense = np.empty((len(X), k + len(flagged)), order="F")
        np.subtract(X, numeric_shift, out=dense[:, :k])
        if len(flagged):
            dense[:, :k][missing] = 0.0
            dense[:, k:] = missing[:, flagged]
        levels, blocks, seen, start = [], [], [], 2 * k
        for j, column in enumerate(text):
            codes, categories = np.asarray(column.codes, dtype=np.intp), list(column.categories)
            if len(categories) > max_levels:
                present = np.unique(codes[codes >= 0])
                if len(present) > max_levels:
                    raise TooManyLevels(j, len(present))
            everywhere = np.bincount(codes + 1, minlength=len(categories) + 1)[1:]
            seen.append(
                frozenset(c for c, count in zip(categories, everywhere, strict=True) if count)
            )
            codes = codes[train]
            codes = np.where(codes < 0, len(categories), codes)  # missing: the last level
            levels.append((*categories, None))
            blocks.append((codes, start, len(categories) + 1))
            start += len(categories) + 1
        dense_columns = np.concatenate([np.arange(k), k + flagged]).astype(np.intp)
        parts = DesignParts(dense, dense_columns, tuple(blocks))
        stats = LinearStats.from_design(parts, y[train], np.zeros(start), y_shift, scratch=True)
        return cls(stats, numeric_shift, tuple(levels), tuple(seen), max_levels)

    def _columns(self, levels: tuple[tuple[str | None, ...], ...]) -> np.ndarray:
        """Where each of this table's raw columns goes in the raw design of ``levels``."""
        k = len(self.numeric_shift)
        positions, start = list(range(2 * k)), 2 * k
        for mine, theirs in zip(self.levels, levels, strict=True):
            where = {level: i for i, level in enumerate(theirs)}
            positions.extend(start + where[level] for level in mine)
            start += len(theirs)
        return np.asarray(positions, dtype=np.intp)

    def _embedded(self, levels: tuple[tuple[str | None, ...], ...]) -> LinearStats:
        """These statistics over the wider raw design of ``levels`` (which holds ours)."""
        width = 2 * len(self.numeric_shift) + sum(len(column) for column in levels)
        columns = self._columns(levels)
        if len(columns) == width and np.array_equal(columns, np.arange(width)):
            return self.stats
        mean_x, sxy, sxx = np.zeros(width), np.zeros(width), np.zeros((width, width))
        mean_x[columns], sxy[columns] = self.stats.mean_x, self.stats.sxy
        sxx[np.ix_(columns, columns)] = self.stats.sxx
        stats = self.stats
        return LinearStats(
            stats.n, mean_x, stats.mean_y, sxx, sxy, stats.syy, np.zeros(width), stats.shift_y
        )

    def merge(self, other: TableStats) -> TableStats:
        """Both row sets, over the union of their texts.

        Raises
        ------
        TooManyLevels
            The union of a categorical feature's texts exceeds ``max_levels``.
        """
        levels = tuple(
            (*mine, *(level for level in theirs if level not in set(mine)))
            for mine, theirs in zip(self.levels, other.levels, strict=True)
        )
        seen = tuple(a | b for a, b in zip(self.seen, other.seen, strict=True))
        for j, texts in enumerate(seen):
            if len(texts) > self.max_levels:
                raise TooManyLevels(j, len(texts))
        merged = self._embedded(levels).merge(other._embedded(levels))
        return TableStats(merged, self.numeric_shift, levels, seen, self.max_levels)

    def summary(self) -> ColumnSummary:
        """What preprocessing learns: the numeric features' present values (count, mean,
        squared deviations) and each text's count."""
        stats, k = self.stats, len(self.numeric_shift)
        n = stats.n
        means = stats.feature_means  # r̄ (shift 0), then the missing shares, then the levels
        count = n - np.rint(n * means[k : 2 * k])
        total = n * means[:k]  # Σ r over the present values (a missing one is 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            present_mean = np.where(count > 0, total / count, 0.0)
            # Σ r² = S_rr + n·r̄², minus count·(present mean)²: r is shifted, so no cancellation.
            m2 = np.diag(stats.sxx)[:k] + n * means[:k] ** 2 - count * present_mean**2
        counts, start = [], 2 * k
        for column in self.levels:
            shares = means[start : start + len(column)]
            found = {level: int(c) for level, c in zip(column, np.rint(n * shares), strict=True)}
            counts.append({level: c for level, c in found.items() if c})
            start += len(column)
        return ColumnSummary(
            n,
            count,
            present_mean + self.numeric_shift,
            np.maximum(m2, 0.0),
            tuple(counts),
            self.seen,
        )

    def design_statistics(self, layout: FoldedModel) -> LinearStats:
        """The statistics of ``layout``'s design (its fills, indicators and categories; any
        category it has must be one of these texts) on the same rows: ``d = r·B + c``, so the
        centred products are ``Bᵀ S B``."""
        k = len(self.numeric_shift)
        level_at, start = [], 2 * k
        for column in self.levels:
            level_at.append({level: start + i for i, level in enumerate(column)})
            start += len(column)
        names = layout.design_names()
        B, shift = np.zeros((start, len(names))), np.zeros(len(names))
        numeric, categorical = 0, 0
        for item, columns in layout.design_slices():
            first = columns.start
            if item.kind == NUMERIC:
                j = numeric
                numeric += 1
                fill = self.numeric_shift[j] if item.fill is None else item.fill
                B[j, first] = 1.0  # the value: r + (fill - shift)·m, measured from the shift
                B[k + j, first] = fill - self.numeric_shift[j]
                shift[first] = self.numeric_shift[j]
                if item.indicator is not None:
                    B[k + j, first + 1] = 1.0
            else:
                position = {level: i for i, level in enumerate([*item.categories, None])}
                unknown = len(item.categories) + 1  # a text the layout does not know
                for level, row in level_at[categorical].items():
                    B[row, first + position.get(level, unknown)] = 1.0
                categorical += 1
        stats = self.stats
        return LinearStats(
            stats.n,
            stats.mean_x @ B,
            stats.mean_y,
            B.T @ stats.sxx @ B,
            B.T @ stats.sxy,
            stats.syy,
            shift + stats.shift_x @ B,
            stats.shift_y,
        )


@dataclass(frozen=True)
class ClassCounts:
    """Each label's count among some rows (a classifier's training rows): what its classes
    and balanced class weights are learnt from."""

    counts: dict[Any, int]

    @classmethod
    def from_labels(cls, y: np.ndarray) -> ClassCounts:
        labels, counts = np.unique(y, return_counts=True)
        return cls(dict(zip(labels.tolist(), counts.tolist(), strict=True)))

    def merge(self, other: ClassCounts) -> ClassCounts:
        counts = dict(self.counts)
        for label, count in other.counts.items():
            counts[label] = counts.get(label, 0) + count
        return ClassCounts(counts)


@dataclass(frozen=True)
class ClassifierScores:
    """A classifier's scores on some rows, as little of them as its metrics need: the
    confusion matrix and the total log loss, which merge by addition, and for ROC AUC each
    row's class (one byte) and probabilities (of the second class for a binary model), kept
    per batch: 9 bytes a row for a binary model, where the labels and probability matrix
    :func:`mlops_lr.metrics.classification_metrics` takes (and its temporaries) would be
    over a hundred."""

    confusion: np.ndarray
    log_loss: float
    y: tuple[np.ndarray, ...]
    proba: tuple[np.ndarray, ...]

    @classmethod
    def from_batch(
        cls, y: np.ndarray, predicted: np.ndarray, proba: np.ndarray
    ) -> ClassifierScores:
        """Rows of true and predicted classes (positions) and probabilities, shape ``(n,
        classes)``."""
        k = proba.shape[1]
        confusion = np.bincount(y * k + predicted, minlength=k * k).reshape(k, k)
        # scikit-learn's log loss: each row's probability of its class, clipped to [ε, 1 − ε].
        eps = np.finfo(np.float64).eps
        true = np.clip(proba[np.arange(len(y)), y], eps, 1 - eps)
        kept = proba[:, 1] if k == 2 else proba
        return cls(confusion, float(-np.log(true).sum()), (y.astype(np.int8),), (kept,))

    def merge(self, other: ClassifierScores) -> ClassifierScores:
        return ClassifierScores(
            self.confusion + other.confusion,
            self.log_loss + other.log_loss,
            self.y + other.y,
            self.proba + other.proba,
        )

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    def metrics(self) -> dict[str, Any]:
        """Accuracy, balanced accuracy, log loss, ROC AUC and the confusion matrix, as
        :func:`mlops_lr.metrics.classification_metrics` computes them (ROC AUC by counting
        ranks: the area under the curve, exactly).

        Raises
        ------
        ValueError
            No rows.
        """
        confusion, n = self.confusion, self.n
        if n == 0:
            raise ValueError("no rows to evaluate")
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = np.diag(confusion) / confusion.sum(axis=1)
        present = np.flatnonzero(confusion.sum(axis=1))
        if len(present) < 2:
            auc = None
        elif len(confusion) == 2:
            auc = _rank_auc(np.concatenate(self.proba), np.concatenate(self.y) == 1)
        elif len(present) == len(confusion):  # one-vs-rest, macro-averaged
            y, proba = np.concatenate(self.y), np.concatenate(self.proba)
            auc = float(np.mean([_rank_auc(proba[:, k], y == k) for k in range(len(confusion))]))
        else:  # a class absent from these rows has no curve of its own
            auc = None
        return {
            "accuracy": float(np.trace(confusion) / n),
            "balanced_accuracy": float(np.mean(recall[~np.isnan(recall)])),
            "log_loss": self.log_loss / n,
            "roc_auc": auc,
            "confusion_matrix": confusion.tolist(),
        }


def _rank_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The area under the ROC curve of ``scores`` for the ``positive`` rows: the share of
    (positive, negative) pairs ranked right, ties counting half (what the trapezoids of the
    curve add up to), counted on the sorted scores of each side."""
    negatives = scores[~positive]
    negatives.sort()  # in place: these are copies already
    positives = scores[positive]
    positives.sort()
    pairs = 0  # twice the pairs ranked right: exact in integers
    for start in range(0, len(positives), _RANKED_AT_ONCE):
        chunk = positives[start : start + _RANKED_AT_ONCE]
        pairs += int(np.searchsorted(negatives, chunk, side="left").sum())
        pairs += int(np.searchsorted(negatives, chunk, side="right").sum())
    return float(pairs / (2.0 * len(positives) * len(negatives)))


# Positive scores ranked among the negatives at a time (bounds the index arrays' memory).
_RANKED_AT_ONCE = 1 << 20


@dataclass(frozen=True)
class WeightedMoments:
    """The total weight, weighted mean and weighted centred cross-products of rows (two
    batches merge with Chan et al.'s update): a classifier's Fisher-weighted calibration
    moments (:func:`mlops_lr.quantized_classifier.weighted_moments`) from batches."""

    weight: float
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def from_batch(cls, X: np.ndarray, weights: np.ndarray) -> WeightedMoments:
        total = float(weights.sum())
        if not total > 0:  # no weight: nothing to add
            p = X.shape[1]
            return cls(0.0, np.zeros(p), np.zeros((p, p)))
        mean = (weights / total) @ X
        centred = X - mean
        return cls(total, mean, (centred * weights[:, None]).T @ centred)

    def merge(self, other: WeightedMoments) -> WeightedMoments:
        if not other.weight > 0:
            return self
        if not self.weight > 0:
            return other
        weight = self.weight + other.weight
        delta = other.mean - self.mean
        return WeightedMoments(
            weight,
            self.mean + delta * (other.weight / weight),
            self.m2 + other.m2 + np.outer(delta, delta) * (self.weight * other.weight / weight),
        )

    def moments(self) -> CalibrationMoments:
        """Mean and covariance (the weights normalised to sum to 1)."""
        return CalibrationMoments(mean=self.mean, cov=self.m2 / self.weight)


def merge_all(results: Iterable[Mergeable]) -> Mergeable:
    """Merge statistics (anything with ``a.merge(b)``, in order) as a balanced tree, so that
    rounding grows with log n, not n, without holding them all: a binary counter of partial
    merges, at most log2(n) of them.

    Raises
    ------
    ValueError
        Nothing to merge.
    """
    stack: list[tuple[int, Mergeable]] = []
    for result in results:
        size, merged = 1, result
        while stack and stack[-1][0] == size:
            merged, size = stack.pop()[1].merge(merged), size * 2
        stack.append((size, merged))
    if not stack:
        raise ValueError("nothing to merge")
    merged = stack.pop()[1]
    while stack:
        merged = stack.pop()[1].merge(merged)
    return merged


def exact_solution(gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """Solve ``gram w = cross`` in exact rational arithmetic, each entry (float64 or long
    double) converted exactly; only the final rounding to float64 is inexact. The reference
    the tests and benchmarks hold the fit to (slow: for a few dozen features)."""

    def exact(value: np.floating) -> Fraction:
        high = float(value)
        return Fraction(high) + Fraction(float(np.longdouble(value) - np.longdouble(high)))

    p = len(cross)
    rows = [[exact(gram[i, j]) for j in range(p)] + [exact(cross[i])] for i in range(p)]
    for k in range(p):
        for i in range(k + 1, p):
            factor = rows[i][k] / rows[k][k]
            rows[i] = [a - factor * b for a, b in zip(rows[i], rows[k], strict=True)]
    w = [Fraction(0)] * p
    for i in reversed(range(p)):
        w[i] = (rows[i][p] - sum(rows[i][j] * w[j] for j in range(i + 1, p))) / rows[i][i]
    return np.array([float(v) for v in w])


def _solve_symmetric(gram: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """Solve ``gram w = cross`` for a symmetric positive semi-definite ``gram``: Cholesky on
    the unit-diagonal scaling; when that is singular or ill-conditioned, the minimum-norm
    least-squares solution in the original variables (scikit-learn's answer)."""
    from scipy import linalg  # deferred: importing this module needs only numpy

    diagonal = np.diag(gram)
    if (diagonal > 0).all():
        scale = 1.0 / np.sqrt(diagonal)
        scaled = gram * np.outer(scale, scale)
        if np.linalg.cond(scaled) < 1e12:
            try:
                factor = linalg.cho_factor(scaled, lower=False, check_finite=True)
                return linalg.cho_solve(factor, cross * scale) * scale
            except linalg.LinAlgError:
                pass
    return linalg.lstsq(gram, cross, cond=None)[0]


@dataclass(frozen=True)
class ErrorStats:
    """Sums over ``n`` (target, prediction) pairs that give R², MSE, RMSE and MAE exactly."""

    n: int
    sum_squared_error: float
    sum_absolute_error: float
    mean_y: float
    m2_y: float

    @classmethod
    def from_batch(cls, y: np.ndarray, predictions: np.ndarray) -> ErrorStats:
        y = np.asarray(y, dtype=np.float64)
        if len(y) == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0)
        errors = y - np.asarray(predictions, dtype=np.float64)
        mean_y = float(y.mean())
        return cls(
            len(y),
            float(errors @ errors),
            float(np.abs(errors).sum()),
            mean_y,
            float(((y - mean_y) ** 2).sum()),
        )

    def merge(self, other: ErrorStats) -> ErrorStats:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean_y - self.mean_y
        return ErrorStats(
            n,
            self.sum_squared_error + other.sum_squared_error,
            self.sum_absolute_error + other.sum_absolute_error,
            self.mean_y + delta * other.n / n,
            self.m2_y + other.m2_y + delta * delta * self.n * other.n / n,
        )

    def metrics(self) -> dict[str, float]:
        """``r2``, ``mse``, ``rmse`` and ``mae``, as mlops_lr.metrics computes them in memory."""
        if self.n == 0:
            raise ValueError("no rows to evaluate")
        mse = self.sum_squared_error / self.n
        r2 = 1.0 - self.sum_squared_error / self.m2_y if self.m2_y > 0 else float("nan")
        return {
            "r2": r2,
            "mse": mse,
            "rmse": math.sqrt(mse),
            "mae": self.sum_absolute_error / self.n,
        }
