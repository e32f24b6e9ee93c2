"""Segment Anything latency with the full-size ViT-B and SlimSAM (random weights: the real
cost, no download).

Prints, each measured side by side in one run:
1. image embedding (``set_image``) vs a cached re-prompt (``predict``): goal >= 100;
2. 16 boxes: ``segment`` (which picks the batch size for the device) vs the better of one
   batched decoder call and 16 single calls: goal <= 1.05;
3. the picker's click-to-overlay (prompt -> mask -> redrawn picture) vs the bare decoder
   call: goal <= 1.5;
4. the fast SAMs (SlimSAM-77, SlimSAM-50, transformers ``SamModel``) against ViT-B: image
   embedding time / ViT-B's (interleaved rounds of the encoder alone): goal <= 0.25; a
   cached predict: goal <= 0.1 s; the picker's click-to-overlay / bare decoder: goal <= 1.5.

SlimSAM's architecture is that of the checkpoints' config.json (``sam_hf.SLIMSAM_VISION``:
ViT-B with the encoder's width pruned to 168 or 384 and its MLP to 696 or 1536).

    python benchmarks/sam_latency.py [--repeats 5] [--model vit_b] [--device cpu]
        [--fast slimsam-77,slimsam-50 | --fast none] [--fast-only]

``--fast-only`` skips figures 2 and 3 (ViT-B's boxes and picker); ViT-B's embedding is still
measured, as the yardstick of figure 4.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import timing

EMBED_GOAL = 0.25  # fast embedding / ViT-B's
PREDICT_GOAL = 0.1  # seconds, a cached predict
OVERLAY_GOAL = 1.5  # picker click-to-overlay / bare decoder


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
    parser.add_argument("--fast", default="slimsam-77,slimsam-50",
                        help="comma-separated fast SAMs to compare with ViT-B, or 'none'")
    parser.add_argument("--fast-only", action="store_true",
                        help="skip figures 2 and 3 (ViT-B's boxes and picker)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats} must be at least 1")

    from helpers import sam_hf

    fast_names = [] if args.fast.strip().lower() == "none" else [
        n.strip() for n in args.fast.split(",") if n.strip()]
    unknown = [n for n in fast_names if n not in sam_hf.SLIMSAM_VISION]
    if unknown:
        parser.error(f"--fast {','.join(unknown)}: choose among "
                     f"{', '.join(sam_hf.SLIMSAM_VISION)}, or 'none'")
    if args.fast_only and not fast_names:
        parser.error("--fast-only needs at least one fast SAM in --fast")

    import torch
    from segment_anything import sam_model_registry

    from helpers import images, models, registry, runtime, sam

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

    if not args.fast_only:
        boxes_figure(seg, photo, device, args.repeats)
        overlay, decoder = picker_times(seg, photo, args.repeats)
        print(f"3. picker click-to-overlay {overlay:.4f} s | bare decoder {decoder:.4f} s | "
              f"ratio {overlay / decoder:.3f} (goal <= {OVERLAY_GOAL})")
    if fast_names:
        fast_figures(seg, fast_names, photo, device, prompt, args.repeats)


def boxes_figure(seg: Any, photo: Any, device: str, repeats: int) -> None:
    """Figure 2: ``segment`` on 16 boxes vs the better of one batch and 16 single calls."""
    from helpers import sam
    from helpers.detections import Detections

    rng = np.random.default_rng(0)
    corners = rng.uniform([0, 0], [photo.width - 60, photo.height - 60], size=(16, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(30, 60, size=(16, 2))], axis=1)
    dets = Detections(boxes.astype(np.float32), labels="thing")
    seg.segment(dets, batch_size=16)  # warm-up
    # interleaved rounds, so a slow spell on a shared machine hits all three alike
    medians = timing.interleaved({"batched": lambda: seg.segment(dets, batch_size=16),
                                  "singles": lambda: seg.segment(dets, batch_size=1),
                                  "chosen": lambda: seg.segment(dets)}, repeats)
    batched, singles, chosen = medians["batched"], medians["singles"], medians["chosen"]
    best = min(batched, singles)
    default = sam.BATCH_SIZE.get(device.split(":")[0], 1)
    print(f"2. 16 boxes: one batch {batched:.3f} s | 16 singles {singles:.3f} s | segment "
          f"(batch {default}) {chosen:.3f} s | ratio to the better {chosen / best:.3f} "
          "(goal <= 1.05)")


def picker_times(seg: Any, photo: Any, repeats: int) -> tuple[float, float]:
    """Median seconds of the picker's click-to-overlay and of the bare decoder call."""
    from helpers import widgets

    picker = widgets.PointPicker(seg, photo)
    _ = picker.widget  # the view exists, so each click also redraws the picture
    points = iter([(100 + 7 * i, 100 + 5 * i) for i in range(4 * repeats + 4)])

    def click() -> None:
        picker.state.clear()  # drop the last point without redrawing
        picker.click(*next(points))

    def bare() -> None:
        seg.predict(points=[[150, 120]], labels=[1])

    click()
    overlay = median_time(click, repeats)
    decoder = median_time(bare, repeats)
    return overlay, decoder


