"""Text-to-image with Stable Diffusion, made reproducible: the image carries its recipe.

``text_to_image`` returns a PIL image whose ``info["helpers_recipe"]`` holds everything
that made it (model, prompt, seed, steps, guidance, size, device). ``Run.log_image`` picks
the recipe up by itself, and ``tracking.reproduce`` makes the same pixels again from it.
The starting noise comes from a CPU generator seeded with ``seed``, so a seed means the
same noise on every device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from helpers import models, tracking

if TYPE_CHECKING:
    from PIL import Image


def _check(prompt: str, steps: int, guidance_scale: float, height: int, width: int,
           seed: int) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt {prompt!r} must be a non-empty string")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps {steps!r} must be a positive integer")
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)) \
            or not 0 <= guidance_scale <= 50:
        raise ValueError(f"guidance_scale {guidance_scale!r} must lie in [0, 50]")
    for label, size in (("height", height), ("width", width)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 8 or size % 8:
            raise ValueError(f"{label} {size!r} must be a multiple of 8 pixels (at least 8)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed {seed!r} must be a non-negative integer")


@tracking.recipe("generate.text_to_image")
def text_to_image(prompt: str, model: str = "sd15", negative_prompt: str | None = None,
                  seed: int = 0, steps: int = 30, guidance_scale: float = 7.5,
                  height: int = 512, width: int = 512, device: str | None = None,
                  pipe: Any = None) -> Image.Image:
    """One image from a text prompt, carrying its recipe in ``image.info``.

    Args:
        prompt: what to draw.
        model: a text-to-image registry name (``models.names("sd")``); tiny in tiny mode.
        seed: the starting noise; the same seed and settings give the same pixels.
        steps, guidance_scale: denoising steps and classifier-free guidance strength.
        height, width: output size in pixels, multiples of 8.
        pipe: an already loaded pipeline to use instead of ``model`` (e.g. with a LoRA);
            its images carry no recipe, since a name cannot rebuild that pipeline.
    """
    import torch

    _check(prompt, steps, guidance_scale, height, width, seed)
    own_pipe = pipe is None
    if pipe is None:
        loaded = models.load(model, device=device, family="sd")
        pipe, model, dev = loaded.model, loaded.spec.name, loaded.device
    else:
        dev = str(pipe.device)
    generator = torch.Generator("cpu").manual_seed(seed)
    out = pipe(prompt=prompt, negative_prompt=negative_prompt, num_inference_steps=steps,
               guidance_scale=guidance_scale, height=height, width=width,
               generator=generator)
    image = out.images[0]
    # a caller's pipeline, or a cached one carrying a LoRA, cannot be rebuilt from a name
    if own_pipe and not models.has_adapters(pipe):
        from importlib.metadata import version

        image.info[tracking.RECIPE_KEY] = {
            "kind": "generate.text_to_image",
            "args": {"prompt": prompt, "model": model, "negative_prompt": negative_prompt,
                     "seed": seed, "steps": steps, "guidance_scale": float(guidance_scale),
                     "height": height, "width": width, "device": dev},
            "context": {"revision": models.REGISTRY[model].revision if model in models.REGISTRY
                        else None, "dtype": str(pipe.dtype).replace("torch.", ""),
                        "scheduler": type(pipe.scheduler).__name__,
                        "diffusers": version("diffusers")},
        }
    return image
