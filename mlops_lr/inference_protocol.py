"""The Open Inference Protocol (KServe "V2") for a folded model: inference requests decoded
into what the model takes, responses and metadata encoded — plain Python and numpy, no web
framework (``mlops_lr.serve`` puts it behind HTTP routes).

A request carries tensors, in JSON (``data``, nested or flat, row-major) or in the binary
tensor extension that Triton's client uses by default: the body is a JSON header of
``Inference-Header-Content-Length`` bytes followed by each binary input's raw little-endian
bytes (``parameters.binary_data_size`` of them; a ``BYTES`` element is a 4-byte length and
its UTF-8 text). The model takes either

- one numeric tensor ``[N, n_features]``, columns in the metadata's ``feature_names`` order
  (models without categorical inputs), or
- one input per column, named by the feature (``[N]`` or ``[N, 1]``; ``BYTES`` or numbers for
  a categorical column): the pandas-style request, ``parameters.content_type: "pd"``.

The one output, ``predict``, is FP64 ``[N, 1]``; it comes back in binary when the request asks
(``parameters.binary_data_output``, or ``binary_data`` on the requested output).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson

from mlops_lr.folded import NUMERIC, FoldedModel
from mlops_lr.folded_classifier import integer_classes

OUTPUT_NAME = "predict"
# A classifier's second output: its class probabilities, [N, classes].
PROBABILITIES = "probabilities"
# The single-tensor input's name in the metadata (any name is accepted for it).
TENSOR_INPUT = "input"
HEADER_LENGTH = "inference-header-content-length"
# The protocol's tensor types and their little-endian numpy layout (BYTES has none).
DATATYPES: dict[str, str | None] = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BYTES": None,
}
NUMERIC_TYPES = frozenset(name for name in DATATYPES if name not in ("BOOL", "BYTES"))
_NUMBERS = frozenset({int, float})
_INT = frozenset({int})


class ProtocolError(Exception):
    """A request the protocol refuses: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Inference:
    """A decoded inference request: the model's input as a matrix (``X``, a plain model's
    fastest path) or as columns by name, its number of rows, the request ``id`` and the
    outputs it asks for, each with whether it goes back in binary (all of the model's
    outputs when the request names none)."""

    rows: int
    X: np.ndarray | None
    columns: dict[str, Any] | None
    request_id: str | None
    outputs: dict[str, bool]


@dataclass(frozen=True)
class _Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    values: np.ndarray | list[Any]  # numbers as an array; BYTES (and JSON) as a list


def uses_tensor(folded: FoldedModel) -> bool:
    """Whether the model's metadata offers one ``[N, n_features]`` tensor (no categorical
    inputs) rather than one input per column."""
    return not folded.categorical_names


def output_names(folded: Any) -> tuple[str, ...]:
    """The model's outputs: its prediction, and a classifier's probabilities."""
    return (OUTPUT_NAME, PROBABILITIES) if hasattr(folded, "classes") else (OUTPUT_NAME,)


