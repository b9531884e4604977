"""Wall time that tracking=mlflow adds to `make train` and to the default 54-job sweep.

Usage: python benchmarks/tracking_overhead.py [--rounds 5] [--sweep-rounds 1] [--no-sweep]

Each command runs as `make` runs it (`python -m mlops_lr …`, a fresh interpreter) in a
temporary project root, so artifacts, the SQLite store and Hydra's directories are its own.
Train runs alternate untracked and tracked (the store already created) for --rounds rounds;
the medians and the median of the per-round differences are printed, with the one-time cost
of creating the store. Then the default sweep (`-m +sweep=bits`, 2 joblib workers) runs
untracked and tracked, --sweep-rounds times each. Needs SCIKIT_LEARN_DATA.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRACKED = ["tracking=mlflow"]


def timed(root: Path, *overrides: str) -> float:
    """Seconds one `python -m mlops_lr <overrides>` takes in the project root ``root``."""
    env = {**os.environ, "PROJECT_ROOT": str(root)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mlops_lr", *overrides], check=True, capture_output=True, env=env
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sweep-rounds", type=int, default=1)
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        timed(root, "stage=train")  # warm the file cache and the byte-code
        first = timed(root, "stage=train", *TRACKED)
        untracked, tracked = [], []
        for _ in range(args.rounds):
            untracked.append(timed(root, "stage=train"))
            tracked.append(timed(root, "stage=train", *TRACKED))
        added = statistics.median(t - u for u, t in zip(untracked, tracked, strict=True))
        print(f"make train, {args.rounds} rounds (medians):")
        print(f"  untracked {statistics.median(untracked):.2f} s")
        print(f"  tracked   {statistics.median(tracked):.2f} s  (+{added:.2f} s per run)")
        print(f"  first tracked run, creating the SQLite store: {first:.2f} s")
        if args.no_sweep:
            return
        sweep = ["-m", "+sweep=bits"]
        for _ in range(args.sweep_rounds):
            plain = timed(root, *sweep)
            with_tracking = timed(root, *sweep, *TRACKED)
            print(
                f"sweep of 54 jobs: untracked {plain:.1f} s, tracked {with_tracking:.1f} s "
                f"(+{with_tracking - plain:.1f} s, +{(with_tracking - plain) / 54:.2f} s per job)"
            )


if __name__ == "__main__":
    main()
