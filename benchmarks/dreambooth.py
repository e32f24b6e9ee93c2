"""DreamBooth LoRA training: ``dreambooth.train`` vs a minimal hand loop, checkpointing, LoRA size.

1. Steps per second and peak memory of ``train`` against a minimal hand-written loop on the same
   model, photos, class images and settings (LoRA rank 4 on the UNet's attention, batch 1 with
   prior preservation, AdamW, fp32 on the CPU) that encodes the images with the VAE and the
   prompts with the text encoder every step, as diffusers' example DreamBooth-LoRA script does.
   ``train`` encodes them once before the loop and releases the text encoder and the VAE's
   encoder. Goal on the mid-size UNet: steps/s ratio >= 1.1 and peak memory no higher.
2. Gradient checkpointing on vs off in ``train``: peak memory ratio (and time ratio).
3. Trainable (LoRA) parameters as a fraction of the UNet.

Two models with random weights, nothing downloaded: the tiny one of tiny mode, and a mid-size
Stable Diffusion scaled down as a whole at 256 px: UNet blocks 128/256/512 with cross-attention
768 (74M parameters; SD 1.5's has 860M), a VAE with blocks 64/128/256/256 (SD's: 128/256/512/512,
two layers each) and a 6-layer CLIP text encoder (SD's: 12), so that the VAE and text encoder cost
about what they cost beside the real UNet. (With SD's full VAE beside this smaller UNet, ``train``
ran 5.6x as fast as the hand loop: a ratio that would flatter it.)

Every measurement runs in its own process, so peak memory (the process's peak resident size on
the CPU) is its own; sides alternate, medians are printed. Steps per second are timed between the
first and the last step, so loading and the one-off encoding are left out.

    python benchmarks/dreambooth.py [--models tiny mid] [--steps 8] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
RESOLUTION = {"tiny": 64, "mid": 256}
SUBJECT = ROOT / "data" / "subject-cat"


# ---------------------------------------------------------------- the models

def build_mid(folder: Path) -> None:
    """A mid-size Stable Diffusion with random weights, saved as a diffusers folder."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline
    from diffusers import UNet2DConditionModel as UNet
    from transformers import CLIPTextConfig, CLIPTextModel

    from helpers import tiny

    torch.manual_seed(0)
    tokenizer = tiny.clip_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072,
        num_hidden_layers=6, num_attention_heads=12, max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    unet = UNet(sample_size=32, in_channels=4, out_channels=4, layers_per_block=2,
                block_out_channels=(128, 256, 512),
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                        block_out_channels=(64, 128, 256, 256), sample_size=256,
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, steps_offset=1)
    StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                            scheduler=scheduler, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(folder)


def config(model: str, folder: Path, steps: int, checkpointing: bool = False) -> Any:
    from helpers import dreambooth

    return dreambooth.DreamBoothConfig(
        base_model="tiny-sd" if model == "tiny" else str(folder / "mid"),
        instance_dir=str(SUBJECT), resolution=RESOLUTION[model], num_class_images=2,
        sample_steps=2, max_steps=steps, validation_every=0, checkpoint_every=0,
        gradient_checkpointing=checkpointing, random_flip=False, device="cpu",
        output_dir=str(folder / f"out-{time.monotonic_ns()}"))


# ---------------------------------------------------------------- the two sides