def model_metadata(
    name: str, version: str, folded: FoldedModel, details: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``GET /v2/models/{name}`` document (a classifier's labels are BYTES, or INT64 for
    integer classes, beside FP64 probabilities)."""
    if uses_tensor(folded):
        inputs = [{"name": TENSOR_INPUT, "datatype": "FP64", "shape": [-1, len(folded.inputs)]}]
        content_type = "np"
    else:
        inputs = [
            {
                "name": item.name,
                "datatype": "FP64" if item.kind == NUMERIC else "BYTES",
                "shape": [-1],
            }
            for item in folded.inputs
        ]
        content_type = "pd"
    classifier = hasattr(folded, "classes")
    outputs = [{"name": OUTPUT_NAME, "datatype": "FP64", "shape": [-1, 1]}]
    if classifier:
        outputs = [
            {
                "name": OUTPUT_NAME,
                "datatype": "INT64" if integer_classes(folded.classes) else "BYTES",
                "shape": [-1, 1],
            },
            {"name": PROBABILITIES, "datatype": "FP64", "shape": [-1, len(folded.classes)]},
        ]
    return {
        "name": name,
        "versions": [version],
        "platform": "mlops-lr",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {
            "content_type": content_type,
            "feature_names": list(folded.feature_names),
            "categorical": list(folded.categorical_names),
            "kind": str(details.get("kind", "")),
            "sha256": str(details.get("sha256", "")),
            **({"classes": list(folded.classes)} if classifier else {}),
        },
    }


def decode_request(
    body: bytes,
    header_length: str | None,
    folded: FoldedModel,
    max_rows: int,
    limit: float = math.inf,
) -> Inference:
    """The model input of a ``POST /v2/models/{name}/infer`` body.

    Parameters
    ----------
    body
        The whole body: the JSON request, then any binary tensor data.
    header_length
        The ``Inference-Header-Content-Length`` header (None: the body is all JSON).
    folded
        The served model: its inputs say which tensors it takes.
    max_rows, limit
        The most rows one request may carry, and the largest |value| a numeric input may have.

    Raises
    ------
    ProtocolError
        400 for malformed JSON or binary data, a missing, unknown or mis-shaped input, a wrong
        datatype or value, too many rows, or an unknown output.
    """
    header, binary = _split(body, header_length)
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as error:
        hint = ""
        if header_length is None and "UTF-8" in str(error):
            hint = " (binary tensor data needs an Inference-Header-Content-Length header)"
        raise ProtocolError(f"malformed JSON: {error}{hint}") from None
    if type(document) is not dict:
        raise ProtocolError("the request must be a JSON object with an 'inputs' list")
    request_id = document.get("id")
    if request_id is not None and type(request_id) is not str:
        raise ProtocolError("'id' must be a string")
    parameters = _parameters(document, "the request")
    inputs = document.get("inputs")
    if type(inputs) is not list or not inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    tensors = _tensors(inputs, binary)
    outputs = _requested_outputs(document.get("outputs"), parameters, output_names(folded))
    if (
        len(tensors) == 1
        and len(tensors[0].shape) == 2
        and tensors[0].name not in folded.feature_names
    ):
        X = _matrix(tensors[0], folded, max_rows, limit)
        if folded.is_plain:
            return Inference(len(X), X, None, request_id, outputs)
        columns = {name: X[:, j] for j, name in enumerate(folded.feature_names)}
        return Inference(len(X), None, columns, request_id, outputs)
    rows, columns = _columns(tensors, folded, max_rows, limit)
    return Inference(rows, None, columns, request_id, outputs)


def encode_response(
    model_name: str,
    version: str,
    inference: Inference,
    predictions: np.ndarray,
    probabilities: np.ndarray | None = None,
) -> tuple[bytes, int | None]:
    """The response body, and the length of its JSON header when binary data follows it.

    ``predictions`` are numbers, or a classifier's labels (then ``probabilities`` are its
    class probabilities): the outputs the request asked for, in its order.
    """
    tensors = {OUTPUT_NAME: _label_tensor(predictions)}
    if probabilities is not None:
        tensors[PROBABILITIES] = ("FP64", list(probabilities.shape), probabilities)
    encoded, data = [], []
    for name, binary in inference.outputs.items():
        datatype, shape, values = tensors[name]
        output: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            raw = _tensor_bytes(datatype, values)
            output["parameters"] = {"binary_data_size": len(raw)}
            data.append(raw)
        else:
            output["data"] = values.reshape(-1) if datatype == "FP64" else values
        encoded.append(output)
    response: dict[str, Any] = {"model_name": model_name, "model_version": version}
    if inference.request_id is not None:
        response["id"] = inference.request_id
    response["outputs"] = encoded
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not data:
        return header, None
    return header + b"".join(data), len(header)


def _label_tensor(predictions: np.ndarray) -> tuple[str, list[int], Any]:
    """The prediction output: FP64 numbers, or a classifier's labels (INT64, or BYTES)."""
    shape = [len(predictions), 1]
    if predictions.dtype == object:
        return "BYTES", shape, predictions.tolist()
    if np.issubdtype(predictions.dtype, np.integer):
        return "INT64", shape, predictions
    return "FP64", shape, predictions


