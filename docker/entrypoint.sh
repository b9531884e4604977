#!/bin/sh
# Container entry point.
#   pipeline (default): train and quantize unless a model is baked in, then print the sample
#                       predictions of the float model and of the default quantized model.
#   anything else:      arguments for `python -m mlops_lr` (e.g. stage=train dataset=diabetes).
set -eu
if [ "$#" -eq 0 ] || [ "$1" != "pipeline" ]; then
  exec python -m mlops_lr "$@"
fi
shift
if [ ! -f artifacts/model.joblib ]; then
  python -m mlops_lr stage=train "$@"
fi
if [ ! -d artifacts/quantized/default-8bit ]; then
  python -m mlops_lr stage=quantize "$@"
fi
python -m mlops_lr stage=predict "$@"
python -m mlops_lr stage=predict predict.model=default-8bit "$@"
