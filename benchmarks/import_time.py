"""How long `import helpers` takes next to `import torch`, each in fresh processes.

The package promises to stay cheap to import (heavy libraries load inside the functions
that need them). Goal: helpers / torch below 0.1. Prints medians over several runs, with
the bare interpreter start-up subtracted from both.

    python benchmarks/import_time.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(code: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    timed("import torch", 1)  # warm the file cache so the first sample is not an outlier
    base = timed("pass", args.runs)
    torch_s = timed("import torch", args.runs) - base
    helpers_s = timed("import helpers, helpers.images, helpers.models, helpers.viz, "
                      "helpers.detections, helpers.clip", args.runs) - base
    print(f"interpreter start-up      {base * 1000:8.1f} ms (subtracted below)")
    print(f"import torch              {torch_s * 1000:8.1f} ms")
    print(f"import helpers (+modules) {helpers_s * 1000:8.1f} ms")
    ratio = helpers_s / torch_s
    verdict = "met" if ratio < 0.1 else "NOT met"
    print(f"ratio helpers / torch     {ratio:8.3f}  (goal < 0.1: {verdict})")


if __name__ == "__main__":
    main()
