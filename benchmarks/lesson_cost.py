"""What each lesson costs in real mode on this machine, from its own heavy calls.

Every heavy call a lesson's cells make in their CPU presets is counted by hand from the
notebooks (``COUNTS`` below: image embeddings, SAM encodings, detections, UNet steps with and
without classifier-free guidance, VAE passes, DreamBooth steps). Each kind of call is timed on
the full-size architecture with random weights (the real shapes, so honest times; nothing is
downloaded), and the lesson's minutes are the sum of count x time. Downloads and reading
weights from disk are not included.

A second part measures the peak memory (RSS) of lesson 5's path in a fresh process: the SD 1.5
pipeline trains a LoRA step and draws, is released, then the inpainting pipeline inpaints
(goal: <= 7 GB on a CPU). The probe that ``python -m helpers.models doctor`` times is run too,
so its estimates can be scaled from this machine's.

    python benchmarks/lesson_cost.py [--repeats 1] [--skip-memory] [--vision-only]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

# heavy calls per lesson, in the lessons' CPU presets (see each notebook's set-up cell)
COUNTS: dict[int, dict[str, float]] = {
    # CLIP: 40 image embeddings (5 photos, 1 + 6 in zero-shot and ranking, 2 in the template
    # comparison, 26 crops for the accuracy table) and 165 texts (33 batches of 5: the heat
    # map, zero-shot, one template and an ensemble of 8, 10 labels x 11 templates); ALIGN: 31
    # images (5 photos, 26 crops) and 115 texts (23 batches of 5)
    1: {"clip_image": 40, "clip_texts": 33, "align_image": 31, "align_texts": 23},
    # one photo encoded by SlimSAM-77, seven prompts decoded
    2: {"slimsam_embed": 1, "slimsam_predict": 7},
    # 19 OWL-ViT passes (13 text calls in sections 1-8, an example query counting two: the
    # crop's pass and the photo's; section 10's fallback: 3 text calls and an example), one
    # OWLv2, one Grounding DINO; SlimSAM encodes 3 photos (coffee, astronaut, shelf) and
    # decodes ~26 boxes; CLIPSeg encodes one photo and decodes 12 texts. SAM 3 is left out:
    # on a CPU the lesson uses it only when fetched ahead (benchmarks/sam3_cost.py: 73 s per
    # new photo, 6 s per further phrase on it: 2 photos and 4 more phrases, about 3 min)
    3: {"owlvit": 19, "owlv2": 1, "grounding_dino": 1, "slimsam_embed": 3, "slimsam_predict": 26,
        "clipseg_new": 1, "clipseg_more": 11},
    # 15 images by sd15-inpaint-lcm at 512 px on the long side (the 451x300 photo's crop around
    # the cat is at most the whole photo: 512x344; the nose's crop of sections 6-7 is scaled up
    # to 512 too): 34 LCM steps at guidance 1, 16 at guidance 2 or 7.5 (two passes each), 17
    # TAESD encodes (one per image, one more at strength < 1), 15 decodes; one detection, one
    # SAM encoding
    4: {"owlvit": 1, "slimsam_embed": 1, "slimsam_predict": 1, "unet_lcm_512": 34,
        "unet_lcm_cfg_512": 16, "taesd_encode_512": 17, "taesd_decode_512": 15,
        "text_encode": 19},
    # at 256 px: 8 class images and 3 validations x 2 prompts drawn by the base pipeline with
    # the LCM-LoRA (4 steps, SD's VAE decodes), 4 pictures and 1 inpainting by the LCM names
    # (TAESD), 28 VAE encodes before training, 61 training steps, 54 evaluation passes; then
    # section 9's run without prior preservation and without validations: 12 VAE encodes
    # (photos only), 61 steps on a photo alone, one 4-step picture by sd15-lcm (TAESD)
    5: {"unet_lcm_256": 80, "vae_decode_256": 14, "taesd_decode_256": 6, "taesd_encode_256": 1,
        "vae_encode_256": 40, "train_256": 61, "train_256_noprior": 61, "unet_256": 54,
        "text_encode": 22},
    # on a CPU every second frame of the 16-frame clips: 8 tracked, 4 again after the
    # correction on frame 4, 8 of the hidden cup, 2 after its correction, 8 from the spoken
    # prompt's box; one OWL-ViT call; Whisper tiny on one 1.6 s sentence
    6: {"sam2_frame": 30, "owlvit": 1, "whisper_tiny": 1},
}


def sd_parts(inpaint: bool) -> tuple[Any, Any, Any]:
    """SD 1.5's UNet, VAE and text encoder, full size, random weights."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=9 if inpaint else 4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768,
        attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3).eval()
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4).eval()
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072,
                                        num_hidden_layers=12, num_attention_heads=12,
                                        max_position_embeddings=77)).eval()
    return unet, vae, text


