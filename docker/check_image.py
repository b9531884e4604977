"""Check a built mlops-lr image against this checkout (run by `make docker-test`).

1. The default command (`docker run --rm --network none IMAGE`) prints sample predictions.
2. The baked float and default quantized models predict what the host's models predict, to 1e-8.
3. With the data mounted read-only, the container trains by itself and reproduces R² 0.5758.
4. Prints the image size.
Exits non-zero, naming the check, on the first failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
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

    size = int(docker("image", "inspect", "--format", "{{.Size}}", args.image))
    print(f"image {args.image}: {size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
