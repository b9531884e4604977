"""Linear models as ONNX graphs: quantized models keep their integer weights in the file
(weight-only ``DequantizeLinear``), the inputs stay float.

Plain numeric models (:attr:`~mlops_lr.folded.FoldedModel.is_plain`) take one input ``X``
(``N × n_features``) and give ``predictions`` (``N``):

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

Other folded models (categorical inputs, missing values: :func:`folded_graph`) take one
``[N, 1]`` input per column, named as the column, as skl2onnx's converters do: text
(``tensor(string)``, ``""`` is missing) for a categorical input, ``tensor(float)`` or
``tensor(double)`` (NaN is missing) for a numeric one; the model's metadata lists them
(``mlops_lr.inputs``). Each input's contribution, in the model's order:

- numeric: [``Sub(center)``] → ``Where(IsNaN(x), fill, x)`` → ``Mul(weight)``, plus
  ``Where(IsNaN(x), indicator, 0)`` with a missing indicator; no fill: NaN stays NaN;
- categorical: an ``ai.onnx.ml`` ``LabelEncoder`` from the text to the table entry, ``""`` to
  the missing entry, anything else to the unknown entry (its default). Quantized, it gives the
  entry's position in the design parameters dequantized as above, and ``Gather`` fetches it.

The contributions are added one after the other, then the intercept: exactly the float64
operations of :meth:`~mlops_lr.folded.FoldedModel.predict`, so the float64 graph reproduces it
bit for bit. (A ``Gemm`` over the numeric inputs, a third faster, sums in another order: 1.1e-9
off on a table with a column near 1e6 whose weight the intercept cancels, where the export
allows 1.5e-12.) float32 graphs centre the numeric inputs (without, penguins are 0.011 off).

A classifier (:func:`classifier_graph`) computes its rows' scores the same way (a plain model:
one ``Gemm`` whose weights have a row per score; otherwise each row's folded graph, its names
after ``row<k>/``), then ``Sigmoid`` (``[1 − p, p]``) or ``Softmax`` into ``probabilities``
and ``Greater(score, 0)`` or ``ArgMax`` (the first on ties, as numpy) mapped to the classes by
``Gather`` into ``label`` (text or int64): skl2onnx's layout without its ``ZipMap``.

Codes of up to 4 bits are stored as INT4/UINT4 and 9-16 bits as INT16/UINT16 (opset 21);
5-8 bits as INT8/UINT8 (opset 13, for older runtimes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlops_lr.folded import (
    CATEGORICAL,
    NUMERIC,
    CategoricalInput,
    FoldedModel,
    NumericInput,
    category_text,
)
from mlops_lr.folded_classifier import (
    LOGISTIC,
    FoldedClassifier,
    class_array,
    integer_classes,
)
from mlops_lr.quantize import QuantizedLinearModel
from mlops_lr.quantized_classifier import QuantizedFoldedClassifier
from mlops_lr.quantized_folded import QuantizedFoldedModel

INPUT = "X"
OUTPUT = "predictions"
# A classifier's outputs, and the metadata key listing its classes (JSON).
LABEL = "label"
PROBABILITIES = "probabilities"
CLASSES_METADATA = "mlops_lr.classes"
ELEMENT_TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}
# As ONNX Runtime names them (``NodeArg.type``).
TYPE_NAMES = {
    TensorProto.FLOAT: "tensor(float)",
    TensorProto.DOUBLE: "tensor(double)",
    TensorProto.STRING: "tensor(string)",
}
ML_DOMAIN = "ai.onnx.ml"
# LabelEncoder from text to double (values_tensor, default_tensor) needs ai.onnx.ml 4.
ML_OPSET = 4
FLOAT_OPSET = 13
# (domain, opset) → the newest IR version its runtimes read.
IR_VERSIONS = {("", 13): 7, ("", 21): 10, (ML_DOMAIN, 4): 9}
# A missing category in a string tensor (unless "" is one of the categories).
MISSING_TEXT = ""
# The metadata key listing a folded graph's inputs (JSON).
INPUTS_METADATA = "mlops_lr.inputs"


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
    graph = _Graph()  # nothing taken: the dequantized row is named "weights", as Gemm reads it
    _, opset = _dequantized_weights(graph, model, dtype)
    return _linear_graph(
        graph.nodes,
        graph.initializers,
        model.coef(),
        model.intercept_value(),
        dtype,
        opset,
        metadata,
        center,
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
    return _linear_graph([], [weights], coef, intercept, dtype, FLOAT_OPSET, metadata, center)


def folded_graph(
    model: FoldedModel | QuantizedFoldedModel,
    dtype: type,
    metadata: Mapping[str, str],
    center: Mapping[str, float] | None = None,
) -> onnx.ModelProto:
    """The graph of a folded model, float or quantized (its codes stored), with one ``[N, 1]``
    input per column and ``dtype`` numbers (see the module docstring); numeric inputs are
    centred on ``center`` (by name) first when given. Its metadata is ``metadata`` plus
    ``mlops_lr.inputs`` (each input's name, kind, type, shape and missing marker, as JSON); it
    passes ``onnx.checker.check_model(full_check=True)``.

    Raises
    ------
    ValueError
        A column is named as the graph's output (``predictions``).
    """
    quantized = model.linear if isinstance(model, QuantizedFoldedModel) else None
    folded = model if quantized is None else model.dequantized()
    if OUTPUT in folded.feature_names:
        raise ValueError(f"a column named {OUTPUT!r} would be the graph's input and output")
    graph = _FoldedGraph(folded, dtype, quantized)
    total = _folded_score(graph, folded, center)
    graph.nodes.append(helper.make_node("Reshape", [total, graph.flat], [OUTPUT]))
    body = helper.make_graph(
        graph.nodes,
        "folded_linear_model",
        _column_inputs(folded, dtype),
        [helper.make_tensor_value_info(OUTPUT, ELEMENT_TYPES[dtype], ["N"])],
        graph.initializers,
    )
    return _model(body, _opsets(folded, graph.opset), _described(folded, dtype, metadata))


def _folded_score(
    graph: _FoldedGraph, folded: FoldedModel, center: Mapping[str, float] | None
) -> str:
    """Add the nodes of ``folded``'s prediction, ``[N, 1]``: each input's contribution added
    in the model's order, then the intercept (see the module docstring); return its name."""
    intercept, total = folded.intercept, None
    for item, columns in folded.design_slices():
        if item.kind == NUMERIC:
            shift = 0.0 if center is None else float(np.asarray(center[item.name], graph.dtype))
            part = graph.numeric(item, columns.start, shift)
            intercept += shift * item.weight  # in float64, from the exact weight
        else:
            part = graph.categorical(item, columns)
        # The running sum, up to and including this input.
        total = part if total is None else graph.node("Add", [total, part], f"sum/{item.name}")
    return graph.node("Add", [total, graph.constant("intercept", intercept)], "total")


def _column_inputs(folded: FoldedModel, dtype: type) -> list[onnx.ValueInfoProto]:
    """One ``[N, 1]`` graph input per column of ``folded``."""
    return [
        helper.make_tensor_value_info(item.name, _input_type(item, dtype), ["N", 1])
        for item in folded.inputs
    ]


def _opsets(folded: FoldedModel, opset: int) -> dict[str, int]:
    return {"": opset, **({ML_DOMAIN: ML_OPSET} if folded.categorical_names else {})}


def _described(folded: FoldedModel, dtype: type, metadata: Mapping[str, str]) -> dict[str, str]:
    """``metadata`` and ``mlops_lr.inputs``: each column input's name, kind, type, shape and
    missing marker, as JSON."""
    described = [
        {
            "name": item.name,
            "kind": item.kind,
            "type": TYPE_NAMES[_input_type(item, dtype)],
            "shape": ["N", 1],
            "missing": _missing_marker(item),
        }
        for item in folded.inputs
    ]
    return {**metadata, INPUTS_METADATA: json.dumps(described)}


def classifier_graph(
    model: FoldedClassifier | QuantizedFoldedClassifier,
    dtype: type,
    metadata: Mapping[str, str],
    center: np.ndarray | Mapping[str, float] | None = None,
) -> onnx.ModelProto:
    """The graph of a classifier, float or quantized (its codes stored): the rows' scores
    ``[N, rows]`` (a plain model: one ``Gemm`` over ``X``, its weights one row per score;
    otherwise each row's folded graph over the column inputs, see :func:`folded_graph`),
    then ``Sigmoid`` (binary: ``[1 − p, p]``) or ``Softmax`` into ``probabilities``
    (``[N, classes]``), and the decision, ``Greater(score, 0)`` or ``ArgMax`` (first on ties),
    mapped to the classes by ``Gather`` into ``label`` (``[N]``, text or int64). Numeric
    inputs are centred on ``center`` first when given (a plain model's: an array; else by
    name). The metadata adds ``mlops_lr.classes`` (JSON); the model passes
    ``onnx.checker.check_model(full_check=True)``.

    Raises
    ------
    ValueError
        A column input is named as an output (``label``, ``probabilities``).
    """
    quantized = isinstance(model, QuantizedFoldedClassifier)
    folded = model.dequantized() if quantized else model
    clash = {LABEL, PROBABILITIES} & set(folded.feature_names)
    if clash and not folded.is_plain:  # a plain model's one input is X
        raise ValueError(f"a column named {sorted(clash)[0]!r} would be an input and an output")
    head = _Graph([*folded.feature_names, LABEL, PROBABILITIES])
    if folded.is_plain:
        scores, opset = _plain_scores(head, model, dtype, center)
        width = len(folded.feature_names)
        inputs = [helper.make_tensor_value_info(INPUT, ELEMENT_TYPES[dtype], ["N", width])]
        described = dict(metadata)
    else:
        totals, opset = [], FLOAT_OPSET
        for k, row in enumerate(model.rows):
            graph = _FoldedGraph(
                row.dequantized() if quantized else row,
                dtype,
                row.linear if quantized else None,
                taken=[LABEL, PROBABILITIES, *head._taken],
                prefix=f"row{k}/",
            )
            totals.append(_folded_score(graph, folded.rows[k], center))
            head.nodes += graph.nodes
            head.initializers += graph.initializers
            head._taken |= graph._taken
            opset = max(opset, graph.opset)
        scores = totals[0] if len(totals) == 1 else head.node("Concat", totals, "scores", axis=1)
        inputs = _column_inputs(folded, dtype)
        described = _described(folded, dtype, metadata)
    classes = class_array(folded.classes)
    classes_name = head.constant("classes", classes)
    if folded.link == LOGISTIC:
        positive = head.node("Sigmoid", [scores], "probability")
        one = head.constant("one", 1.0, dtype)
        negative = head.node("Sub", [one, positive], "complement")
        head.nodes.append(helper.make_node("Concat", [negative, positive], [PROBABILITIES], axis=1))
        chosen = head.node("Greater", [scores, head.constant("zero", 0.0, dtype)], "positive")
        index = head.node("Cast", [chosen], "chosen", to=TensorProto.INT64)
        index = head.node("Reshape", [index, head.constant("flat", [-1], np.int64)], "index")
    else:
        head.nodes.append(helper.make_node("Softmax", [scores], [PROBABILITIES], axis=1))
        index = head.node("ArgMax", [scores], "index", axis=1, keepdims=0)
    head.nodes.append(helper.make_node("Gather", [classes_name, index], [LABEL], axis=0))
    label_type = TensorProto.INT64 if integer_classes(folded.classes) else TensorProto.STRING
    body = helper.make_graph(
        head.nodes,
        "folded_linear_classifier",
        inputs,
        [
            helper.make_tensor_value_info(LABEL, label_type, ["N"]),
            helper.make_tensor_value_info(
                PROBABILITIES, ELEMENT_TYPES[dtype], ["N", len(folded.classes)]
            ),
        ],
        head.initializers,
    )
    described[CLASSES_METADATA] = json.dumps(list(folded.classes))
    return _model(body, _opsets(folded, opset), described)


def _plain_scores(
    graph: _Graph,
    model: FoldedClassifier | QuantizedFoldedClassifier,
    dtype: type,
    center: np.ndarray | None,
) -> tuple[str, int]:
    """Add a plain classifier's ``Gemm`` over ``X`` (centred first when ``center`` is given),
    its weights one row per score; return the scores' name (``[N, rows]``) and the opset."""
    quantized = isinstance(model, QuantizedFoldedClassifier)
    folded = model.dequantized() if quantized else model
    weights, opset = [], FLOAT_OPSET
    for k, row in enumerate(model.rows):
        if quantized:
            name, row_opset = _dequantized_weights(graph, row.linear, dtype, f"row{k}/")
            weights.append(name)
            opset = max(opset, row_opset)
        else:
            weights.append(graph.constant(f"row{k}/weights", row.coef.reshape(1, -1), dtype))
    matrix = weights[0] if len(weights) == 1 else graph.node("Concat", weights, "weights", axis=0)
    features = INPUT
    intercepts = np.array([row.intercept for row in folded.rows])
    if center is not None:
        center = np.asarray(center, dtype=dtype)
        # The intercepts absorb the centre, in float64 from the exact coefficients.
        intercepts = intercepts + np.array(
            [center.astype(np.float64) @ row.coef for row in folded.rows]
        )
        features = graph.node("Sub", [INPUT, graph.constant("center", center, dtype)], "centred")
    bias = graph.constant("intercepts", intercepts, dtype)
    return graph.node("Gemm", [features, matrix, bias], "scores", transB=1), opset


def filled_means(folded: FoldedModel, table: Mapping[str, Any] | Any) -> dict[str, float]:
    """Each numeric input's mean over ``table`` (the training rows), missing values filled:
    the centres of a float32 :func:`folded_graph`."""
    means = {}
    for item in folded.inputs:
        if item.kind == NUMERIC:
            values = np.asarray(table[item.name], dtype=np.float64)
            if item.fill is not None:
                values = np.where(np.isnan(values), item.fill, values)
            means[item.name] = float(values.mean())
    return means


def table_to_inputs(
    folded: FoldedModel, table: Mapping[str, Any] | Any, dtype: type
) -> dict[str, np.ndarray]:
    """A table (a DataFrame, or a mapping of names to sequences, as
    :meth:`~mlops_lr.folded.FoldedModel.predict` takes it) as the inputs of
    :func:`folded_graph`: ``[N, 1]`` arrays of ``dtype`` for numeric inputs (NaN where
    missing) and of text for categorical ones (``""`` where missing, numbers as their text:
    :func:`~mlops_lr.folded.category_text`)."""
    inputs = {}
    for item in folded.inputs:
        if item.kind == NUMERIC:
            column = np.asarray(table[item.name], dtype=dtype)
        else:
            texts = (category_text(value) for value in table[item.name])
            column = np.array([MISSING_TEXT if t is None else t for t in texts], dtype=object)
        inputs[item.name] = column.reshape(-1, 1)
    return inputs


def inputs_to_table(folded: FoldedModel, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """What :func:`folded_graph`'s ``inputs`` mean, as a table the Python model predicts:
    the numbers in float64, ``""`` as missing (where it is not a category)."""
    table = {}
    for item in folded.inputs:
        column = np.asarray(inputs[item.name]).ravel()
        if item.kind == NUMERIC:
            table[item.name] = column.astype(np.float64)
        elif _missing_marker(item) is None:
            table[item.name] = column
        else:
            table[item.name] = np.where(column == MISSING_TEXT, None, column)
    return table


class _Graph:
    """Nodes and initializers, added in order under new names: a name that is taken (a
    graph input's, or an earlier one) gets underscores appended."""

    def __init__(self, taken: Iterable[str] = (), prefix: str = "") -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._taken = set(taken)
        self._prefix = prefix  # a classifier's rows share one graph: each its own names

    def _new_name(self, name: str) -> str:
        name = self._prefix + name
        while name in self._taken:
            name += "_"
        self._taken.add(name)
        return name

    def initializer(self, tensor: onnx.TensorProto) -> str:
        tensor.name = self._new_name(tensor.name)
        self.initializers.append(tensor)
        return tensor.name

    def constant(self, name: str, value: Any, dtype: Any = None) -> str:
        return self.initializer(numpy_helper.from_array(np.asarray(value, dtype), name))

    def node(self, op_type: str, inputs: Sequence[str], output: str, **attributes: Any) -> str:
        """Add an ``op_type`` node (``domain=`` among ``attributes`` for another domain than
        ONNX's); return the name of its output."""
        output = self._new_name(output)
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attributes))
        return output


