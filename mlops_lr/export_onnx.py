"""A linear model as an ONNX graph: quantized models keep their integer weights in the file
(weight-only ``DequantizeLinear``), the inputs stay float.

Graphs, for input ``X`` (``N × n_features``) and output ``predictions`` (``N``):

- quantized, float32: ``Sub(center)`` → ``Gemm(·, w, intercept + center·w, transB=1)`` with
  the weights ``w = DequantizeLinear(codes, scale·2**exponents, zero_point, axis=1)`` →
  ``Reshape(N)``. Centring the inputs on the training mean keeps the float32 terms small: on
  California Housing the largest error against the float64 model falls from 7e-6 to 8e-7
  (Longitude × w alone is ~52, mostly cancelled by the intercept). It costs speed, as ``Sub``
  writes a copy of the input (see benchmarks/export_throughput.py);
- quantized, float64: ``w = DequantizeLinear(codes, 2**exponents, zero_point, axis=1)`` (exact
  in float32: a code times a power of two) → ``Cast(double)`` → ``Mul(scale)`` (exact in
  float64), so the weights are bit for bit those of the Python model (``DequantizeLinear``
  itself cannot produce doubles) → ``Gemm`` → ``Reshape``;
- float: the float coefficients as ``w``, the same ``Gemm`` (centred for float32).

``Gemm`` with a ``1 × n`` weight row is ONNX Runtime's fast path: a ``MatMul`` by a vector runs
20× slower there.

Codes of up to 4 bits are stored as INT4/UINT4 and 9-16 bits as INT16/UINT16 (opset 21);
5-8 bits as INT8/UINT8 (opset 13, for older runtimes).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlops_lr.quantize import QuantizedLinearModel

INPUT = "X"
OUTPUT = "predictions"
ELEMENT_TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}
# Opset → the newest IR version its runtimes read.
IR_VERSIONS = {13: 7, 21: 10}


def code_type(model: QuantizedLinearModel) -> tuple[int, int]:
    """The ONNX tensor type holding ``model``'s codes, and the opset it needs."""
    bits, signed = model.spec.bits, model.spec.qmin < 0
    if bits <= 4:
        return (TensorProto.INT4 if signed else TensorProto.UINT4), 21
    if bits <= 8:
        return (TensorProto.INT8 if signed else TensorProto.UINT8), 13
    return (TensorProto.INT16 if signed else TensorProto.UINT16), 21


def quantized_graph(
    model: QuantizedLinearModel,
    dtype: type,
    metadata: Mapping[str, str],
    center: np.ndarray | None = None,
) -> onnx.ModelProto:
    """The weight-only quantized graph of ``model`` for ``dtype`` (np.float32 or np.float64)
    inputs, checked with ``onnx.checker.check_model(full_check=True)``; inputs are centred on
    ``center`` first when given."""
    n = int(model.codes.size)
    tensor_type, opset = code_type(model)
    powers = np.exp2(model.exponents.astype(np.float64))
    initializers = [
        helper.make_tensor("codes", tensor_type, [1, n], model.codes.astype(np.int64).tolist()),
        helper.make_tensor("zero_point", tensor_type, [n], [int(model.zero_point)] * n),
    ]
    if dtype is np.float32:
        steps = (float(model.scale) * powers).astype(np.float32)
        initializers.append(numpy_helper.from_array(steps, "steps"))
        nodes = [_dequantize("steps", "weights")]
    else:
        initializers += [
            numpy_helper.from_array(powers.astype(np.float32), "powers_of_two"),
            numpy_helper.from_array(np.array(float(model.scale), dtype=np.float64), "scale"),
        ]
        nodes = [
            _dequantize("powers_of_two", "codes_times_powers"),
            helper.make_node(
                "Cast", ["codes_times_powers"], ["codes_double"], to=TensorProto.DOUBLE
            ),
            helper.make_node("Mul", ["codes_double", "scale"], ["weights"]),
        ]
    return _linear_graph(
        nodes, initializers, model.coef(), model.intercept_value(), dtype, opset, metadata, center
    )


def float_graph(
    coef: np.ndarray,
    intercept: float,
    dtype: type,
    metadata: Mapping[str, str],
    center: np.ndarray | None = None,
) -> onnx.ModelProto:
    """The float model ``X @ coef + intercept`` for ``dtype`` inputs (opset 13), centred on
    ``center`` first when given."""
    weights = numpy_helper.from_array(np.asarray(coef, dtype=dtype).reshape(1, -1), "weights")
    return _linear_graph([], [weights], coef, intercept, dtype, 13, metadata, center)


def _dequantize(scale: str, output: str) -> onnx.NodeProto:
    return helper.make_node("DequantizeLinear", ["codes", scale, "zero_point"], [output], axis=1)


def _linear_graph(
    nodes: list[onnx.NodeProto],
    initializers: list[onnx.TensorProto],
    coef: np.ndarray,
    intercept: float,
    dtype: type,
    opset: int,
    metadata: Mapping[str, str],
    center: np.ndarray | None,
) -> onnx.ModelProto:
    """``nodes`` (which compute the ``1 × n`` ``weights``) → [``Sub(center)``] → ``Gemm`` →
    ``Reshape``."""
    n_features = len(coef)
    element = ELEMENT_TYPES[dtype]
    features = INPUT
    if center is not None:
        center = np.asarray(center, dtype=dtype)
        # The intercept absorbs the centre, computed in float64 from the exact coefficients.
        intercept = float(intercept + center.astype(np.float64) @ np.asarray(coef, np.float64))
        initializers = [*initializers, numpy_helper.from_array(center, "center")]
        nodes = [*nodes, helper.make_node("Sub", [INPUT, "center"], ["centred"])]
        features = "centred"
    initializers = [
        *initializers,
        numpy_helper.from_array(np.array(intercept, dtype), "intercept"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"),
    ]
    nodes = [
        *nodes,
        helper.make_node("Gemm", [features, "weights", "intercept"], ["column"], transB=1),
        helper.make_node("Reshape", ["column", "flat"], [OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes,
        "linear_regression",
        [helper.make_tensor_value_info(INPUT, element, ["N", n_features])],
        [helper.make_tensor_value_info(OUTPUT, element, ["N"])],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="mlops-lr",
        ir_version=IR_VERSIONS[opset],
    )
    helper.set_model_props(model, dict(metadata))
    onnx.checker.check_model(model, full_check=True)
    return model
