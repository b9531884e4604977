"""The Open Inference Protocol (KServe V2) routes: in process against the real app, then on
the live server with clients nobody here wrote (Triton's ``tritonclient.http``, the protocol's
generated ``open-inference-openapi`` client) and schemathesis on the V2 part of the schema."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlops_lr.data import Dataset, split_dataset
from mlops_lr.predictor import load_predictor
from mlops_lr.serve import create_app
from tests.conftest import CALIFORNIA_FEATURES, penguin_overrides, train_and_quantize
from tests.test_serve import _start_server, _stop, run_schemathesis

MAX_ROWS = 50
INFER = "/v2/models/float/infer"


@pytest.fixture(scope="module")
def test_rows(california: Dataset) -> np.ndarray:
    return split_dataset(california, 0.2, 42).X_test


@pytest.fixture(scope="module")
def client(trained_artifacts: Path) -> Iterator[TestClient]:
    app = create_app(load_predictor(trained_artifacts), max_rows=MAX_ROWS, max_body_bytes=64 * 1024)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def penguin_artifacts(tmp_path_factory: pytest.TempPathFactory, penguins_csv: Path) -> Path:
    """The penguins table (text columns, NA cells) trained with preprocessing and quantized."""
    directory = tmp_path_factory.mktemp("penguins-v2") / "artifacts"
    train_and_quantize(directory, *penguin_overrides(penguins_csv))
    return directory


@pytest.fixture(scope="module")
def penguin_rows(penguins_csv: Path) -> pd.DataFrame:
    """Rows of every kind: NA numbers, NA and unseen categories, integer years."""
    rows = pd.read_csv(penguins_csv).drop(columns="body_mass_g")
    rows = rows.iloc[[0, 3, 8, 100, 200, 300, 343]].reset_index(drop=True)
    rows.loc[1, "island"] = "Atlantis"
    return rows


def tensor(X: np.ndarray, datatype: str = "FP64", name: str = "input") -> dict:
    return {"name": name, "shape": list(X.shape), "datatype": datatype, "data": X.tolist()}


def infer(client: TestClient, body: object, path: str = INFER) -> dict:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def predictions(answer: dict) -> np.ndarray:
    (output,) = answer["outputs"]
    assert (output["name"], output["datatype"]) == ("predict", "FP64")
    assert output["shape"] == [len(output["data"]), 1]
    return np.array(output["data"])


def columns_request(rows: pd.DataFrame, categorical: tuple[str, ...]) -> dict:
    """One input per column, as MLServer's pandas codec sends them (NA as null)."""
    inputs = []
    for name in rows.columns:
        values = rows[name].astype(object).where(rows[name].notna(), None).tolist()
        if name in categorical:
            values = [None if v is None else str(v) for v in values]
        datatype = "BYTES" if name in categorical else "FP64"
        inputs.append({"name": name, "shape": [len(rows), 1], "datatype": datatype, "data": values})
    return {"parameters": {"content_type": "pd"}, "inputs": inputs}


# --- metadata and health ---------------------------------------------------------------


def test_the_openapi_document_lists_the_v2_routes(client) -> None:
    schema = client.get("/openapi.json").json()
    assert {path for path in schema["paths"] if path.startswith("/v2")} == {
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model}",
        "/v2/models/{model}/ready",
        "/v2/models/{model}/infer",
        "/v2/models/{model}/versions/{model_version}",
        "/v2/models/{model}/versions/{model_version}/ready",
        "/v2/models/{model}/versions/{model_version}/infer",
    }
    infer = schema["paths"]["/v2/models/{model}/infer"]["post"]
    assert set(infer["requestBody"]["content"]) == {"application/json", "application/octet-stream"}
    assert (
        "MedInc, HouseAge"
        in infer["requestBody"]["content"]["application/json"]["schema"]["description"]
    )
    assert {"400", "404", "413"} <= set(infer["responses"])


