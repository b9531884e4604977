"""Check a built mlops-lr image against this checkout (run by `make docker-test`).

1. The default command (`docker run --rm --network none IMAGE`) prints sample predictions.
2. The baked float and default quantized models predict what the host's models predict, to 1e-8.
3. With the data mounted read-only, the container trains by itself and reproduces R² 0.5758.
4. `stage=predict` on a mounted CSV writes the host's predictions exactly (through pandas: the
   image has no pyarrow), and a Parquet output is a one-line error naming pyarrow.
5. `docker run -p … IMAGE serve serve.model=default-8bit` answers /health, predicts the host's
   numbers over HTTP (on /predict and on /v2/models/$MLOPS_LR_MODEL_NAME/infer), turns
   healthy by its HEALTHCHECK, and stops gracefully on `docker stop`.
6. Prints the image size.
Exits non-zero, naming the check, on the first failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from mlops_lr.predictor import load_predictor, sample_predictions

MODELS = ("float", "default-8bit")
TOLERANCE = 1e-8
SAMPLES_SCRIPT = (
    "import json, sys\n"
    "from mlops_lr.predictor import load_predictor, sample_predictions\n"
    "print(json.dumps({m: sample_predictions('artifacts', load_predictor('artifacts', m)).tolist()"
    " for m in sys.argv[1:]}))\n"
)


def docker(*args: str) -> str:
    """Run ``docker args``; return stdout, or exit with its output on failure."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"docker {' '.join(args[:4])} … failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="mlops-lr")
    parser.add_argument("--artifacts", default="artifacts", help="the host's artifacts dir")
    args = parser.parse_args(argv)

    output = docker("run", "--rm", "--network", "none", args.image)
    sample_lines = [line for line in output.splitlines() if line.startswith("Sample Predictions:")]
    if len(sample_lines) != len(MODELS):
        sys.exit(f"default command: expected {len(MODELS)} 'Sample Predictions' lines:\n{output}")
    print("\n".join(sample_lines))

    container = json.loads(
        docker(
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "python",
            args.image,
            "-c",
            SAMPLES_SCRIPT,
            *MODELS,
        )
    )
    for model in MODELS:
        host = sample_predictions(args.artifacts, load_predictor(args.artifacts, model))
        difference = float(np.max(np.abs(np.asarray(container[model]) - host)))
        if difference > TOLERANCE:
            sys.exit(f"{model}: container predictions differ from the host's by {difference:.3g}")
        print(f"{model}: container == host (max |difference| {difference:.1e} <= {TOLERANCE})")

    data_home = os.environ.get("SCIKIT_LEARN_DATA")
    if not data_home or not Path(data_home).is_dir():
        sys.exit("set SCIKIT_LEARN_DATA to a scikit-learn data home to test in-container training")
    trained = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        f"{Path(data_home).resolve()}:/data:ro",
        "-e",
        "SCIKIT_LEARN_DATA=/data",
        args.image,
        "stage=train",
        "paths.artifacts_dir=outputs/trained",
        "hydra.run.dir=outputs/run",
    )
    if "R² Score: 0.5758" not in trained:
        sys.exit(f"in-container training did not reproduce R² 0.5758:\n{trained}")
    print("in-container training with the data mounted: R² Score: 0.5758")

    check_file_prediction(args.image, args.artifacts)
    check_server(args.image, args.artifacts)

    size = int(docker("image", "inspect", "--format", "{{.Size}}", args.image))
    print(f"image {args.image}: {size / 1e6:.0f} MB")
    return 0


