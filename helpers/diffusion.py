"""What the Stable Diffusion nouns share: a scheduler of their own, the model's defaults,
warnings for settings that do not suit it, and what a recipe says about the pipeline.

``Inpainter`` and ``Generator`` wrap a kernel-wide pipeline. Each holds its own scheduler
(``schedulers.make``) and lends it to the pipeline for every call, so two wrappers of one
pipeline can sample differently without changing what other cells draw.

Sizes are checked against memory before any model work (``check_size``), with a simple
estimate of the activations at a size (``activation_bytes``), not a measurement:

- **self-attention** at the UNet's first level, over the (h/8 x w/8) latent tokens: one
  head's scores at a time, ``batch x (h/8 * w/8)**2`` values (batch 2 with classifier-free
  guidance), 3 times that when training (the scores, their softmax and its gradient). It
  grows with the side to the fourth power: 0.13 GB at 512 px in float32, 34 GB at 2048 px;
- **the VAE** at full resolution: ``6 x c x h x w`` values, ``c`` the channels of its
  first block (128 for SD): about six such tensors are alive at once in its last block.

The larger of the two is compared with what the device has free (``available_memory``:
``torch.cuda.mem_get_info`` on CUDA, the RAM available elsewhere). The weights are not
counted. Whatever the memory, no side may exceed ``MAX_SIDE``.
"""

from __future__ import annotations

from typing import Any

from helpers import checks, compat, lora, models, schedulers
from helpers.runtime import available_memory  # sizes are checked against it

MAX_SIDE = 2048
"""The longest side, in pixels, Stable Diffusion draws or trains at here: 4 times SD 1.5's
native 512. Beyond it the model repeats its subject across the picture, and a picture takes
minutes per step even on a GPU; draw smaller and upscale instead."""
GUIDANCE_RANGE = (0.0, 50.0)
"""Classifier-free guidance takes [0, 50]; 7.5 is typical, 1 for a few-step LCM model."""


# ---------------------------------------------------------------- settings and sizes

def count(name: str, value: Any, low: int, high: int | None = None, hint: str = "") -> int:
    """``value`` as a Python int within [low, high] (``checks.integer``), with the message
    saying "must be an integer >= 1" for a value out of range too."""
    try:
        return checks.integer(name, value, low, high, hint=hint)
    except checks.WrongType:
        raise
    except ValueError:
        low_side = checks.integer(name, value) < low
        rng = (f">= {low}" + (f" (and at most {high})" if high is not None else "")
               if low_side else f"<= {high} (and at least {low})")
        raise ValueError(f"{name} {value!r} must be an integer {rng}"
                         + (f"; {hint}" if hint else "")) from None


def guidance(value: Any) -> float:
    """A guidance scale as a Python float in [0, 50] (NaN, infinity and booleans refused)."""
    return checks.number("guidance_scale", value, *GUIDANCE_RANGE,
                         hint="7.5 is typical; 0 ignores the prompt")


def side(name: str, value: Any, low: int = 8, hint: str = "") -> int:
    """A picture side: a Python int, a multiple of 8 pixels, at least ``low``."""
    error: type[ValueError] = ValueError
    try:
        out = checks.integer(name, value, low)
    except ValueError as err:
        error, out = type(err), 0
    if out < low or out % 8:
        raise error(f"{name} {value!r} must be a multiple of 8 pixels (at least {low})"
                    + (f"; {hint}" if hint else ""))
    return out


def activation_bytes(height: int, width: int, *, element_bytes: int = 4, batch: int = 2,
                     images: int = 1, vae_channels: int = 128, training: bool = False) -> int:
    """The estimated peak of a call's activations at ``height`` x ``width`` (see the module
    docstring): the larger of the UNet's first-level self-attention scores (``batch``
    rows: 2 with guidance) and the VAE's full-resolution tensors (``images`` pictures)."""
    tokens = (height // 8) * (width // 8)
    attention = batch * tokens ** 2 * element_bytes * (3 if training else 1)
    vae = 6 * vae_channels * height * width * element_bytes * images
    return int(max(attention, vae))


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.0f} MB"


