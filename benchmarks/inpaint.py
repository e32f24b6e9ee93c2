"""Inpainting cost: the helpers' Inpainter vs the raw diffusers call, and crop vs whole photo.

1. ``Inpainter.inpaint`` vs ``StableDiffusionInpaintPipeline.__call__`` on the same work-region
   input with the same settings: the helpers' mask preparation, crop and exact composite are
   the only difference. Goal: ratio <= 1.05.
2. A 2048x1536 photo with a mask over about 5% of it: inpainting a crop around the mask vs
   inpainting the whole photo at the same pixel density in the masked area (so the same
   output quality there): time and peak memory, each measured in a fresh process.

Both run with the tiny pipeline and a mid-size random one (a bigger UNet and VAE), so the
ratios mean something; nothing is downloaded.

3. The CPU presets of lesson 4 on SD 1.5 inpainting's full-size architecture (random weights,
   860M-parameter UNet): the few-step name ``sd15-inpaint-lcm`` (4 LCM steps at 512 px,
   guidance 1, a LoRA of the LCM-LoRA's size, TAESD) vs the old CPU preset (10 PNDM steps
   at 256 px, guidance 7.5) vs the many-step default at 512 px (25 DPM-Solver++ steps,
   guidance 7.5), and the same LCM image decoded by the full VAE. Goal: the LCM image at
   512 px costs less than the old 256-px preset (ratio < 1).

    python benchmarks/inpaint.py [--steps 4] [--repeats 3] [--parts 1 2 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import timing

os.environ.setdefault("HELPERS_TINY_MODELS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")


def pipeline(size: str) -> Any:
    """The tiny inpainting pipeline, or the same with a mid-size UNet and VAE."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from helpers import models

    pipe = models.load("tiny-sd-inpaint", device="cpu").model
    if size == "tiny":
        return pipe
    torch.manual_seed(0)
    pipe.unet = UNet2DConditionModel(
        sample_size=64, in_channels=9, out_channels=4, layers_per_block=2,
        block_out_channels=(64, 128, 256), cross_attention_dim=32, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")).eval()
    pipe.vae = AutoencoderKL(
        latent_channels=4, layers_per_block=1, block_out_channels=(32, 64, 128, 128),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4).eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def inpainter(size: str) -> Any:
    import torch

    from helpers import inpaint, models

    pipe = pipeline(size)
    spec = models.REGISTRY["tiny-sd-inpaint"]
    return inpaint.Inpainter(models.Loaded(pipe, None, spec, size, "cpu", torch.float32))


def big_photo_and_mask() -> tuple[Any, np.ndarray]:
    from PIL import Image

    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (1536, 2048, 3), dtype=np.uint8))
    yy, xx = np.mgrid[:1536, :2048]
    mask = ((xx - 1200) / 220) ** 2 + ((yy - 700) / 170) ** 2 <= 1  # about 3.7% of the photo
    return photo, mask


def compare_with_raw(size: str, steps: int, repeats: int) -> None:
    import torch
    from PIL import Image

    from helpers import images

    painter = inpainter(size)
    photo = images.sample("chelsea")
    mask = np.zeros((300, 451), bool)
    mask[60:240, 120:330] = True
    _, _, grown, _, region = painter.prepare(photo, mask)
    crop = photo.crop(region.box).resize(region.size)
    crop_mask = Image.fromarray(grown[region.box[1]:region.box[3],
                                      region.box[0]:region.box[2]].astype(np.uint8) * 255
                                ).resize(region.size)
    settings = {"num_inference_steps": steps, "guidance_scale": 7.5, "strength": 1.0}

    def ours() -> None:
        painter.inpaint(photo, mask, "a dragon", steps=steps, seed=1)

    def raw() -> None:
        with torch.inference_mode():
            painter.pipe(prompt="a dragon", image=crop, mask_image=crop_mask,
                         height=region.size[1], width=region.size[0],
                         generator=torch.Generator("cpu").manual_seed(1), **settings)

    ours()
    raw()
    medians = timing.interleaved({"ours": ours, "raw": raw}, repeats)
    a, b = medians["ours"], medians["raw"]
    print(f"1. [{size}] work size {region.size}, {steps} steps: Inpainter {a:.3f} s | raw "
          f"pipeline {b:.3f} s | ratio {a / b:.3f} (goal <= 1.05)")


def child(size: str, mode: str, steps: int) -> None:
    """One measurement in a fresh process: prints JSON with seconds and peak RSS."""
    painter = inpainter(size)
    photo, mask = big_photo_and_mask()
    _, _, _, _, region = painter.prepare(photo, mask)
    if mode == "crop":
        kwargs: dict[str, Any] = {}
        work = region.size
    else:  # the whole photo at the crop's pixel density: the same detail in the masked area
        side = int(round(2048 * region.scale / 8)) * 8
        kwargs = {"crop": False, "resolution": side}
        work = (side, int(np.ceil(1536 * side / 2048 / 8)) * 8)
    start = time.perf_counter()
    painter.inpaint(photo, mask, "a dragon", steps=steps, seed=1, **kwargs)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "work": list(work)}))


