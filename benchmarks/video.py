"""What tracking a clip costs: SAM 2's video model against the image SAM on every frame.

Full-size architectures with random weights (the real cost, nothing downloaded):

1. per frame, ``video.VideoSegmenter`` on SAM 2.1 Hiera-T (one click on frame 0, the mask
   followed from memory) against embedding every frame with the image SAM and prompting it
   with the same click (SAM ViT-B, the GPU preset, and SlimSAM-77, the CPU one), measured
   in interleaved rounds on the course's clip; the ratio tracking / image SAM;
2. memory for 10 seconds of 480p (240 frames of 854x480): what the tracker's session keeps
   per frame (its tensors, measured over the frames tracked in part 1) and the decoded
   frames, so the total for 240 frames; and, measured, the peak that transformers' own
   offline path (all frames squashed at once by ``init_video_session(video=...)``) adds.

    python benchmarks/video.py [--frames 4] [--repeats 1] [--threads 2] [--skip-offline]
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
from typing import Any

import numpy as np
import timing


def full_size_tracker() -> Any:
    """A ``VideoSegmenter`` on SAM 2.1 Hiera-T's architecture (its released config: the
    defaults) with random weights, and its processor (1024x1024 frames)."""
    import torch
    import transformers as tf

    from helpers import models, video

    torch.manual_seed(0)
    model = tf.Sam2VideoModel(tf.Sam2VideoConfig()).eval()
    processor = tf.Sam2VideoProcessor(image_processor=tf.Sam2ImageProcessor(),
                                      video_processor=tf.Sam2VideoVideoProcessor())
    return video.VideoSegmenter(models.Loaded(model, processor, models.REGISTRY["sam2.1-tiny"],
                                              "random", "cpu", torch.float32))


def image_sams() -> dict[str, Any]:
    """SAM ViT-B (segment_anything) and SlimSAM-77 (transformers) with random weights."""
    import torch
    import transformers as tf
    from segment_anything import SamPredictor, sam_model_registry

    from helpers import sam_hf

    torch.manual_seed(0)
    vit_b = SamPredictor(sam_model_registry["vit_b"](checkpoint=None).eval())
    slim = sam_hf.HFSamPredictor(tf.SamModel(sam_hf.slimsam_config("slimsam-77")).eval(),
                                 sam_hf.processor_for(1024))
    return {"SAM ViT-B": vit_b, "SlimSAM-77": slim}


def session_bytes(session: Any) -> int:
    """The bytes of every tensor a tracking session keeps (frames and per-frame outputs)."""
    import torch

    total = sum(t.numel() * t.element_size() for t in (session.processed_frames or {}).values()
                if isinstance(t, torch.Tensor))
    for per_object in session.output_dict_per_obj.values():
        for store in per_object.values():
            for out in store.values():
                total += sum(v.numel() * v.element_size() for v in out.values()
                             if isinstance(v, torch.Tensor))
    return total


def offline_peak_gb(frames: int, size: tuple[int, int]) -> float:
    """Peak RSS growth (GB) of ``init_video_session(video=...)`` on ``frames`` frames of
    ``size``: transformers squashes the whole clip at once."""
    import torch
    import transformers as tf

    processor = tf.Sam2VideoProcessor(image_processor=tf.Sam2ImageProcessor(),
                                      video_processor=tf.Sam2VideoVideoProcessor())
    clip = np.full((frames, size[1], size[0], 3), 120, np.uint8)
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    session = processor.init_video_session(video=list(clip), inference_device="cpu",
                                           dtype=torch.float32)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del session
    return (after - before) / 1e6  # KB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-offline", action="store_true")
    args = parser.parse_args()

    import torch

    from helpers import video

    torch.set_num_threads(args.threads)
    entry = video.clip_manifest()["coffee-pan"]
    clip = video.sample_clip("coffee-pan")
    clip = video.Clip(clip.frames[:args.frames], clip.fps, clip.source)
    point = entry["cup_point_frame0"]
    start = time.perf_counter()
    tracker = full_size_tracker()
    sams = image_sams()
    print(f"built in {time.perf_counter() - start:.0f} s; cpu, {args.threads} threads; "
          f"{len(clip)} frames of {clip.size[0]}x{clip.size[1]}")
    arrays = [np.asarray(f) for f in clip]
    coords, labels = np.array([point]), np.array([1])
    last: dict[str, Any] = {}

    def track() -> None:
        last["track"] = tracker.track(clip, points=[point])

    def per_frame(predictor: Any) -> Any:
        def run() -> None:
            with torch.inference_mode():
                for a in arrays:
                    predictor.set_image(a)
                    predictor.predict(point_coords=coords, point_labels=labels,
                                      multimask_output=False)
        return run

    candidates = {"tracker": track, **{name: per_frame(p) for name, p in sams.items()}}
    with torch.inference_mode():
        medians = timing.interleaved(candidates, args.repeats)
    t = medians["tracker"] / len(clip)
    print(f"1. per frame: SAM 2.1 Hiera-T tracking {t:.2f} s", end="")
    for name in sams:
        s = medians[name] / len(clip)
        print(f" | {name} embed + prompt {s:.2f} s (tracking / it {t / s:.2f})", end="")
    print()

    session = last["track"]._session
    kept = session_bytes(session) / len(clip)
    frame_bytes = 854 * 480 * 3
    total = 240 * (kept + frame_bytes)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"2. the tracker keeps {kept / 1e6:.2f} MB a frame (one object; its tensors, "
          f"measured over {len(clip)} frames) + {frame_bytes / 1e6:.2f} MB a decoded 480p "
          f"frame: 10 s of 480p (240 frames) holds about {total / 1e9:.2f} GB, plus the "
          f"weights; peak RSS of this run {peak:.1f} GB")
    if not args.skip_offline:
        print(f"   transformers' offline path, init_video_session(video=240 frames of "
              f"854x480): peak grows by {offline_peak_gb(240, (854, 480)):.1f} GB (measured)")


if __name__ == "__main__":
    main()
