# mlops-lr: a small image that trains (or ships a trained model), quantizes and predicts.
#   docker build -t mlops-lr .                       # official python:3.11-slim base
#   docker build --build-arg BASE_IMAGE=... -t mlops-lr .
#   docker run --rm --network none mlops-lr          # sample predictions from the baked model
#   docker run --rm -p 8000:8000 mlops-lr serve      # HTTP model server (serve.model=<tag>)
# `make docker-build` bakes in artifacts/ from `make train` / `make quantize` when present.
ARG BASE_IMAGE=python:3.11-slim

# --- builder: a virtual environment with the pinned, hash-checked runtime requirements ----
FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
COPY requirements.txt requirements-serve.txt /tmp/
# Bundled test suites (but numpy's, which numpy imports at run time), byte-code caches and pip
# itself are not needed at run time.
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes \
        -r /tmp/requirements.txt -r /tmp/requirements-serve.txt \
    && find /opt/venv -depth -type d \( -name tests -not -path "*/numpy/*" -o -name __pycache__ \) \
        -exec rm -rf {} + \
    && rm -rf /opt/venv/lib/python3*/site-packages/pip /opt/venv/lib/python3*/site-packages/pip-*

# --- runtime: the venv, the package, its configs and any baked artifacts ----------------
FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="mlops-lr" \
      org.opencontainers.image.description="Train, quantize and serve a scikit-learn LinearRegression" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROJECT_ROOT=/app \
    MLOPS_LR_PORT=8000
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY conf ./conf
COPY mlops_lr ./mlops_lr
COPY docker/entrypoint.sh /usr/local/bin/mlops-lr-entrypoint
COPY docker/healthcheck.py /usr/local/bin/mlops-lr-healthcheck
# artifacts/ is created (empty) by `make docker-build` when nothing is trained yet.
COPY artifacts ./artifacts
RUN mkdir -p outputs && chown -R 10001:10001 artifacts outputs
USER 10001:10001
EXPOSE 8000
# Liveness of `serve` (GET /health on $MLOPS_LR_PORT). The batch commands end long before the
# first probe.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "/usr/local/bin/mlops-lr-healthcheck"]
ENTRYPOINT ["mlops-lr-entrypoint"]
CMD ["pipeline"]
