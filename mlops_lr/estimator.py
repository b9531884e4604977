"""``QuantizedLinearRegression``: least squares with post-training quantized weights, as a
scikit-learn regressor (usable in pipelines, ``GridSearchCV``, ``clone``)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression
from sklearn.utils.validation import check_is_fitted, validate_data

from mlops_lr.quantize import (
    QuantizationSpec,
    QuantizedLinearModel,
    quantize_linear_model,
    spec_from,
)

# check_estimator's single-sample check expects one of its known phrases in the error.
_TOO_FEW_SAMPLES = "n_samples=1: calibrating the quantization needs at least 2 samples"


class QuantizedLinearRegression(RegressorMixin, BaseEstimator):
    """Ordinary least squares whose coefficients are quantized to ``bits``-bit integer codes.

    ``fit`` fits a float :class:`~sklearn.linear_model.LinearRegression`, then quantizes its
    coefficients (and intercept) with :func:`mlops_lr.quantize.quantize_linear_model`, calibrated
    on the training data ``X``. ``coef_`` and ``intercept_`` are the dequantized values that
    ``predict`` uses.

    Parameters
    ----------
    bits : int, default=8
        Code width, 2 to 16.
    scheme : {"symmetric", "asymmetric"}, default="symmetric"
        Signed codes with zero point 0, or unsigned codes with an integer zero point.
    granularity : {"per_tensor", "per_feature_pow2"}, default="per_feature_pow2"
        One scale for all coefficients, or one scale times a power of two per feature.
    rounding : {"nearest", "hessian", "optimal", "auto"}, default="auto"
        Round each code alone, with GPTQ-style error feedback, or exactly minimise the mean
        squared change of the training predictions on the grid; ``"auto"`` is ``"optimal"``
        when its search fits ``max_nodes``, else ``"hessian"``.
    scale : {"minmax", "search"}, default="search"
        The range-covering scale, or the one that minimises that objective.
    bias_correction : bool, default=True
        Re-fit the intercept so the mean training prediction does not move (ignored with
        ``fit_intercept=False``: a model without an intercept keeps none).
    intercept_dtype : {"float64", "float32", "int32"}, default="float32"
        How the intercept is stored.
    max_nodes : int, default=1_000_000
        Search budget of ``rounding="optimal"``.
    fit_intercept : bool, default=True
        Passed to ``LinearRegression``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Dequantized coefficients.
    intercept_ : float
        Dequantized intercept.
    quantized_ : QuantizedLinearModel
        The integer codes, scales and exponents.
    float_coef_, float_intercept_ : ndarray, float
        The float model's parameters before quantization.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` has string column names.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> X, y = load_diabetes(return_X_y=True)
    >>> model = QuantizedLinearRegression(bits=4).fit(X, y)
    >>> model.quantized_.codes.dtype
    dtype('int8')
    """

    def __init__(
        self,
        bits: int = 8,
        scheme: str = "symmetric",
        granularity: str = "per_feature_pow2",
        rounding: str = "auto",
        scale: str = "search",
        bias_correction: bool = True,
        intercept_dtype: str = "float32",
        max_nodes: int = 1_000_000,
        fit_intercept: bool = True,
    ) -> None:
        self.bits = bits
        self.scheme = scheme
        self.granularity = granularity
        self.rounding = rounding
        self.scale = scale
        self.bias_correction = bias_correction
        self.intercept_dtype = intercept_dtype
        self.max_nodes = max_nodes
        self.fit_intercept = fit_intercept

    def fit(self, X, y) -> QuantizedLinearRegression:
        """Fit least squares on ``(X, y)`` and quantize it, calibrated on ``X``."""
        spec = self._spec()
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        if X.shape[0] < 2:
            raise ValueError(_TOO_FEW_SAMPLES)
        float_model = LinearRegression(fit_intercept=self.fit_intercept).fit(X, y)
        return self._quantize(float_model.coef_, float_model.intercept_, X, spec)

    def predict(self, X) -> np.ndarray:
        """Predict with the dequantized coefficients."""
        check_is_fitted(self, "quantized_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_ + self.intercept_

    def _spec(self) -> QuantizationSpec:
        return spec_from(self, fit_intercept=self.fit_intercept)

    def _quantize(
        self, coef: np.ndarray, intercept: float, X_calib: np.ndarray, spec: QuantizationSpec
    ) -> QuantizedLinearRegression:
        self.float_coef_ = np.asarray(coef, dtype=np.float64).ravel()
        self.float_intercept_ = float(intercept)
        self.quantized_: QuantizedLinearModel = quantize_linear_model(
            self.float_coef_, self.float_intercept_, spec, X_calib
        )
        self.coef_ = self.quantized_.coef()
        self.intercept_ = self.quantized_.intercept_value()
        return self


def quantize_fitted(estimator: LinearRegression, X_calib, **params) -> QuantizedLinearRegression:
    """Quantize an already fitted ``LinearRegression`` without refitting it.

    Parameters
    ----------
    estimator : LinearRegression
        A fitted single-output linear model.
    X_calib : array-like of shape (n_samples, n_features)
        Calibration data: the training features, never the test set.
    **params
        Parameters of :class:`QuantizedLinearRegression` (``bits``, ``rounding``, ...).
    """
    check_is_fitted(estimator, "coef_")
    if np.ndim(estimator.coef_) != 1:
        raise ValueError("only single-output linear models can be quantized")
    quantized = QuantizedLinearRegression(
        fit_intercept=getattr(estimator, "fit_intercept", True), **params
    )
    X_calib = validate_data(quantized, X_calib, dtype=np.float64)
    if X_calib.shape[1] != estimator.coef_.shape[0]:
        raise ValueError(
            f"X_calib has {X_calib.shape[1]} features, the model {estimator.coef_.shape[0]}"
        )
    return quantized._quantize(estimator.coef_, estimator.intercept_, X_calib, quantized._spec())
