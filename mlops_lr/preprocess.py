"""The scikit-learn frontend: build the configured preprocessing + model, and fold a fitted
one into a :class:`~mlops_lr.folded.FoldedModel`.

``preprocess=none`` is the estimator alone (numeric inputs as they are). ``preprocess=standard``
is ``Pipeline([("preprocess", ColumnTransformer), ("model", estimator)])`` whose transformers
are, in this order:

- ``numeric``: ``SimpleImputer`` then ``StandardScaler``/``RobustScaler`` (or nothing);
- ``missing``: ``MissingIndicator`` (``add_indicator=true``; columns with missing training
  values only);
- ``categorical:<column>``: one ``OneHotEncoder`` per categorical column, so that each
  column's one-hot block is its own slice of the output.

Folding asks the fitted transformers themselves what each input contributes (the encoder
transforms every category, an unseen one and a missing one), so the folded tables follow
scikit-learn's rules for infrequent, dropped, unknown and missing categories exactly.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, RobustScaler, StandardScaler

from mlops_lr.config import PreprocessConfig, StandardPreprocessConfig
from mlops_lr.exceptions import DataError
from mlops_lr.folded import CategoricalInput, FoldedModel, NumericInput
from mlops_lr.folded_classifier import LOGISTIC, SOFTMAX, FoldedClassifier

NUMERIC_STEP = "numeric"
MISSING_STEP = "missing"
CATEGORICAL_STEP = "categorical:"
# An input no category can equal: folding transforms it to learn the unknown contribution.
_UNSEEN = "\x00unseen category\x00"


def build_model(
    settings: PreprocessConfig,
    estimator: BaseEstimator,
    features: pd.DataFrame,
    categorical: Sequence[str],
) -> BaseEstimator | Pipeline:
    """The estimator (``preprocess=none``) or the preprocessing pipeline around it, for the
    columns of ``features`` (the whole table: the cardinality cap counts all its values).

    Raises
    ------
    DataError
        A categorical column has more distinct values than ``max_categories``.
    """
    if not isinstance(settings, StandardPreprocessConfig):
        return estimator
    numeric = [name for name in features.columns if name not in categorical]
    for name in categorical:
        check_cardinality(name, int(features[name].nunique(dropna=True)), settings)
    transformers = []
    if numeric:
        scaler = {"standard": StandardScaler(), "robust": RobustScaler(), "none": "passthrough"}
        imputer = SimpleImputer(
            strategy=settings.impute, fill_value=settings.fill_value, keep_empty_features=True
        )
        steps = [("impute", imputer), ("scale", scaler[settings.scale])]
        transformers.append((NUMERIC_STEP, Pipeline(steps), numeric))
        if settings.add_indicator:
            transformers.append(
                (
                    MISSING_STEP,
                    MissingIndicator(features="missing-only", error_on_new=False),
                    numeric,
                )
            )
    drop = settings.drop
    if drop == "auto":  # an unpenalised fit with an intercept is singular on a full block
        drop = "first" if is_unpenalised(estimator) else "none"
    frequency = min_frequency(settings)
    for name in categorical:
        encoder = OneHotEncoder(
            handle_unknown="ignore",
            drop=None if drop == "none" else drop,
            min_frequency=frequency,
            sparse_output=False,
        )
        transformers.append((CATEGORICAL_STEP + name, encoder, [name]))
    columns = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", columns), ("model", estimator)])


def is_unpenalised(estimator: object) -> bool:
    """Least squares, or a logistic regression without a penalty (``C`` infinite)."""
    if isinstance(estimator, LogisticRegression):
        return bool(np.isinf(estimator.C))
    return isinstance(estimator, LinearRegression)


def fold(
    model: BaseEstimator | Pipeline,
    feature_names: Sequence[str],
    categorical: Sequence[str] = (),
    target: str = "prediction",
) -> FoldedModel | FoldedClassifier:
    """The folded form of a fitted ``model`` (as :func:`build_model` makes them) over the
    inputs ``feature_names``, in that order: a :class:`FoldedClassifier` (a row per row of
    ``coef_``) for a classifier."""
    estimator = model.named_steps["model"] if isinstance(model, Pipeline) else model
    coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
    intercepts = np.broadcast_to(np.asarray(estimator.intercept_, dtype=np.float64), len(coef))
    rows = tuple(
        _fold_row(model, row, float(b), feature_names, categorical, target)
        for row, b in zip(coef, intercepts, strict=True)
    )
    if not is_classifier(estimator):
        return rows[0]
    classes = tuple(c.item() if isinstance(c, np.generic) else c for c in estimator.classes_)
    return FoldedClassifier(LOGISTIC if len(rows) == 1 else SOFTMAX, classes, rows, target)


def _fold_row(
    model: BaseEstimator | Pipeline,
    coef: np.ndarray,
    intercept: float,
    feature_names: Sequence[str],
    categorical: Sequence[str],
    target: str,
) -> FoldedModel:
    """One row of parameters (the estimator's ``coef`` over its inputs after preprocessing,
    and ``intercept``) folded over the raw inputs."""
    if not isinstance(model, Pipeline):
        return FoldedModel.linear(coef, intercept, feature_names, target)
    columns: ColumnTransformer = model.named_steps["preprocess"]
    slices = columns.output_indices_
    numeric = {}
    if NUMERIC_STEP in columns.named_transformers_:
        steps = columns.named_transformers_[NUMERIC_STEP]
        names = list(columns_of(columns, NUMERIC_STEP))
        fills = steps.named_steps["impute"].statistics_
        centre, scale = centre_and_scale(steps.named_steps["scale"], len(names))
        weights = coef[slices[NUMERIC_STEP]] / scale
        intercept -= float(weights @ centre)
        indicators = dict.fromkeys(names)
        if MISSING_STEP in columns.named_transformers_:
            flagged = columns.named_transformers_[MISSING_STEP].features_
            for k, j in enumerate(flagged):
                indicators[names[j]] = float(coef[slices[MISSING_STEP]][k])
        for j, name in enumerate(names):
            numeric[name] = NumericInput(name, float(weights[j]), float(fills[j]), indicators[name])
    tables = {}
    for name in categorical:
        step = CATEGORICAL_STEP + name
        tables[name] = _fold_encoder(columns.named_transformers_[step], name, coef[slices[step]])
    inputs = tuple(numeric[n] if n in numeric else tables[n] for n in feature_names)
    return FoldedModel(intercept, inputs, target)


def columns_of(columns: ColumnTransformer, step: str) -> Sequence[str]:
    return next(cols for name, _, cols in columns.transformers_ if name == step)


def centre_and_scale(scaler: object, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``z = (x - centre) / scale`` of a fitted scaler (identity for ``passthrough``)."""
    if isinstance(scaler, StandardScaler):
        return scaler.mean_, scaler.scale_
    if isinstance(scaler, RobustScaler):
        return scaler.center_, scaler.scale_
    return np.zeros(n), np.ones(n)


