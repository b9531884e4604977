"""mlops-lr: config-first train → quantize → package pipeline for scikit-learn LinearRegression."""

from mlops_lr.estimator import QuantizedLinearRegression, quantize_fitted

__all__ = ["QuantizedLinearRegression", "quantize_fitted"]
__version__ = "0.1.0"