def fast_segmenter(name: str, device: str) -> Any:
    """SlimSAM ``name`` at full size with random weights, as a ``Segmenter``."""
    import torch
    from transformers import SamModel

    from helpers import models, registry, sam, sam_hf

    torch.manual_seed(0)
    model = SamModel(sam_hf.slimsam_config(name)).to(device).eval()
    processor = sam_hf.processor_for(1024)
    spec = registry.REGISTRY.get(name) or registry.ModelSpec(
        name, "sam", f"nielsr/{name}-uniform", arch="hf")
    return sam.Segmenter(models.Loaded(model, processor, spec, "random weights", device,
                                       torch.float32))


def fast_figures(base: Any, names: list[str], photo: Any, device: str,
                 prompt: dict[str, Any], repeats: int) -> None:
    """Figure 4: each fast SAM's embedding time against ``base``'s (ViT-B), its cached
    predict, and its picker overhead."""
    import torch

    fast = {name: fast_segmenter(name, device) for name in names}
    arr = np.asarray(photo)
    for seg in fast.values():
        seg.set_image(photo)  # warm-up, and the embedding the prompts below use
        seg.predict(**prompt)

    def encoder(seg: Any) -> Callable[[], object]:
        def run() -> None:
            with torch.inference_mode():
                seg.predictor.set_image(arr)  # the encoder alone, past the cache
        return run

    every = {base.name: base, **fast}
    medians = timing.interleaved({name: encoder(seg) for name, seg in every.items()}, repeats)
    for seg in every.values():
        seg.set_image(photo)  # the cached embedding again (the same photo)
    print(f"4. fast SAMs vs {base.name} ({medians[base.name]:.3f} s per embedding; "
          f"goals: embedding ratio <= {EMBED_GOAL}, cached predict <= {PREDICT_GOAL} s, "
          f"overlay ratio <= {OVERLAY_GOAL})")
    for name, seg in fast.items():
        ratio = medians[name] / medians[base.name]
        predict = median_time(lambda seg=seg: seg.predict(**prompt), repeats)
        overlay, decoder = picker_times(seg, photo, repeats)
        verdict = all([ratio <= EMBED_GOAL, predict <= PREDICT_GOAL,
                       overlay / decoder <= OVERLAY_GOAL])
        print(f"   {name}: embedding {medians[name]:.3f} s, ratio {ratio:.3f} | cached predict "
              f"{predict:.4f} s | click-to-overlay {overlay:.4f} s / bare decoder "
              f"{decoder:.4f} s = {overlay / decoder:.3f} | "
              f"{'meets' if verdict else 'MISSES'} the goals")


if __name__ == "__main__":
    main()