class StepClock:
    """Stands in for a tracking run: notes when each step's metrics arrive."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        if "loss" in metrics:
            self.times.append(time.perf_counter())

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None  # log_params, log_image, log_dataset, ...


def run_train(model: str, folder: Path, steps: int, checkpointing: bool) -> dict[str, Any]:
    from helpers import dreambooth

    clock = StepClock()
    result = dreambooth.train(config(model, folder, steps, checkpointing), run=clock)
    return {"steps_per_s": (len(clock.times) - 1) / (clock.times[-1] - clock.times[0]),
            "trainable": result.trainable_parameters, "unet": result.unet_parameters}


def run_hand_loop(model: str, folder: Path, steps: int) -> dict[str, Any]:
    """What diffusers' example does each step: encode images and prompts, then the UNet."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from peft import LoraConfig

    from helpers import dreambooth, images, registry, weights
    from helpers.dreambooth import data
    from helpers.dreambooth.config import UNET_TARGETS

    cfg = config(model, folder, steps).checked()
    source = weights.fetch(registry.resolve(cfg.base_model, family="sd"))
    pipe = StableDiffusionPipeline.from_pretrained(source, safety_checker=None,
                                                   feature_extractor=None,
                                                   requires_safety_checker=False)
    unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
    torch.manual_seed(cfg.seed)
    unet.add_adapter(LoraConfig(r=cfg.rank, lora_alpha=cfg.rank, init_lora_weights="gaussian",
                                target_modules=list(UNET_TARGETS)))
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=1e-2)
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)

    def pixels(path: Path) -> torch.Tensor:
        square = data.square(images.load(path), cfg.resolution)
        return data.to_tensor(square)

    instance = [pixels(p) for p in dreambooth.instance_photos(cfg.instance_dir).paths]
    klass = [pixels(p) for p in dreambooth.class_images(cfg)]
    ids = tokenizer([cfg.instance_prompt, cfg.class_prompt], padding="max_length",
                    truncation=True, max_length=tokenizer.model_max_length,
                    return_tensors="pt").input_ids
    g = torch.Generator().manual_seed(0)
    unet.train()
    times = []
    for _ in range(steps):
        i = int(torch.randint(len(instance), (1,), generator=g))
        j = int(torch.randint(len(klass), (1,), generator=g))
        batch = torch.stack([instance[i], klass[j]])
        latents = vae.encode(batch).latent_dist.sample(g) * vae.config.scaling_factor
        embeds = text_encoder(ids)[0]
        noise = torch.randn(latents.shape, generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (2,), generator=g)
        pred = unet(scheduler.add_noise(latents, noise, t), t, encoder_hidden_states=embeds).sample
        loss = F.mse_loss(pred[:1], noise[:1]) + cfg.prior_loss_weight * F.mse_loss(pred[1:],
                                                                                    noise[1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter())
    return {"steps_per_s": (len(times) - 1) / (times[-1] - times[0])}


def worker(args: argparse.Namespace) -> None:
    import resource

    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    folder = Path(args.folder)
    if args.worker == "hand":
        out = run_hand_loop(args.model, folder, args.steps)
    elif args.worker == "classes":
        from helpers import dreambooth

        dreambooth.class_images(config(args.model, folder, args.steps))
        out = {}
    else:
        out = run_train(args.model, folder, args.steps, args.worker == "train-ckpt")
    out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print("RESULT " + json.dumps(out), flush=True)


# ---------------------------------------------------------------- the parent

def measure(kind: str, model: str, folder: Path, steps: int) -> dict[str, Any]:
    env = {**os.environ, "HELPERS_CACHE": str(folder / "cache"), "HF_HUB_OFFLINE": "1",
           "HELPERS_TINY_MODELS": "0", "PYTHONPATH": str(ROOT),
           "HELPERS_RUNS_DIR": str(folder / "runs")}
    done = subprocess.run([sys.executable, __file__, "--worker", kind, "--model", model,
                           "--folder", str(folder), "--steps", str(steps)],
                          env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{kind} {model} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])  # type: ignore[no-any-return]


def report(model: str, folder: Path, steps: int, repeats: int) -> None:
    measure("classes", model, folder, steps)  # class images drawn once, outside the timings
    runs: dict[str, list[dict[str, Any]]] = {"train": [], "hand": [], "train-ckpt": []}
    for _ in range(repeats):
        for kind in runs:
            runs[kind].append(measure(kind, model, folder, steps))

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[kind])

    t, h, c = med("train", "steps_per_s"), med("hand", "steps_per_s"), med("train-ckpt",
                                                                           "steps_per_s")
    mt, mh, mc = med("train", "peak_gb"), med("hand", "peak_gb"), med("train-ckpt", "peak_gb")
    first = runs["train"][0]
    print(f"[{model} UNet, {RESOLUTION[model]} px, {steps} steps, medians of {repeats}]")
    print(f"1. train {t:.3f} steps/s, peak {mt:.2f} GB | hand loop (encodes every step) "
          f"{h:.3f} steps/s, peak {mh:.2f} GB | speed ratio {t / h:.2f} (goal >= 1.1), "
          f"memory ratio {mt / mh:.2f} (goal <= 1.0)")
    print(f"2. gradient checkpointing: peak {mc:.2f} GB vs {mt:.2f} GB off -> memory ratio "
          f"{mc / mt:.2f}; {c:.3f} vs {t:.3f} steps/s -> time ratio {t / c:.2f}")
    print(f"3. trainable {first['trainable']:,} of the UNet's {first['unet']:,} parameters = "
          f"{100 * first['trainable'] / first['unet']:.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "mid"], choices=["tiny", "mid"])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", choices=["train", "hand", "train-ckpt", "classes"])
    parser.add_argument("--model", choices=["tiny", "mid"])
    parser.add_argument("--folder")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory(prefix="dreambooth-bench-") as tmp:
        folder = Path(tmp)
        print(f"cpu, {os.environ['OMP_NUM_THREADS']} thread(s) per process")
        for model in args.models:
            if model == "mid":
                build_mid(folder / "mid")
            report(model, folder, args.steps, args.repeats)


if __name__ == "__main__":
    main()
