"""What every training step reads, computed once before the loop, and the loss on it.

The photos and class images are encoded to VAE latent distributions and the prompts to
text embeddings **once**; each step then samples latents, noise and timesteps from a
generator seeded by (seed, step, micro-batch, process), so a resumed run draws exactly what
an uninterrupted one would, on any device. ``batch_loss`` is the denoising loss of one batch
(with the prior-preservation half when there are class images); ``eval_loss`` the loss on
a fixed evaluation batch, the curve worth reading.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers import images, runtime
from helpers.dreambooth.config import DreamBoothConfig
from helpers.dreambooth.data import InstancePhotos, square, to_tensor

if TYPE_CHECKING:
    import torch
    from PIL import Image


def embed(pipe: Any, prompts: Sequence[str]) -> torch.Tensor:
    """(P, 77, D) text embeddings of ``prompts``, as the pipeline computes them."""
    import torch

    ids = tokens(pipe.tokenizer, prompts).to(pipe.text_encoder.device)
    with torch.no_grad():
        return pipe.text_encoder(ids)[0]  # type: ignore[no-any-return]


def tokens(tokenizer: Any, prompts: Sequence[str]) -> torch.Tensor:
    """(P, 77) token ids, padded to the tokenizer's full length as the text encoder reads."""
    return tokenizer(list(prompts), padding="max_length", truncation=True,
                     max_length=tokenizer.model_max_length, return_tensors="pt").input_ids


@dataclass
class Latents:
    """VAE latent distributions of a set of pictures: mean and std, (N, 4, h, w) float32,
    mirrored copies included. A sample is ``mean + std * noise``, scaled by the VAE factor."""

    mean: torch.Tensor
    std: torch.Tensor
    scale: float

    def __len__(self) -> int:
        return int(self.mean.shape[0])


def encode(vae: Any, pictures: Sequence[Image.Image], resolution: int, flip: bool,
           device: str) -> Latents:
    """Encode each picture once (one at a time, so memory stays small)."""
    import torch
    from PIL import Image as PILImage

    means, stds = [], []
    for picture in pictures:
        square_ = square(picture, resolution)
        mirrored = square_.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)
        variants = [square_, mirrored] if flip else [square_]
        for variant in variants:
            pixels = to_tensor(variant)[None].to(device, vae.dtype)
            with torch.no_grad():
                dist = vae.encode(pixels).latent_dist
            means.append(dist.mean.float().cpu())
            stds.append(dist.std.float().cpu())
    return Latents(torch.cat(means), torch.cat(stds), float(vae.config.scaling_factor))


@dataclass
class Inputs:
    """What every step reads, computed once before the loop (on the CPU, moved per step)."""

    instance: Latents
    klass: Latents | None
    instance_embeds: torch.Tensor | None  # (1, 77, D); None when the text encoder trains
    class_embeds: torch.Tensor | None
    instance_ids: torch.Tensor  # (1, 77) token ids
    class_ids: torch.Tensor | None
    eval_latents: torch.Tensor  # (E, 4, h, w): the fixed evaluation batch
    eval_noise: torch.Tensor
    eval_timesteps: torch.Tensor
    validation_embeds: dict[str, torch.Tensor]
    negative_embeds: torch.Tensor | None