def check_file_prediction(image: str, artifacts_dir: str, model: str = "default-8bit") -> None:
    """``stage=predict`` on a mounted CSV: the image has no pyarrow, so pandas reads and writes
    it; the predictions must be the host's, bit for bit. Parquet is a one-line error."""
    samples = json.loads(Path(artifacts_dir, "samples.json").read_text())
    with tempfile.TemporaryDirectory() as directory:
        shared = Path(directory)
        shared.chmod(0o777)  # the container's user (uid 10001) writes the output here
        rows = shared / "rows.csv"
        lines = [",".join(samples["feature_names"])]
        lines += [",".join(map(repr, row)) for row in samples["X"]]
        rows.write_text("\n".join(lines) + "\n")
        mount = ("-v", f"{shared}:/data", image, "stage=predict", f"predict.model={model}")
        docker("run", "--rm", "--network", "none", *mount, "predict.input=/data/rows.csv",
               "predict.output=/data/predictions.csv")  # fmt: skip
        written = (shared / "predictions.csv").read_text().splitlines()
        predicted = np.array([float(line.rsplit(",", 1)[1]) for line in written[1:]])
        host = sample_predictions(artifacts_dir, load_predictor(artifacts_dir, model))
        if not np.array_equal(predicted, host):
            sys.exit(f"stage=predict on a CSV wrote {predicted.tolist()}, host {host.tolist()}")
        print(f"stage=predict {model} on a CSV (pandas, no pyarrow in the image) == host, exactly")
        refused = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", *mount,
             "predict.input=/data/rows.csv", "predict.output=/data/predictions.parquet"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        lines = refused.stderr.strip().splitlines()
        if refused.returncode == 0 or len(lines) != 1 or "pyarrow" not in lines[0]:
            sys.exit(f"a Parquet output should be one line naming pyarrow:\n{refused.stderr}")
        print(f"stage=predict to Parquet in the image: {lines[0]}")


def check_server(image: str, artifacts_dir: str, model: str = "default-8bit") -> None:
    """Serve ``model`` from the image on a loopback port and check it over HTTP."""
    refused = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image, "serve", "serve.port=9000"],
        capture_output=True,
        text=True,
        check=False,
    )
    if refused.returncode != 2 or "MLOPS_LR_PORT" not in refused.stderr:
        sys.exit(f"serve serve.port=9000 should be refused (exit 2):\n{refused.stderr}")
    container = docker(
        "run",
        "--detach",
        "--publish",
        "127.0.0.1::8000",
        "--health-interval=1s",
        "--env",
        "MLOPS_LR_MODEL_NAME=housing",
        image,
        "serve",
        f"serve.model={model}",
    ).strip()
    try:
        host_port = docker("port", container, "8000/tcp").splitlines()[0].strip()
        url = f"http://{host_port}"
        wait_for(lambda: http_json(f"{url}/health") == {"status": "ok"}, "GET /health", 60)
        samples = json.loads(Path(artifacts_dir, "samples.json").read_text())
        answer = http_json(f"{url}/predict", {"inputs": samples["X"]})
        host = sample_predictions(artifacts_dir, load_predictor(artifacts_dir, model))
        difference = float(np.max(np.abs(np.asarray(answer["predictions"]) - host)))
        if answer["model"] != model or difference > TOLERANCE:
            sys.exit(f"serve: POST /predict answered {answer}, host predicts {host.tolist()}")
        print(f"serve {model}: POST /predict == host (max |difference| {difference:.1e})")
        X = np.asarray(samples["X"], dtype=np.float64)
        tensor = {"name": "input", "shape": list(X.shape), "datatype": "FP64", "data": X.tolist()}
        v2 = http_json(f"{url}/v2/models/housing/infer", {"inputs": [tensor]})
        if v2["outputs"][0]["data"] != answer["predictions"]:
            sys.exit(f"serve: /v2/models/housing/infer answered {v2}, /predict {answer}")
        print("serve: the Open Inference Protocol route, named by MLOPS_LR_MODEL_NAME, == /predict")
        health = ("inspect", "--format", "{{.State.Health.Status}}", container)
        wait_for(lambda: docker(*health).strip() == "healthy", "the HEALTHCHECK", 60)
        print("serve: HEALTHCHECK reports healthy")
        started = time.monotonic()
        docker("stop", "--time", "20", container)
        exit_code = docker("inspect", "--format", "{{.State.ExitCode}}", container).strip()
        logs = subprocess.run(
            ["docker", "logs", container], capture_output=True, text=True, check=False
        )
        if exit_code != "0" or "Shutting down" not in logs.stderr:
            sys.exit(f"serve: docker stop ended with exit code {exit_code}:\n{logs.stderr}")
        print(f"serve: stopped gracefully in {time.monotonic() - started:.1f} s (exit code 0)")
    finally:
        subprocess.run(["docker", "rm", "--force", container], capture_output=True, check=False)


def http_json(url: str, body: object = None) -> object:
    """GET (or POST ``body`` as JSON to) ``url`` and decode the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def wait_for(condition, what: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it holds; exit naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.5)
    sys.exit(f"serve: {what} did not succeed within {seconds} s")


if __name__ == "__main__":
    sys.exit(main())
