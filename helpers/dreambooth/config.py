"""``DreamBoothConfig``: every setting of one DreamBooth LoRA run, checked before any work.

A config is a dataclass of plain values: it is logged with the run, written to and read from
JSON for the command line (``python -m helpers.dreambooth --config cfg.json``), and
``checked()`` validates every setting (naming the bad one and what to use instead) and fills
in the defaults that depend on others, before anything heavy is loaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import checks, compat, images, registry, runtime
from helpers.diffusion import check_size, count, guidance, side
from helpers.tracking import runs_dir

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_ENCODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine",
                 "cosine_with_restarts", "polynomial")
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
# Settings that change what is learned: a resumed run must use the same values.
SAME_ON_RESUME = ("base_model", "instance_prompt", "identifier", "class_prompt",
                  "with_prior_preservation", "prior_loss_weight", "num_class_images",
                  "resolution", "random_flip", "rank", "train_text_encoder", "learning_rate",
                  "lr_scheduler", "lr_warmup_steps", "batch_size", "gradient_accumulation",
                  "mixed_precision", "use_8bit_adam", "max_grad_norm", "seed")


def default_subject() -> Path:
    """The course's subject folder: crops of Chelsea the cat (CC0), see its README."""
    return images.data_dir() / "subject-cat"


@dataclass
class DreamBoothConfig:
    """Everything that defines one DreamBooth LoRA training run.

    The defaults are real settings for a GPU (SD 1.5, 512 px, 400 steps, 100 class images).
    On a CPU a step of SD 1.5 takes about 19 s at 512 px and 6 s at 256 px: use
    ``resolution=256``, ``max_steps`` of 50-100 and a few class images, or tiny mode
    (``HELPERS_TINY_MODELS=1``) to try the code path in seconds. ``train`` prints its own
    estimate, measured on one step, before it starts.

    Attributes:
        base_model: a text-to-image registry name (``models.names("sd")``), a hub id or a
            local diffusers folder; the tiny model in tiny mode.
        instance_dir: the folder with 4-8 photos of the subject (other files are skipped).
        instance_prompt: the prompt for the photos; must contain ``identifier``.
        identifier: the rare word that comes to mean the subject ("sks").
        class_prompt: the same prompt without the identifier, for prior preservation.
        with_prior_preservation: also train on class images drawn by the base model, so
            the class (any cat) keeps looking as before.
        prior_loss_weight: weight of the class images' loss.
        num_class_images: how many class images (made once, then cached).
        class_dir: where class images are cached (default: a folder under the helpers
            cache keyed by model, class prompt and resolution).
        resolution: training size in pixels (square; a multiple of 8).
        random_flip: also train on mirrored photos (both are encoded once).
        rank: LoRA rank (trainable size grows linearly with it).
        train_text_encoder: add LoRA to the text encoder too (it then runs every step).
        learning_rate, lr_scheduler, lr_warmup_steps: the optimiser's schedule
            (``LR_SCHEDULERS``).
        max_steps: optimiser steps.
        batch_size: photos per step and process (plus as many class images).
        gradient_accumulation: micro-batches summed into one optimiser step.
        gradient_checkpointing: recompute activations in the backward pass: less memory,
            30-45 % more time; worth it on a small GPU, rarely on a CPU.
        mixed_precision: "auto" (fp16 on CUDA, else "no"), "no", "fp16" or "bf16".
        use_8bit_adam: bitsandbytes' 8-bit AdamW (CUDA only).
        max_grad_norm: gradient clipping.
        seed: the LoRA's initial weights and every step's data, noise and timesteps.
        validation_prompts: prompts drawn at each validation (default: the instance
            prompt and the class prompt, i.e. with and without the identifier).
        validation_every: steps between validations (0: none); also at step 0 and at the
            end.
        sample_steps, guidance_scale: denoising steps and guidance for validation and
            class images.
        sample_model: the model that draws the class and validation images (default:
            ``base_model``); ``"sd15-lcm"`` draws them with the LCM-LoRA in 4 steps at
            guidance 1 (the CPU choice). It must be a version of ``base_model``'s weights.
        checkpoint_every: steps between checkpoints (0: none).
        output_dir: where checkpoints, validation images and the LoRA go (default:
            ``<runs dir>/dreambooth/<identifier>``).
        device: None (accelerate chooses) or "cpu" to force the CPU.
    """

    base_model: str = "sd15"
    instance_dir: str = field(default_factory=lambda: str(default_subject()))
    instance_prompt: str = "a photo of sks cat"
    identifier: str = "sks"
    class_prompt: str = "a photo of a cat"
    with_prior_preservation: bool = True
    prior_loss_weight: float = 1.0
    num_class_images: int = 100
    class_dir: str | None = None
    resolution: int = 512
    random_flip: bool = True
    rank: int = 4
    train_text_encoder: bool = False
    learning_rate: float = 1e-4
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    max_steps: int = 400
    batch_size: int = 1
    gradient_accumulation: int = 1
    gradient_checkpointing: bool = False
    mixed_precision: str = "auto"
    use_8bit_adam: bool = False
    max_grad_norm: float = 1.0
    seed: int = 0
    validation_prompts: list[str] | None = None
    validation_every: int = 100
    sample_steps: int = 25
    guidance_scale: float = 7.5
    sample_model: str | None = None
    checkpoint_every: int = 100
    output_dir: str | None = None
    device: str | None = None

    # ---------------------------------------------------------- conversions
    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DreamBoothConfig:
        """A config from a dict; unknown keys are an error that names close matches."""
        if not isinstance(values, Mapping):
            raise ValueError(f"from_dict takes a dict of setting -> value, not {values!r:.60}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in values if k not in known]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"unknown DreamBooth setting {', '.join(hints)}; the settings "
                             f"are {', '.join(sorted(known))}")
        return cls(**dict(values))

    @classmethod
    def from_json(cls, path: str | Path) -> DreamBoothConfig:
        """A config from a JSON file of settings (``to_json`` writes one)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist; write one "
                                    "with `python -m helpers.dreambooth --write-config FILE`")
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(
                f"config file {str(path)!r} is not valid JSON text ({err}); write one with "
                "`python -m helpers.dreambooth --write-config FILE`") from None
        if not isinstance(values, dict):
            raise ValueError(f"config file {str(path)!r} must hold a JSON object of settings")
        return cls.from_dict(values)

    def to_json(self, path: str | Path) -> Path:
        """Write the settings to a JSON file and return its path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    # ---------------------------------------------------------- checks
    @property
    def output_path(self) -> Path:
        """``output_dir`` as a path; ``checked()`` fills in its default.

        Raises:
            ValueError: ``output_dir`` is not set yet.
        """
        if not self.output_dir:
            raise ValueError("output_dir is not set; use config.checked(), which fills in "
                             "the default (<runs dir>/dreambooth/<identifier>)")
        return Path(self.output_dir)

    def checked(self) -> DreamBoothConfig:
        """A copy with defaults filled in and every number a plain Python one (a NumPy
        ``np.int64(7)`` seed becomes ``7``), after checking every setting.

        Raises:
            ValueError: a setting is out of range or inconsistent; the message names it and
                says what to use instead. Nothing heavy has run yet.
        """
        plain = check_settings(self)
        prompts = self.validation_prompts
        if prompts is None:
            prompts = [self.instance_prompt]
            if self.class_prompt.strip():
                prompts.append(self.class_prompt)
        out = self.output_dir or str(runs_dir() / "dreambooth" / self.identifier)
        return dataclasses.replace(self, **plain, validation_prompts=list(prompts),
                                   output_dir=out)


