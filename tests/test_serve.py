"""Stage `serve`: every endpoint, every kind of bad request, the real server process, and a
schemathesis run against its OpenAPI schema."""

from __future__ import annotations

import json
import math
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mlops_lr import artifacts, training
from mlops_lr.data import Dataset, split_dataset
from mlops_lr.predictor import load_predictor
from mlops_lr.serve import create_app, input_limit, parse_rows
from tests.conftest import CALIFORNIA_FEATURES, assert_one_line_error

ISSUE_ROW = {
    "MedInc": 8.3252,
    "HouseAge": 41,
    "AveRooms": 6.984,
    "AveBedrms": 1.024,
    "Population": 322,
    "AveOccup": 2.556,
    "Latitude": 37.88,
    "Longitude": -122.23,
}
MAX_ROWS = 50
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def test_rows(california: Dataset) -> np.ndarray:
    return split_dataset(california, 0.2, 42).X_test


@pytest.fixture(scope="module")
def client(trained_artifacts: Path) -> Iterator[TestClient]:
    app = create_app(load_predictor(trained_artifacts), max_rows=MAX_ROWS, max_body_bytes=MAX_BODY)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def quantized_client(trained_artifacts: Path) -> Iterator[TestClient]:
    with TestClient(create_app(load_predictor(trained_artifacts, "default-8bit"))) as test_client:
        yield test_client


def predict(client: TestClient, body: object) -> dict:
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_health_and_ready_name_the_verified_model(client, trained_artifacts: Path) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    digest = artifacts.read_manifest(trained_artifacts)["files"]["folded.json"]["sha256"]
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "model": "float", "sha256": digest}


def test_model_describes_the_float_model(client, trained_artifacts: Path) -> None:
    info = client.get("/model").json()
    metrics = json.loads((trained_artifacts / "metrics.json").read_text())
    assert info["tag"] == "float"
    assert info["kind"] == "float"
    assert info["bits"] is None
    assert info["scheme"] == "float64"
    assert info["feature_names"] == list(CALIFORNIA_FEATURES)
    assert info["r2"] == info["r2_float"] == metrics["r2"]
    assert round(info["r2"], 4) == 0.5758
    assert round(info["mse"], 4) == 0.5559
    assert info["created_at"] == artifacts.read_manifest(trained_artifacts)["created_at"]
    assert info["max_rows"] == MAX_ROWS


def test_model_describes_the_quantized_model(quantized_client, trained_artifacts: Path) -> None:
    directory = trained_artifacts / "quantized" / "default-8bit"
    metrics = json.loads((directory / "metrics.json").read_text())
    info = quantized_client.get("/model").json()
    assert info["tag"] == "default-8bit"
    assert info["kind"] == "quantized"
    assert info["bits"] == 8
    assert info["scheme"] == "symmetric"
    assert info["r2"] == metrics["r2_quant"]
    assert info["r2_float"] == metrics["r2_float"]
    assert info["mse"] == metrics["mse_quant"]
    assert info["sha256"] == artifacts.read_manifest(directory)["files"]["model.json"]["sha256"]


def test_named_and_positional_rows_give_the_float_models_predictions(
    client, trained_artifacts: Path, test_rows: np.ndarray
) -> None:
    rows = test_rows[:MAX_ROWS]
    by_name = predict(
        client,
        {"instances": [dict(zip(CALIFORNIA_FEATURES, row, strict=True)) for row in rows.tolist()]},
    )
    by_position = predict(client, {"inputs": rows.tolist()})
    expected = training.load(trained_artifacts).predict(rows)
    assert by_name["model"] == by_position["model"] == "float"
    assert by_name["predictions"] == by_position["predictions"]
    np.testing.assert_allclose(by_name["predictions"], expected, rtol=1e-13)
    # JSON carries float64 exactly: the server's numbers are the predictor's, bit for bit.
    assert by_name["predictions"] == load_predictor(trained_artifacts).predict(rows).tolist()


def test_the_issue_example_and_integers(client) -> None:
    shuffled = dict(reversed(list(ISSUE_ROW.items())))
    result = predict(client, {"instances": [ISSUE_ROW, shuffled]})
    assert result["predictions"][0] == result["predictions"][1]
    assert round(result["predictions"][0], 6) == 4.152106


