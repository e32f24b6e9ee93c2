"""SAM 3's cost per image on this machine: the full-size architecture with random weights.

SAM 3 (``facebook/sam3``) is gated and heavy, so the course keeps it optional; this measures
what one text prompt on one new photo costs before anyone downloads it: the model is built
from its default configuration (the released sizes), a photo goes through the real
processor (squashed to 1008 x 1008) with one text, and the forward pass is timed twice;
then another text on the same photo, with its encoding kept (what ``helpers.sam3`` does).

    python benchmarks/sam3_cost.py [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from transformers import Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

    from helpers import images
    from helpers.tiny import clip_tokenizer

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = Sam3Model(Sam3Config()).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"SAM 3 (random weights): {params / 1e6:.0f}M parameters, built in "
          f"{time.perf_counter() - start:.0f} s; cpu, {args.threads} threads")
    processor = Sam3Processor(image_processor=Sam3ImageProcessor(),
                              tokenizer=clip_tokenizer(model_max_length=32))
    inputs = processor(images=images.sample("coffee"), text="a cup", return_tensors="pt")
    times = []
    for _ in range(2):
        start = time.perf_counter()
        with torch.inference_mode():
            model(**inputs)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KB on Linux
    print(f"one photo + one text: {min(times):.1f} s (runs: "
          f"{', '.join(f'{t:.1f}' for t in times)}); peak memory {peak:.1f} GB")
    # what helpers.sam3 does for a second phrase on the same photo: the encoding is kept
    with torch.inference_mode():
        vision = model.get_vision_features(pixel_values=inputs["pixel_values"])
        more = processor(text="a spoon", return_tensors="pt")
        again = []
        for _ in range(2):
            start = time.perf_counter()
            model(vision_embeds=vision, input_ids=more["input_ids"],
                  attention_mask=more["attention_mask"])
            again.append(time.perf_counter() - start)
    print(f"another text on the same photo (encoding kept): {min(again):.1f} s, "
          f"{min(again) / min(times):.2f} of a new photo")


if __name__ == "__main__":
    main()
