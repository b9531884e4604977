"""Timing shared by the benchmark scripts (run as `python benchmarks/<name>.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_rate(function: Callable[[], object], rows: int, repeats: int = 7) -> float:
    """Rows per second of the fastest of ``repeats`` calls of ``function``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return rows / min(times)