def test_quantized_server_predicts_with_the_quantized_model(
    quantized_client, trained_artifacts: Path, test_rows: np.ndarray
) -> None:
    rows = test_rows[:100]
    result = predict(quantized_client, {"inputs": rows.tolist()})
    model = artifacts.load_quantized(trained_artifacts / "quantized" / "default-8bit").linear
    assert result["model"] == "default-8bit"
    np.testing.assert_allclose(result["predictions"], model.predict(rows), rtol=0, atol=1e-12)


def _row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = dict(ISSUE_ROW)
    for name, value in changes.items():
        if value is _DROP:
            row.pop(name)
        else:
            row[name] = value
    return row


_DROP = object()
VALUES = list(ISSUE_ROW.values())
BAD_REQUESTS = {
    "malformed": ('{"inputs": [[1, 2', 400, "malformed JSON"),
    "nan": ('{"inputs": [[NaN, 1, 2, 3, 4, 5, 6, 7]]}', 400, "must be finite"),
    "infinity": ('{"inputs": [[-Infinity, 1, 2, 3, 4, 5, 6, 7]]}', 400, "must be finite"),
    "beyond_float64": ('{"inputs": [[1e400, 1, 2, 3, 4, 5, 6, 7]]}', 400, "must be finite"),
    "not_an_object": ([VALUES], 422, 'one key: "instances"'),
    "no_key": ({}, 422, 'one key: "instances"'),
    "both_keys": ({"inputs": [VALUES], "instances": [ISSUE_ROW]}, 422, "one key"),
    "other_key": ({"rows": [VALUES]}, 422, "one key"),
    "no_rows": ({"inputs": []}, 422, "inputs has no rows"),
    "no_instances": ({"instances": []}, 422, "instances has no rows"),
    "rows_not_a_list": ({"inputs": 5}, 422, "inputs must be a list of rows, got a number 5"),
    "instances_not_a_list": ({"instances": ISSUE_ROW}, 422, "instances must be a list of objects"),
    "short_row": ({"inputs": [VALUES, VALUES[:7]]}, 422, "inputs[1] must be a list of 8 numbers"),
    "long_row": ({"inputs": [[*VALUES, 1.0]]}, 422, "got a list of 9"),
    "row_not_a_list": ({"inputs": [5]}, 422, "inputs[0] must be a list of 8 numbers"),
    "string": ({"inputs": [[*VALUES[:3], "7.1", *VALUES[4:]]]}, 422, "AveBedrms must be a number"),
    "boolean": ({"inputs": [[True, *VALUES[1:]]]}, 422, "MedInc must be a number, got a boolean"),
    "null": ({"instances": [_row(Latitude=None)]}, 422, "instances[0]: Latitude must be a number"),
    "nested": ({"instances": [_row(HouseAge=[41])]}, 422, "HouseAge must be a number"),
    "missing": ({"instances": [_row(Longitude=_DROP)]}, 422, "missing feature(s) Longitude"),
    "unknown": ({"instances": [ISSUE_ROW, _row(Rooms=3)]}, 422, 'unknown feature(s) "Rooms"'),
    "renamed": (
        {"instances": [_row(MedInc=_DROP, medinc=8.3)]},
        422,
        'instances[0]: missing feature(s) MedInc; unknown feature(s) "medinc"',
    ),
    "instance_not_an_object": ({"instances": [VALUES]}, 422, "instances[0] must be an object"),
    "too_many_rows": ({"inputs": [VALUES] * (MAX_ROWS + 1)}, 422, "51 rows; at most 50 per"),
    "too_many_instances": ({"instances": [ISSUE_ROW] * 51}, 422, "at most 50 per request"),
    "out_of_range": ({"inputs": [[*VALUES[:7], -1e307]]}, 422, "Longitude=-1e+307 is outside"),
    "just_out_of_range": (
        {"inputs": [[1.0000001e306, *VALUES[1:]]]},
        422,
        "MedInc=1.0000001e+306 is outside ±1e+306",
    ),
    "newline_in_a_name": ({"instances": [_row(**{"Med\nInc": 1})]}, 422, '"Med\\nInc"'),
    "many_long_names": (
        {"instances": [{**ISSUE_ROW, **{f"{'x' * 100}{i}": 1 for i in range(20)}}]},
        422,
        f'"{"x" * 40}…", ',
    ),
    "nan_after_unicode": ('{"inputs": [["é", NaN]]}', 400, "must be finite"),
    "instance_out_of_range": (
        {"instances": [ISSUE_ROW, _row(AveOccup=2e306)]},
        422,
        "instances[1]: AveOccup=2e+306 is outside ±1e+306",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_requests_get_a_4xx_with_one_clear_line(client, name: str) -> None:
    body, status, message = BAD_REQUESTS[name]
    content = body if isinstance(body, str) else json.dumps(body)
    response = client.post(
        "/predict", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert message in detail
    assert "\n" not in detail


def test_a_body_over_the_limit_is_refused_whether_or_not_its_length_is_declared(client) -> None:
    body = json.dumps({"inputs": [[1e-300] * 8] * 3000}).encode()
    assert len(body) > MAX_BODY
    declared = client.post("/predict", content=body, headers={"content-type": "application/json"})
    streamed = client.post(
        "/predict",
        content=iter([body[:40_000], body[40_000:]]),  # chunked: no content-length
        headers={"content-type": "application/json"},
    )
    for response in (declared, streamed):
        assert response.status_code == 413
        assert "larger than 65536 bytes" in response.json()["detail"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"content-type": "text/csv"}, "content-type: application/json (got 'text/csv')"),
        ({"content-type": "application/json; charset=latin-1"}, "JSON must be UTF-8"),
        (
            {"content-type": "application/json", "content-encoding": "gzip"},
            "uncompressed (got content-encoding 'gzip')",
        ),
    ],
)
def test_a_body_that_is_not_plain_json_is_refused(client, headers, message: str) -> None:
    response = client.post("/predict", content=json.dumps({"inputs": [VALUES]}), headers=headers)
    assert response.status_code == 415
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    "content_type", [None, "", "application/JSON; charset=UTF-8", "application/vnd.api+json"]
)
def test_json_content_types_and_none_are_accepted(client, content_type: str | None) -> None:
    # Without a content-type the body is taken for JSON, as curl users expect.
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post("/predict", content=json.dumps({"inputs": [VALUES]}), headers=headers)
    assert response.status_code == 200, response.text


