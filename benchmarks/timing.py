"""Shared timing for the benchmarks: interleaved rounds, median per candidate.

Each round runs every candidate once, in turn, so a slow spell on a shared machine hits
all of them alike; the median over rounds is reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def interleaved(candidates: Mapping[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each candidate over ``repeats`` interleaved rounds."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}