def _tensor_bytes(datatype: str, values: Any) -> bytes:
    """A tensor's binary data: little-endian numbers, or per element its UTF-8 bytes after
    their length (4 bytes, little-endian), as the binary tensor extension lays BYTES out."""
    if datatype == "FP64":
        return np.ascontiguousarray(values, dtype="<f8").tobytes()
    if datatype == "INT64":
        return np.ascontiguousarray(values, dtype="<i8").tobytes()
    texts = [str(value).encode() for value in values]
    return b"".join(len(text).to_bytes(4, "little") + text for text in texts)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary data after it."""
    if header_length is None:
        return body, memoryview(b"")
    text = header_length.strip()
    # ASCII digits only ("²" is a digit to str.isdigit), and few enough for int().
    if not (text.isascii() and text.isdigit() and len(text) <= 20) or int(text) > len(body):
        raise ProtocolError(
            f"Inference-Header-Content-Length={header_length!r} must be a byte count within "
            f"the body's {len(body)} bytes"
        )
    length = int(text)
    return body[:length], memoryview(body)[length:]


def _parameters(container: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    parameters = container.get("parameters")
    if parameters is None:  # absent, or null as some clients send it
        return {}
    if type(parameters) is not dict:
        raise ProtocolError(f"'parameters' of {where} must be an object")
    return parameters


def _tensors(inputs: list[Any], binary: memoryview) -> list[_Tensor]:
    """Each input's name, type, shape and values (from ``data`` or the binary section)."""
    tensors, offset = [], 0
    for index, item in enumerate(inputs):
        where = f"inputs[{index}]"
        if type(item) is not dict:
            raise ProtocolError(f"{where} must be an object with name, shape, datatype and data")
        name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        if type(name) is not str:
            raise ProtocolError(f"{where}: 'name' must be a string")
        where = f"input {name!r}"
        if type(datatype) is not str or datatype not in DATATYPES:
            raise ProtocolError(
                f"{where}: datatype {datatype!r} is not one of {', '.join(DATATYPES)}"
            )
        if (
            type(shape) is not list
            or not set(map(type, shape)) <= _INT
            or min(shape, default=0) < 0
        ):
            raise ProtocolError(f"{where}: 'shape' must be a list of non-negative integers")
        count = math.prod(shape)
        size = _parameters(item, where).get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0:
                raise ProtocolError(
                    f"{where}: binary_data_size={_brief(size)} must be a non-negative integer"
                )
            if offset + size > len(binary):
                raise ProtocolError(
                    f"{where}: binary_data_size={size!r} is beyond the {len(binary) - offset} "
                    "binary bytes left in the body"
                )
            values = _from_binary(binary[offset : offset + size], datatype, count, where)
            offset += size
        elif "data" in item:
            values = _flat(item["data"], shape, where)
            if len(values) != count:
                raise ProtocolError(
                    f"{where}: 'data' has {len(values)} values; shape {shape} needs {count}"
                )
        else:
            raise ProtocolError(f"{where}: no 'data' and no parameters.binary_data_size")
        tensors.append(_Tensor(name, datatype, tuple(shape), values))
    if offset != len(binary):
        raise ProtocolError(
            f"the body has {len(binary) - offset} bytes of binary data that no input declares"
        )
    return tensors


def _from_binary(data: memoryview, datatype: str, count: int, where: str) -> Any:
    if datatype == "BYTES":
        return _bytes_elements(data, count, where)
    layout = np.dtype(DATATYPES[datatype])
    if len(data) != count * layout.itemsize:
        raise ProtocolError(
            f"{where}: {len(data)} binary bytes; shape needs {count} × {layout.itemsize}"
        )
    return np.frombuffer(data, dtype=layout)


def _bytes_elements(data: memoryview, count: int, where: str) -> list[str]:
    """BYTES elements: each a 4-byte little-endian length, then that many UTF-8 bytes."""
    texts, offset, raw = [], 0, bytes(data)
    for _ in range(count):
        if offset + 4 > len(raw):
            raise ProtocolError(f"{where}: the binary BYTES data ends before {count} elements")
        length = int.from_bytes(raw[offset : offset + 4], "little")
        start, offset = offset + 4, offset + 4 + length
        if offset > len(raw):
            raise ProtocolError(f"{where}: a BYTES element runs past the binary data")
        try:
            texts.append(raw[start:offset].decode("utf-8"))
        except UnicodeDecodeError:
            raise ProtocolError(f"{where}: a BYTES element is not UTF-8 text") from None
    if offset != len(raw):
        raise ProtocolError(f"{where}: binary BYTES data has bytes beyond {count} elements")
    return texts


def _flat(data: Any, shape: Sequence[int], where: str) -> list[Any]:
    """Row-major values of ``data``, flat or nested as ``shape`` says (each level's lists as
    long as its dimension; a list left inside is caught as a value of the wrong type)."""
    if type(data) is not list:
        raise ProtocolError(f"{where}: 'data' must be a list")
    level = 0
    while data and type(data[0]) is list:
        if set(map(type, data)) != {list}:
            raise ProtocolError(f"{where}: 'data' mixes lists and values at one level")
        if (
            level + 1 >= len(shape)
            or (level == 0 and len(data) != shape[0])
            or set(map(len, data)) != {shape[level + 1]}
        ):
            raise ProtocolError(f"{where}: 'data' is nested otherwise than shape {list(shape)}")
        data = list(chain.from_iterable(data))
        level += 1
    return data


