"""The scikit-learn frontend out of core: the configured preprocessing and estimator fitted
from merged statistics instead of rows, to what fitting them on the rows gives.

1. :func:`fit_preprocessing`: the preprocessing pipeline fitted from a
   :class:`~mlops_lr.sufficient.ColumnSummary` (numeric means and deviations, category
   counts; :meth:`TableStats.summary <mlops_lr.sufficient.TableStats.summary>`). The
   encoders are scikit-learn's own, fitted on a few stand-in rows with the same
   categories, missing values and frequent/infrequent split, so their rules (sorting,
   infrequent levels, ``drop``) are scikit-learn's; the imputer's and scaler's statistics are
   then set from the summary.
2. :func:`fit_estimator`: the estimator's coefficients from the statistics of the *folded
   design* (:meth:`TableStats.design_statistics
   <mlops_lr.sufficient.TableStats.design_statistics>`), mapped linearly to the
   preprocessing's output space (scaling, one-hot columns kept, dropped or pooled): OLS and
   Ridge in closed form, Lasso and ElasticNet by scikit-learn's coordinate descent on the
   Gram matrix.
3. :func:`fit_classifier`: a ``LogisticRegression`` given the coefficients Newton's method
   found (:mod:`mlops_lr.newton`) over the preprocessing's outputs (:func:`encoding` maps
   the folded design to them, batch by batch).

Folding the result (:func:`mlops_lr.preprocess.fold`) gives the folded model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import ElasticNet, LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from mlops_lr import preprocess
from mlops_lr.config import StandardPreprocessConfig
from mlops_lr.folded import NUMERIC, FoldedModel
from mlops_lr.sufficient import ColumnSummary, LinearStats

# Estimators fitted from statistics (Lasso is an ElasticNet).
SUPPORTED = (LinearRegression, Ridge, ElasticNet)


def fit_preprocessing(
    settings: StandardPreprocessConfig,
    estimator: RegressorMixin,
    summary: ColumnSummary,
    feature_names: Sequence[str],
    categorical: Sequence[str],
) -> Pipeline:
    """The preprocessing pipeline around ``estimator`` (not fitted yet), its preprocessing
    fitted as :func:`mlops_lr.preprocess.build_model`'s would be on the training rows that
    ``summary`` describes.

    Raises
    ------
    DataError
        A categorical column has more distinct values than ``max_categories``.
    """
    for name, seen in zip(categorical, summary.seen, strict=True):
        preprocess.check_cardinality(name, len(seen), settings)
    numeric = [name for name in feature_names if name not in categorical]
    stand_in, thresholds = _stand_in_rows(settings, summary, numeric, categorical)
    model = preprocess.build_model(settings, estimator, stand_in[list(feature_names)], categorical)
    columns = model.named_steps["preprocess"]
    for name in categorical:
        columns.set_params(
            **{f"{preprocess.CATEGORICAL_STEP}{name}__min_frequency": thresholds[name]}
        )
    columns.fit(stand_in[list(feature_names)])
    for (
        name
    ) in categorical:  # the fitted encoders keep their levels; the setting reads as configured
        columns.named_transformers_[preprocess.CATEGORICAL_STEP + name].set_params(
            min_frequency=preprocess.min_frequency(settings)
        )
    if numeric:
        _set_numeric_statistics(
            columns.named_transformers_[preprocess.NUMERIC_STEP], settings, summary
        )
    return model


def _stand_in_rows(
    settings: StandardPreprocessConfig,
    summary: ColumnSummary,
    numeric: Sequence[str],
    categorical: Sequence[str],
) -> tuple[pd.DataFrame, dict[str, int | None]]:
    """Rows on which scikit-learn's encoders learn what they would from the training rows,
    with the ``min_frequency`` that splits them the same way, per column.

    A frequent level appears twice and an infrequent one once (threshold 2); when every level
    is infrequent, the threshold exceeds the rows. A numeric column is missing in the first
    row when it was missing in training (the missing indicator's "missing-only" rule), and
    everywhere when it was never present."""
    frequency = preprocess.min_frequency(settings)
    levels: dict[str, list[str | None]] = {}
    frequent_levels: dict[str, list[str | None]] = {}
    for name, counts in zip(categorical, summary.counts, strict=True):
        if frequency is None:
            frequent = list(counts)
        elif isinstance(frequency, int):
            frequent = [key for key, count in counts.items() if count >= frequency]
        else:  # scikit-learn: infrequent when count < min_frequency · n_samples
            frequent = [key for key, count in counts.items() if count >= frequency * summary.n]
        levels[name] = [*counts, *(frequent if frequency is not None else [])]
        frequent_levels[name] = frequent  # None (missing) may be one
    rows = max([2, *(len(values) for values in levels.values())])
    thresholds: dict[str, int | None] = {}
    frame = {}
    for name in categorical:
        values = levels[name]
        frequent = frequent_levels[name]
        padding = frequent[0] if frequent else values[0]
        # Typed as the in-memory tables' text columns are (pandas' string dtype, NaN for
        # missing): scikit-learn tells None and NaN apart.
        frame[name] = pd.Series(values + [padding] * (rows - len(values)), dtype="str")
        if frequency is None:
            thresholds[name] = None
        else:
            thresholds[name] = 2 if frequent else rows + 1
    for j, name in enumerate(numeric):
        column = np.zeros(rows)
        if summary.count[j] == 0:
            column[:] = np.nan
        elif summary.count[j] < summary.n:
            column[0] = np.nan
        frame[name] = column
    return pd.DataFrame(frame), thresholds


def _set_numeric_statistics(
    steps: Pipeline, settings: StandardPreprocessConfig, summary: ColumnSummary
) -> None:
    """The imputer's fills and the scaler's centre and scale, from the summary: what fitting
    them on the training rows computes."""
    imputer = steps.named_steps["impute"]
    if settings.impute == "mean":  # an all-missing column is kept, filled with 0
        fills = np.where(summary.count > 0, summary.mean, 0.0)
    else:  # "constant"
        fills = np.asarray(imputer.statistics_, dtype=np.float64)
    imputer.statistics_ = fills.astype(imputer.statistics_.dtype)
    scaler = steps.named_steps["scale"]
    if settings.scale == "none":
        return
    n = summary.n
    missing = n - summary.count
    # The filled column's mean and sum of squared deviations.
    mean = (summary.count * summary.mean + missing * fills) / n
    m2 = summary.m2 + summary.count * (summary.mean - mean) ** 2 + missing * (fills - mean) ** 2
    var = m2 / n
    # scikit-learn's rule for a constant feature (its scale is 1): a variance within the
    # rounding error of the mean.
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scaler.mean_, scaler.var_ = mean, var
    scaler.scale_ = np.where(constant, 1.0, np.sqrt(var))
    scaler.n_samples_seen_ = n


def layout(
    model: BaseEstimator | Pipeline,
    feature_names: Sequence[str],
    categorical: Sequence[str],
    target: str,
) -> FoldedModel:
    """The folded model's inputs (fills, indicators, categories) for ``model`` with its
    preprocessing fitted, every parameter 0: the design the statistics are taken over."""
    if not isinstance(model, Pipeline):
        return FoldedModel.linear(np.zeros(len(feature_names)), 0.0, feature_names, target)
    # The design is the preprocessing's whatever the estimator (a classifier's would fold
    # into one row per class): folded through a zero regressor.
    zero = LinearRegression()
    zero.coef_, zero.intercept_ = np.zeros(_output_width(model)), 0.0
    steps = Pipeline([("preprocess", model.named_steps["preprocess"]), ("model", zero)])
    return preprocess.fold(steps, feature_names, categorical, target)


def fit_estimator(
    model: RegressorMixin | Pipeline, layout: FoldedModel, design: LinearStats
) -> None:
    """Fit ``model``'s estimator from ``design``, the statistics of the training rows over
    ``layout``'s design (its preprocessing fitted already): set its ``coef_`` and
    ``intercept_`` (``n_iter_`` for coordinate descent).

    Raises
    ------
    ValueError
        Fewer than two training rows.
    """
    estimator = model.named_steps["model"] if isinstance(model, Pipeline) else model
    statistics = design if not isinstance(model, Pipeline) else _encoded(model, layout, design)
    if isinstance(estimator, ElasticNet):
        coef, intercept, estimator.n_iter_ = statistics.solve_elastic_net(
            estimator.alpha,
            estimator.l1_ratio,  # 1 for a Lasso
            max_iter=estimator.max_iter,
            tol=estimator.tol,
            positive=estimator.positive,
            random=estimator.selection == "random",
            random_state=estimator.random_state,
        )
    elif isinstance(estimator, Ridge):
        coef, intercept = statistics.solve_ridge(float(estimator.alpha))
    else:
        coef, intercept = statistics.solve()
    estimator.coef_, estimator.intercept_ = coef, intercept
    estimator.n_features_in_ = len(coef)


def _output_width(model: Pipeline) -> int:
    return max(indices.stop for indices in model.named_steps["preprocess"].output_indices_.values())


def fit_classifier(
    model: LogisticRegression | Pipeline, classes: Sequence[Any], coef: np.ndarray, n_iter: int
) -> None:
    """Set ``model``'s ``LogisticRegression`` to the fitted coefficients ``coef`` (a row per
    score, the intercept last; over the preprocessing's outputs) of the sorted ``classes``,
    after ``n_iter`` Newton steps: what its ``fit`` sets."""
    estimator = model.named_steps["model"] if isinstance(model, Pipeline) else model
    estimator.classes_ = np.asarray(classes, dtype=object if isinstance(classes[0], str) else None)
    estimator.coef_ = np.ascontiguousarray(coef[:, :-1])
    estimator.intercept_ = coef[:, -1].copy()
    estimator.n_iter_ = np.asarray([n_iter], dtype=np.int32)
    estimator.n_features_in_ = coef.shape[1] - 1


def encoding(model: Pipeline, layout: FoldedModel) -> tuple[np.ndarray, np.ndarray]:
    """How the preprocessing maps ``layout``'s design to its outputs: ``z = (d − c)·A``
    (numeric columns centred and scaled, indicators as they are, each one-hot block times
    its encoder's rows). Returns ``A`` and ``c`` (the numeric centres; 0 elsewhere)."""
    columns = model.named_steps["preprocess"]
    slices = columns.output_indices_
    A = np.zeros((len(layout.design_names()), _output_width(model)))
    centres = np.zeros(len(A))
    start_of = {item.name: block.start for item, block in layout.design_slices()}
    if preprocess.NUMERIC_STEP in columns.named_transformers_:
        steps = columns.named_transformers_[preprocess.NUMERIC_STEP]
        names = list(preprocess.columns_of(columns, preprocess.NUMERIC_STEP))
        centre, scale = preprocess.centre_and_scale(steps.named_steps["scale"], len(names))
        outputs = np.arange(
            slices[preprocess.NUMERIC_STEP].start, slices[preprocess.NUMERIC_STEP].stop
        )
        for j, name in enumerate(names):
            A[start_of[name], outputs[j]] = 1.0 / scale[j]
            centres[start_of[name]] = centre[j]
        if preprocess.MISSING_STEP in columns.named_transformers_:
            flagged = columns.named_transformers_[preprocess.MISSING_STEP].features_
            first = slices[preprocess.MISSING_STEP].start
            for k, j in enumerate(flagged):  # an indicator is its input's second column
                A[start_of[names[j]] + 1, first + k] = 1.0
    for item, block in layout.design_slices():
        if item.kind == NUMERIC:
            continue
        step = preprocess.CATEGORICAL_STEP + item.name
        _, rows = preprocess.encoded_levels(columns.named_transformers_[step], item.name)
        A[block, slices[step]] = rows
    return A, centres


def _encoded(model: Pipeline, layout: FoldedModel, design: LinearStats) -> LinearStats:
    """``design``'s statistics in the preprocessing's output space (:func:`encoding`), so
    the centred cross-products become ``Aᵀ S A``."""
    A, centres = encoding(model, layout)
    # The shift maps like any point (so the means keep their precision), the centres do not.
    return LinearStats(
        n=design.n,
        mean_x=design.mean_x @ A,
        mean_y=design.mean_y,
        sxx=A.T @ design.sxx @ A,
        sxy=A.T @ design.sxy,
        syy=design.syy,
        shift_x=(design.shift_x - centres) @ A,
        shift_y=design.shift_y,
    )


__all__ = [
    "SUPPORTED",
    "encoding",
    "fit_classifier",
    "fit_estimator",
    "fit_preprocessing",
    "layout",
]