def crop_vs_whole(size: str, steps: int) -> None:
    results = {}
    for mode in ("crop", "whole"):
        out = subprocess.run([sys.executable, __file__, "--child", size, mode, str(steps)],
                             capture_output=True, text=True, check=True)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    c, w = results["crop"], results["whole"]
    print(f"2. [{size}] 2048x1536, mask ~4%: crop {c['work']} {c['seconds']:.2f} s, "
          f"{c['peak_mib']:.0f} MiB | whole photo {w['work']} {w['seconds']:.2f} s, "
          f"{w['peak_mib']:.0f} MiB | time ratio whole/crop {w['seconds'] / c['seconds']:.1f}, "
          f"memory ratio {w['peak_mib'] / c['peak_mib']:.2f}")


def full_size_inpainter(lcm: bool) -> Any:
    """SD 1.5 inpainting at full size with random weights, as the helpers load it: with
    ``lcm`` the registry's few-step spec (a rank-64 LoRA like the LCM-LoRA, TAESD)."""
    import torch
    from diffusers import AutoencoderTiny, PNDMScheduler, StableDiffusionInpaintPipeline
    from lesson_cost import sd_parts
    from peft import LoraConfig

    from helpers import inpaint, models, vocab

    unet, vae, text = sd_parts(inpaint=True)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, steps_offset=1)
    name = "sd15-inpaint-lcm" if lcm else "sd15-inpaint"
    if lcm:
        torch.manual_seed(1)
        vae = AutoencoderTiny().eval()  # TAESD's architecture
        unet.add_adapter(LoraConfig(r=64, lora_alpha=64, init_lora_weights="gaussian",
                                    target_modules=["to_q", "to_k", "to_v", "to_out.0",
                                                    "proj_in", "proj_out", "ff.net.0.proj",
                                                    "ff.net.2", "conv1", "conv2"]),
                         adapter_name="lcm")
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text,
                                          tokenizer=vocab.clip_tokenizer(), unet=unet,
                                          scheduler=scheduler, safety_checker=None,
                                          feature_extractor=None,
                                          requires_safety_checker=False)
    if lcm:  # as the loader does: fused into the UNet's weights
        pipe.fuse_lora(components=["unet"], adapter_names=["lcm"])
        pipe.unload_lora_weights()
    pipe.set_progress_bar_config(disable=True)
    spec = models.REGISTRY[name]
    return inpaint.Inpainter(models.Loaded(pipe, None, spec, "random weights", "cpu",
                                           torch.float32))


def _time_plain(photo: Any, mask: np.ndarray, repeats: int) -> dict[str, float]:
    from helpers import inpaint

    plain = full_size_inpainter(lcm=False)
    pndm = inpaint.Inpainter(plain.loaded, scheduler="pndm")
    return timing.interleaved({
        OLD: lambda: pndm.inpaint(photo, mask, "a dragon", steps=10, resolution=256),
        DPM: lambda: plain.inpaint(photo, mask, "a dragon"),
    }, repeats)


def _time_lcm(photo: Any, mask: np.ndarray, repeats: int) -> tuple[dict[str, float], float]:
    from lesson_cost import sd_parts

    fast = full_size_inpainter(lcm=True)
    lora_params = LCM_LORA_PARAMS
    times = timing.interleaved({LCM: lambda: fast.inpaint(photo, mask, "a dragon")}, repeats)
    fast.pipe.vae = sd_parts(inpaint=True)[1]  # the full VAE in TAESD's place
    times[LCM_FULL_VAE] = timing.interleaved(
        {"x": lambda: fast.inpaint(photo, mask, "a dragon")}, repeats)["x"]
    return times, lora_params


LCM_LORA_PARAMS = 58_000_000  # the rank-64 LoRA built above (counted before it is fused)
OLD = "old CPU preset: 10 PNDM steps, 256 px, guidance 7.5"
DPM = "many-step default: 25 DPM-Solver++ steps, 512 px, guidance 7.5"
LCM = "sd15-inpaint-lcm: 4 LCM steps, 512 px, guidance 1, TAESD"
LCM_FULL_VAE = "the same LCM image decoded by the full VAE"


def presets(repeats: int) -> None:
    import gc

    import torch

    from helpers import images

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    photo = images.sample("chelsea")
    mask = np.zeros((300, 451), bool)
    mask[40:260, 110:340] = True  # the cat: the work region is most of the photo
    times = _time_plain(photo, mask, repeats)
    gc.collect()  # one full-size pipeline at a time
    fast, lora_params = _time_lcm(photo, mask, repeats)
    times.update(fast)
    print(f"3. SD 1.5 inpainting, full size, random weights, cpu with {torch.get_num_threads()} "
          f"threads (a fused LoRA of {lora_params / 1e6:.0f}M parameters for the LCM-LoRA):")
    for label, seconds in times.items():
        print(f"   {label:66} {seconds:7.1f} s")
    print(f"   ratio LCM at 512 px / old preset at 256 px: {times[LCM] / times[OLD]:.2f} "
          f"(goal < 1); 25 DPM steps at 512 px / old preset: {times[DPM] / times[OLD]:.1f}; "
          f"TAESD saves {times[LCM_FULL_VAE] - times[LCM]:.1f} s per image")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "mid"])
    parser.add_argument("--parts", nargs="+", type=int, default=[1, 2, 3],
                        help="2 with the mid-size UNet and 3 take minutes each on a CPU")
    args = parser.parse_args()
    if 1 in args.parts:
        for size in args.sizes:
            compare_with_raw(size, args.steps, args.repeats)
    if 2 in args.parts:
        for size in args.sizes:
            crop_vs_whole(size, args.steps)
    if 3 in args.parts:
        presets(args.repeats)


if __name__ == "__main__":
    main()