def timed(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _clip_costs(repeats: int) -> dict[str, float]:
    import torch
    import transformers as tf

    model = tf.CLIPModel(tf.CLIPConfig()).eval()  # ViT-B/32
    pixels = torch.randn(1, 3, 224, 224)
    ids = torch.randint(0, 49407, (5, 12))
    align = tf.AlignModel(tf.AlignConfig()).eval()  # align-base: EfficientNet-B7 + BERT-base
    square = torch.randn(1, 3, 289, 289)
    words = torch.randint(1000, 30000, (5, 12))
    return {"clip_image": timed(lambda: model.get_image_features(pixel_values=pixels), repeats),
            "clip_texts": timed(lambda: model.get_text_features(input_ids=ids), repeats),
            "align_image": timed(lambda: align.get_image_features(pixel_values=square), repeats),
            "align_texts": timed(lambda: align.get_text_features(input_ids=words), repeats)}


def _sam_costs(repeats: int) -> dict[str, float]:
    import numpy as np
    from segment_anything import SamPredictor, sam_model_registry

    sam = SamPredictor(sam_model_registry["vit_b"](checkpoint=None).eval())
    photo = (np.random.default_rng(0).random((400, 600, 3)) * 255).astype(np.uint8)
    point, label = np.array([[290, 150]]), np.array([1])
    costs = {"sam_embed": timed(lambda: sam.set_image(photo), repeats),
             "sam_predict": timed(lambda: sam.predict(point_coords=point, point_labels=label),
                                  repeats)}
    import torch
    import transformers as tf

    from helpers import sam_hf

    model = tf.SamModel(sam_hf.slimsam_config("slimsam-77")).eval()  # SlimSAM-77's shapes
    fast = sam_hf.HFSamPredictor(model, sam_hf.processor_for(1024))
    costs["slimsam_embed"] = timed(lambda: fast.set_image(photo), repeats)
    with torch.inference_mode():
        costs["slimsam_predict"] = timed(
            lambda: fast.predict(point_coords=point, point_labels=label), repeats)
    return costs


def _detector_cost(key: str, repeats: int) -> float:
    import torch
    import transformers as tf

    if key == "grounding_dino":
        model: Any = tf.GroundingDinoForObjectDetection(tf.GroundingDinoConfig())
        inputs = {"pixel_values": torch.randn(1, 3, 800, 1200),
                  "input_ids": torch.randint(1000, 2000, (1, 12)),
                  "attention_mask": torch.ones(1, 12, dtype=torch.long)}
    else:
        cls, config, side = ((tf.OwlViTForObjectDetection, tf.OwlViTConfig(), 768)
                             if key == "owlvit" else
                             (tf.Owlv2ForObjectDetection,  # B/16 at 960 px, as released
                              tf.Owlv2Config(vision_config={"image_size": 960,
                                                            "patch_size": 16}), 960))
        model = cls(config)
        inputs = {"pixel_values": torch.randn(1, 3, side, side),
                  "input_ids": torch.randint(0, 49407, (3, 16)),
                  "attention_mask": torch.ones(3, 16, dtype=torch.long)}
    model.eval()
    return timed(lambda: model(**inputs), repeats)


def _clipseg_costs(repeats: int) -> dict[str, float]:
    """A text on a new photo (its encoding computed) and another text on the same photo."""
    from detect_segment import full_size_clipseg

    from helpers import images

    text_seg, photo = full_size_clipseg(), images.sample("coffee")

    def new() -> None:
        text_seg._cache.clear()
        text_seg.segment(photo, "a cup", threshold=0.4)

    return {"clipseg_new": timed(new, repeats),
            "clipseg_more": timed(lambda: text_seg.segment(photo, "a spoon", threshold=0.4),
                                  repeats)}


def _video_costs(repeats: int) -> dict[str, float]:
    """A frame tracked by SAM 2.1 Hiera-T, and Whisper tiny on a 1.6 s sentence (its encoder
    and 8 tokens, about what "A cup of coffee." takes)."""
    import torch
    import transformers as tf
    from video import full_size_tracker

    from helpers import video

    tracker, clip = full_size_tracker(), video.sample_clip("coffee-pan")
    short = video.Clip(clip.frames[:2], clip.fps, clip.source)
    point = video.clip_manifest()["coffee-pan"]["cup_point_frame0"]
    frame = timed(lambda: tracker.track(short, points=[point]), repeats) / len(short)
    ear = tf.WhisperForConditionalGeneration(tf.WhisperConfig(
        d_model=384, encoder_layers=4, decoder_layers=4, encoder_attention_heads=6,
        decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536)).eval()
    features = torch.randn(1, 80, 3000)  # 30 s of mel bins: Whisper pads every clip to them
    start = torch.full((1, 1), 50258)
    whisper = timed(lambda: ear.generate(input_features=features, decoder_input_ids=start,
                                         min_new_tokens=8, max_new_tokens=8), repeats)
    return {"sam2_frame": frame, "whisper_tiny": whisper}


def vision_costs(repeats: int) -> dict[str, float]:
    """Seconds per call of CLIP, ALIGN, SAM, CLIPSeg and the three detectors (full size,
    random weights)."""
    import torch

    torch.manual_seed(0)
    with torch.inference_mode():
        costs = {**_clip_costs(repeats), **_sam_costs(repeats), **_clipseg_costs(repeats),
                 **_video_costs(repeats)}
        gc.collect()
        for key in ("owlvit", "owlv2", "grounding_dino"):
            costs[key] = _detector_cost(key, repeats)
            gc.collect()
    return costs


def diffusion_costs(repeats: int) -> dict[str, float]:
    """Seconds per UNet step, VAE pass, text encoding and LoRA training step at 256 px."""
    import torch
    from peft import LoraConfig

    unet, vae, text = sd_parts(inpaint=True)
    costs: dict[str, float] = {}
    latents = torch.randn(2, 9, 32, 32)
    context = torch.randn(2, 77, 768)
    t = torch.tensor([500, 500])
    with torch.inference_mode():
        costs["unet_cfg_256"] = timed(lambda: unet(latents, t, context), repeats)
        costs["unet_256"] = timed(lambda: unet(latents[:1], t[:1], context[:1]), repeats)
        image = torch.randn(1, 3, 256, 256)
        costs["vae_encode_256"] = timed(lambda: vae.encode(image), repeats)
        costs["vae_decode_256"] = timed(lambda: vae.decode(torch.randn(1, 4, 32, 32)), repeats)
        ids = torch.randint(0, 49407, (1, 77))
        costs["text_encode"] = timed(lambda: text(ids), repeats)
    del unet
    gc.collect()
    unet, _, _ = sd_parts(inpaint=False)
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    noisy, noise = torch.randn(2, 4, 32, 32), torch.randn(2, 4, 32, 32)

    def train_step(batch: int = 2) -> None:  # 2: a photo and a class image (prior preservation)
        out = unet(noisy[:batch], t[:batch], context[:batch]).sample
        loss = torch.nn.functional.mse_loss(out, noise[:batch])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    costs["train_256"] = timed(train_step, repeats)
    costs["train_256_noprior"] = timed(lambda: train_step(1), repeats)
    return costs


def few_step_costs(repeats: int) -> dict[str, float]:
    """Seconds per UNet step with a LoRA of the LCM-LoRA's size (rank 64) fused into its
    weights, as the few-step names load it, and per TAESD pass: "512" at lesson 4's work
    size (512x344), "256" at lesson 5's (256x256)."""
    import torch
    from diffusers import AutoencoderTiny
    from peft import LoraConfig

    unet, _, _ = sd_parts(inpaint=True)
    unet.add_adapter(LoraConfig(r=64, lora_alpha=64, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0", "proj_in",
                                                "proj_out", "ff.net.0.proj", "ff.net.2",
                                                "conv1", "conv2"]))
    unet.fuse_lora(lora_scale=1.0)
    unet.unload_lora()
    taesd = AutoencoderTiny().eval()
    costs: dict[str, float] = {}
    context = torch.randn(2, 77, 768)
    t = torch.tensor([500, 500])
    with torch.inference_mode():
        for side, (w, h) in ((512, (512, 344)), (256, (256, 256))):  # lesson 4's, lesson 5's
            latents = torch.randn(2, 9, h // 8, w // 8)
            costs[f"unet_lcm_{side}"] = timed(
                lambda x=latents: unet(x[:1], t[:1], context[:1]), repeats)
            if side == 512:
                costs["unet_lcm_cfg_512"] = timed(lambda x=latents: unet(x, t, context), repeats)
            image = torch.randn(1, 3, h, w)
            costs[f"taesd_encode_{side}"] = timed(lambda x=image: taesd.encode(x), repeats)
            small = torch.randn(1, 4, h // 8, w // 8)
            costs[f"taesd_decode_{side}"] = timed(lambda x=small: taesd.decode(x), repeats)
    return costs


def lesson_five_memory() -> float:
    """Peak RSS in GB of a fresh process that walks lesson 5's path (one pipeline at a time)."""
    code = f"""
import gc, resource, sys, torch
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from lesson_cost import sd_parts
from peft import LoraConfig
unet, vae, text = sd_parts(inpaint=False)
unet.requires_grad_(False)
unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
t, c = torch.tensor([500, 500]), torch.randn(2, 77, 768)
loss = unet(torch.randn(2, 4, 32, 32), t, c).sample.pow(2).mean()
loss.backward()
with torch.inference_mode():
    text(torch.randint(0, 49407, (1, 77)))
    vae.decode(torch.randn(1, 4, 32, 32))
del unet, vae, text, loss
gc.collect()
unet, vae, text = sd_parts(inpaint=True)
with torch.inference_mode():
    unet(torch.randn(2, 9, 32, 32), t, c)
    vae.encode(torch.randn(1, 3, 256, 256))
    vae.decode(torch.randn(1, 4, 32, 32))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=os.environ.copy())
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--vision-only", action="store_true",
                        help="lessons 1-3 only (no diffusion timings, no memory part)")
    args = parser.parse_args()

    import torch

    from helpers import teacher

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    probe = teacher.probe_seconds()
    print(f"cpu, {torch.get_num_threads()} threads; doctor's probe {probe:.3f} s")
    costs = vision_costs(args.repeats)
    if not args.vision_only:
        costs.update(diffusion_costs(args.repeats))
        gc.collect()
        costs.update(few_step_costs(args.repeats))
    for key, seconds in costs.items():
        print(f"  {key:16} {seconds:8.3f} s per call")
    minutes = {n: sum(count * costs[k] for k, count in calls.items()) / 60
               for n, calls in COUNTS.items() if all(k in costs for k in calls)}
    print("minutes per lesson in real mode, CPU presets (heavy calls only):")
    for number, value in minutes.items():
        print(f"  lesson {number}: {value:6.1f} min")
    if not (args.skip_memory or args.vision_only):
        print(f"lesson 5 path, peak RSS: {lesson_five_memory():.2f} GB (goal <= 7)")
    print("for helpers.teacher.REFERENCE:",
          json.dumps({"probe_s": round(probe, 3),
                      "minutes": {n: round(v, 1) for n, v in minutes.items()}}))


if __name__ == "__main__":
    main()