class _FoldedGraph(_Graph):
    """A folded model's graph as it is built: its design parameters are float constants, or
    (quantized) the stored codes dequantized once into ``design`` and fetched by position."""

    def __init__(
        self,
        folded: FoldedModel,
        dtype: type,
        quantized: QuantizedLinearModel | None,
        taken: Iterable[str] = (OUTPUT,),
        prefix: str = "",
    ) -> None:
        super().__init__([*folded.feature_names, *taken], prefix)
        self.dtype = dtype
        if quantized is None:
            self.opset = FLOAT_OPSET
            self._design = None
            self._values = folded.design_coef().astype(dtype)  # the parameters themselves
        else:
            row, self.opset = _dequantized_weights(self, quantized, dtype)
            self._design = self.node("Reshape", [row, self.flat], "design")
            self._values = np.arange(quantized.codes.size, dtype=np.int64)  # their positions

    @cached_property
    def flat(self) -> str:
        """The shape ``[-1]``."""
        return self.constant("flat", [-1], np.int64)

    @cached_property
    def zero(self) -> str:
        return self.constant("zero", 0, self.dtype)

    def constant(self, name: str, value: Any, dtype: Any = None) -> str:
        return super().constant(name, value, self.dtype if dtype is None else dtype)

    def numeric(self, item: NumericInput, index: int, shift: float) -> str:
        """The contribution of a numeric input whose weight is design parameter ``index`` (its
        indicator the next), centred on ``shift``."""
        name = values = item.name
        if item.fill is not None or item.indicator is not None:
            missing = self.node("IsNaN", [name], f"{name}/missing")
        if shift:
            center = self.constant(f"{name}/center", shift)
            values = self.node("Sub", [values, center], f"{name}/centred")
        if item.fill is not None:
            fill = self.constant(f"{name}/fill", item.fill - shift)
            values = self.node("Where", [missing, fill, values], f"{name}/filled")
        weight = self._parameter(index, f"{name}/weight")
        part = self.node("Mul", [values, weight], f"{name}/product")
        if item.indicator is not None:
            indicator = self._parameter(index + 1, f"{name}/indicator")
            flag = self.node("Where", [missing, indicator, self.zero], f"{name}/if_missing")
            part = self.node("Add", [part, flag], f"{name}/contribution")
        return part

    def categorical(self, item: CategoricalInput, columns: slice) -> str:
        """The contribution of a categorical input whose design parameters are ``columns``
        (its table, then the missing and the unknown entry)."""
        name, quantized = item.name, self._design is not None
        keys = [*item.categories, *([MISSING_TEXT] if _missing_marker(item) is not None else [])]
        values = self._values[columns]
        found = self.node(
            "LabelEncoder",
            [name],
            f"{name}/position" if quantized else f"{name}/entry",
            domain=ML_DOMAIN,
            keys_strings=keys,
            values_tensor=numpy_helper.from_array(values[: len(keys)]),
            default_tensor=numpy_helper.from_array(values[-1:]),
        )
        return self.node("Gather", [self._design, found], f"{name}/entry") if quantized else found

    def _parameter(self, index: int, name: str) -> str:
        """Design parameter ``index``, as ``name``."""
        if self._design is None:
            return self.constant(name, self._values[index])
        position = self.constant(f"{name}_position", index, np.int64)
        return self.node("Gather", [self._design, position], name)