def has_word(text: str, word: str) -> bool:
    """True when ``word`` stands in ``text`` as a whole word (any case)."""
    return re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", text, re.I) is not None


def check_settings(c: DreamBoothConfig) -> dict[str, Any]:
    """The numbers and flags as plain Python values, after checking every setting.

    Raises:
        ValueError: naming the first bad setting and what to do instead.
    """
    for name in ("instance_prompt", "identifier", "class_prompt", "base_model"):
        if not isinstance(getattr(c, name), str):
            raise ValueError(f"{name} {getattr(c, name)!r} must be a string")
    if not c.identifier.strip() or re.search(r"\s", c.identifier):
        raise ValueError(f"identifier {c.identifier!r} must be one word, e.g. 'sks'")
    if not has_word(c.instance_prompt, c.identifier):
        raise ValueError(
            f"instance_prompt {c.instance_prompt!r} does not contain the identifier "
            f"{c.identifier!r}. Put it before the class noun, e.g. "
            f"'a photo of {c.identifier} cat', or set identifier= to the word you use."
        )
    if c.with_prior_preservation and not c.class_prompt.strip():
        raise ValueError("with_prior_preservation needs a class_prompt such as 'a photo of a "
                         "cat' (the instance prompt without the identifier)")
    if c.class_prompt.strip() and has_word(c.class_prompt, c.identifier):
        raise ValueError(f"class_prompt {c.class_prompt!r} contains the identifier "
                         f"{c.identifier!r}; it should describe any member of the class, "
                         "e.g. 'a photo of a cat'")
    ints = {"num_class_images": 1, "rank": 1, "max_steps": 1, "batch_size": 1,
            "gradient_accumulation": 1, "lr_warmup_steps": 0, "validation_every": 0,
            "checkpoint_every": 0, "sample_steps": 1, "seed": 0}
    plain: dict[str, Any] = {name: count(name, getattr(c, name), low,
                                         None if name == "seed" else 10**7)
                             for name, low in ints.items()}
    if plain["seed"] >= 2**32:  # accelerate seeds NumPy too, which takes 32 bits
        raise ValueError(f"seed {c.seed} must be below 2**32, e.g. 0 or 1234")
    plain["resolution"] = side("resolution", c.resolution, 8,
                               hint="512 for SD 1.5, 256 for a quicker run, 64 in tiny mode")
    plain["learning_rate"] = checks.number("learning_rate", c.learning_rate, 0, 1,
                                           low_open=True, high_open=True,
                                           hint="1e-4 is a good start for LoRA")
    for name in ("prior_loss_weight", "max_grad_norm"):
        plain[name] = checks.number(name, getattr(c, name), 0)
    plain["guidance_scale"] = guidance(c.guidance_scale)
    for name in ("with_prior_preservation", "random_flip", "train_text_encoder",
                 "gradient_checkpointing", "use_8bit_adam"):
        plain[name] = checks.flag(name, getattr(c, name))
    if c.lr_scheduler not in LR_SCHEDULERS:
        raise ValueError(f"lr_scheduler {c.lr_scheduler!r} is not one of "
                         f"{', '.join(LR_SCHEDULERS)}")
    if c.mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision {c.mixed_precision!r} is not one of "
                         f"{', '.join(MIXED_PRECISION)}")
    if c.validation_prompts is not None and (
            isinstance(c.validation_prompts, str)
            or not all(isinstance(p, str) and p.strip() for p in c.validation_prompts)):
        raise ValueError(f"validation_prompts {c.validation_prompts!r} must be a list of "
                         "non-empty prompts, or None for the instance and class prompts")
    if c.train_text_encoder and (problem := compat.text_encoder_lora_problem()):
        raise ValueError(f"train_text_encoder=True cannot work here: {problem}. Train the "
                         "UNet only (train_text_encoder=False), which is what the lesson does.")
    if c.device is not None:
        runtime.device(c.device)  # raises for an unknown or absent device
    try:  # an unknown name, before loading
        registry.resolve(c.base_model, family="sd")
    except ValueError as err:
        raise ValueError(f"base_model: {err}") from None
    _check_memory(dataclasses.replace(c, **plain))
    if c.sample_model is not None:
        drawer = registry.resolve(c.sample_model, family="sd")
        real = registry.resolve(c.sample_model, family="sd", tiny=False)
        if real.source != registry.resolve(c.base_model, family="sd", tiny=False).source:
            raise ValueError(
                f"sample_model {c.sample_model!r} has other weights ({real.source}) than "
                f"base_model {c.base_model!r}: validation draws with the UNet "
                "being trained, so it must be a version of the same model (e.g. 'sd15-lcm' "
                "for 'sd15'), or None")
        if drawer.scheduler:
            from helpers import schedulers

            for said in schedulers.advice(drawer.scheduler, c.sample_steps, c.guidance_scale):
                said = said.replace("steps=", "sample_steps=")
                compat.warn(f"sample_model {c.sample_model!r}: {said}")
    return plain


