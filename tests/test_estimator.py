"""QuantizedLinearRegression follows scikit-learn's estimator API."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from mlops_lr import QuantizedLinearRegression, quantize_fitted
from mlops_lr.data import Dataset


def test_rank_deficient_data_fit_and_optimal_is_never_worse_than_hessian() -> None:
    """Two exactly redundant features (scikit-learn's array API check uses these data): the
    Hessian is flat in two directions, and the exact search still finishes."""
    X, y = make_classification(n_samples=30, n_features=10, random_state=42)
    for params in ({}, {"bits": 16, "scheme": "asymmetric", "granularity": "per_tensor"}):
        optimal = QuantizedLinearRegression(**params).fit(X, y)
        hessian = QuantizedLinearRegression(rounding="hessian", **params).fit(X, y)
        changes = {
            name: np.mean((model.predict(X) - X @ model.float_coef_ - model.float_intercept_) ** 2)
            for name, model in (("optimal", optimal), ("hessian", hessian))
        }
        assert changes["optimal"] <= changes["hessian"] * (1 + 1e-9)


@parametrize_with_checks(
    [
        QuantizedLinearRegression(),
        QuantizedLinearRegression(bits=3, rounding="hessian", scale="minmax"),
        QuantizedLinearRegression(bits=16, scheme="asymmetric", granularity="per_tensor"),
    ],
)
def test_scikit_learn_estimator_checks(estimator, check, monkeypatch) -> None:
    # "Array API dispatch on NumPy input changes nothing" runs only with this set (read when
    # the check runs); set here, not for the suite, so no other test runs SciPy that way.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


def test_grid_search_over_bits_on_real_data(california: Dataset) -> None:
    folds = KFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(
        QuantizedLinearRegression(), {"bits": [2, 4, 8]}, cv=folds, scoring="r2"
    ).fit(california.X, california.y)
    float_scores = cross_val_score(LinearRegression(), california.X, california.y, cv=folds)
    scores = dict(
        zip(search.cv_results_["param_bits"], search.cv_results_["mean_test_score"], strict=True)
    )
    assert set(scores) == {2, 4, 8}
    assert scores[8] == pytest.approx(float_scores.mean(), abs=1e-3)
    assert scores[2] > 0.55
    assert search.best_estimator_.bits == search.best_params_["bits"]


def test_quantize_fitted_matches_fit(california: Dataset) -> None:
    X, y = california.X[:5000], california.y[:5000]
    float_model = LinearRegression().fit(X, y)
    from_fitted = quantize_fitted(float_model, X, bits=4)
    fitted = QuantizedLinearRegression(bits=4).fit(X, y)
    np.testing.assert_array_equal(from_fitted.coef_, fitted.coef_)
    assert from_fitted.intercept_ == fitted.intercept_
    np.testing.assert_array_equal(from_fitted.float_coef_, float_model.coef_)
    np.testing.assert_allclose(from_fitted.predict(X), X @ fitted.coef_ + fitted.intercept_)


def test_invalid_parameters_fail_in_fit_with_the_name(california: Dataset) -> None:
    model = QuantizedLinearRegression(bits=1)
    assert clone(model).get_params()["bits"] == 1  # construction never validates
    with pytest.raises(ValueError, match="bits"):
        model.fit(california.X[:100], california.y[:100])
    with pytest.raises(ValueError, match="rounding"):
        QuantizedLinearRegression(rounding="stochastic").fit(california.X[:100], california.y[:100])


def test_quantize_fitted_refuses_a_mismatched_calibration_set(california: Dataset) -> None:
    float_model = LinearRegression().fit(california.X[:100], california.y[:100])
    with pytest.raises(ValueError, match="features"):
        quantize_fitted(float_model, california.X[:100, :3])
