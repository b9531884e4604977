"""mlops-lr's test suite."""

import os

# scikit-learn's estimator checks include "array API dispatch on NumPy input changes nothing",
# which runs only when SciPy's array API support is switched on before SciPy is imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

# pytest-xdist runs one worker per core: one BLAS/OpenMP thread each (inherited by the CLI
# processes the tests start), or the workers' thread pools oversubscribe the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