def test_the_input_limit_keeps_every_allowed_prediction_finite(trained_artifacts: Path) -> None:
    predictor = load_predictor(trained_artifacts)
    limit = input_limit(predictor)
    assert limit == 1e306
    worst = np.sign(predictor.coef) * limit
    assert math.isfinite(float(predictor.predict(worst[None, :])[0]))
    X = parse_rows(json.dumps({"inputs": [worst.tolist()]}).encode(), CALIFORNIA_FEATURES, 1, limit)
    assert np.isfinite(predictor.predict(X)).all()


def test_unknown_paths_and_methods(client) -> None:
    assert client.get("/nope").status_code == 404
    response = client.get("/predict")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    # Probes that use HEAD get the same answer without a body.
    for path in ("/health", "/ready"):
        response = client.head(path)
        assert response.status_code == 200
        assert response.content == b""


def test_openapi_states_the_models_features_and_limits(client) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    named, positional = body["schema"]["oneOf"]
    instance = named["properties"]["instances"]
    assert instance["maxItems"] == MAX_ROWS
    assert instance["items"]["required"] == list(CALIFORNIA_FEATURES)
    assert instance["items"]["additionalProperties"] is False
    assert positional["properties"]["inputs"]["items"]["minItems"] == 8
    ours = {path for path in schema["paths"] if not path.startswith("/v2")}
    assert ours == {"/health", "/ready", "/model", "/predict", "/metrics"}
    assert {"400", "413", "415", "422"} <= set(schema["paths"]["/predict"]["post"]["responses"])
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_latency_and_rows(trained_artifacts: Path) -> None:
    with TestClient(create_app(load_predictor(trained_artifacts))) as fresh:
        predict(fresh, {"inputs": [VALUES] * 7})
        predict(fresh, {"instances": [ISSUE_ROW] * 3})
        fresh.post("/predict", json={"inputs": []})
        fresh.get("/nope")
        fresh.request("PROPFIND", "/health")
        fresh.request("PURGE", "/health")
        response = fresh.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    ok = (("method", "POST"), ("route", "/predict"), ("status", "200"))
    bad = (("method", "POST"), ("route", "/predict"), ("status", "422"))
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert samples["mlops_lr_http_requests_total", ok] == 2
    assert samples["mlops_lr_http_requests_total", bad] == 1
    assert samples["mlops_lr_http_requests_total", unmatched] == 1
    # Methods a client makes up are not labels of their own.
    other = (("method", "other"), ("route", "/health"), ("status", "405"))
    assert samples["mlops_lr_http_requests_total", other] == 2
    assert samples["mlops_lr_predicted_rows_total", (("model", "float"),)] == 10
    count = samples["mlops_lr_http_request_duration_seconds_count", (("route", "/predict"),)]
    assert count == 3
    info = next(key for key in samples if key[0] == "mlops_lr_model_info")
    assert ("tag", "float") in info[1]


