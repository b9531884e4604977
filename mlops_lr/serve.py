"""The HTTP model server: a FastAPI app around one :class:`~mlops_lr.predictor.LinearPredictor`.

Endpoints: ``GET /health`` (liveness), ``GET /ready`` (the verified model is loaded),
``GET /model`` (what is served and how good it is), ``POST /predict``, ``GET /metrics``
(Prometheus text format), ``/openapi.json`` and ``/docs``; and the Open Inference Protocol
(KServe V2) routes under ``/v2`` (:mod:`mlops_lr.inference_protocol`), which KServe, Triton's
client and the protocol's generated clients speak.

``POST /predict`` takes ``{"instances": [{feature: value, ...}, ...]}`` or
``{"inputs": [[value, ...], ...]}``. The body is parsed with orjson and checked by hand into one
float64 matrix (no per-row model objects), which is what makes 1,000-row requests cheap. The
OpenAPI schema states the same rules, built from the model's own feature names. Every client
mistake is a 4xx with ``{"detail": "<one line>"}``: 400 malformed JSON, 413 body too large,
415 not JSON, 422 wrong shape, names, types or values.

The app is built by :func:`create_app`; ``mlops_lr.stages.serve`` runs it on uvicorn.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlops_lr import __version__
from mlops_lr.folded import NUMERIC, FoldedModel
from mlops_lr.folded_classifier import probabilities
from mlops_lr.inference_protocol import (
    HEADER_LENGTH,
    ProtocolError,
    decode_request,
    encode_response,
    infer_request_schema,
    model_metadata,
)
from mlops_lr.predictor import SCORES, LinearPredictor

JSON_TYPE = "application/json"
# Latency buckets (seconds) for a model that answers in well under a millisecond.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_NUMBER_TYPES = frozenset({int, float})
_CATEGORY_TYPES = frozenset({str, int, float, bool, type(None)})
_UTF8 = frozenset({"utf-8", "utf8"})
# Request methods counted by name in /metrics; any other is counted as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_NON_FINITE_LITERALS = ("NaN", "Infinity", "-Infinity")


class RequestError(Exception):
    """A client mistake: answered with ``status`` and ``{"detail": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ErrorBody(BaseModel):
    detail: str = Field(description="What was wrong with the request, in one line.")


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Ready(BaseModel):
    ready: bool
    model: str = Field(description="The served model: 'float' or a quantized tag.")
    sha256: str = Field(description="Digest of the model file, verified before serving.")


class ModelInfo(BaseModel):
    tag: str = Field(description="'float' or the quantized model's tag.")
    kind: str = Field(description="'float' or 'quantized'.")
    bits: int | None = Field(description="Bit width of the quantized codes; null when float.")
    scheme: str = Field(description="Quantization scheme, or 'float64'.")
    granularity: str | None
    feature_names: list[str]
    task: str = Field(description="'regression' or 'classification'.")
    r2: float | None = Field(description="R² of this model on the test split (a regressor).")
    mse: float | None = Field(description="MSE of this model on the test split (a regressor).")
    r2_float: float | None = Field(description="R² of the float model on the same split.")
    mse_float: float | None = Field(description="MSE of the float model on the same split.")
    accuracy: float | None = Field(
        default=None, description="Accuracy of this model on the test split (a classifier)."
    )
    log_loss: float | None = Field(
        default=None, description="Log loss of this model on the test split (a classifier)."
    )
    accuracy_float: float | None = Field(default=None)
    log_loss_float: float | None = Field(default=None)
    classes: list[str | int] | None = Field(
        default=None, description="A classifier's classes, in its probabilities' order."
    )
    sha256: str
    created_at: str
    max_rows: int = Field(description="Most rows one POST /predict may carry.")


class Predictions(BaseModel):
    predictions: list[float | str | int] = Field(
        description="One prediction per row, in request order: a number, or a classifier's label."
    )
    probabilities: list[list[float]] | None = Field(
        default=None,
        description="A classifier's class probabilities per row, in the order of `classes`.",
    )
    classes: list[str | int] | None = Field(default=None, description="A classifier's classes.")
    model: str


class V2Error(BaseModel):
    error: str = Field(description="What was wrong, in one line.")


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str] = Field(description="The protocol extensions this server supports.")


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 is any number of rows.")


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]
    parameters: dict[str, Any] = Field(
        description="content_type: 'np' (one [N, n_features] tensor) or 'pd' (one input per "
        "column); feature_names in the tensor's column order; categorical columns."
    )