def _dequantized_weights(
    graph: _Graph, model: QuantizedLinearModel, dtype: type, prefix: str = ""
) -> tuple[str, int]:
    """Add ``model``'s codes and the nodes that dequantize them into a ``1 × n`` row of
    ``dtype`` weights (in float64 bit for bit :meth:`QuantizedLinearModel.coef`), their names
    after ``prefix``; return the row's name and the opset the codes need."""
    n = int(model.codes.size)
    tensor_type, opset = code_type(model)
    powers = np.exp2(model.exponents.astype(np.float64))
    codes = graph.initializer(
        helper.make_tensor(
            f"{prefix}codes", tensor_type, [1, n], model.codes.astype(np.int64).tolist()
        )
    )
    zero_point = graph.initializer(
        helper.make_tensor(f"{prefix}zero_point", tensor_type, [n], [int(model.zero_point)] * n)
    )
    if dtype is np.float32:
        steps = graph.constant(f"{prefix}steps", float(model.scale) * powers, np.float32)
        return graph.node(
            "DequantizeLinear", [codes, steps, zero_point], f"{prefix}weights", axis=1
        ), opset
    powers_of_two = graph.constant(f"{prefix}powers_of_two", powers, np.float32)
    scale = graph.constant(f"{prefix}scale", float(model.scale), np.float64)
    exact = graph.node(
        "DequantizeLinear",
        [codes, powers_of_two, zero_point],
        f"{prefix}codes_times_powers",
        axis=1,
    )
    double = graph.node("Cast", [exact], f"{prefix}codes_double", to=TensorProto.DOUBLE)
    return graph.node("Mul", [double, scale], f"{prefix}weights"), opset


def _input_type(item: NumericInput | CategoricalInput, dtype: type) -> int:
    return TensorProto.STRING if item.kind == CATEGORICAL else ELEMENT_TYPES[dtype]


def _missing_marker(item: NumericInput | CategoricalInput) -> str | None:
    """What an input takes for a missing value: NaN (numeric, with a fill) or ``""``
    (categorical, unless ``""`` is one of its categories); None: no such value."""
    if item.kind == NUMERIC:
        return "NaN" if item.fill is not None else None
    return None if MISSING_TEXT in item.categories else MISSING_TEXT


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
    return _model(graph, {"": opset}, metadata)


def _model(
    graph: onnx.GraphProto, opsets: Mapping[str, int], metadata: Mapping[str, str]
) -> onnx.ModelProto:
    """``graph`` as a model importing ``opsets`` (domain → version) under the IR version they
    need, with ``metadata``; checked with ``onnx.checker.check_model(full_check=True)``."""
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(domain, version) for domain, version in opsets.items()],
        producer_name="mlops-lr",
        ir_version=max(IR_VERSIONS[domain, version] for domain, version in opsets.items()),
    )
    helper.set_model_props(model, dict(metadata))
    onnx.checker.check_model(model, full_check=True)
    return model