def _fold_encoder(encoder: OneHotEncoder, name: str, coef: np.ndarray) -> CategoricalInput:
    """Each category's contribution, as the fitted encoder encodes it."""
    categories, rows = encoded_levels(encoder, name)
    contributions = rows @ coef
    return CategoricalInput(
        name=name,
        categories=categories,
        table=np.asarray(contributions[: len(categories)], dtype=np.float64),
        missing=float(contributions[-2]),
        unknown=float(contributions[-1]),
    )


def encoded_levels(encoder: OneHotEncoder, name: str) -> tuple[tuple[str, ...], np.ndarray]:
    """The categories a fitted encoder knows (texts, missing left out) and its output for
    each of them, then for a missing value, then for an unseen category: the rows of the
    folded design's one-hot block in the encoder's output space."""
    categories = tuple(str(c) for c in encoder.categories_[0] if not pd.isna(c))
    probes = pd.DataFrame({name: pd.Series([*categories, np.nan, _UNSEEN], dtype=object)})
    with warnings.catch_warnings():  # "unknown categories ... encoded as all zeros": meant
        warnings.simplefilter("ignore", UserWarning)
        return categories, np.asarray(encoder.transform(probes), dtype=np.float64)


def min_frequency(settings: StandardPreprocessConfig) -> float | int | None:
    """``preprocess.min_frequency`` as scikit-learn reads it: an int is a count, a float a
    share of the rows."""
    frequency = settings.min_frequency
    return int(frequency) if frequency is not None and frequency >= 1 else frequency


def check_cardinality(name: str, count: int, settings: StandardPreprocessConfig) -> None:
    """One line when a categorical column has more distinct values than the cap.

    Raises
    ------
    DataError
        ``count`` exceeds ``settings.max_categories``.
    """
    if count > settings.max_categories:
        raise DataError(
            f"column {name!r} has {count} distinct values, more than "
            f"preprocess.max_categories={settings.max_categories}: drop it "
            "(dataset.drop), raise the cap, or pool rare values (preprocess.min_frequency)"
        )