class V2Output(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[float] | None = Field(
        default=None, description="The predictions (absent when sent as binary data)."
    )
    parameters: dict[str, Any] | None = Field(
        default=None, description="binary_data_size: bytes of binary data after the JSON."
    )


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = Field(default=None, description="The request's id, echoed.")
    outputs: list[V2Output]


# The binary tensor extension, as Triton names it (its client's default).
V2_EXTENSIONS = ("binary_tensor_data",)


def input_limit(predictor: LinearPredictor) -> float:
    """The largest |value| (a power of ten) for which every prediction of ``predictor`` is
    finite: with all numeric |x| ≤ limit, |prediction| ≤ limit·Σ|weight| + (the rest) <
    float64's max, the rest being the intercept, the largest |entry| of each category table,
    and each input's contribution when missing."""
    rows = getattr(predictor.folded, "rows", (predictor.folded,))  # a classifier's scores
    return min(_row_limit(row) for row in rows)


def _row_limit(folded: FoldedModel) -> float:
    budget = abs(folded.intercept) + 1.0  # limit·budget bounds |prediction| when limit >= 1
    for item in folded.inputs:
        if item.kind == NUMERIC:
            budget += abs(item.weight) + abs(item.weight * (item.fill or 0.0))
            budget += abs(item.indicator or 0.0)
        else:
            budget += float(np.max(np.abs([*item.table, item.unknown, item.missing])))
    room = float(np.finfo(np.float64).max) / budget
    return 10.0 ** math.floor(math.log10(room)) if room >= 1 else 0.0


def parse_rows(
    body: bytes, feature_names: Sequence[str], max_rows: int, limit: float = math.inf
) -> np.ndarray:
    """The ``(n_rows, n_features)`` float64 matrix of a ``POST /predict`` body, one of

    - ``{"instances": [{feature: value, ...}, ...]}``: rows of named features;
    - ``{"inputs": [[value, ...], ...]}``: rows of values in ``feature_names`` order, the
      cheaper to decode (a list per row instead of an object).

    Raises
    ------
    RequestError
        400 for malformed JSON (NaN, Infinity and numbers beyond float64 included); 422 for
        anything else: not exactly one of those keys, no rows or more than ``max_rows``, a
        missing or unknown feature, a wrong row or column length, a non-number, a value
        beyond ±``limit``.
    """
    values, n_rows, locate = _read_body(body, tuple(feature_names), max_rows)
    # bool is not a number here, though Python says it is an int.
    if not set(map(type, values)) <= _NUMBER_TYPES:
        position = next(i for i, value in enumerate(values) if type(value) not in _NUMBER_TYPES)
        raise RequestError(
            422, f"{locate(position)} must be a number, got {_describe(values[position])}"
        )
    X = np.array(values, dtype=np.float64)
    _check_limit(X, limit, locate)
    return X.reshape(n_rows, len(feature_names))


def parse_table(
    body: bytes, folded: FoldedModel, max_rows: int, limit: float = math.inf
) -> dict[str, Any]:
    """The columns of a ``POST /predict`` body (the forms of :func:`parse_rows`) for a folded
    model: numeric inputs as float64 (``null`` is missing, allowed where the model has a
    fill), categorical inputs as given (text, a number, or ``null`` for missing; an unseen
    category is the model's "unknown").

    Raises
    ------
    RequestError
        As :func:`parse_rows`, and 422 for a value of the wrong type for its input.
    """
    names = folded.feature_names
    values, _, locate = _read_body(body, names, max_rows)
    columns: dict[str, Any] = {}
    for j, item in enumerate(folded.inputs):
        column = values[j :: len(names)]
        if item.kind == NUMERIC:
            allowed = _NUMBER_TYPES | ({type(None)} if item.fill is not None else set())
            what = "a number or null" if item.fill is not None else "a number"
        else:
            allowed, what = _CATEGORY_TYPES, "a category (text), a number, a boolean or null"
        if not set(map(type, column)) <= allowed:
            row = next(i for i, value in enumerate(column) if type(value) not in allowed)
            position = row * len(names) + j
            raise RequestError(
                422, f"{locate(position)} must be {what}, got {_describe(column[row])}"
            )
        if item.kind == NUMERIC:
            array = np.array([np.nan if v is None else v for v in column], dtype=np.float64)
            with np.errstate(invalid="ignore"):
                _check_limit(array, limit, lambda row, j=j: locate(row * len(names) + j))
            column = array
        columns[item.name] = column
    return columns


def _read_body(body: bytes, feature_names: tuple[str, ...], max_rows: int) -> Values:
    """The values of a body's rows, row by row, their number and where each came from."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestError(400, _json_error(body, error)) from None
    if not (isinstance(document, dict) and len(document) == 1 and document.keys() <= _FORMS.keys()):
        raise RequestError(
            422,
            'the body must be a JSON object with one key: "instances" (a list of objects of '
            'named features) or "inputs" (a list of rows of values)',
        )
    ((form, payload),) = document.items()
    return _FORMS[form](payload, feature_names, max_rows)


def _check_limit(X: np.ndarray, limit: float, locate: Callable[[int], str]) -> None:
    """422 for the first value beyond ±``limit`` (NaN, a missing value, passes)."""
    outside = np.abs(X) > limit
    if outside.any():
        position = int(np.flatnonzero(outside)[0])
        raise RequestError(
            422,
            f"{locate(position)}={float(X[position])!r} is outside ±{limit:g}, beyond which this "
            "model's predictions overflow",
        )


# Each form's reader checks the structure and returns the values row by row, the number of
# rows, and where the value at a position came from (for error messages).
Values = tuple[list[Any], int, Callable[[int], str]]


def _check_count(form: str, count: int, max_rows: int) -> None:
    if count == 0:
        raise RequestError(422, f"{form} has no rows")
    if count > max_rows:
        raise RequestError(
            422, f"{form} has {count} rows; at most {max_rows} per request (serve.max_rows)"
        )


def _inputs(rows: Any, feature_names: tuple[str, ...], max_rows: int) -> Values:
    n_features = len(feature_names)
    if type(rows) is not list:
        raise RequestError(422, f"inputs must be a list of rows, got {_describe(rows)}")
    _check_count("inputs", len(rows), max_rows)
    if not all(type(row) is list and len(row) == n_features for row in rows):
        index = next(
            i for i, row in enumerate(rows) if type(row) is not list or len(row) != n_features
        )
        raise RequestError(
            422,
            f"inputs[{index}] must be a list of {n_features} "
            f"{'number' if n_features == 1 else 'numbers'} "
            f"({', '.join(feature_names)}), got {_describe(rows[index])}",
        )

    return list(chain.from_iterable(rows)), len(rows), _locator("inputs", feature_names)


def _instances(rows: Any, feature_names: tuple[str, ...], max_rows: int) -> Values:
    n_features = len(feature_names)
    if type(rows) is not list:
        raise RequestError(422, f"instances must be a list of objects, got {_describe(rows)}")
    _check_count("instances", len(rows), max_rows)
    # A dict with as many keys as features, all of them found, has no unknown key either.
    getter = _values_getter(feature_names)
    try:
        if not all(len(row) == n_features for row in rows):
            raise KeyError
        values = list(chain.from_iterable(map(getter, rows)))
    except (KeyError, TypeError):
        index = next(i for i, row in enumerate(rows) if not _is_instance(row, feature_names))
        raise RequestError(422, _instance_error(index, rows[index], feature_names)) from None

    return values, len(rows), _locator("instances", feature_names)


def _locator(form: str, feature_names: tuple[str, ...]) -> Callable[[int], str]:
    """Where the value at ``position`` of the row-by-row values came from."""

    def locate(position: int) -> str:
        row, column = divmod(position, len(feature_names))
        return f"{form}[{row}]: {feature_names[column]}"

    return locate


_FORMS: dict[str, Callable[[Any, tuple[str, ...], int], Values]] = {
    "instances": _instances,
    "inputs": _inputs,
}


def _json_error(body: bytes, error: orjson.JSONDecodeError) -> str:
    # error.pos counts characters, not bytes.
    rest = body.decode("utf-8", "replace")[error.pos :]
    if "infinity" in error.msg or rest.startswith(_NON_FINITE_LITERALS):
        return (
            f"malformed JSON at character {error.pos}: values must be finite numbers "
            "(JSON has no NaN or Infinity, and a number must fit in a float64)"
        )
    return f"malformed JSON: {error}"


def _values_getter(feature_names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """``row -> (row[name] for name in feature_names)`` as a tuple, fast."""
    if len(feature_names) == 1:
        (name,) = feature_names
        return lambda row: (row[name],)
    return itemgetter(*feature_names)


def _is_instance(row: object, feature_names: Sequence[str]) -> bool:
    return type(row) is dict and row.keys() == set(feature_names)


def _instance_error(index: int, row: object, feature_names: Sequence[str]) -> str:
    """What is wrong with ``instances[index]``: not an object, or keyed by other names."""
    if type(row) is not dict:
        return f"instances[{index}] must be an object of named features, got {_describe(row)}"
    missing = [name for name in feature_names if name not in row]
    unknown = [name for name in row if name not in feature_names]
    problems = []
    if missing:
        problems.append(f"missing feature(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown feature(s) {_names(unknown)}")
    return f"instances[{index}]: {'; '.join(problems)} (the model takes {', '.join(feature_names)})"


def _names(names: Sequence[str], most: int = 5, longest: int = 40) -> str:
    """Client-sent names, JSON-quoted (so one line) and cut short (so the answer stays small)."""
    shown = [
        json.dumps(name if len(name) <= longest else name[:longest] + "…", ensure_ascii=False)
        for name in names[:most]
    ]
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(shown) + more


def _describe(value: object) -> str:
    """A JSON value, briefly: its type and (when short) itself."""
    kind = {
        bool: "a boolean",
        str: "a string",
        dict: "an object",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    if isinstance(value, list):
        return f"a list of {len(value)}"
    shown = orjson.dumps(value).decode()
    return f"{kind} {shown}" if len(shown) <= 40 and value is not None else kind


def request_schema(
    feature_names: Sequence[str],
    max_rows: int,
    limit: float,
    example: Sequence[Any] | None = None,
    folded: FoldedModel | None = None,
) -> dict[str, Any]:
    """The JSON schema of a ``POST /predict`` body for these features (as the OpenAPI
    document states it); with ``folded``, each input's own type: a number (or null where the
    model fills missing values), or a category with its known values listed."""
    number = {"type": "number", "minimum": -limit, "maximum": limit}
    properties = {name: number for name in feature_names}
    if folded is not None:
        for item in folded.inputs:
            if item.kind == NUMERIC:
                if item.fill is not None:
                    properties[item.name] = {
                        "anyOf": [number, {"type": "null"}],
                        "description": "null is missing: the model fills it",
                    }
            else:
                properties[item.name] = {
                    "type": ["string", "number", "null"],
                    "examples": list(item.categories),
                    "description": "Known categories: "
                    + ", ".join(item.categories)
                    + ". Any other value is an unknown category; null is missing.",
                }
    instance = {
        "type": "object",
        "properties": properties,
        "required": list(feature_names),
        "additionalProperties": False,
    }
    row = {
        "type": "array",
        "prefixItems": [properties[name] for name in feature_names],
        "minItems": len(feature_names),
        "maxItems": len(feature_names),
        "description": "Values in this order: " + ", ".join(feature_names),
    }
    schema: dict[str, Any] = {
        "oneOf": [
            {
                "title": "Named features",
                "type": "object",
                "properties": {
                    "instances": {
                        "type": "array",
                        "items": instance,
                        "minItems": 1,
                        "maxItems": max_rows,
                    }
                },
                "required": ["instances"],
                "additionalProperties": False,
            },
            {
                "title": "Rows of values",
                "type": "object",
                "properties": {
                    "inputs": {"type": "array", "items": row, "minItems": 1, "maxItems": max_rows}
                },
                "required": ["inputs"],
                "additionalProperties": False,
            },
        ]
    }
    if example is not None:
        schema["example"] = {"instances": [dict(zip(feature_names, example, strict=True))]}
    return schema


class ServerMetrics:
    """Prometheus metrics of one app, in a registry of its own (so apps never collide)."""

    def __init__(self, predictor: LinearPredictor) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlops_lr_http_requests",
            "HTTP requests answered, by route, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlops_lr_http_request_duration_seconds",
            "Time from receiving a request to sending the end of its response.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(
            "mlops_lr_predicted_rows",
            "Rows predicted.",
            ["model"],
            registry=self.registry,
        )
        Info("mlops_lr_model", "The served model.", registry=self.registry).info(
            {
                "tag": predictor.name,
                "kind": str(predictor.details.get("kind", "")),
                "bits": str(predictor.details.get("bits") or ""),
                "sha256": str(predictor.details.get("sha256", "")),
            }
        )
        ProcessCollector(registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class _Instrumented:
    """ASGI middleware counting every HTTP request and timing it, labelled by route template
    and a known method (never the raw path or method, which a client controls)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_watch(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (415) one that is not plain UTF-8 JSON (no content-type is
    taken for JSON), and as :func:`read_bytes` does."""
    media_type, *parameters = (request.headers.get("content-type") or JSON_TYPE).split(";")
    media_type = media_type.strip().lower()
    if media_type != JSON_TYPE and not media_type.endswith("+json"):
        raise RequestError(415, f"send JSON with content-type: {JSON_TYPE} (got {media_type!r})")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip(' "').lower() not in _UTF8:
            raise RequestError(415, f"JSON must be UTF-8 (got charset {value.strip()!r})")
    return await read_bytes(request, max_bytes)


async def read_bytes(request: Request, max_bytes: int, decompress: bool = False) -> bytes:
    """The request body as sent, refusing (413) one longer than ``max_bytes`` before reading
    it all, and (415) a compressed one — unless ``decompress`` allows gzip and deflate (as
    Triton's client sends with ``request_compression_algorithm``), whose decompressed size is
    bounded by ``max_bytes`` too."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity" and not (decompress and encoding in _ZLIB_FORMATS):
        accepted = "uncompressed, gzip or deflate" if decompress else "uncompressed"
        raise RequestError(415, f"send the body {accepted} (got content-encoding {encoding!r})")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise RequestError(413, _too_large(max_bytes))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestError(413, _too_large(max_bytes))
        chunks.append(chunk)
    body = b"".join(chunks)
    return body if encoding == "identity" else _decompressed(body, encoding, max_bytes)


# zlib's window bits for each content-encoding: gzip's header, or HTTP deflate's zlib one.
_ZLIB_FORMATS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _decompressed(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """``body`` decompressed, refusing (413) more than ``max_bytes`` of it without inflating
    the rest, and (400) a corrupt or truncated stream."""
    inflater = zlib.decompressobj(_ZLIB_FORMATS[encoding])
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as error:
        raise RequestError(400, f"the {encoding} body cannot be decompressed: {error}") from None
    if len(data) > max_bytes:
        raise RequestError(
            413,
            f"the {encoding} body decompresses to more than {max_bytes} bytes "
            "(serve.max_body_bytes); split the request",
        )
    if not inflater.eof:
        raise RequestError(400, f"the {encoding} body ends before its compressed stream does")
    if inflater.unused_data:  # trailing bytes, or a second gzip member
        raise RequestError(400, f"the {encoding} body has bytes after its compressed stream")
    return data


def _too_large(max_bytes: int) -> str:
    return f"the body is larger than {max_bytes} bytes (serve.max_body_bytes); split the request"


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON_TYPE)


def create_app(
    predictor: LinearPredictor,
    *,
    max_rows: int = 10_000,
    max_body_bytes: int = 16 * 1024 * 1024,
    example: Sequence[Any] | None = None,
    model_name: str | None = None,
    model_version: str = "1",
) -> FastAPI:
    """The FastAPI app serving ``predictor``.

    Parameters
    ----------
    predictor
        A loaded, verified model (:func:`mlops_lr.predictor.load_predictor`).
    max_rows, max_body_bytes
        The most rows and body bytes one ``POST /predict`` may carry.
    example
        One row of feature values for the OpenAPI example (e.g. a test-split row).
    model_name, model_version
        The model's name and version in the ``/v2`` routes (default: the predictor's name).

    ``app.state.ready`` is True once built; set it to False (as the server does on SIGTERM)
    and the readiness probes answer 503, so load balancers stop sending requests.
    """
    feature_names = predictor.feature_names
    details = predictor.details
    limit = input_limit(predictor)
    plain = predictor.folded.is_plain  # a float matrix, the fastest path
    metrics = ServerMetrics(predictor)
    error_responses = {
        status: {"model": ErrorBody, "description": description}
        for status, description in (
            (400, "Malformed JSON (NaN and Infinity included)."),
            (413, "Body larger than serve.max_body_bytes."),
            (415, "Body is not JSON."),
            (
                422,
                "Wrong keys, features, row length or types, a value out of range, "
                "or too many rows.",
            ),
        )
    }
    app = FastAPI(
        title="mlops-lr model server",
        version=__version__,
        description=(
            f"Predictions of the {predictor.name!r} model "
            f"({details.get('kind', 'linear')}, features: {', '.join(feature_names)})."
        ),
        redoc_url=None,
    )
    app.add_middleware(_Instrumented, metrics=metrics)
    app.state.ready = True

    @app.exception_handler(RequestError)
    async def _client_error(request: Request, error: RequestError) -> Response:
        return _json({"detail": error.message}, error.status)

    @app.exception_handler(ProtocolError)
    async def _protocol_error(request: Request, error: ProtocolError) -> Response:
        return _json({"error": error.message}, error.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        # An unknown path or method: the protocol's clients read "error" under /v2.
        key = "error" if request.url.path.startswith("/v2") else "detail"
        response = _json({key: error.detail}, error.status_code)
        response.headers.update(error.headers or {})  # e.g. a 405's Allow
        return response

    health = orjson.dumps({"status": "ok"})
    ready = orjson.dumps(
        {"ready": True, "model": predictor.name, "sha256": str(details.get("sha256", ""))}
    )
    info = {
        "tag": predictor.name,
        "kind": details.get("kind", "float"),
        "bits": details.get("bits"),
        "scheme": details.get("scheme", "float64"),
        "granularity": details.get("granularity"),
        "feature_names": list(feature_names),
        "task": details.get("task", "regression"),
        **{key: details.get(key) for key in ("r2", "mse", "r2_float", "mse_float")},
        **(
            {
                **{k: details.get(k) for k in SCORES["classification"]},
                **{f"{k}_float": details.get(f"{k}_float") for k in SCORES["classification"]},
                "classes": list(predictor.folded.classes),
            }
            if predictor.is_classifier
            else {}
        ),
        "sha256": details.get("sha256", ""),
        "created_at": details.get("created_at", ""),
        "max_rows": max_rows,
    }

    @app.get("/health", response_model=Health, summary="Liveness: the process answers")
    async def get_health() -> Response:
        return Response(health, media_type=JSON_TYPE)

    @app.get(
        "/ready",
        response_model=Ready,
        summary="Readiness: the model is loaded and its sha256 verified",
        description="The server verifies the model against its manifest before it starts "
        "listening, so once it answers it is ready; the body names the model and its digest.",
    )
    async def get_ready() -> Response:
        if not app.state.ready:
            return _json({"detail": "the server is shutting down"}, 503)
        return Response(ready, media_type=JSON_TYPE)

    # Probes that use HEAD (some load balancers) get the same status without a body.
    for path, endpoint in (("/health", get_health), ("/ready", get_ready)):
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)

    @app.get("/model", response_model=ModelInfo, summary="The served model and its test scores")
    async def get_model() -> Response:
        return _json(info)

    @app.post(
        "/predict",
        response_model=Predictions,
        responses=error_responses,
        summary="Predict rows given by feature name or in feature order",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    JSON_TYPE: {
                        "schema": request_schema(
                            feature_names, max_rows, limit, example, predictor.folded
                        )
                    }
                },
            }
        },
    )
    async def post_predict(request: Request) -> Response:
        body = await read_body(request, max_body_bytes)
        if plain:
            X = parse_rows(body, feature_names, max_rows, limit)
        else:
            columns = parse_table(body, predictor.folded, max_rows, limit)
        if predictor.is_classifier:
            folded = predictor.folded
            scores = folded.decision_matrix(X) if plain else folded.decision_function(columns)
            content = {
                "predictions": folded.labels(scores).tolist(),
                "probabilities": probabilities(folded.link, scores),
                "classes": list(folded.classes),
                "model": predictor.name,
            }
        else:
            predictions = predictor.predict(X) if plain else predictor.predict_table(columns)
            content = {"predictions": predictions, "model": predictor.name}
        metrics.rows.labels(predictor.name).inc(len(content["predictions"]))
        return Response(
            orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), media_type=JSON_TYPE
        )

    @app.get(
        "/metrics",
        summary="Prometheus metrics: requests, latency histogram, rows predicted",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    async def get_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    _add_open_inference_routes(
        app,
        predictor,
        metrics,
        model_name or predictor.name,
        model_version,
        max_rows,
        max_body_bytes,
        limit,
        example,
    )
    # Routes are tried in order, a few microseconds each: the prediction routes go first.
    app.router.routes.sort(key=lambda route: "POST" not in (getattr(route, "methods", None) or ()))
    return app


def _add_open_inference_routes(
    app: FastAPI,
    predictor: LinearPredictor,
    metrics: ServerMetrics,
    name: str,
    version: str,
    max_rows: int,
    max_body_bytes: int,
    limit: float,
    example: Sequence[Any] | None,
) -> None:
    """The Open Inference Protocol's REST routes (``/v2``) on ``app``."""
    folded = predictor.folded
    tag = ["Open Inference Protocol (V2)"]
    server = orjson.dumps({"name": "mlops-lr", "version": __version__, "extensions": V2_EXTENSIONS})
    live = orjson.dumps({"live": True})
    metadata = model_metadata(name, version, folded, predictor.details)
    model_ready = orjson.dumps({"name": name, "ready": True})
    errors = {
        status: {"model": V2Error, "description": description}
        for status, description in (
            (400, "Malformed request: JSON, binary data, inputs, shapes, datatypes or values."),
            (404, "No such model or version."),
            (413, "Body larger than serve.max_body_bytes."),
            (415, "A body compressed otherwise than with gzip or deflate."),
            (503, "The server is shutting down."),
        )
    }

    def path_parameters(versioned: bool) -> list[dict[str, Any]]:
        listed = [("model", name, "The model's name.")]
        if versioned:
            listed.append(("model_version", version, "The model's version."))
        return [
            {
                "name": key,
                "in": "path",
                "required": True,
                "description": description,
                "schema": {"type": "string", "enum": [value]},
            }
            for key, value, description in listed
        ]

    def check(request: Request) -> None:
        """404 unless the path names the served model (and version). Path parameters are read
        here, not declared: FastAPI would validate them on every request, which costs as much
        as decoding a one-row request; the OpenAPI document states them (path_parameters)."""
        model = request.path_params["model"]
        if model != name:
            raise ProtocolError(f"unknown model {model!r}; this server serves {name!r}", 404)
        model_version = request.path_params.get("model_version")
        if model_version is not None and model_version != version:
            raise ProtocolError(
                f"model {name!r} has no version {model_version!r}; it has {version!r}", 404
            )

    def check_ready() -> None:
        if not app.state.ready:
            raise ProtocolError("the server is shutting down", 503)

    @app.get("/v2", response_model=V2ServerMetadata, tags=tag, summary="Server metadata")
    async def v2_server() -> Response:
        return Response(server, media_type=JSON_TYPE)

    @app.get("/v2/health/live", response_model=V2Live, tags=tag, summary="Server liveness")
    async def v2_live() -> Response:
        return Response(live, media_type=JSON_TYPE)

    @app.get(
        "/v2/health/ready",
        response_model=V2Ready,
        responses={503: errors[503]},
        tags=tag,
        summary="Server readiness: the model is loaded and verified",
    )
    async def v2_ready() -> Response:
        check_ready()
        return _json({"ready": True})

    # Probes that use HEAD get the same status without a body.
    for path, endpoint in (("/v2/health/live", v2_live), ("/v2/health/ready", v2_ready)):
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)

    async def v2_model(request: Request) -> Response:
        check(request)
        return _json(metadata)

    async def v2_model_ready(request: Request) -> Response:
        check(request)
        check_ready()
        return Response(model_ready, media_type=JSON_TYPE)

    async def v2_infer(request: Request) -> Response:
        check(request)
        try:
            body = await read_bytes(request, max_body_bytes, decompress=True)
        except RequestError as error:
            raise ProtocolError(error.message, error.status) from None
        inference = decode_request(
            body, request.headers.get(HEADER_LENGTH), folded, max_rows, limit
        )
        proba = None
        if predictor.is_classifier:
            if inference.X is not None:  # a plain model's matrix
                scores = folded.decision_matrix(inference.X)
            else:
                scores = folded.decision_function(inference.columns)
            predictions, proba = folded.labels(scores), probabilities(folded.link, scores)
        elif inference.X is not None:
            predictions = predictor.predict(inference.X)
        else:
            predictions = predictor.predict_table(inference.columns)
        metrics.rows.labels(predictor.name).inc(len(predictions))
        content, header_length = encode_response(name, version, inference, predictions, proba)
        if header_length is None:
            return Response(content, media_type=JSON_TYPE)
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(header_length)},
        )

    request_body = {
        "required": True,
        "content": {
            JSON_TYPE: {"schema": infer_request_schema(folded, max_rows, example)},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "The binary tensor extension: the JSON request "
                "(Inference-Header-Content-Length bytes), then the inputs' raw bytes.",
            },
        },
    }
    binary_response = {
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "When the request asks for binary output: the JSON response "
                "(Inference-Header-Content-Length bytes), then N little-endian float64s.",
            }
        },
        "headers": {
            "Inference-Header-Content-Length": {
                "description": "Bytes of JSON before the binary data (binary responses only).",
                "schema": {"type": "integer"},
            }
        },
    }
    routes = (
        ("", "GET", v2_model, V2ModelMetadata, (404,), "Model metadata: inputs and output"),
        ("/ready", "GET", v2_model_ready, V2ModelReady, (404, 503), "Model readiness"),
        (
            "/infer",
            "POST",
            v2_infer,
            V2InferResponse,
            (400, 404, 413, 415),
            "Predict: one [N, n_features] tensor, or one input per column",
        ),
    )
    for versioned in (False, True):
        prefix = "/v2/models/{model}" + ("/versions/{model_version}" if versioned else "")
        for suffix, method, endpoint, model, statuses, summary in routes:
            extra: dict[str, Any] = {"parameters": path_parameters(versioned)}
            responses: dict[int | str, Any] = {status: errors[status] for status in statuses}
            if method == "POST":
                extra["requestBody"] = request_body
                responses[200] = binary_response
            app.add_api_route(
                prefix + suffix,
                endpoint,
                methods=[method],
                response_model=model,
                responses=responses,
                tags=tag,
                summary=summary + (" (one version)" if versioned else ""),
                openapi_extra=extra,
                name=f"{endpoint.__name__}{'_version' if versioned else ''}",
            )
            if suffix == "/ready":  # probes that use HEAD
                app.add_api_route(
                    prefix + suffix, endpoint, methods=["HEAD"], include_in_schema=False
                )