def _check_memory(c: DreamBoothConfig) -> None:
    """Refuse a resolution whose training activations (``diffusion.activation_bytes``, with
    training's gradients) are more than the training device has free, or above
    ``diffusion.MAX_SIDE``: before any model is loaded."""
    dev, _ = training_device(c)
    half = c.mixed_precision in ("fp16", "bf16") or (
        c.mixed_precision == "auto" and dev.startswith("cuda"))
    rows = c.batch_size * (2 if c.with_prior_preservation else 1)
    check_size(f"DreamBooth training at resolution {c.resolution}", height=c.resolution,
               width=c.resolution, device=dev, element_bytes=2 if half else 4, batch=rows,
               training=True)  # photos
    # are encoded one at a time, so the VAE's share is one picture's


def training_device(cfg: DreamBoothConfig) -> tuple[str, bool]:
    """(the device training runs on, whether accelerate is told to use the CPU)."""
    use_cpu = cfg.device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "").lower() in (
        "1", "true", "yes")
    return ("cpu" if use_cpu else runtime.device(cfg.device)), use_cpu


def mixed_precision(cfg: DreamBoothConfig) -> tuple[str, bool]:
    """(accelerate's mixed-precision mode, whether to force the CPU), checked up front."""
    dev, use_cpu = training_device(cfg)
    mode = cfg.mixed_precision
    if mode == "auto":
        mode = "fp16" if dev.startswith("cuda") else "no"
    if mode == "fp16" and not dev.startswith("cuda"):
        raise ValueError(f"mixed_precision='fp16' needs a CUDA GPU, and training runs on {dev}; "
                         "use 'no' (or 'bf16' on a CPU that supports it)")
    if cfg.use_8bit_adam:
        if not dev.startswith("cuda"):
            raise ValueError(f"use_8bit_adam=True needs a CUDA GPU, and training runs on {dev}; "
                             "set use_8bit_adam=False (for a LoRA AdamW's state is small)")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as err:
            raise ValueError("use_8bit_adam=True needs the bitsandbytes package: "
                             "`pip install bitsandbytes`, or set use_8bit_adam=False") from err
    return mode, use_cpu
