"""Segment Anything latency with the full-size ViT-B (random weights: the real cost, no download).

Prints three ratios, each measured side by side in one run:
1. image embedding (``set_image``) vs a cached re-prompt (``predict``): goal >= 100;
2. 16 boxes: ``segment`` (which picks the batch size for the device) vs the better of one
   batched decoder call and 16 single calls: goal <= 1.05;
3. the picker's click-to-overlay (prompt -> mask -> redrawn picture) vs the bare decoder
   call: goal <= 1.5.

    python benchmarks/sam_latency.py [--repeats 5] [--model vit_b] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import timing


def median_time(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="vit_b", choices=("vit_b", "vit_l", "vit_h"))
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    import torch
    from segment_anything import sam_model_registry

    from helpers import images, models, registry, runtime, sam, widgets
    from helpers.detections import Detections

    device = runtime.device(args.device)
    torch.manual_seed(0)
    model = sam_model_registry[args.model](checkpoint=None).to(device).eval()
    spec = registry.REGISTRY[registry.aliases("sam")[args.model]]
    seg = sam.Segmenter(models.Loaded(model, None, spec, "random weights", device,
                                      torch.float32))
    photo = images.sample("coffee")
    print(f"SAM {args.model} (random weights) on {device}, torch threads "
          f"{torch.get_num_threads()}, photo {photo.width}x{photo.height}")

    start = time.perf_counter()
    seg.set_image(photo)
    embed = time.perf_counter() - start
    prompt = {"points": [[290, 150]], "labels": [1]}
    seg.predict(**prompt)  # warm-up
    predict = median_time(lambda: seg.predict(**prompt), args.repeats)
    print(f"1. set_image {embed:8.3f} s | cached predict {predict:8.4f} s | "
          f"ratio {embed / predict:8.1f} (goal >= 100)")

    rng = np.random.default_rng(0)
    corners = rng.uniform([0, 0], [photo.width - 60, photo.height - 60], size=(16, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(30, 60, size=(16, 2))], axis=1)
    dets = Detections(boxes.astype(np.float32), labels="thing")
    seg.segment(dets, batch_size=16)  # warm-up
    # interleaved rounds, so a slow spell on a shared machine hits all three alike
    medians = timing.interleaved({"batched": lambda: seg.segment(dets, batch_size=16),
                                  "singles": lambda: seg.segment(dets, batch_size=1),
                                  "chosen": lambda: seg.segment(dets)}, args.repeats)
    batched, singles, chosen = medians["batched"], medians["singles"], medians["chosen"]
    best = min(batched, singles)
    default = sam.BATCH_SIZE.get(device.split(":")[0], 1)
    print(f"2. 16 boxes: one batch {batched:.3f} s | 16 singles {singles:.3f} s | segment "
          f"(batch {default}) {chosen:.3f} s | ratio to the better {chosen / best:.3f} "
          "(goal <= 1.05)")

    picker = widgets.PointPicker(seg, photo)
    _ = picker.widget  # the view exists, so each click also redraws the picture
    points = iter([(100 + 7 * i, 100 + 5 * i) for i in range(4 * args.repeats + 4)])

    def click() -> None:
        picker.state.clear()  # drop the last point without redrawing
        picker.click(*next(points))

    def bare() -> None:
        seg.predict(points=[[150, 120]], labels=[1])

    click()
    overlay = median_time(click, args.repeats)
    decoder = median_time(bare, args.repeats)
    print(f"3. picker click-to-overlay {overlay:.4f} s | bare decoder {decoder:.4f} s | "
          f"ratio {overlay / decoder:.3f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
