"""Wall time of the default sweep (54 quantize jobs) per launcher, and where a job's time goes.

Usage: python benchmarks/sweep_overhead.py [--launchers basic,parallel]

Trains the float model once into a temporary artifacts directory, then runs
`python -m mlops_lr -m +sweep=bits` with each launcher (the model already trained) and reports
wall time and wall/jobs. The breakdown times, in this process, the pieces of one job: importing
the package and Hydra (a fresh interpreter), composing the config, loading + splitting the data,
quantizing (every setting of the sweep) and writing the artifacts. Needs SCIKIT_LEARN_DATA.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from mlops_lr.config import register_configs, to_config
from mlops_lr.stages import quantize
from mlops_lr.training import prepare_data

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"
GRID = [
    (bits, rounding, granularity)
    for bits in (2, 3, 4, 5, 6, 8, 10, 12, 16)
    for rounding in ("nearest", "hessian", "optimal")
    for granularity in ("per_tensor", "per_feature_pow2")
]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def breakdown(artifacts: Path) -> None:
    imports = timed([sys.executable, "-c", "import mlops_lr.cli, mlops_lr.stages.quantize"])
    register_configs()
    start = time.perf_counter()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        configs = [
            to_config(
                compose(
                    "config",
                    overrides=[
                        "stage=quantize",
                        f"paths.artifacts_dir={artifacts}",
                        f"paths.quantized_dir={artifacts}/bench/{i}",
                        f"quantization.bits={bits}",
                        f"quantization.rounding={rounding}",
                        f"quantization.granularity={granularity}",
                    ],
                )
            )
            for i, (bits, rounding, granularity) in enumerate(GRID)
        ]
    compose_s = (time.perf_counter() - start) / len(GRID)
    start = time.perf_counter()
    prepare_data(configs[0])
    data_s = time.perf_counter() - start
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the stage prints a report per job
        for config in configs:
            quantize.run(config)
    stage_s = (time.perf_counter() - start) / len(GRID)
    print("Where one job's time goes (means over the 54 settings):")
    print(f"  interpreter + imports (fresh process)   {imports:6.2f} s")
    print(f"  config composition + validation        {compose_s:6.3f} s")
    print(f"  load + split the data                  {data_s:6.3f} s")
    print(
        f"  stage=quantize in process              {stage_s:6.3f} s"
        "  (data, model reuse check, quantize, report, writes)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launchers", default="basic,parallel")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = Path(tmp) / "artifacts"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mlops_lr",
                f"paths.artifacts_dir={artifacts}",
                f"hydra.run.dir={tmp}/run",
            ],
            check=True,
            capture_output=True,
        )
        print(f"Default sweep: {len(GRID)} jobs, model already trained")
        for launcher in args.launchers.split(","):
            wall = timed(
                [
                    sys.executable,
                    "-m",
                    "mlops_lr",
                    "-m",
                    "+sweep=bits",
                    f"hydra/launcher={launcher}",
                    f"hydra.sweep.dir={tmp}/{launcher}",
                    f"paths.artifacts_dir={artifacts}",
                ]
            )
            print(f"  {launcher:10s} {wall:6.1f} s wall, {wall / len(GRID):5.2f} s per job")
        breakdown(artifacts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
