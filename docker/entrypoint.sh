#!/bin/sh
# Container entry point.
#   pipeline (default): train and quantize unless a model is baked in, then print the sample
#                       predictions of the float model and of the default quantized model.
#   serve [KEY=VALUE…]: the HTTP model server on 0.0.0.0:$MLOPS_LR_PORT (default 8000), e.g.
#                       `serve serve.model=default-8bit`; trains first if no model is baked in.
#   anything else:      arguments for `python -m mlops_lr` (e.g. stage=train dataset=diabetes).
set -eu
case "${1:-pipeline}" in
  pipeline)
    [ "$#" -gt 0 ] && shift
    if [ ! -f artifacts/model.joblib ]; then
      python -m mlops_lr stage=train "$@"
    fi
    if [ ! -d artifacts/quantized/default-8bit ]; then
      python -m mlops_lr stage=quantize "$@"
    fi
    python -m mlops_lr stage=predict "$@"
    python -m mlops_lr stage=predict predict.model=default-8bit "$@"
    ;;
  serve)
    shift
    if [ ! -f artifacts/model.joblib ]; then
      python -m mlops_lr stage=train
    fi
    # exec: the server is PID 1's direct successor and gets `docker stop`'s SIGTERM itself.
    exec python -m mlops_lr stage=serve serve.host=0.0.0.0 "serve.port=${MLOPS_LR_PORT:-8000}" "$@"
    ;;
  *)
    exec python -m mlops_lr "$@"
    ;;
esac
