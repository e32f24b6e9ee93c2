"""Text-to-image with Stable Diffusion, made reproducible: each image carries its recipe.

``Generator.from_pretrained("sd15").generate("a photo of a cat", seed=7)`` returns a PIL
image whose ``info["helpers_recipe"]`` holds everything that made it (model, prompt, seed,
steps, guidance, size, device). ``Run.log_image`` picks the recipe up by itself, and
``tracking.reproduce`` makes the same pixels again from it. The starting noise comes from a
CPU generator seeded with ``seed``, so a seed means the same noise on every device.
``text_to_image(prompt, ...)`` is the same in one call.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from helpers import checks, models, runtime, tracking
from helpers.diffusion import Diffusion, check_size, count, guidance, side

if TYPE_CHECKING:
    from PIL import Image


def _check(prompt: str, steps: Any, guidance_scale: Any, height: Any, width: Any,
           seed: Any, negative_prompt: Any = None) -> tuple[int, float, int, int, int]:
    """(steps, guidance_scale, height, width, seed) as plain Python numbers, checked."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt {prompt!r} must be a non-empty string")
    if negative_prompt is not None and not isinstance(negative_prompt, str):
        raise ValueError(f"negative_prompt {negative_prompt!r:.60} must be a text or None")
    return (count("steps", steps, 1, 1000), guidance(guidance_scale),
            side("height", height), side("width", width), checks.seed(seed))


class Generator(Diffusion):
    """Stable Diffusion text-to-image whose images carry their recipe.

    ``Generator.from_pretrained(name)`` takes ``"sd15"`` (the default: 25 DPM-Solver++
    steps), ``"sd15-lcm"`` (also ``"lcm"``: with the LCM-LoRA and TAESD, 4 steps, the CPU
    choice) or ``"tiny"``. A LoRA loads into it with ``lora.load(generator, folder)`` (it
    stacks with the LCM-LoRA); its images then carry no recipe, since a model name alone
    cannot rebuild that pipeline.
    """

    families = ("sd",)
    default = "sd15"

    def __init__(self, loaded: models.Loaded, recipes: bool = True,
                 scheduler: str | None = None) -> None:
        super().__init__(loaded, scheduler)
        self.recipes = recipes

    @classmethod
    def from_pretrained(cls, name: str | None = None, device: str | None = None,
                        dtype: Any = None, *, revision: str | None = None,
                        scheduler: str | None = None) -> Generator:
        """Load the text-to-image model ``name`` on ``device``; ``dtype`` None follows
        ``runtime.dtype`` (float16 on CUDA, float32 elsewhere); ``revision`` is a hub
        commit (as a recipe recorded it), None for the registry's; ``scheduler`` a
        scheduler name (``"dpm++"``, ``"pndm"``, ``"lcm"``), None for the model's own."""
        cls._check_scheduler(scheduler)
        return cls(cls._load(name, device, dtype, revision), scheduler=scheduler)

    @classmethod
    def wrap(cls, pipe: Any) -> Generator:
        """A ``Generator`` around a pipeline loaded elsewhere (its images carry no recipe)."""
        spec = models.ModelSpec("user-pipeline", "sd", "user-pipeline")
        return cls(models.Loaded(pipe, None, spec, "", str(pipe.device), pipe.dtype),
                   recipes=False)

    def generate(self, prompt: str, negative_prompt: str | None = None, seed: int = 0,
                 steps: int | None = None, guidance_scale: float | None = None,
                 height: int = 512, width: int = 512) -> Image.Image:
        """One image from a text prompt, carrying its recipe in ``image.info``.

        Args:
            prompt, negative_prompt: what to draw, and what to steer away from.
            seed: the starting noise; the same seed and settings give the same pixels.
            steps, guidance_scale: denoising steps and classifier-free guidance strength;
                None: the model's defaults (``self.steps``, ``self.guidance_scale``).
            height, width: output size in pixels, multiples of 8, at most
                ``diffusion.MAX_SIDE``; refused before any work when the estimated memory
                (``diffusion.activation_bytes``) is more than the device has free.
        """
        steps, guidance_scale = self._defaults(steps, guidance_scale)
        steps, guidance_scale, height, width, seed = _check(prompt, steps, guidance_scale,
                                                            height, width, seed,
                                                            negative_prompt)
        self._check_prompts(prompt, negative_prompt)
        self._check_size(f"height={height}, width={width}", height=height, width=width,
                         guidance_scale=guidance_scale)
        self._advise(steps, guidance_scale, negative_prompt)
        with self.sampling():
            out = self.pipe(prompt=prompt, negative_prompt=negative_prompt,
                            num_inference_steps=steps, guidance_scale=guidance_scale,
                            height=height, width=width, generator=runtime.generator(seed))
        image = out.images[0]
        if not self.recipes or self.has_lora():
            return image
        from importlib.metadata import version

        args = {"prompt": prompt, "model": self.name, "negative_prompt": negative_prompt,
                "seed": seed, "steps": steps, "guidance_scale": guidance_scale,
                "height": height, "width": width, "revision": self.commit,
                "device": self.device, "scheduler": self.schedule.name}
        context = {**self.context(), "diffusers": version("diffusers")}
        return tracking.Recipe(tracking.kind_of(Generator.generate), args,
                               context=context).attach(image)


@tracking.recipe(Generator.generate)
def _remake(model: str, device: str, revision: str | None = None,
            scheduler: str | None = None, **settings: Any) -> Image.Image:
    known = set(inspect.signature(Generator.generate).parameters) - {"self"}
    if unknown := sorted(set(settings) - known):
        raise ValueError(f"the recipe has setting(s) {', '.join(map(repr, unknown))} that "
                         "generate does not take; was the record edited by hand?")
    _check(settings.get("prompt", "x"), settings.get("steps", 1),
           settings.get("guidance_scale", 0.0), settings.get("height", 8),
           settings.get("width", 8), settings.get("seed", 0), settings.get("negative_prompt"))
    return Generator.from_pretrained(model, device=device, revision=revision,
                                     scheduler=scheduler).generate(**settings)


def text_to_image(prompt: str, model: str = "sd15", negative_prompt: str | None = None,
                  seed: int = 0, steps: int | None = None,
                  guidance_scale: float | None = None,
                  height: int = 512, width: int = 512, device: str | None = None,
                  pipe: Any = None) -> Image.Image:
    """One image from a text prompt: ``Generator.from_pretrained(model).generate(...)``.

    Args:
        model: a text-to-image registry name (``models.names("sd")``); tiny in tiny mode.
        pipe: an already loaded pipeline to use instead of ``model``; its images carry no
            recipe, since a name cannot rebuild that pipeline.
    """
    _, scale, h, w, _ = _check(prompt, 1 if steps is None else steps,
                               7.5 if guidance_scale is None else guidance_scale, height,
                               width, seed, negative_prompt)  # before anything loads
    if pipe is None:  # the size against the device's memory, with SD's VAE and dtype
        dev = runtime.device(device)
        check_size(f"height={h}, width={w}", height=h, width=w, device=dev,
                   element_bytes=runtime.dtype(dev, diffusion=True).itemsize,
                   batch=2 if scale > 1 else 1)
    generator = (Generator.from_pretrained(model, device=device) if pipe is None
                 else Generator.wrap(pipe))
    return generator.generate(prompt, negative_prompt, seed, steps, guidance_scale, height,
                              width)