# --- the real server process -------------------------------------------------------------


def _start_server(
    artifacts_dir: Path, tmp_path: Path, *overrides: str
) -> tuple[subprocess.Popen, str]:
    """``python -m mlops_lr stage=serve`` on a free port; returns the process and its URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlops_lr",
            "stage=serve",
            "serve.port=0",
            f"hydra.run.dir={tmp_path / 'hydra'}",
            f"paths.artifacts_dir={artifacts_dir}",
            *overrides,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        # As in a terminal: SIGINT raises KeyboardInterrupt unless the server handles it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    line = process.stdout.readline()  # printed once the socket listens
    if not line.startswith("Serving model"):
        process.kill()
        pytest.fail(f"the server did not start: {line}{process.communicate()[1]}")
    url = line.split(" at ")[1].split()[0]
    return process, url


def _stop(process: subprocess.Popen, stop_signal: int = signal.SIGTERM) -> tuple[int, str]:
    process.send_signal(stop_signal)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the server did not stop within 30 s of SIGTERM")
    return process.returncode, stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_the_server_listens_on_loopback_answers_and_stops_gracefully(
    trained_artifacts: Path, tmp_path: Path, stop_signal: int
) -> None:
    process, url = _start_server(trained_artifacts, tmp_path, "serve.model=default-8bit")
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
            assert json.load(response) == {"status": "ok"}
        request = urllib.request.Request(
            f"{url}/predict",
            data=json.dumps({"instances": [ISSUE_ROW]}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result = json.load(response)
    finally:
        returncode, stderr = _stop(process, stop_signal)
    assert result["model"] == "default-8bit"
    assert abs(result["predictions"][0] - 4.152106) < 0.05
    assert returncode == 0, stderr
    assert "Shutting down" in stderr
    assert "Traceback" not in stderr


def run_schemathesis(url: str, tmp_path: Path, *options: str) -> str:
    """``st run`` against the live server's own OpenAPI document: every check (but those
    ``options`` exclude), bounded and seeded; returns its report, which must find nothing."""
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "run",
            f"{url}/openapi.json",
            "--checks=all",
            "--max-examples=60",
            "--seed=20261127",
            "--workers=1",
            "--generation-database=none",
            "--no-color",
            *options,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout
    return result.stdout


def test_schemathesis_finds_no_failure(trained_artifacts: Path, tmp_path: Path) -> None:
    """Our own routes; the Open Inference Protocol's are tested in test_serve_v2.py."""
    process, url = _start_server(trained_artifacts, tmp_path, "serve.max_rows=20")
    try:
        report = run_schemathesis(url, tmp_path, "--exclude-path-regex=^/v2")
    finally:
        _stop(process)
    assert "Selected: 5/14" in report


def test_bad_serve_settings_are_one_line_errors(cli, trained_artifacts: Path) -> None:
    artifacts_dir = f"paths.artifacts_dir={trained_artifacts}"
    result = cli("stage=serve", artifacts_dir, "serve.port=70000")
    assert_one_line_error(result, "serve.port=70000 is not allowed", exit_code=2)
    result = cli("stage=serve", artifacts_dir, "serve.max_rows=0")
    assert_one_line_error(result, "serve.max_rows=0 is not allowed", exit_code=2)
    result = cli("stage=serve", artifacts_dir, "serve.model_name=a/b")
    assert_one_line_error(result, "serve.model_name='a/b' is not allowed", exit_code=2)
    result = cli("stage=serve", artifacts_dir, "serve.model=int4")
    assert_one_line_error(result, "no quantized model 'int4'", exit_code=4)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("stage=serve", artifacts_dir, f"serve.port={port}")
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}", exit_code=2)


def test_no_trained_model_is_a_one_line_error(cli, tmp_path: Path) -> None:
    result = cli("stage=serve", f"paths.artifacts_dir={tmp_path / 'empty'}")
    assert_one_line_error(result, "run `make train` first", exit_code=4)