def check_size(label: str, *, height: int, width: int, device: str, **estimate: Any) -> int:
    """The estimated activation bytes of a ``height`` x ``width`` call on ``device``
    (``estimate``: the keyword arguments of ``activation_bytes``), after checking it fits.

    Raises:
        ValueError: a side is more than ``MAX_SIDE``, or the estimate is more than the
            device has free; the message names ``label`` (the size as the caller wrote
            it), the estimate and the largest size of this aspect that fits.
    """
    need = activation_bytes(height, width, **estimate)
    free, where = available_memory(device)
    fits_memory = free is None or need <= free
    if max(height, width) <= MAX_SIDE and fits_memory:
        return need
    best = None
    for long in range(min(max(height, width), MAX_SIDE) // 8 * 8, 7, -8):
        scale = long / max(height, width)
        h, w = (max(8, int(v * scale) // 8 * 8) for v in (height, width))
        if free is None or activation_bytes(h, w, **estimate) <= free:
            best = (w, h)
            break
    todo = (f"the largest of this shape that fits is {best[0]}x{best[1]} (width x height): "
            "use it or a smaller size" if best else
            "even 8x8 does not fit: free some memory (close other notebooks, or "
            "models.clear_cache()) and try again")
    said = (f"{width}x{height} pixels need about {_gb(need)} of memory on {device} by a "
            "simple estimate (self-attention grows with (height/8 x width/8)^2)")
    if not fits_memory:
        raise ValueError(f"{label}: {said}, and {where} {_gb(free or 0)} free; {todo}")
    raise ValueError(f"{label}: {max(height, width)} px is more than {MAX_SIDE} px a side, "
                     "the largest Stable Diffusion is used at here (beyond it the model "
                     f"repeats its subject; {said}); {todo}")


class Diffusion(models.Pretrained):
    """A Stable Diffusion pipeline with its scheduler and default settings.

    Attributes:
        pipe: the diffusers pipeline (shared by the kernel).
        schedule: the ``schedulers.Schedule`` it samples with.
    """

    def __init__(self, loaded: models.Loaded, scheduler: str | None = None) -> None:
        super().__init__(loaded)
        self.pipe = loaded.model
        if scheduler is None and not self.spec.scheduler:  # a pipeline from elsewhere
            self._scheduler = self.pipe.scheduler
            known = schedulers.name_of(self._scheduler)
            cls = type(self._scheduler).__name__
            self.schedule = schedulers.get(known) if known else schedulers.Schedule(cls, cls)
        else:
            self.schedule = self._choose(scheduler)
            self._scheduler = schedulers.make(self.schedule.name, self.pipe.scheduler.config)

    def _choose(self, asked: str | None) -> schedulers.Schedule:
        """The scheduler asked for, else the model's; LCM is meant only for a model
        distilled for it (a warning says so)."""
        spec = self.spec
        name = asked or spec.scheduler or "pndm"
        chosen = schedulers.get(name)
        if name == "lcm" and not spec.adapter:
            compat.warn(f"the 'lcm' scheduler with {spec.name!r}: it needs a model distilled "
                        "for few steps (e.g. 'sd15-inpaint-lcm'); this one will give noisy "
                        "pictures")
        return chosen

    @staticmethod
    def _check_scheduler(scheduler: str | None) -> None:
        if scheduler is not None:
            schedulers.get(scheduler)  # an unknown name fails before any download

    @property
    def steps(self) -> int:
        """The default number of denoising steps (25 with DPM-Solver++, 4 with LCM)."""
        return self.schedule.steps

    @property
    def guidance_scale(self) -> float:
        """The default guidance scale (7.5; 1 for a few-step LCM model)."""
        return self.schedule.guidance

    def _defaults(self, steps: int | None,
                  guidance_scale: float | None) -> tuple[Any, Any]:
        """(steps, guidance) with the model's defaults for the ones left None."""
        return (self.steps if steps is None else steps,
                self.guidance_scale if guidance_scale is None else guidance_scale)

    def _check_size(self, label: str, *, height: int, width: int, guidance_scale: float,
                    images: int = 1) -> int:
        """``check_size`` for this pipeline: its dtype, its VAE, guidance's doubled batch."""
        config = getattr(getattr(self.pipe, "vae", None), "config", None) or {}
        channels = config.get("block_out_channels") or config.get(
            "decoder_block_out_channels") or (128,)
        item = getattr(getattr(self.pipe, "dtype", None), "itemsize", 4)
        return check_size(label, height=height, width=width, device=self.device,
                          element_bytes=int(item),
                          batch=2 * images if guidance_scale > 1 else images, images=images,
                          vae_channels=int(min(channels)))

    def _prompt_tokens(self, text: str | None) -> int:
        if not text:
            return 0
        return len(self.pipe.tokenizer(text, truncation=False)["input_ids"])

    def _check_prompts(self, prompt: str, negative_prompt: str | None,
                       warn: bool = True) -> None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"prompt {prompt!r} must be a non-empty text, e.g. "
                             "'a realistic green dragon'")
        if negative_prompt is not None and not isinstance(negative_prompt, str):
            raise ValueError(f"negative_prompt {negative_prompt!r} must be a text or None")
        limit = int(self.pipe.tokenizer.model_max_length)
        for label, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
            n = self._prompt_tokens(text) if warn else 0
            if n > limit:
                compat.warn(
                    f"the {label} is {n} tokens long and the text encoder reads {limit}: "
                    "the end is cut off. Shorten it to keep every word.")

    def _advise(self, steps: int, guidance_scale: float, negative_prompt: str | None) -> None:
        """Warn, naming the learner's line, when checked settings do not suit the scheduler
        (50 steps or guidance 7.5 with LCM, a negative prompt at guidance <= 1)."""
        for said in schedulers.advice(self.schedule, steps, guidance_scale, negative_prompt):
            compat.warn(said)

    def sampling(self) -> Any:
        """A context in which the pipeline samples with this wrapper's scheduler."""
        return schedulers.using(self.pipe, self._scheduler)

    def has_lora(self) -> bool:
        """True when a LoRA was loaded on top of the model: a name cannot rebuild it, so
        its images carry no recipe."""
        return lora.has_adapters(self)

    def context(self) -> dict[str, Any]:
        """What a recipe says about the pipeline: source, dtype, scheduler class, and the
        LoRA (fused into the UNet at weight 1) and VAE that a few-step model adds."""
        spec = self.spec
        context: dict[str, Any] = {"source": spec.source,
                                   "dtype": str(self.pipe.dtype).replace("torch.", ""),
                                   "scheduler": type(self._scheduler).__name__}
        if spec.adapter:
            context["adapter"] = {"source": spec.adapter, "fused_weight": 1.0}
        if spec.vae:
            context["vae"] = spec.vae
        return context
