#!/bin/sh
# Container entry point.
#   pipeline (default): train and quantize unless a model is baked in, then print the sample
#                       predictions of the float model and of the default quantized model.
#   serve [KEY=VALUE…]: the HTTP model server on 0.0.0.0:$MLOPS_LR_PORT (default 8000), e.g.
#                       `serve serve.model=default-8bit`; trains and quantizes first if no model
#                       is baked in. $MLOPS_LR_MODEL_NAME, when set, names the model in the
#                       /v2 routes (KServe: the InferenceService's name).
#   anything else:      arguments for `python -m mlops_lr` (e.g. stage=train dataset=diabetes).
set -eu

# The float model and the default 8-bit model, made here (which needs the data) if not baked in.
ensure_models() {
  if [ ! -f artifacts/model.joblib ]; then
    python -m mlops_lr stage=train "$@"
  fi
  if [ ! -d artifacts/quantized/default-8bit ]; then
    python -m mlops_lr stage=quantize "$@"
  fi
}

case "${1:-pipeline}" in
  pipeline)
    [ "$#" -gt 0 ] && shift
    ensure_models "$@"
    python -m mlops_lr stage=predict "$@"
    python -m mlops_lr stage=predict predict.model=default-8bit "$@"
    ;;
  serve)
    shift
    for argument in "$@"; do
      case "$argument" in
        serve.port=* | serve.host=*)
          echo "error: set the port with -e MLOPS_LR_PORT=<port> (the HEALTHCHECK follows it)," \
            "not $argument" >&2
          exit 2
          ;;
      esac
    done
    ensure_models "$@"
    if [ -n "${MLOPS_LR_MODEL_NAME:-}" ]; then
      set -- "serve.model_name=$MLOPS_LR_MODEL_NAME" "$@"
    fi
    # exec: the server replaces this shell and gets `docker stop`'s SIGTERM itself.
    exec python -m mlops_lr stage=serve serve.host=0.0.0.0 "serve.port=${MLOPS_LR_PORT:-8000}" "$@"
    ;;
  *)
    exec python -m mlops_lr "$@"
    ;;
esac
