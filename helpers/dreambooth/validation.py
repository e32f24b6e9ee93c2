"""Validation images: each validation prompt drawn with the same seed at step 0, every
``validation_every`` steps and at the end, so a column of the grid differs only by what
was learned. With the default prompts one row has the identifier and one does not: the
first should move towards the subject, the second stay any member of the class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers import images, runtime
from helpers.dreambooth.config import DreamBoothConfig, has_word
from helpers.dreambooth.data import sampling
from helpers.dreambooth.inputs import Inputs

if TYPE_CHECKING:
    from PIL import Image


@dataclass
class ValidationImage:
    """One validation image: the step it was drawn at, its prompt, and where it is saved."""

    step: int
    prompt: str
    path: Path
    with_identifier: bool

    @property
    def image(self) -> Image.Image:
        """The image, read from its file."""
        return images.load(self.path)


def validate(cfg: DreamBoothConfig, pipe: Any, unet: Any, text_encoder: Any, inputs: Inputs,
             step: int, out: Path, device: Any, offload: bool) -> list[ValidationImage]:
    """Draw each validation prompt once (same seed every time) and save the images; with
    ``offload`` the VAE visits ``device`` only while it decodes."""
    from diffusers.training_utils import offload_models

    unet.eval()
    folder = out / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    with offload_models(pipe.vae, device=device, offload=offload), sampling(cfg, pipe):
        for i, prompt in enumerate(cfg.validation_prompts or []):
            made.append(_draw(cfg, pipe, text_encoder, inputs, prompt, device,
                              folder / f"step-{step:06d}-{i}.png", step))
    unet.train()
    return made


def _draw(cfg: DreamBoothConfig, pipe: Any, text_encoder: Any, inputs: Inputs, prompt: str,
          device: Any, path: Path, step: int) -> ValidationImage:
    """One validation image, from the embeddings computed before training when the text
    encoder is frozen (it has been released), else from the prompt."""
    import torch

    kwargs: dict[str, Any] = {"prompt": prompt}
    if text_encoder is None:
        dtype = pipe.vae.dtype
        kwargs = {"prompt_embeds": inputs.validation_embeds[prompt].to(device, dtype),
                  "negative_prompt_embeds": inputs.negative_embeds.to(  # type: ignore[union-attr]
                      device, dtype)}
    with torch.no_grad():
        image = pipe(num_inference_steps=cfg.sample_steps, guidance_scale=cfg.guidance_scale,
                     height=cfg.resolution, width=cfg.resolution,
                     generator=runtime.generator(cfg.seed), **kwargs).images[0]
    image.save(path)
    return ValidationImage(step, prompt, path, has_word(prompt, cfg.identifier))


def log_validation(run: Any, made: list[ValidationImage], cfg: DreamBoothConfig) -> None:
    """Log validation images to ``run`` (if any) with the settings that drew them."""
    if run is None:
        return
    for v in made:
        run.log_image(v.path, f"validation step {v.step}: {v.prompt}", step=v.step,
                      metadata={"step": v.step, "prompt": v.prompt, "seed": cfg.seed,
                                "sample_model": cfg.sample_model or cfg.base_model,
                                "identifier": v.with_identifier,
                                "sample_steps": cfg.sample_steps,
                                "guidance_scale": cfg.guidance_scale})