def test_server_metadata_health_and_model_metadata(client, trained_artifacts: Path) -> None:
    assert client.get("/v2").json() == {
        "name": "mlops-lr",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    for path in ("/v2/models/float/ready", "/v2/models/float/versions/1/ready"):
        assert client.get(path).json() == {"name": "float", "ready": True}
    metadata = client.get("/v2/models/float").json()
    assert metadata == client.get("/v2/models/float/versions/1").json()
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 8]}]
    assert metadata["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1, 1]}]
    assert metadata["parameters"]["feature_names"] == list(CALIFORNIA_FEATURES)
    manifest = json.loads((trained_artifacts / "manifest.json").read_text())
    assert metadata["parameters"]["sha256"] == manifest["files"]["folded.json"]["sha256"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/models/other", "unknown model 'other'; this server serves 'float'"),
        ("/v2/models/other/ready", "unknown model 'other'"),
        ("/v2/models/float/versions/2", "model 'float' has no version '2'; it has '1'"),
        ("/v2/models/float/versions/2/ready", "no version '2'"),
    ],
)
def test_unknown_models_and_versions_are_404(client, path: str, message: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": message} or message in response.json()["error"]
    response = client.post(path.removesuffix("/ready") + "/infer", json={"inputs": []})
    assert response.status_code == 404
    assert message in response.json()["error"]


def test_readiness_is_503_once_the_server_stops_taking_requests(trained_artifacts: Path) -> None:
    app = create_app(load_predictor(trained_artifacts))
    with TestClient(app) as client:
        app.state.ready = False
        for path in ("/v2/health/ready", "/v2/models/float/ready", "/ready"):
            response = client.get(path)
            assert response.status_code == 503, path
            assert "shutting down" in response.text
        assert client.get("/v2/health/live").status_code == 200


def test_the_model_name_and_version_are_settable(trained_artifacts: Path, test_rows) -> None:
    app = create_app(load_predictor(trained_artifacts), model_name="housing", model_version="7")
    with TestClient(app) as client:
        assert client.get("/v2/models/housing/versions/7").json()["versions"] == ["7"]
        answer = infer(client, {"inputs": [tensor(test_rows[:3])]}, "/v2/models/housing/infer")
        assert (answer["model_name"], answer["model_version"]) == ("housing", "7")
        assert client.get("/v2/models/float").status_code == 404


# --- inference -------------------------------------------------------------------------


def test_json_tensors_nested_or_flat_equal_predict_exactly(client, test_rows) -> None:
    X = test_rows[:MAX_ROWS]
    expected = client.post("/predict", json={"inputs": X.tolist()}).json()["predictions"]
    nested = infer(client, {"id": "batch-1", "inputs": [tensor(X)]})
    assert nested["id"] == "batch-1"
    assert (nested["model_name"], nested["model_version"]) == ("float", "1")
    np.testing.assert_array_equal(predictions(nested), expected)
    flat = {**tensor(X), "data": X.ravel().tolist()}
    np.testing.assert_array_equal(predictions(infer(client, {"inputs": [flat]})), expected)
    versioned = infer(client, {"inputs": [tensor(X)]}, "/v2/models/float/versions/1/infer")
    np.testing.assert_array_equal(predictions(versioned), expected)


def test_other_number_types_and_unknown_parameters(client, trained_artifacts, test_rows) -> None:
    predictor = load_predictor(trained_artifacts)
    X32 = test_rows[:5].astype(np.float32)
    body = {
        "parameters": {"content_type": "np", "anything": [1, 2]},
        "inputs": [{**tensor(X32, "FP32"), "parameters": {"whatever": True}}],
        "outputs": [{"name": "predict", "parameters": {"binary_data": False}}],
    }
    np.testing.assert_array_equal(
        predictions(infer(client, body)), predictor.predict(X32.astype(np.float64))
    )
    integers = np.rint(test_rows[:5]).astype(np.int64)
    np.testing.assert_array_equal(
        predictions(infer(client, {"inputs": [tensor(integers, "INT64")]})),
        predictor.predict(integers.astype(np.float64)),
    )


def binary_body(inputs: list[tuple[str, str, np.ndarray | list[str]]], **request) -> bytes:
    """A request in the binary tensor extension (built by hand, byte by byte)."""
    header_inputs, data = [], b""
    for name, datatype, values in inputs:
        if datatype == "BYTES":
            raw = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in values)
            shape = [len(values), 1]
        else:
            raw = np.ascontiguousarray(values, dtype={"FP64": "<f8", "FP32": "<f4"}[datatype])
            shape, raw = list(values.shape), raw.tobytes()
        header_inputs.append(
            {
                "name": name,
                "shape": shape,
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        data += raw
    header = json.dumps({**request, "inputs": header_inputs}).encode()
    return header, data


def post_binary(client: TestClient, header: bytes, data: bytes, path: str = INFER):
    return client.post(
        path,
        content=header + data,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "content-type": "application/octet-stream",
        },
    )


def test_binary_tensors_in_and_out(client, test_rows) -> None:
    X = test_rows[:MAX_ROWS]
    expected = np.array(client.post("/predict", json={"inputs": X.tolist()}).json()["predictions"])
    header, data = binary_body(
        [("input", "FP64", X)], id="b", parameters={"binary_data_output": True}
    )
    response = post_binary(client, header, data)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    document = json.loads(response.content[:length])
    assert document["id"] == "b"
    (output,) = document["outputs"]
    assert output["parameters"] == {"binary_data_size": 8 * len(X)}
    assert "data" not in output
    np.testing.assert_array_equal(np.frombuffer(response.content[length:], "<f8"), expected)
    # Binary in, JSON out (no output asked in binary).
    header, data = binary_body([("input", "FP64", X)])
    response = post_binary(client, header, data)
    assert response.headers["content-type"] == "application/json"
    np.testing.assert_array_equal(predictions(response.json()), expected)


BAD = {
    "malformed": ('{"inputs": [', "malformed JSON"),
    "not_an_object": ("[1]", "must be a JSON object with an 'inputs' list"),
    "no_inputs": ({"id": "x"}, "'inputs' must be a non-empty list"),
    "empty_inputs": ({"inputs": []}, "'inputs' must be a non-empty list"),
    "id_not_a_string": ({"id": 5, "inputs": [1]}, "'id' must be a string"),
    "input_not_an_object": ({"inputs": [5]}, "inputs[0] must be an object"),
    "no_name": ({"inputs": [{"shape": [1, 8], "datatype": "FP64", "data": [0] * 8}]}, "'name'"),
    "bad_datatype": (
        {"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FLOAT", "data": [0] * 8}]},
        "datatype 'FLOAT' is not one of BOOL",
    ),
    "bad_shape": (
        {"inputs": [{"name": "input", "shape": [1, -8], "datatype": "FP64", "data": [0] * 8}]},
        "'shape' must be a list of non-negative integers",
    ),
    "count_mismatch": (
        {"inputs": [{"name": "input", "shape": [2, 8], "datatype": "FP64", "data": [0] * 8}]},
        "'data' has 8 values; shape [2, 8] needs 16",
    ),
    "no_data": ({"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64"}]}, "no 'data'"),
    "ragged": (
        {"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], 3]}]},
        "mixes lists and values",
    ),
    "rows_of_other_lengths": (
        {
            "inputs": [
                {"name": "input", "shape": [2, 8], "datatype": "FP64", "data": [[0] * 3, [0] * 13]}
            ]
        },
        "'data' is nested otherwise than shape [2, 8]",
    ),
    "nested_deeper_than_shape": (
        {"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": [[[0] * 8]]}]},
        "'data' is nested otherwise than shape [1, 8]",
    ),
    "negative_binary_size": (
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 8],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": -8},
                }
            ]
        },
        "binary_data_size=-8 must be a non-negative integer",
    ),
    "classification": (
        {
            "inputs": [tensor(np.zeros((1, 8)))],
            "outputs": [{"name": "predict", "parameters": {"class_count": 1}}],
        },
        "the classification extension is not supported",
    ),
    "output_twice": (
        {"inputs": [tensor(np.zeros((1, 8)))], "outputs": [{"name": "predict"}] * 2},
        "outputs[1]: output 'predict' is named twice",
    ),
    "width": (
        {"inputs": [{"name": "input", "shape": [1, 7], "datatype": "FP64", "data": [0] * 7}]},
        "shape [1, 7] must be [N, 8] (columns MedInc, HouseAge",
    ),
    "text": (
        {"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": ["1"] * 8}]},
        'element 0 is "1", not a number',
    ),
    "bytes_for_numbers": (
        {"inputs": [{"name": "input", "shape": [1, 8], "datatype": "BYTES", "data": ["1"] * 8}]},
        "datatype BYTES must be a number type",
    ),
    "boolean": (
        {"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": [True] * 8}]},
        "element 0 is true, not a number",
    ),
    "missing_value": (
        {"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": [None] * 8}]},
        "input 'input'[0, 0] (MedInc) is missing and the model has no fill for it",
    ),
    "out_of_range": (
        {"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP64", "data": [1e307] * 8}]},
        "(MedInc)=1e+307 is outside ±1e+306",
    ),
    "no_rows": (
        {"inputs": [{"name": "input", "shape": [0, 8], "datatype": "FP64", "data": []}]},
        "input 'input' has no rows",
    ),
    "too_many_rows": (
        {"inputs": [{"name": "input", "shape": [51, 8], "datatype": "FP64", "data": [0] * 408}]},
        "51 rows; at most 50 per request",
    ),
    "columns_missing": (
        {"inputs": [{"name": "MedInc", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
        "missing input(s) HouseAge, AveRooms",
    ),
    "two_tensors": (
        {"inputs": [tensor(np.zeros((1, 8))), tensor(np.zeros((1, 8)), name="other")]},
        "unknown input(s) 'input', 'other'",
    ),
    "unknown_output": (
        {"inputs": [tensor(np.zeros((1, 8)))], "outputs": [{"name": "probabilities"}]},
        "outputs[0]: unknown output 'probabilities'; the model's outputs are 'predict'",
    ),
    "parameters_not_an_object": (
        {"inputs": [tensor(np.zeros((1, 8)))], "parameters": [1]},
        "'parameters' of the request must be an object",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_requests_are_400_with_one_error_line(client, name: str) -> None:
    body, message = BAD[name]
    content = body if isinstance(body, str) else json.dumps(body)
    response = client.post(INFER, content=content)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert message in error
    assert "\n" not in error


@pytest.mark.parametrize(
    ("header_length", "data", "message"),
    [
        ("x", b"", "Inference-Header-Content-Length='x' must be a byte count"),
        ("100000", b"", "within the body's"),
        (None, b"\x00" * 8, "'data' must"),  # binary bytes with no header length: not JSON
        ("", b"", "must be a byte count"),
        ("9" * 5000, b"", "must be a byte count"),  # beyond int()'s digit limit: not a 500
    ],
)
def test_bad_binary_framing_is_400(client, test_rows, header_length, data, message) -> None:
    header, raw = binary_body([("input", "FP64", test_rows[:1])])
    headers = {} if header_length is None else {"Inference-Header-Content-Length": header_length}
    response = client.post(INFER, content=header + raw + data, headers=headers)
    assert response.status_code == 400
    assert message in response.json()["error"] or "malformed JSON" in response.json()["error"]


@pytest.mark.parametrize(
    ("shape", "size", "extra", "message"),
    [
        ([1, 7], 64, b"", "64 binary bytes; shape needs 7 × 8"),
        ([1, 8], 72, b"", "binary_data_size=72 is beyond the 64 binary bytes left"),
        ([1, 8], 64, b"\x00" * 3, "3 bytes of binary data that no input declares"),
    ],
)
def test_binary_sizes_must_match_the_shape(client, test_rows, shape, size, extra, message) -> None:
    header, raw = binary_body([("input", "FP64", test_rows[:1])])
    document = json.loads(header)
    document["inputs"][0]["shape"] = shape
    document["inputs"][0]["parameters"]["binary_data_size"] = size
    response = post_binary(client, json.dumps(document).encode(), raw + extra)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_infinity_and_nan_in_binary_are_refused_for_a_model_without_fills(client) -> None:
    for value, message in ((np.inf, "=inf is outside"), (np.nan, "is missing and the model")):
        X = np.zeros((1, 8))
        X[0, 3] = value
        header, data = binary_body([("input", "FP64", X)])
        response = post_binary(client, header, data)
        assert response.status_code == 400
        assert response.json()["error"].startswith("input 'input'[0, 3] (AveBedrms)")
        assert message in response.json()["error"]


def test_superscript_digits_and_binary_without_a_header_length(client, test_rows) -> None:
    header, raw = binary_body([("input", "FP64", test_rows[:1])])
    # "²" is a digit to str.isdigit but not to int(): a 400, not a 500.
    response = client.post(
        INFER, content=header + raw, headers=[(b"Inference-Header-Content-Length", b"\xb2")]
    )
    assert response.status_code == 400
    assert "must be a byte count" in response.json()["error"]
    response = client.post(INFER, content=b'{"inputs": [\xff]}')
    assert response.status_code == 400
    assert "needs an Inference-Header-Content-Length header" in response.json()["error"]


def test_errors_under_v2_are_error_objects_and_probes_take_head(client) -> None:
    response = client.get("/v2/repository/index")
    assert (response.status_code, response.json()) == (404, {"error": "Not Found"})
    response = client.get(INFER)
    assert (response.status_code, response.json()) == (405, {"error": "Method Not Allowed"})
    assert response.headers["allow"] == "POST"
    assert client.get("/no/such/path").json() == {"detail": "Not Found"}  # ours keep "detail"
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/float/ready"):
        response = client.head(path)
        assert (response.status_code, response.content) == (200, b""), path


def test_a_large_body_is_413_with_an_error_line(client) -> None:
    response = client.post(INFER, content=b"x" * (64 * 1024 + 1))
    assert response.status_code == 413
    assert "serve.max_body_bytes" in response.json()["error"]


@pytest.mark.parametrize(
    ("encoding", "body", "status", "message"),
    [
        (
            "br",
            b"x",
            415,
            "send the body uncompressed, gzip or deflate (got content-encoding 'br')",
        ),
        ("gzip", b"not gzip", 400, "the gzip body cannot be decompressed"),
        (
            "gzip",
            gzip.compress(b"{}", mtime=0)[:-12],
            400,
            "ends before its compressed stream does",
        ),
        # A small body that inflates past serve.max_body_bytes: refused, not inflated.
        (
            "deflate",
            zlib.compress(b" " * (65 * 1024)),
            413,
            "decompresses to more than 65536 bytes",
        ),
        ("gzip", gzip.compress(b"{}", mtime=0) * 2, 400, "has bytes after its compressed stream"),
    ],
    ids=["unsupported", "corrupt", "truncated", "bomb", "trailing"],  # gzip's bytes hold the time
)
def test_compressed_bodies(client, test_rows, encoding, body, status, message) -> None:
    response = client.post(INFER, content=body, headers={"content-encoding": encoding})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    plain = json.dumps({"inputs": [tensor(test_rows[:3])]}).encode()
    expected = predictions(infer(client, json.loads(plain)))
    for encoding, compress in (("gzip", gzip.compress), ("deflate", zlib.compress)):
        answer = client.post(INFER, content=compress(plain), headers={"content-encoding": encoding})
        np.testing.assert_array_equal(predictions(answer.json()), expected)


def test_a_table_model_takes_one_input_per_column_json_or_binary(
    penguin_artifacts: Path, penguin_rows: pd.DataFrame
) -> None:
    for tag in ("float", "default-8bit"):
        predictor = load_predictor(penguin_artifacts, tag)
        categorical = predictor.folded.categorical_names
        expected = predictor.predict_table(penguin_rows)
        with TestClient(create_app(predictor)) as client:
            metadata = client.get(f"/v2/models/{tag}").json()
            assert metadata["parameters"]["content_type"] == "pd"
            assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [
                (name, "BYTES" if name in categorical else "FP64")
                for name in predictor.feature_names
            ]
            path = f"/v2/models/{tag}/infer"
            answer = infer(client, columns_request(penguin_rows, categorical), path)
            np.testing.assert_array_equal(predictions(answer), expected)
            instances = penguin_rows.astype(object).where(penguin_rows.notna(), None)
            old = client.post("/predict", json={"instances": instances.to_dict("records")})
            np.testing.assert_array_equal(predictions(answer), old.json()["predictions"])
            # [N]-shaped columns in any order, the year as an INT64 column of a categorical
            request = columns_request(penguin_rows, categorical)
            for item in request["inputs"]:
                item["shape"] = [len(penguin_rows)]
            request["inputs"].reverse()
            np.testing.assert_array_equal(predictions(infer(client, request, path)), expected)
            # Binary: FP64 columns (NaN is missing) and BYTES columns ("" for NA is unknown:
            # send missing categories in JSON as null).
            complete = penguin_rows.dropna(subset=list(categorical)).reset_index(drop=True)
            inputs = [
                (
                    name,
                    "BYTES" if name in categorical else "FP64",
                    complete[name].astype(str).tolist()
                    if name in categorical
                    else complete[[name]].to_numpy(dtype=np.float64),
                )
                for name in predictor.feature_names
            ]
            header, data = binary_body(inputs, parameters={"binary_data_output": True})
            response = post_binary(client, header, data, path)
            assert response.status_code == 200, response.text
            length = int(response.headers["inference-header-content-length"])
            np.testing.assert_array_equal(
                np.frombuffer(response.content[length:], "<f8"),
                predictor.predict_table(complete.astype({"year": str})),
            )
            # One tensor cannot carry text: a clear 400.
            response = client.post(
                path, json={"inputs": [tensor(np.zeros((1, len(predictor.feature_names))))]}
            )
            assert response.status_code == 400
            assert "this model has categorical inputs" in response.json()["error"]


# --- the live server, with third-party clients ------------------------------------------


@pytest.fixture(scope="module")
def live_server(trained_artifacts: Path, tmp_path_factory) -> Iterator[str]:
    process, url = _start_server(
        trained_artifacts,
        tmp_path_factory.mktemp("live-v2"),
        "serve.model=default-8bit",
        "serve.model_name=housing",
    )
    try:
        yield url
    finally:
        returncode, stderr = _stop(process)
        assert returncode == 0, stderr


def test_tritonclient_binary_and_json_equal_predict(
    live_server: str, trained_artifacts: Path, test_rows
) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(live_server.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("housing")
    assert not client.is_model_ready("float")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata("housing")
    (spec,) = metadata["inputs"]
    X = test_rows[:200]
    import urllib.request

    request = urllib.request.Request(
        f"{live_server}/predict",
        data=json.dumps({"inputs": X.tolist()}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        expected = np.array(json.load(response)["predictions"])
    np.testing.assert_array_equal(
        expected, load_predictor(trained_artifacts, "default-8bit").predict(X)
    )
    for binary in (True, False):
        item = triton.InferInput(spec["name"], list(X.shape), spec["datatype"])
        item.set_data_from_numpy(X, binary_data=binary)
        outputs = [triton.InferRequestedOutput("predict", binary_data=binary)]
        result = client.infer("housing", [item], request_id=f"r{binary}", outputs=outputs)
        np.testing.assert_array_equal(result.as_numpy("predict").ravel(), expected)
        assert result.get_response()["id"] == f"r{binary}"
    # The client's defaults: binary input, no outputs named (all of them, in binary).
    item = triton.InferInput("input", list(X.shape), "FP64")
    item.set_data_from_numpy(X)
    result = client.infer("housing", [item], model_version="1")
    np.testing.assert_array_equal(result.as_numpy("predict")[:, 0], expected)
    # Compressed requests, as the client sends them when asked.
    for algorithm in ("gzip", "deflate"):
        result = client.infer("housing", [item], request_compression_algorithm=algorithm)
        np.testing.assert_array_equal(result.as_numpy("predict")[:, 0], expected)
    with pytest.raises(triton.InferenceServerException, match="unknown model 'float'"):
        client.infer("float", [item])
    client.close()


def test_open_inference_client_reads_metadata_and_infers(
    live_server: str, trained_artifacts: Path, test_rows
) -> None:
    from open_inference.openapi.client import OpenInferenceClient
    from open_inference.openapi.core.api_error import ApiError
    from open_inference.openapi.types import InferenceRequest, RequestInput

    client = OpenInferenceClient(base_url=live_server)
    client.check_server_liveness()
    client.check_server_readiness()
    client.check_model_readiness("housing")
    client.check_model_version_readiness("housing", "1")
    assert client.read_server_metadata().name == "mlops-lr"
    metadata = client.read_model_metadata("housing")
    assert metadata.inputs[0].shape == [-1, 8]
    X = test_rows[:20]
    request = InferenceRequest(
        id="oip",
        inputs=[RequestInput(name="input", shape=[20, 8], datatype="FP64", data=X.tolist())],
    )
    answer = client.model_infer("housing", request=request)
    assert answer.id == "oip"
    expected = load_predictor(trained_artifacts, "default-8bit").predict(X)
    np.testing.assert_array_equal(answer.outputs[0].data.__root__, expected)
    version = client.model_version_infer("housing", "1", request=request)
    assert version.outputs[0].data == answer.outputs[0].data
    with pytest.raises(ApiError) as error:
        client.read_model_metadata("float")
    assert error.value.status_code == 404
    assert error.value.body == {"error": "unknown model 'float'; this server serves 'housing'"}


def test_schemathesis_finds_no_failure_in_the_v2_routes(
    trained_artifacts: Path, tmp_path: Path
) -> None:
    """Every check but one: a schema cannot say that ``data`` holds as many values as
    ``shape`` asks, so schema-valid requests may rightly get a 400 (positive data
    acceptance is what the hand-written and client tests above cover)."""
    process, url = _start_server(trained_artifacts, tmp_path, "serve.max_rows=20")
    try:
        report = run_schemathesis(
            url,
            tmp_path,
            "--include-path-regex=^/v2",
            "--exclude-checks=positive_data_acceptance",
        )
    finally:
        _stop(process)
    assert "Selected: 9/14" in report


def test_the_kserve_example_uses_the_images_port_probes_and_name(client) -> None:
    """The InferenceService in docs/ deploys the image as it is: its port, its probes (routes
    the server has), its entry point's `serve` command and model-name variable."""
    import re

    import yaml

    root = Path(__file__).resolve().parents[1]
    docs = (root / "docs" / "predict-and-serve.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", docs, flags=re.S)
    service = yaml.safe_load(block)
    assert service["kind"] == "InferenceService"
    (container,) = service["spec"]["predictor"]["containers"]
    (exposed,) = re.findall(r"^EXPOSE (\d+)$", (root / "Dockerfile").read_text(), flags=re.M)
    assert container["ports"][0]["containerPort"] == int(exposed)
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] == int(exposed)
        assert client.get(get["path"]).status_code == 200
    assert container["args"][0] == "serve"
    (variable,) = container["env"]
    assert f"${{{variable['name']}:-}}" in (root / "docker" / "entrypoint.sh").read_text()


def test_a_columns_values_must_be_of_its_declared_datatype(
    penguin_artifacts: Path, penguin_rows: pd.DataFrame
) -> None:
    predictor = load_predictor(penguin_artifacts)
    request = columns_request(penguin_rows, predictor.folded.categorical_names)
    species = next(item for item in request["inputs"] if item["name"] == "species")
    species["datatype"] = "FP64"  # text declared as numbers
    with TestClient(create_app(predictor)) as client:
        response = client.post(INFER, json=request)
        assert response.status_code == 400
        assert response.json()["error"] == (
            "input 'species': element 0 is \"Adelie\", not a number (FP64)"
        )
        species["datatype"], species["data"][0] = "BYTES", 7
        response = client.post(INFER, json=request)
        assert response.json()["error"] == "input 'species': element 0 is 7, not text (BYTES)"
