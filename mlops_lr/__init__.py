"""mlops-lr: config-first train → quantize → package pipeline for scikit-learn LinearRegression."""

__version__ = "0.1.0"