def prepare_inputs(cfg: DreamBoothConfig, pipe: Any, photos: InstancePhotos,
                   class_paths: list[Path], device: str) -> Inputs:
    """Encode the photos, class images and prompts once, and fix the evaluation batch."""
    import torch

    instance = encode(pipe.vae, photos.images, cfg.resolution, cfg.random_flip, device)
    klass = None
    if cfg.with_prior_preservation:
        klass = encode(pipe.vae, [images.load(p) for p in class_paths], cfg.resolution,
                       cfg.random_flip, device)
    instance_ids = tokens(pipe.tokenizer, [cfg.instance_prompt])
    class_ids = tokens(pipe.tokenizer, [cfg.class_prompt]) if klass is not None else None
    frozen_text = not cfg.train_text_encoder
    prompts = list(dict.fromkeys([cfg.instance_prompt, cfg.class_prompt,
                                  *(cfg.validation_prompts or []), ""]))
    embeds = dict(zip(prompts, embed(pipe, prompts).float().cpu())) if frozen_text else {}
    # a fixed evaluation batch: every photo (unflipped) at three timesteps, with fixed noise
    g = runtime.generator(cfg.seed + 12345)
    step = 2 if cfg.random_flip else 1
    base = instance.mean[::step] * instance.scale
    n_t = pipe.scheduler.config.num_train_timesteps
    times = torch.tensor([n_t // 4, n_t // 2, 3 * n_t // 4])
    eval_latents = base.repeat_interleave(len(times), dim=0)
    return Inputs(
        instance=instance, klass=klass,
        instance_embeds=embeds[cfg.instance_prompt][None] if frozen_text else None,
        class_embeds=(embeds[cfg.class_prompt][None] if frozen_text and klass is not None
                      else None),
        instance_ids=instance_ids, class_ids=class_ids,
        eval_latents=eval_latents,
        eval_noise=torch.randn(eval_latents.shape, generator=g),
        eval_timesteps=times.repeat(len(base)),
        validation_embeds={p: embeds[p][None] for p in cfg.validation_prompts or []
                           if frozen_text},
        negative_embeds=embeds[""][None] if frozen_text else None,
    )


def step_generator(seed: int, *parts: int) -> torch.Generator:
    """A CPU generator for one (step, micro-batch, process): the same draw on any device,
    and the same after a resume."""
    digest = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return runtime.generator(int.from_bytes(digest[:8], "little") >> 1)


def _sample(latents: Latents, count: int, g: torch.Generator) -> torch.Tensor:
    import torch

    index = torch.randint(len(latents), (count,), generator=g)
    noise = torch.randn(latents.mean[index].shape, generator=g)
    return (latents.mean[index] + latents.std[index] * noise) * latents.scale


def sample_batch(cfg: DreamBoothConfig, inputs: Inputs, g: torch.Generator,
                 n_train_timesteps: int) -> dict[str, torch.Tensor]:
    """One micro-batch on the CPU: latents, noise, timesteps, and embeddings or token ids
    (instance rows first, then as many class rows)."""
    import torch

    b = cfg.batch_size
    parts = [_sample(inputs.instance, b, g)]
    embeds = [inputs.instance_embeds] * b if inputs.instance_embeds is not None else []
    ids = [inputs.instance_ids] * b
    if inputs.klass is not None:
        parts.append(_sample(inputs.klass, b, g))
        if inputs.class_embeds is not None:
            embeds += [inputs.class_embeds] * b
        ids += [inputs.class_ids] * b  # type: ignore[list-item]
    latents = torch.cat(parts)
    out = {"latents": latents, "noise": torch.randn(latents.shape, generator=g),
           "timesteps": torch.randint(0, n_train_timesteps, (len(latents),), generator=g),
           "ids": torch.cat(ids)}
    if embeds:
        out["embeds"] = torch.cat(embeds)  # type: ignore[arg-type]
    return out


def _target(scheduler: Any, latents: Any, noise: Any, timesteps: Any) -> Any:
    """What the UNet should predict: the noise, or the velocity for v-prediction models."""
    if scheduler.config.prediction_type == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    return noise


def batch_loss(unet: Any, text_encoder: Any, scheduler: Any, batch: dict[str, torch.Tensor],
               prior: bool, prior_weight: float, device: Any,
               dtype: Any) -> tuple[torch.Tensor, dict[str, float]]:
    """The denoising loss of one micro-batch: (loss to backpropagate, its parts).

    With ``prior``, the batch's second half are class images, and their loss is added with
    ``prior_weight``.
    """
    import torch.nn.functional as F

    latents = batch["latents"].to(device, dtype)
    noise = batch["noise"].to(device, dtype)
    timesteps = batch["timesteps"].to(device)
    if "embeds" in batch:
        embeds = batch["embeds"].to(device, dtype)
    else:
        embeds = text_encoder(batch["ids"].to(device))[0]
    noisy = scheduler.add_noise(latents, noise, timesteps)
    pred = unet(noisy, timesteps, encoder_hidden_states=embeds).sample
    target = _target(scheduler, latents, noise, timesteps)
    if not prior:
        total = F.mse_loss(pred.float(), target.float())
        return total, {"loss": float(total.detach()), "instance_loss": float(total.detach())}
    pred, prior_pred = pred.chunk(2)
    target, prior_target = target.chunk(2)
    instance_loss = F.mse_loss(pred.float(), target.float())
    prior_loss = F.mse_loss(prior_pred.float(), prior_target.float())
    total = instance_loss + prior_weight * prior_loss
    return total, {"loss": float(total.detach()), "instance_loss": float(instance_loss.detach()),
                   "prior_loss": float(prior_loss.detach())}


def eval_loss(unet: Any, text_encoder: Any, scheduler: Any, inputs: Inputs, device: Any,
              dtype: Any, chunk: int = 8) -> float:
    """The mean denoising loss on the fixed evaluation batch (photos x 3 timesteps)."""
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    with torch.no_grad():
        if inputs.instance_embeds is not None:
            text = inputs.instance_embeds.to(device, dtype)
        else:
            text = text_encoder(inputs.instance_ids.to(device))[0]
        for start in range(0, len(inputs.eval_latents), chunk):
            latents = inputs.eval_latents[start:start + chunk].to(device, dtype)
            noise = inputs.eval_noise[start:start + chunk].to(device, dtype)
            timesteps = inputs.eval_timesteps[start:start + chunk].to(device)
            noisy = scheduler.add_noise(latents, noise, timesteps)
            pred = unet(noisy, timesteps,
                        encoder_hidden_states=text.expand(len(latents), -1, -1)).sample
            target = _target(scheduler, latents, noise, timesteps)
            total += float(F.mse_loss(pred.float(), target.float(), reduction="sum"))
            count += pred.numel()
    return total / count