def _requested_outputs(
    outputs: Any, parameters: Mapping[str, Any], names: tuple[str, ...]
) -> dict[str, bool]:
    """The outputs a request asks for (all of ``names`` when it lists none), in its order,
    each with whether it goes back as binary data."""
    binary = parameters.get("binary_data_output") is True
    if outputs is None or outputs == []:  # none named: every output
        return dict.fromkeys(names, binary)
    if type(outputs) is not list:
        raise ProtocolError("'outputs' must be a list")
    known = " and ".join(repr(name) for name in names)
    requested: dict[str, bool] = {}
    for index, output in enumerate(outputs):
        name = output.get("name") if type(output) is dict else output
        if type(output) is not dict or name not in names:
            raise ProtocolError(
                f"outputs[{index}]: unknown output {name!r}; the model's outputs are {known}"
            )
        if name in requested:
            raise ProtocolError(f"outputs[{index}]: output {name!r} is named twice")
        settings = _parameters(output, f"output {name!r}")
        if settings.get("classification") or settings.get("class_count"):
            raise ProtocolError(
                f"output {name!r}: the classification extension is not supported (a "
                f"classifier's labels are {OUTPUT_NAME!r}, its probabilities {PROBABILITIES!r})"
            )
        requested[name] = settings.get("binary_data", binary) is True
    return requested


def _check_rows(rows: int, max_rows: int, where: str) -> None:
    if rows == 0:
        raise ProtocolError(f"{where} has no rows")
    if rows > max_rows:
        raise ProtocolError(
            f"{where} has {rows} rows; at most {max_rows} per request (serve.max_rows)"
        )


def _matrix(tensor: _Tensor, folded: FoldedModel, max_rows: int, limit: float) -> np.ndarray:
    """One ``[N, n_features]`` numeric tensor as a float64 matrix."""
    where = f"input {tensor.name!r}"
    if folded.categorical_names:
        raise ProtocolError(
            f"{where}: this model has categorical inputs "
            f"({', '.join(folded.categorical_names)}): send one input per column, named by "
            "the feature"
        )
    rows, width = tensor.shape
    if width != len(folded.inputs):
        raise ProtocolError(
            f"{where}: shape {list(tensor.shape)} must be [N, {len(folded.inputs)}] "
            f"(columns {', '.join(folded.feature_names)})"
        )
    _check_rows(rows, max_rows, where)
    X = _numbers(tensor, where).reshape(rows, width)
    _check_values(
        X,
        folded.inputs,
        limit,
        lambda row, col: f"{where}[{row}, {col}] ({folded.feature_names[col]})",
    )
    return X


def _columns(
    tensors: list[_Tensor], folded: FoldedModel, max_rows: int, limit: float
) -> tuple[int, dict[str, Any]]:
    """One input per column, named by the feature."""
    by_name = {tensor.name: tensor for tensor in tensors}
    unknown = [tensor.name for tensor in tensors if tensor.name not in folded.feature_names]
    missing = [name for name in folded.feature_names if name not in by_name]
    if unknown or missing or len(by_name) != len(tensors):
        problems = []
        if missing:
            problems.append(f"missing input(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown input(s) {', '.join(map(repr, unknown[:5]))}")
        if len(by_name) != len(tensors):
            problems.append("an input named twice")
        tensor_hint = f", or one [N, {len(folded.inputs)}] tensor" if uses_tensor(folded) else ""
        raise ProtocolError(
            f"{'; '.join(problems)}: send one input per feature "
            f"({', '.join(folded.feature_names)}){tensor_hint}"
        )
    rows = None
    columns: dict[str, Any] = {}
    for item in folded.inputs:
        tensor = by_name[item.name]
        where = f"input {item.name!r}"
        if not (len(tensor.shape) == 1 or (len(tensor.shape) == 2 and tensor.shape[1] == 1)):
            raise ProtocolError(f"{where}: shape {list(tensor.shape)} must be [N] or [N, 1]")
        if rows is None:
            rows = tensor.shape[0]
            _check_rows(rows, max_rows, where)
        elif tensor.shape[0] != rows:
            raise ProtocolError(f"{where} has {tensor.shape[0]} rows; the first input has {rows}")
        if item.kind == NUMERIC:
            values = _numbers(tensor, where)
            _check_values(
                values.reshape(-1, 1), (item,), limit, lambda row, _, where=where: f"{where}[{row}]"
            )
            columns[item.name] = values
        else:
            columns[item.name] = _categories(tensor, where)
    assert rows is not None
    return rows, columns


