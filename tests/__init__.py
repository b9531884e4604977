"""mlops-lr's test suite."""

import os

# pytest-xdist runs one worker per core: one BLAS/OpenMP thread each (inherited by the CLI
# processes the tests start), or the workers' thread pools oversubscribe the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
