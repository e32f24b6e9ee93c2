"""Text -> boxes -> masks: the helpers' chain vs the same work through the raw libraries.

Full-size OWL-ViT B/32 and SAM ViT-B with random weights (the real architectures, so the real
cost; nothing is downloaded). The SAM image embedding is computed once before timing for
both sides, as a lesson does; each round then detects "a cup" and "a spoon" and masks the 8
best boxes. Rounds alternate between the two sides. Goal: helpers / raw <= 1.10.

Also: masking 16 boxes with one batched decoder call vs a loop of single-box predictions.

And: CLIPSeg alone (rd64-refined sizes: CLIP ViT-B/16 at 352x352 + its decoder, random
weights) vs OWL-ViT B/32 + SAM ViT-B through the helpers, the same photo and queries, text
-> masks: once from a new photo (every image encoder runs: SAM's embedding, CLIPSeg's vision
encoder), once on a photo already encoded (as when a lesson tries more queries on it). The
work is not the same: CLIPSeg gives one mask per query (every instance together), the chain
one per box (8 here).

    python benchmarks/detect_segment.py [--repeats 5] [--only chain|clipseg]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import timing

QUERIES = ["a cup", "a spoon"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=["chain", "clipseg"], default=None,
                        help="parts 1-2 only (the chain vs raw libraries) or 3-4 only (CLIPSeg)")
    args = parser.parse_args()

    import torch
    import transformers as tf
    from segment_anything import sam_model_registry

    from helpers import detect, images, models, sam, tiny

    torch.manual_seed(0)
    owl = tf.OwlViTForObjectDetection(tf.OwlViTConfig()).eval()  # B/32 sizes
    with torch.no_grad():  # a random box head saturates to zero-area boxes: start it at the
        owl.box_head.dense2.weight.zero_()  # patch-grid prior instead (one box per patch)
        owl.box_head.dense2.bias.zero_()
    tokenizer = tiny.clip_tokenizer()
    tokenizer.model_max_length = owl.config.text_config.max_position_embeddings  # 16, as released
    processor = tf.OwlViTProcessor(image_processor=tf.OwlViTImageProcessor(),
                                   tokenizer=tokenizer)
    sam_model = sam_model_registry["vit_b"](checkpoint=None).eval()
    spec_owl, spec_sam = models.REGISTRY["owlvit-b32"], models.REGISTRY["sam-vit-b"]
    detector = detect.Detector(models.Loaded(owl, processor, spec_owl, "random", "cpu",
                                             torch.float32))
    seg = sam.Segmenter(models.Loaded(sam_model, None, spec_sam, "random", "cpu",
                                      torch.float32))
    photo = images.sample("coffee")
    print(f"OWL-ViT B/32 + SAM ViT-B (random weights), cpu, {torch.get_num_threads()} threads, "
          f"photo {photo.width}x{photo.height}")
    if args.only != "clipseg":
        chain_vs_raw(args.repeats, detector, seg, photo)
    if args.only != "chain":
        clipseg_vs_chain(args.repeats, detector, seg, photo)


def chain_vs_raw(repeats: int, detector: Any, seg: Any, photo: Any) -> None:
    """Parts 1 and 2: the helpers' chain vs the raw libraries; batched vs single boxes."""
    import torch
    from segment_anything import SamPredictor
    from torchvision.ops import batched_nms

    from helpers import sam
    from helpers.detections import Detections

    owl, processor = detector.model, detector.processor
    predictor = SamPredictor(seg.model)
    seg.set_image(photo)
    predictor.features = seg.predictor.features  # the same embedding for the raw side
    predictor.original_size, predictor.input_size = seg.predictor.original_size, \
        seg.predictor.input_size
    predictor.is_image_set = True

    def helpers_chain() -> int:
        found = detector.detect(photo, QUERIES, threshold=0.0, top_k=8)
        return len(seg.segment(found))

    def raw_chain() -> int:
        with torch.inference_mode():
            inputs = processor(text=[QUERIES], images=photo, return_tensors="pt")
            outputs = owl(**inputs)
            result = processor.post_process_grounded_object_detection(
                outputs, threshold=0.0, target_sizes=[(photo.height, photo.width)])[0]
            keep = batched_nms(result["boxes"], result["scores"], result["labels"], 0.5)[:8]
            boxes = predictor.transform.apply_boxes_torch(result["boxes"][keep],
                                                          predictor.original_size)
            masks, _, _ = predictor.predict_torch(None, None, boxes=boxes,
                                                  multimask_output=False)
        return len(masks)

    counts = (helpers_chain(), raw_chain())  # warm-up, and the same amount of work
    assert counts == (8, 8), counts
    medians = timing.interleaved({"helpers": helpers_chain, "raw": raw_chain}, repeats)
    h, r = medians["helpers"], medians["raw"]
    print(f"1. text -> boxes -> masks: helpers {h:.3f} s | raw libraries {r:.3f} s | "
          f"ratio {h / r:.3f} (goal <= 1.10)")

    rng = np.random.default_rng(0)
    corners = rng.uniform([0, 0], [photo.width - 60, photo.height - 60], size=(16, 2))
    boxes16 = Detections(np.concatenate([corners, corners + rng.uniform(30, 60, (16, 2))], 1))
    medians = timing.interleaved({
        "batched": lambda: seg.segment(boxes16, batch_size=16),
        "singles": lambda: seg.segment(boxes16, batch_size=1)}, repeats)
    batched, singles = medians["batched"], medians["singles"]
    print(f"2. 16 boxes: one batched call {batched:.3f} s | 16 single calls {singles:.3f} s | "
          f"batched / singles {batched / singles:.3f} (segment's CPU default: batch "
          f"{sam.BATCH_SIZE['cpu']})")


