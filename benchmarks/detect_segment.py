"""Text -> boxes -> masks: the helpers' chain vs the same work through the raw libraries.

Full-size OWL-ViT B/32 and SAM ViT-B with random weights (the real architectures, so the real
cost; nothing is downloaded). The SAM image embedding is computed once before timing for
both sides, as a lesson does; each round then detects "a cup" and "a spoon" and masks the 8
best boxes. Rounds alternate between the two sides. Goal: helpers / raw <= 1.10.

Also: masking 16 boxes with one batched decoder call vs a loop of single-box predictions.

    python benchmarks/detect_segment.py [--repeats 5]
"""

from __future__ import annotations

import argparse

import numpy as np
import timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch
    import transformers as tf
    from segment_anything import SamPredictor, sam_model_registry
    from torchvision.ops import batched_nms

    from helpers import detect, images, models, sam, tiny
    from helpers.detections import Detections

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
    predictor = SamPredictor(sam_model)
    photo = images.sample("coffee")
    queries = ["a cup", "a spoon"]
    print(f"OWL-ViT B/32 + SAM ViT-B (random weights), cpu, {torch.get_num_threads()} threads, "
          f"photo {photo.width}x{photo.height}")
    seg.set_image(photo)
    predictor.features = seg.predictor.features  # the same embedding for the raw side
    predictor.original_size, predictor.input_size = seg.predictor.original_size, \
        seg.predictor.input_size
    predictor.is_image_set = True

    def helpers_chain() -> int:
        found = detector.detect(photo, queries, threshold=0.0, top_k=8)
        return len(seg.segment(found))

    def raw_chain() -> int:
        with torch.inference_mode():
            inputs = processor(text=[queries], images=photo, return_tensors="pt")
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
    medians = timing.interleaved({"helpers": helpers_chain, "raw": raw_chain}, args.repeats)
    h, r = medians["helpers"], medians["raw"]
    print(f"1. text -> boxes -> masks: helpers {h:.3f} s | raw libraries {r:.3f} s | "
          f"ratio {h / r:.3f} (goal <= 1.10)")

    rng = np.random.default_rng(0)
    corners = rng.uniform([0, 0], [photo.width - 60, photo.height - 60], size=(16, 2))
    boxes16 = Detections(np.concatenate([corners, corners + rng.uniform(30, 60, (16, 2))], 1))
    medians = timing.interleaved({
        "batched": lambda: seg.segment(boxes16, batch_size=16),
        "singles": lambda: seg.segment(boxes16, batch_size=1)}, args.repeats)
    batched, singles = medians["batched"], medians["singles"]
    print(f"2. 16 boxes: one batched call {batched:.3f} s | 16 single calls {singles:.3f} s | "
          f"batched / singles {batched / singles:.3f} (segment's CPU default: batch "
          f"{sam.BATCH_SIZE['cpu']})")


if __name__ == "__main__":
    main()