def _numbers(tensor: _Tensor, where: str) -> np.ndarray:
    """A numeric tensor's values as float64 (JSON null: NaN, a missing value)."""
    if tensor.datatype not in NUMERIC_TYPES:
        raise ProtocolError(
            f"{where}: datatype {tensor.datatype} must be a number type (FP64, FP32, INT64, …)"
        )
    values = tensor.values
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    if not set(map(type, values)) <= _NUMBERS:
        position = next(i for i, v in enumerate(values) if type(v) not in _NUMBERS)
        if values[position] is not None:
            raise ProtocolError(
                f"{where}: element {position} is {_brief(values[position])}, not a number"
            )
        values = [math.nan if v is None else v for v in values]
    return np.array(values, dtype=np.float64)


def _check_values(X: np.ndarray, inputs: Any, limit: float, locate: Any) -> None:
    """400 for a value beyond ±limit (infinity included), or a missing one (NaN) in a
    column the model has no fill for; ``inputs`` are the inputs of ``X``'s columns."""
    # The common case in one pass, without numpy's Python-level wrappers (NaN fails it).
    if np.maximum.reduce(np.abs(X), axis=None) <= limit:
        return
    within = np.abs(X) <= limit  # False for NaN too
    fills = np.array([item.fill is not None for item in inputs])
    bad = ~within & ~(np.isnan(X) & fills)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        value = float(X[row, col])
        reason = (
            " is missing and the model has no fill for it"
            if math.isnan(value)
            else f"={value!r} is outside ±{limit:g}, beyond which the predictions overflow"
        )
        raise ProtocolError(f"{locate(row, col)}{reason}")


# What JSON values each kind of datatype takes in a categorical column (null: missing).
_JSON_VALUES = {
    "BYTES": (frozenset({str, type(None)}), "text"),
    "BOOL": (frozenset({bool, type(None)}), "a boolean"),
}
_JSON_NUMBERS = (frozenset({int, float, type(None)}), "a number")


def _categories(tensor: _Tensor, where: str) -> Sequence[Any]:
    """A categorical column's values: text (BYTES), numbers or booleans as their datatype
    says, or null (missing)."""
    values = tensor.values
    if isinstance(values, np.ndarray):
        return values.tolist()
    allowed, what = _JSON_VALUES.get(tensor.datatype, _JSON_NUMBERS)
    if not set(map(type, values)) <= allowed:
        position = next(i for i, v in enumerate(values) if type(v) not in allowed)
        raise ProtocolError(
            f"{where}: element {position} is {_brief(values[position])}, not {what} "
            f"({tensor.datatype})"
        )
    return values


def _brief(value: Any) -> str:
    shown = orjson.dumps(value).decode()
    return shown if len(shown) <= 40 else shown[:40] + "…"


def infer_request_schema(
    folded: FoldedModel, max_rows: int, example: Sequence[Any] | None = None
) -> dict[str, Any]:
    """The JSON schema of an inference request (as the OpenAPI document states it), with an
    example in the model's own form when ``example`` (one row of feature values) is given.
    What a schema cannot say — that ``data`` holds as many values as ``shape`` — the server
    checks."""
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"enum": list(DATATYPES)},
            "parameters": {"type": ["object", "null"]},
            "data": {"type": "array", "description": "Row-major values, nested or flat."},
        },
    }
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": ["string", "null"]},
            "parameters": {"type": ["object", "null"]},
            "inputs": {"type": "array", "minItems": 1, "items": tensor},
            "outputs": {
                "type": ["array", "null"],
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"enum": [OUTPUT_NAME]},
                        "parameters": {"type": ["object", "null"]},
                    },
                },
            },
        },
        "description": f"At most {max_rows} rows. "
        + (
            f"One [N, {len(folded.inputs)}] numeric tensor, columns in this order: "
            f"{', '.join(folded.feature_names)}; or one input per column."
            if uses_tensor(folded)
            else "One input per column ([N] or [N, 1]), named by the feature; BYTES for "
            f"the categorical columns {', '.join(folded.categorical_names)}."
        ),
    }
    if example is not None:
        if uses_tensor(folded):
            inputs = [
                {
                    "name": TENSOR_INPUT,
                    "shape": [1, len(folded.inputs)],
                    "datatype": "FP64",
                    "data": [list(example)],
                }
            ]
        else:
            inputs = [
                {
                    "name": item.name,
                    "shape": [1],
                    "datatype": "FP64" if item.kind == NUMERIC else "BYTES",
                    "data": [value],
                }
                for item, value in zip(folded.inputs, example, strict=True)
            ]
        schema["example"] = {"id": "1", "inputs": inputs}
    return schema
