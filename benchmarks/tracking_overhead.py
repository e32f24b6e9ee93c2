"""What tracking costs: a 20-image sweep in tiny mode with and without logging every image.

The sweep is what lesson 4 does on a laptop in tiny mode: text-to-image with the guidance
scale varied, same seed. "With tracking" logs the parameters and every image (PNG file,
local record, Comet offline archive with annotations). Goal: ratio <= 1.15.

The one-time costs (importing comet_ml, starting and ending the run, writing the archive)
are printed apart from the per-image cost, since a lesson pays them once however long the
sweep is.

    HELPERS_TINY_MODELS=1 python benchmarks/tracking_overhead.py [--images 20] [--size 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HELPERS_TINY_MODELS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from helpers import generate, tracking

    torch.set_num_threads(1)
    guidance = [1.0 + 0.5 * i for i in range(args.images)]

    def make(g: float):  # type: ignore[no-untyped-def]
        return generate.text_to_image("a green dragon", seed=7, steps=args.steps,
                                      guidance_scale=g, height=args.size, width=args.size)

    make(1.0)  # load the model once, outside every timing
    os.environ["HELPERS_RUNS_DIR"] = tempfile.mkdtemp(prefix="tracking-bench-")
    tracking.start("warm-up", online=False).end()  # import comet_ml outside the timings

    plain, logged, fixed = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for g in guidance:
            make(g)
        plain.append(time.perf_counter() - start)

        t0 = time.perf_counter()
        run = tracking.start("bench", online=False)
        run.log_params({"prompt": "a green dragon", "seed": 7, "steps": args.steps})
        t1 = time.perf_counter()
        for g in guidance:
            run.log_image(make(g), f"guidance {g}", metadata={"guidance_scale": g})
        t2 = time.perf_counter()
        run.end()
        t3 = time.perf_counter()
        logged.append(t2 - t1)
        fixed.append((t1 - t0) + (t3 - t2))

    p, lg, fx = (statistics.median(x) for x in (plain, logged, fixed))
    print(f"{args.images} images {args.size}x{args.size}, {args.steps} steps, tiny SD, "
          f"median of {args.repeats}")
    print(f"sweep without tracking            {p:7.2f} s")
    print(f"sweep with every image logged     {lg:7.2f} s  ({(lg - p) / args.images * 1000:.1f} "
          "ms per image)")
    print(f"start + end of the run (once)     {fx:7.2f} s")
    ratio = lg / p
    total = (lg + fx) / p
    print(f"ratio, per-image logging          {ratio:7.3f}  (goal <= 1.15: "
          f"{'met' if ratio <= 1.15 else 'NOT met'})")
    print(f"ratio, including start and end    {total:7.3f}")


if __name__ == "__main__":
    main()
