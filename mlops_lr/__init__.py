"""mlops-lr: config-first train → quantize → package pipeline for scikit-learn LinearRegression."""

from __future__ import annotations

from typing import Any

__all__ = ["QuantizedLinearRegression", "quantize_fitted"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy, so that `import mlops_lr.quantize` needs only numpy and scipy, not scikit-learn.
    if name in __all__:
        from mlops_lr import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module 'mlops_lr' has no attribute {name!r}")