def full_size_clipseg() -> Any:
    """A ``TextSegmenter`` on CLIPSeg rd64-refined's architecture with random weights: CLIP
    ViT-B/16 (photos squashed to 352x352, 22x22 patches), its 512-wide text encoder, taps
    on vision layers 3, 6, 9, a 64-wide decoder with the refined transposed convolution."""
    import torch
    import transformers as tf

    from helpers import clipseg, models, tiny

    tokenizer = tiny.clip_tokenizer()  # 77 tokens, as released
    text = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)  # the vocabulary stays 49408 rows
    config = tf.CLIPSegConfig(text_config=text, vision_config={"patch_size": 16},
                              use_complex_transposed_convolution=True)
    model = tf.CLIPSegForImageSegmentation(config).eval()
    image_processor = tf.ViTImageProcessor(size={"height": 352, "width": 352},
                                           image_mean=[0.485, 0.456, 0.406],
                                           image_std=[0.229, 0.224, 0.225])
    processor = tf.CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer)
    return clipseg.TextSegmenter(models.Loaded(model, processor,
                                               models.REGISTRY["clipseg-rd64"], "random",
                                               "cpu", torch.float32))


def clipseg_vs_chain(repeats: int, detector: Any, seg: Any, photo: Any) -> None:
    """Parts 3 and 4: CLIPSeg alone vs OWL-ViT + SAM, from a new photo and on an encoded one."""
    text_seg = full_size_clipseg()

    def chain(cold: bool) -> int:
        if cold:
            seg._cache.clear()  # a new photo: SAM's image encoder runs again
        found = detector.detect(photo, QUERIES, threshold=0.0, top_k=8)
        return len(seg.segment(found, photo))

    def alone(cold: bool) -> int:
        if cold:
            text_seg._cache.clear()  # a new photo: CLIPSeg's vision encoder runs again
        return len(text_seg.segment(photo, QUERIES, threshold=0.0))

    counts = (chain(True), alone(True))  # warm-up
    assert counts == (8, 2), counts
    for part, cold, what in ((3, True, "a new photo"), (4, False, "an encoded photo")):
        medians = timing.interleaved({"clipseg": lambda c=cold: alone(c),
                                      "chain": lambda c=cold: chain(c)}, repeats)
        c, d = medians["clipseg"], medians["chain"]
        print(f"{part}. {what}, {len(QUERIES)} queries -> masks: CLIPSeg alone {c:.3f} s "
              f"({counts[1]} masks) | OWL-ViT B/32 + SAM ViT-B {d:.3f} s ({counts[0]} masks) "
              f"| CLIPSeg / chain {c / d:.3f}")


if __name__ == "__main__":
    main()
