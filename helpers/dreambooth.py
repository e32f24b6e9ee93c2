"""DreamBooth with LoRA: teach Stable Diffusion one subject from a few photos.

``train(config)`` fine-tunes small low-rank adapters (LoRA, with peft) inside the UNet of a
Stable Diffusion model on 4-8 photos of one subject, so that a prompt with a rare
identifier ("a photo of sks cat") draws that subject. Prior preservation keeps the class
("a photo of a cat") as it was: the base model first draws class images (cached on disk,
made once), and each step also trains on one of them with the plain class prompt.

What makes the loop cheap and safe:

- the photos are encoded to latents and the prompts to embeddings **once**, before the loop;
  then the text encoder is released and the VAE keeps only its decoder (for the validation
  images), off the training device between validations;
- every step's batch, noise and timesteps come from a generator seeded by (seed, step), so
  a run interrupted and resumed from a checkpoint (``resume="latest"``) ends with exactly
  the weights of an uninterrupted one;
- it is built on accelerate: the same code runs in one process here and under
  ``accelerate launch`` on several GPUs or machines (``python -m helpers.dreambooth``);
- loss, prior loss, learning rate, the loss on a fixed evaluation batch and validation
  images with and without the identifier go to a ``tracking.Run``; the instance folder is
  versioned with ``Run.log_dataset``.

The LoRA is saved as ``pytorch_lora_weights.safetensors``; ``load_lora(pipe, folder)`` puts
it into a text-to-image or an inpainting pipeline of the same base model.

Importing this module is cheap: torch, diffusers, peft and accelerate are imported inside
the functions that need them.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import gc
import hashlib
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers import images, models, runtime, tracking

if TYPE_CHECKING:
    import torch
    from PIL import Image

LORA_FILE = "pytorch_lora_weights.safetensors"
"""The file a LoRA folder holds (diffusers' format, loadable by ``load_lora_weights``)."""
INFO_FILE = "dreambooth.json"
"""Beside the LoRA: the base model, prompts and settings it was trained with."""
ADAPTER = "dreambooth"
"""The adapter name ``load_lora`` uses in a pipeline."""
UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_ENCODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine",
                 "cosine_with_restarts", "polynomial")
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
# Settings that change what is learned: a resumed run must use the same values.
_SAME_ON_RESUME = ("base_model", "instance_prompt", "identifier", "class_prompt",
                   "with_prior_preservation", "prior_loss_weight", "num_class_images",
                   "resolution", "random_flip", "rank", "train_text_encoder", "learning_rate",
                   "lr_scheduler", "lr_warmup_steps", "batch_size", "gradient_accumulation",
                   "mixed_precision", "use_8bit_adam", "max_grad_norm", "seed")
_DOC_FILES = re.compile(r"^(readme|licen[cs]e|copying|notice)\b|\.md$|^manifest\.json$", re.I)


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
        except json.JSONDecodeError as err:
            raise ValueError(f"config file {str(path)!r} is not valid JSON ({err})") from err
        if not isinstance(values, dict):
            raise ValueError(f"config file {str(path)!r} must hold a JSON object of settings")
        return cls.from_dict(values)

    def to_json(self, path: str | Path) -> Path:
        """Write the settings to a JSON file and return its path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    # ---------------------------------------------------------- checks
    def checked(self) -> DreamBoothConfig:
        """A copy with defaults filled in, after checking every setting.

        Raises:
            ValueError: a setting is out of range or inconsistent; the message names it and
                says what to use instead. Nothing heavy has run yet.
        """
        _check_settings(self)
        prompts = self.validation_prompts
        if prompts is None:
            prompts = [self.instance_prompt]
            if self.class_prompt.strip():
                prompts.append(self.class_prompt)
        out = self.output_dir or str(tracking.runs_dir() / "dreambooth" / self.identifier)
        return dataclasses.replace(self, validation_prompts=list(prompts), output_dir=out)


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", text, re.I) is not None


def _check_settings(c: DreamBoothConfig) -> None:
    """Raise a ValueError naming the first bad setting and what to do instead."""
    for name in ("instance_prompt", "identifier", "class_prompt", "base_model"):
        if not isinstance(getattr(c, name), str):
            raise ValueError(f"{name} {getattr(c, name)!r} must be a string")
    if not c.identifier.strip() or re.search(r"\s", c.identifier):
        raise ValueError(f"identifier {c.identifier!r} must be one word, e.g. 'sks'")
    if not _has_word(c.instance_prompt, c.identifier):
        raise ValueError(
            f"instance_prompt {c.instance_prompt!r} does not contain the identifier "
            f"{c.identifier!r}. Put it before the class noun, e.g. "
            f"'a photo of {c.identifier} cat', or set identifier= to the word you use."
        )
    if c.with_prior_preservation and not c.class_prompt.strip():
        raise ValueError("with_prior_preservation needs a class_prompt such as 'a photo of a "
                         "cat' (the instance prompt without the identifier)")
    if c.class_prompt.strip() and _has_word(c.class_prompt, c.identifier):
        raise ValueError(f"class_prompt {c.class_prompt!r} contains the identifier "
                         f"{c.identifier!r}; it should describe any member of the class, "
                         "e.g. 'a photo of a cat'")
    ints = {"num_class_images": 1, "resolution": 8, "rank": 1, "max_steps": 1, "batch_size": 1,
            "gradient_accumulation": 1, "lr_warmup_steps": 0, "validation_every": 0,
            "checkpoint_every": 0, "sample_steps": 1, "seed": 0}
    for name, low in ints.items():
        if not _is_int(getattr(c, name), low):
            raise ValueError(f"{name} {getattr(c, name)!r} must be an integer >= {low}")
    if c.resolution % 8:
        raise ValueError(f"resolution {c.resolution} must be a multiple of 8 pixels "
                         "(512 for SD 1.5, 256 for a quicker run, 64 in tiny mode)")
    if not _is_number(c.learning_rate) or not 0 < c.learning_rate < 1:
        raise ValueError(f"learning_rate {c.learning_rate!r} must lie in (0, 1); "
                         "1e-4 is a good start for LoRA")
    for name in ("prior_loss_weight", "max_grad_norm", "guidance_scale"):
        if not _is_number(getattr(c, name)) or getattr(c, name) < 0:
            raise ValueError(f"{name} {getattr(c, name)!r} must be a number >= 0")
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
    if c.train_text_encoder and (problem := _text_encoder_lora_problem()):
        raise ValueError(f"train_text_encoder=True cannot work here: {problem}. Train the "
                         "UNet only (train_text_encoder=False), which is what the lesson does.")
    if c.device is not None:
        runtime.device(c.device)  # raises for an unknown or absent device
    models.resolve(c.base_model, family="sd")  # raises for an unknown name, before loading


def _text_encoder_lora_problem() -> str | None:
    """Why a LoRA on the text encoder cannot be trained or loaded here, or None.

    transformers puts LoRA into its models (and diffusers loads a text-encoder LoRA) through
    its own peft integration, which asks for a minimum peft version.
    """
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    try:
        from transformers.integrations.peft import MIN_PEFT_VERSION
    except ImportError:
        return None
    try:
        installed = version("peft")
    except PackageNotFoundError:
        return "peft is not installed"
    if Version(installed) < Version(MIN_PEFT_VERSION):
        return (f"transformers {version('transformers')} needs peft >= {MIN_PEFT_VERSION} for "
                f"a text-encoder LoRA, and peft {installed} is installed")
    return None


# ---------------------------------------------------------------- the photos

@dataclass
class InstancePhotos:
    """The subject's photos found in a folder, and the files skipped (with why)."""

    folder: Path
    paths: list[Path]
    images: list[Image.Image]
    skipped: dict[str, str]

    def __len__(self) -> int:
        return len(self.paths)


def instance_photos(folder: str | Path) -> InstancePhotos:
    """Read every photo in ``folder`` (not its subfolders) as upright RGB.

    Files that are not readable images are skipped with a warning that names each one;
    READMEs, licences, ``*.md`` and ``manifest.json`` are left alone without a warning.

    Raises:
        ValueError: the folder does not exist or holds no readable image.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ValueError(
            f"instance_dir {str(root)!r} does not exist or is not a folder. Put 4-8 photos of "
            "your subject in a folder and pass its path, or use dreambooth.default_subject()."
        )
    paths, photos, skipped = [], [], {}
    for path in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
        if _DOC_FILES.search(path.name):
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped[path.name] = "not an image file"
            continue
        try:
            photos.append(images.load(path))
        except (ValueError, OSError):
            skipped[path.name] = "not readable as an image"
            continue
        paths.append(path)
    if skipped:
        listed = "; ".join(f"{name} ({why})" for name, why in skipped.items())
        warnings.warn(f"skipped {len(skipped)} file(s) in {root} that are not readable "
                      f"images: {listed}", stacklevel=2)
    if not paths:
        raise ValueError(
            f"instance_dir {str(root)!r} holds no readable image "
            f"({len(skipped)} other file(s)). Add 4-8 photos (PNG, JPEG, WebP) of the subject."
        )
    return InstancePhotos(root, paths, photos, skipped)


def collect_photos(sources: Iterable[Any], folder: str | Path) -> Path:
    """Copy photos (paths, URLs, PIL images or arrays) into ``folder`` as upright RGB PNGs.

    Use it to train on your own subject: ``collect_photos(["me1.jpg", "me2.jpg"], "me")``.
    Unreadable sources are skipped with a warning naming them; files already in the folder
    are kept.

    Raises:
        ValueError: none of the sources is a readable image.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    written, failed = 0, []
    for i, src in enumerate(sources):
        try:
            photo = images.load(src)
        except (ValueError, OSError, TypeError) as err:
            failed.append(f"{src!r:.60} ({str(err).split(' (')[0]})")
            continue
        stem = Path(str(src)).stem if isinstance(src, (str, os.PathLike)) else "photo"
        photo.save(root / f"{i:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '-', stem)[:40]}.png")
        written += 1
    if failed:
        warnings.warn(f"skipped {len(failed)} source(s) that are not images: "
                      + "; ".join(failed), stacklevel=2)
    if not written:
        raise ValueError("none of the sources is a readable image; pass paths, URLs or PIL "
                         "images of your subject")
    return root


def upload_widget(folder: str | Path) -> Any:
    """A file-upload button that saves the chosen photos into ``folder`` (for notebooks)."""
    import ipywidgets as w

    root = Path(folder)
    button = w.FileUpload(accept="image/*", multiple=True, description="Add photos")
    status = w.HTML(f"Photos go to <code>{root}</code>.")

    def save(change: dict[str, Any]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        saved = []
        for item in change["new"]:
            name = Path(str(item["name"])).name
            (root / name).write_bytes(bytes(item["content"]))
            saved.append(name)
        status.value = f"Saved {len(saved)} photo(s) to <code>{root}</code>: {', '.join(saved)}"

    button.observe(save, names="value")
    return w.VBox([button, status])


def _square(photo: Image.Image, size: int) -> Image.Image:
    """Resize the short side to ``size`` and crop the centre: a (size, size) RGB image."""
    from PIL import Image as PILImage

    w, h = photo.size
    scale = size / min(w, h)
    resized = photo.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                           PILImage.Resampling.LANCZOS)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))


def _to_tensor(photo: Image.Image) -> torch.Tensor:
    """(3, H, W) float32 in [-1, 1], as the VAE expects."""
    import numpy as np
    import torch

    array = np.asarray(photo, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


# ---------------------------------------------------------------- models

def _load_pipeline(base_model: str, device: str, dtype: Any) -> Any:
    """A fresh text-to-image pipeline that ``train`` owns (not the kernel-wide cached one),
    so adding a LoRA or dropping the text encoder never changes a pipeline a cell uses."""
    pipe = models.load(base_model, device=device, dtype=dtype, family="sd",
                       cached=False).model
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _embed(pipe: Any, prompts: Sequence[str]) -> torch.Tensor:
    """(P, 77, D) text embeddings of ``prompts``, as the pipeline computes them."""
    import torch

    ids = _tokens(pipe.tokenizer, prompts).to(pipe.text_encoder.device)
    with torch.no_grad():
        return pipe.text_encoder(ids)[0]  # type: ignore[no-any-return]


def _tokens(tokenizer: Any, prompts: Sequence[str]) -> torch.Tensor:
    return tokenizer(list(prompts), padding="max_length", truncation=True,
                     max_length=tokenizer.model_max_length, return_tensors="pt").input_ids


# ---------------------------------------------------------------- class images

def class_dir(config: DreamBoothConfig) -> Path:
    """Where ``config``'s class images are cached: ``config.class_dir``, or a folder under
    the helpers cache keyed by the model, the class prompt and the resolution."""
    if config.class_dir:
        return Path(config.class_dir)
    spec = models.resolve(config.base_model, family="sd")
    key = {"model": spec.name, "source": str(models.fetch(spec)) if spec.is_tiny else spec.source,
           "revision": spec.revision, "prompt": config.class_prompt,
           "resolution": config.resolution}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9]+", "-", config.class_prompt.lower()).strip("-")[:40] or "class"
    return models.cache_dir() / "class_images" / f"{slug}-{config.resolution}-{digest}"


def _existing_class_images(folder: Path) -> list[Path]:
    return sorted(folder.glob("class-*.png")) if folder.is_dir() else []


def class_images(config: DreamBoothConfig, pipe: Any = None,
                 batch_size: int = 4) -> list[Path]:
    """The first ``config.num_class_images`` class images, drawing only the missing ones.

    Image ``i`` is drawn from seed ``i`` with the class prompt, so a cache folder grows the
    same way whatever the batch size. A folder that already holds enough is used as it is.

    Args:
        pipe: the base text-to-image pipeline to draw with (default: a fresh one of
            ``config.base_model``, released afterwards).
    """
    import torch

    config = config.checked()
    folder = class_dir(config)
    have = _existing_class_images(folder)
    if len(have) >= config.num_class_images:
        return have[: config.num_class_images]
    own = pipe is None
    if pipe is None:
        pipe = _load_pipeline(config.base_model, runtime.device(config.device),
                              models.default_dtype("sd", runtime.device(config.device)))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "class_images.json").write_text(json.dumps({
        "base_model": config.base_model, "prompt": config.class_prompt,
        "resolution": config.resolution, "steps": config.sample_steps,
        "guidance_scale": config.guidance_scale}, indent=2) + "\n", encoding="utf-8")
    missing = [i for i in range(config.num_class_images)
               if not (folder / f"class-{i:04d}.png").exists()]
    from tqdm.auto import tqdm

    print(f"Drawing {len(missing)} class image(s) of {config.class_prompt!r} into {folder}")
    for start in tqdm(range(0, len(missing), batch_size), desc="class images",
                      disable=len(missing) <= batch_size):
        chunk = missing[start:start + batch_size]
        out = pipe(prompt=[config.class_prompt] * len(chunk),
                   num_inference_steps=config.sample_steps,
                   guidance_scale=config.guidance_scale, height=config.resolution,
                   width=config.resolution,
                   generator=[torch.Generator("cpu").manual_seed(i) for i in chunk])
        for i, image in zip(chunk, out.images):
            tmp = folder / f".class-{i:04d}.png.tmp"
            image.save(tmp, format="PNG")
            os.replace(tmp, folder / f"class-{i:04d}.png")
    if own:
        del pipe
        _release()
    return _existing_class_images(folder)[: config.num_class_images]


# ---------------------------------------------------------------- cached inputs

@dataclass
class _Latents:
    """VAE latent distributions of a set of pictures: mean and std, (N, 4, h, w) float32,
    mirrored copies included. A sample is ``mean + std * noise``, scaled by the VAE factor."""

    mean: torch.Tensor
    std: torch.Tensor
    scale: float

    def __len__(self) -> int:
        return int(self.mean.shape[0])


def _encode(vae: Any, pictures: Sequence[Image.Image], resolution: int, flip: bool,
            device: str) -> _Latents:
    """Encode each picture once (one at a time, so memory stays small)."""
    import torch
    from PIL import Image as PILImage

    means, stds = [], []
    for picture in pictures:
        square = _square(picture, resolution)
        mirrored = square.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)
        variants = [square, mirrored] if flip else [square]
        for variant in variants:
            pixels = _to_tensor(variant)[None].to(device, vae.dtype)
            with torch.no_grad():
                dist = vae.encode(pixels).latent_dist
            means.append(dist.mean.float().cpu())
            stds.append(dist.std.float().cpu())
    return _Latents(torch.cat(means), torch.cat(stds), float(vae.config.scaling_factor))


@dataclass
class _Inputs:
    """What every step reads, computed once before the loop (on the CPU, moved per step)."""

    instance: _Latents
    klass: _Latents | None
    instance_embeds: torch.Tensor | None  # (1, 77, D); None when the text encoder trains
    class_embeds: torch.Tensor | None
    instance_ids: torch.Tensor  # (1, 77) token ids
    class_ids: torch.Tensor | None
    eval_latents: torch.Tensor  # (E, 4, h, w): the fixed evaluation batch
    eval_noise: torch.Tensor
    eval_timesteps: torch.Tensor
    validation_embeds: dict[str, torch.Tensor]
    negative_embeds: torch.Tensor | None


def _prepare_inputs(cfg: DreamBoothConfig, pipe: Any, photos: InstancePhotos,
                    class_paths: list[Path], device: str) -> _Inputs:
    import torch

    instance = _encode(pipe.vae, photos.images, cfg.resolution, cfg.random_flip, device)
    klass = None
    if cfg.with_prior_preservation:
        klass = _encode(pipe.vae, [images.load(p) for p in class_paths], cfg.resolution,
                        cfg.random_flip, device)
    instance_ids = _tokens(pipe.tokenizer, [cfg.instance_prompt])
    class_ids = _tokens(pipe.tokenizer, [cfg.class_prompt]) if klass is not None else None
    frozen_text = not cfg.train_text_encoder
    prompts = list(dict.fromkeys([cfg.instance_prompt, cfg.class_prompt,
                                  *(cfg.validation_prompts or []), ""]))
    embeds = dict(zip(prompts, _embed(pipe, prompts).float().cpu())) if frozen_text else {}
    # a fixed evaluation batch: every photo (unflipped) at three timesteps, with fixed noise
    g = torch.Generator().manual_seed(cfg.seed + 12345)
    step = 2 if cfg.random_flip else 1
    base = instance.mean[::step] * instance.scale
    n_t = pipe.scheduler.config.num_train_timesteps
    times = torch.tensor([n_t // 4, n_t // 2, 3 * n_t // 4])
    eval_latents = base.repeat_interleave(len(times), dim=0)
    return _Inputs(
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


def _release() -> None:
    """Hand freed memory back (Python objects, and the CUDA cache where there is one)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- one step

def _step_generator(seed: int, *parts: int) -> torch.Generator:
    """A CPU generator for one (step, micro-batch, process): the same draw on any device,
    and the same after a resume."""
    import torch

    digest = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _sample(latents: _Latents, count: int, g: torch.Generator) -> torch.Tensor:
    import torch

    index = torch.randint(len(latents), (count,), generator=g)
    noise = torch.randn(latents.mean[index].shape, generator=g)
    return (latents.mean[index] + latents.std[index] * noise) * latents.scale


def _batch(cfg: DreamBoothConfig, inputs: _Inputs, g: torch.Generator,
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
    batch = {"latents": latents, "noise": torch.randn(latents.shape, generator=g),
             "timesteps": torch.randint(0, n_train_timesteps, (len(latents),), generator=g),
             "ids": torch.cat(ids)}
    if embeds:
        batch["embeds"] = torch.cat(embeds)  # type: ignore[arg-type]
    return batch


def _loss(unet: Any, text_encoder: Any, scheduler: Any, batch: dict[str, torch.Tensor],
          prior: bool, prior_weight: float, device: Any,
          dtype: Any) -> tuple[torch.Tensor, dict[str, float]]:
    """The denoising loss of one micro-batch: (loss to backpropagate, its parts)."""
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
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    if not prior:
        loss = F.mse_loss(pred.float(), target.float())
        return loss, {"loss": float(loss.detach()), "instance_loss": float(loss.detach())}
    pred, prior_pred = pred.chunk(2)
    target, prior_target = target.chunk(2)
    instance_loss = F.mse_loss(pred.float(), target.float())
    prior_loss = F.mse_loss(prior_pred.float(), prior_target.float())
    loss = instance_loss + prior_weight * prior_loss
    return loss, {"loss": float(loss.detach()), "instance_loss": float(instance_loss.detach()),
                  "prior_loss": float(prior_loss.detach())}


def _eval_loss(unet: Any, text_encoder: Any, scheduler: Any, inputs: _Inputs, device: Any,
               dtype: Any, chunk: int) -> float:
    """The mean denoising loss on the fixed evaluation batch (photos x 3 timesteps)."""
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    with torch.no_grad():
        if inputs.instance_embeds is not None:
            embed = inputs.instance_embeds.to(device, dtype)
        else:
            embed = text_encoder(inputs.instance_ids.to(device))[0]
        for start in range(0, len(inputs.eval_latents), chunk):
            latents = inputs.eval_latents[start:start + chunk].to(device, dtype)
            noise = inputs.eval_noise[start:start + chunk].to(device, dtype)
            timesteps = inputs.eval_timesteps[start:start + chunk].to(device)
            noisy = scheduler.add_noise(latents, noise, timesteps)
            pred = unet(noisy, timesteps,
                        encoder_hidden_states=embed.expand(len(latents), -1, -1)).sample
            if scheduler.config.prediction_type == "v_prediction":
                target = scheduler.get_velocity(latents, noise, timesteps)
            else:
                target = noise
            total += float(F.mse_loss(pred.float(), target.float(), reduction="sum"))
            count += pred.numel()
    return total / count


# ---------------------------------------------------------------- results

@dataclass
class ValidationImage:
    """One validation image: the step it was drawn at, its prompt, and where it is saved."""

    step: int
    prompt: str
    path: Path
    with_identifier: bool

    @property
    def image(self) -> Image.Image:
        return images.load(self.path)


@dataclass
class DreamBoothResult:
    """What ``train`` made.

    Attributes:
        lora_dir: the folder with ``pytorch_lora_weights.safetensors`` (for ``load_lora``).
        final_loss: the training loss at the last step.
        history: one dict per step: step, loss, instance_loss, prior_loss (with prior
            preservation), lr.
        eval_losses: step -> loss on the fixed evaluation batch (every validation).
        validation: the validation images, in order of step then prompt.
        steps: optimiser steps done; seconds: wall time of this call.
        trainable_parameters, unet_parameters: LoRA size vs the UNet's.
        skipped: files of the instance folder that were not readable images, with why.
    """

    lora_dir: Path
    output_dir: Path
    final_loss: float
    history: list[dict[str, float]]
    eval_losses: dict[int, float]
    validation: list[ValidationImage]
    steps: int
    seconds: float
    trainable_parameters: int
    unet_parameters: int
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def losses(self) -> list[float]:
        """The training loss of every step."""
        return [h["loss"] for h in self.history]

    def validation_at(self, step: int) -> list[ValidationImage]:
        """The validation images drawn at ``step``."""
        return [v for v in self.validation if v.step == step]

    def validation_steps(self) -> list[int]:
        return sorted({v.step for v in self.validation})


# ---------------------------------------------------------------- output folder

def _checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (their ``progress.json`` is written last), oldest first."""
    found = []
    for folder in (out / "checkpoints").glob("step-*"):
        match = re.fullmatch(r"step-(\d+)", folder.name)
        if match and (folder / "progress.json").exists():
            found.append((int(match.group(1)), folder))
    return sorted(found)


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _check_output(cfg: DreamBoothConfig, resume: str | Path | None) -> Path | None:
    """The checkpoint to resume from (or None), after checking that nothing saved is lost.

    Raises:
        ValueError: ``output_dir`` holds a run and ``resume`` is None; the resumed run used
            other settings; ``resume`` names no checkpoint.
    """
    if resume is not None and not isinstance(resume, (str, os.PathLike)):
        raise ValueError(f"resume={resume!r} must be None, 'latest' or a checkpoint folder")
    out = Path(cfg.output_dir or "")
    saved = _checkpoints(out)
    finished = (out / "lora" / LORA_FILE).exists()
    if resume is None:
        if saved or finished:
            what = (f"checkpoints at step {', '.join(str(s) for s, _ in saved)}" if saved
                    else "a finished LoRA")
            raise ValueError(
                f"output_dir {str(out)!r} already holds a DreamBooth run ({what}). Pass "
                "resume='latest' to continue it, or choose another output_dir; nothing was "
                "changed."
            )
        return None
    if resume == "latest" and finished and not saved:
        steps = json.loads((out / "lora" / INFO_FILE).read_text(encoding="utf-8")).get("steps")
        if steps != cfg.max_steps:
            raise ValueError(
                f"the run in {str(out)!r} finished at step {steps} and kept no checkpoint, so "
                f"it cannot go on to max_steps={cfg.max_steps}; use another output_dir (the "
                "finished LoRA stays where it is)."
            )
    if resume != "latest":
        folder = Path(resume)
        if not (folder / "progress.json").exists():
            raise ValueError(f"resume={str(resume)!r} is not a checkpoint folder (no "
                             "progress.json); pass 'latest' or a folder such as "
                             f"{str(out / 'checkpoints' / 'step-000100')!r}")
        saved = [(json.loads((folder / "progress.json").read_text())["step"], folder)]
    if (out / "config.json").exists():
        before = json.loads((out / "config.json").read_text(encoding="utf-8"))
        now = cfg.to_dict()
        changed = [f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in _SAME_ON_RESUME
                   if before.get(k) != now[k]]
        if changed:
            raise ValueError(
                f"cannot resume the run in {str(out)!r}: it was trained with other settings "
                f"({'; '.join(changed)}). Use the same settings, or another output_dir for a "
                "new run."
            )
    return saved[-1][1] if saved else None


# ---------------------------------------------------------------- accelerate

def _mixed_precision(cfg: DreamBoothConfig) -> tuple[str, bool]:
    """(accelerate's mixed-precision mode, whether to force the CPU), checked up front."""
    use_cpu = cfg.device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "").lower() in (
        "1", "true", "yes")
    dev = "cpu" if use_cpu else runtime.device(cfg.device)
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


def _accelerator(cfg: DreamBoothConfig, mode: str, use_cpu: bool) -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState, PartialState

    # In a notebook an earlier run's single-process state would pin its settings (mixed
    # precision, CPU) for the life of the kernel; a distributed state is left alone.
    if PartialState._shared_state and not os.environ.get("WORLD_SIZE"):
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return Accelerator(gradient_accumulation_steps=cfg.gradient_accumulation,
                       mixed_precision=mode, cpu=use_cpu)


def _lora_layers(unet: Any, text_encoder: Any) -> dict[str, Any]:
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    layers = {"unet_lora_layers": convert_state_dict_to_diffusers(
        get_peft_model_state_dict(unet))}
    if text_encoder is not None:
        layers["text_encoder_lora_layers"] = convert_state_dict_to_diffusers(
            get_peft_model_state_dict(text_encoder))
    return layers


def _save_lora(folder: Path, unet: Any, text_encoder: Any) -> None:
    from diffusers import StableDiffusionPipeline

    StableDiffusionPipeline.save_lora_weights(str(folder), **_lora_layers(unet, text_encoder),
                                              safe_serialization=True)


def _load_lora_state(folder: Path, unet: Any, text_encoder: Any) -> None:
    """Put the LoRA weights saved in a checkpoint back into the training models."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft.utils import set_peft_model_state_dict

    state, _ = StableDiffusionPipeline.lora_state_dict(str(folder))
    unet_state = convert_unet_state_dict_to_peft(
        {k.removeprefix("unet."): v for k, v in state.items() if k.startswith("unet.")})
    result = set_peft_model_state_dict(unet, unet_state, adapter_name="default")
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"the checkpoint {folder} does not fit this model: unexpected LoRA "
                         f"weights {result.unexpected_keys[:3]}")
    if text_encoder is not None:
        from diffusers.training_utils import _set_state_dict_into_text_encoder

        _set_state_dict_into_text_encoder(state, prefix="text_encoder.",
                                          text_encoder=text_encoder)


# ---------------------------------------------------------------- validation

def _validate(cfg: DreamBoothConfig, pipe: Any, unet: Any, text_encoder: Any, inputs: _Inputs,
              step: int, out: Path, device: Any, offload: bool) -> list[ValidationImage]:
    """Draw each validation prompt once (same seed every time) and save the images."""
    import torch

    unet.eval()
    if offload:
        pipe.vae.to(device)
    folder = out / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i, prompt in enumerate(cfg.validation_prompts or []):
        kwargs: dict[str, Any] = {}
        if text_encoder is None:
            kwargs["prompt_embeds"] = inputs.validation_embeds[prompt].to(device, pipe.vae.dtype)
            kwargs["negative_prompt_embeds"] = inputs.negative_embeds.to(  # type: ignore[union-attr]
                device, pipe.vae.dtype)
        else:
            kwargs["prompt"] = prompt
        with torch.no_grad():
            image = pipe(num_inference_steps=cfg.sample_steps,
                         guidance_scale=cfg.guidance_scale, height=cfg.resolution,
                         width=cfg.resolution,
                         generator=torch.Generator("cpu").manual_seed(cfg.seed),
                         **kwargs).images[0]
        path = folder / f"step-{step:06d}-{i}.png"
        image.save(path)
        made.append(ValidationImage(step, prompt, path, _has_word(prompt, cfg.identifier)))
    if offload:
        pipe.vae.to("cpu")
    unet.train()
    return made


def _log_validation(run: Any, made: list[ValidationImage], cfg: DreamBoothConfig) -> None:
    if run is None:
        return
    for v in made:
        run.log_image(v.path, f"validation step {v.step}: {v.prompt}", step=v.step,
                      metadata={"step": v.step, "prompt": v.prompt, "seed": cfg.seed,
                                "identifier": v.with_identifier,
                                "sample_steps": cfg.sample_steps,
                                "guidance_scale": cfg.guidance_scale})


# ---------------------------------------------------------------- estimates

def _peak_memory_gb(device: Any) -> tuple[float, str]:
    """(peak memory in GB, what was measured): the GPU's allocator, else the process."""
    import resource

    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 1e9, "GPU"
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    scale = 1e9 if sys.platform == "darwin" else 1e6
    return peak_kb / scale, "process"


def _probe(unet: Any, text_encoder: Any, scheduler: Any, cfg: DreamBoothConfig,
           inputs: _Inputs, params: list[Any], device: Any, dtype: Any) -> float:
    """Seconds for one forward and backward pass on a real batch; nothing is updated."""
    import torch

    g = torch.Generator().manual_seed(cfg.seed + 999)
    batch = _batch(cfg, inputs, g, scheduler.config.num_train_timesteps)
    start = time.perf_counter()
    loss, _ = _loss(unet, text_encoder, scheduler, batch, inputs.klass is not None,
                    cfg.prior_loss_weight, device, dtype)
    loss.backward()
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    for p in params:
        p.grad = None
    return seconds


def _describe_plan(cfg: DreamBoothConfig, n_photos: int, n_class: int, trainable: int,
                   total: int, step_seconds: float, validation_seconds: float | None,
                   processes: int, device: Any, start_step: int) -> str:
    """The lines printed before training: size of the LoRA, time and memory to expect."""
    steps_left = cfg.max_steps - start_step
    micro = cfg.gradient_accumulation
    train_s = step_seconds * micro * steps_left
    validations = len({s for s in range(start_step + 1, cfg.max_steps + 1)
                       if s % cfg.validation_every == 0 or s == cfg.max_steps}
                      ) if cfg.validation_every else 0
    val_s = (validation_seconds or 0.0) * validations
    peak, where = _peak_memory_gb(device)
    lines = [
        f"DreamBooth LoRA: {trainable:,} trainable parameters (rank {cfg.rank}) = "
        f"{100 * trainable / max(total, 1):.2f}% of the UNet's {total:,}.",
        f"Data: {n_photos} photo(s)" + (" + mirrored" if cfg.random_flip else "")
        + (f", {n_class} class image(s)" if n_class else "")
        + f"; {cfg.batch_size * processes * micro} photo(s) per step on {processes} "
          f"process(es), {device}, {cfg.resolution} px.",
        f"Estimate: {step_seconds * micro:.2f} s per step x {steps_left} steps = "
        f"{_duration(train_s)}"
        + (f", plus {validations} validation(s) of {validation_seconds:.1f} s"
           if validation_seconds is not None and validations else "")
        + f" -> about {_duration(train_s + val_s)} in all.",
        f"Memory: peak so far {peak:.2f} GB ({where}); training stays near it.",
    ]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------- train

def train(config: DreamBoothConfig, run: Any = None,
          resume: str | Path | None = None) -> DreamBoothResult:
    """Train a DreamBooth LoRA on ``config.instance_dir`` and save it in ``output_dir/lora``.

    Args:
        config: the settings (see ``DreamBoothConfig``).
        run: a ``tracking.Run`` for parameters, the dataset version, metrics and validation
            images (main process only), or None.
        resume: None for a new run (``output_dir`` must not hold one), "latest" to continue
            from the newest checkpoint (or start when there is none; a finished run is
            returned as it is), or a checkpoint folder.

    Returns:
        A ``DreamBoothResult`` with the LoRA folder, final loss, loss history and the
        validation images.

    Raises:
        ValueError: a bad setting, an instance folder without photos, a prompt without the
            identifier, or an output folder that holds another run: before anything heavy.
    """
    started = time.perf_counter()
    cfg = config.checked()
    photos = instance_photos(cfg.instance_dir)
    checkpoint = _check_output(cfg, resume)
    out = Path(cfg.output_dir or "")
    done = _finished(out, cfg)
    if done is not None:
        print(f"{out} already holds this run, finished at step {done.steps}: nothing to "
              "train. Use another output_dir to train again.")
        return done
    mode, use_cpu = _mixed_precision(cfg)
    accelerator = _accelerator(cfg, mode, use_cpu)
    try:
        return _train(cfg, accelerator, photos, checkpoint, run, started)
    finally:
        accelerator.end_training()
        accelerator.free_memory()  # the models, optimiser and scheduler it holds
        _release()


def _finished(out: Path, cfg: DreamBoothConfig) -> DreamBoothResult | None:
    """The saved result of a finished run of ``cfg`` in ``out``, or None."""
    info_path = out / "lora" / INFO_FILE
    if not info_path.exists():
        return None
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("steps") != cfg.max_steps:
        return None
    return _result_from_disk(out, cfg, info, seconds=0.0)


def _result_from_disk(out: Path, cfg: DreamBoothConfig, info: dict[str, Any],
                      seconds: float) -> DreamBoothResult:
    _, history, eval_losses, validation = _read_progress(out, out, cfg)
    return DreamBoothResult(
        lora_dir=out / "lora", output_dir=out, final_loss=float(info["final_loss"]),
        history=history, eval_losses=eval_losses, validation=validation,
        steps=int(info["steps"]), seconds=seconds,
        trainable_parameters=int(info["trainable_parameters"]),
        unet_parameters=int(info["unet_parameters"]), skipped=info.get("skipped", {}),
    )


def _train(cfg: DreamBoothConfig, accelerator: Any, photos: InstancePhotos,
           checkpoint: Path | None, run: Any, started: float) -> DreamBoothResult:
    import torch
    from accelerate.utils import set_seed
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from tqdm.auto import tqdm

    main = accelerator.is_main_process
    out = Path(cfg.output_dir or "")
    device = accelerator.device
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
        accelerator.mixed_precision, torch.float32)
    offload = device.type != "cpu"
    if main:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "config.json", cfg.to_dict())

    # 1. models and the inputs computed once
    pipe = _load_pipeline(cfg.base_model, str(device), dtype)
    class_paths: list[Path] = []
    if cfg.with_prior_preservation:
        with accelerator.main_process_first():
            class_paths = class_images(cfg, pipe=pipe)
    inputs = _prepare_inputs(cfg, pipe, photos, class_paths, str(device))
    unet, vae = pipe.unet, pipe.vae
    text_encoder = pipe.text_encoder if cfg.train_text_encoder else None
    if text_encoder is None:  # prompts are embedded already: the text encoder can go
        pipe.text_encoder = None
    vae.encoder = None  # validation only decodes
    if offload:
        vae.to("cpu")
    _release()
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)

    # 2. LoRA adapters: the only trainable weights
    set_seed(cfg.seed)  # the adapters' initial weights
    params = _add_lora(cfg, unet, vae, text_encoder)
    trainable = sum(p.numel() for p in unet.parameters() if p.requires_grad)
    unet_total = sum(p.numel() for p in unet.parameters())
    optimizer = _optimizer(cfg, params)
    processes = accelerator.num_processes
    lr_scheduler = get_scheduler(cfg.lr_scheduler, optimizer,
                                 num_warmup_steps=cfg.lr_warmup_steps * processes,
                                 num_training_steps=cfg.max_steps * processes)
    if text_encoder is not None:
        unet, text_encoder, optimizer, lr_scheduler = accelerator.prepare(
            unet, text_encoder, optimizer, lr_scheduler)
    else:
        unet, optimizer, lr_scheduler = accelerator.prepare(unet, optimizer, lr_scheduler)
    _register_hooks(accelerator, unet, text_encoder, main)

    # 3. where to start
    start_step = 0
    history: list[dict[str, float]] = []
    eval_losses: dict[int, float] = {}
    validation: list[ValidationImage] = []
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        start_step, history, eval_losses, validation = _read_progress(checkpoint, out, cfg)
        if main:
            print(f"Resuming from {checkpoint} (step {start_step} of {cfg.max_steps}).")
    raw_unet = accelerator.unwrap_model(unet)
    raw_text = accelerator.unwrap_model(text_encoder) if text_encoder is not None else None
    pipe.unet = raw_unet
    if raw_text is not None:
        pipe.text_encoder = raw_text
    unet.train()
    if text_encoder is not None:
        text_encoder.train()

    def evaluate(step: int) -> None:
        if main and cfg.validation_every and step not in eval_losses:
            eval_losses[step] = _eval_loss(raw_unet, raw_text, noise_scheduler, inputs, device,
                                           dtype, chunk=8)
            made = _validate(cfg, pipe, raw_unet, raw_text, inputs, step, out, device, offload)
            validation.extend(made)
            if run is not None:
                run.log_metrics({"eval_loss": eval_losses[step]}, step=step)
                _log_validation(run, made, cfg)
        accelerator.wait_for_everyone()

    # 4. say what it will cost, then train
    step_seconds = _probe(unet, text_encoder, noise_scheduler, cfg, inputs, params, device,
                          dtype)
    if run is not None and main:
        run.log_params({**cfg.to_dict(), "trainable_parameters": trainable,
                        "unet_parameters": unet_total, "num_processes": processes,
                        "training_device": str(device), "instance_photos": len(photos)})
        run.log_dataset(photos.folder, "dreambooth-instance")
        if photos.skipped:
            run.log_other("skipped_files", photos.skipped)
    validation_seconds = None
    if start_step == 0:
        t0 = time.perf_counter()
        evaluate(0)
        validation_seconds = time.perf_counter() - t0 if cfg.validation_every else None
    if main:
        print(_describe_plan(cfg, len(photos), len(class_paths), trainable, unet_total,
                             step_seconds, validation_seconds, processes, device, start_step))
    bar = tqdm(total=cfg.max_steps, initial=start_step, desc="DreamBooth", disable=not main,
               unit="step")
    try:
        for step in range(start_step, cfg.max_steps):
            record = _optimizer_step(cfg, accelerator, step, inputs, unet, text_encoder,
                                     noise_scheduler, optimizer, lr_scheduler, params, dtype)
            history.append(record)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}")
            if run is not None and main:
                run.log_metrics({k: v for k, v in record.items() if k != "step"}, step=step + 1)
            done = step + 1
            if (cfg.validation_every and done % cfg.validation_every == 0) \
                    or done == cfg.max_steps:
                evaluate(done)
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
                _save_checkpoint(accelerator, out, done, history, eval_losses, validation)
    finally:
        bar.close()
    final_loss = history[-1]["loss"] if history else float("nan")
    if main:
        _save_lora(out / "lora", raw_unet, raw_text)
        _write_progress(out / "progress.json", cfg.max_steps, history, eval_losses, validation,
                        out)
        info = {"base_model": cfg.base_model,
                "model": models.resolve(cfg.base_model, family="sd").name,
                "identifier": cfg.identifier, "instance_prompt": cfg.instance_prompt,
                "class_prompt": cfg.class_prompt, "rank": cfg.rank, "steps": cfg.max_steps,
                "resolution": cfg.resolution, "final_loss": final_loss,
                "trainable_parameters": trainable, "unet_parameters": unet_total,
                "cross_attention_dim": raw_unet.config.cross_attention_dim,
                "skipped": photos.skipped}
        _write_json(out / "lora" / INFO_FILE, info)
        print(f"LoRA saved to {out / 'lora'} (final loss {final_loss:.4f}).")
        if run is not None:
            run.log_metrics({"final_loss": final_loss}, step=cfg.max_steps)
    accelerator.wait_for_everyone()
    return DreamBoothResult(
        lora_dir=out / "lora", output_dir=out, final_loss=final_loss, history=history,
        eval_losses=eval_losses, validation=validation, steps=cfg.max_steps,
        seconds=time.perf_counter() - started, trainable_parameters=trainable,
        unet_parameters=unet_total, skipped=photos.skipped)


def _add_lora(cfg: DreamBoothConfig, unet: Any, vae: Any, text_encoder: Any) -> list[Any]:
    """Freeze the models, add LoRA adapters (the UNet's attention; the text encoder's when it
    trains) and return the trainable parameters, in float32 even under fp16."""
    from peft import LoraConfig

    for module in (unet, vae, text_encoder):
        if module is not None:
            module.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=cfg.rank, lora_alpha=cfg.rank, init_lora_weights="gaussian",
                                target_modules=list(UNET_TARGETS)))
    if text_encoder is not None:
        text_encoder.add_adapter(LoraConfig(r=cfg.rank, lora_alpha=cfg.rank,
                                            init_lora_weights="gaussian",
                                            target_modules=list(TEXT_ENCODER_TARGETS)))
    params = [p for m in (unet, text_encoder) if m is not None
              for p in m.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        if text_encoder is not None:
            text_encoder.gradient_checkpointing_enable()
    return params


def _read_progress(folder: Path, out: Path, cfg: DreamBoothConfig
                   ) -> tuple[int, list[dict[str, float]], dict[int, float],
                              list[ValidationImage]]:
    """(step, loss history, evaluation losses, validation images) saved in a checkpoint."""
    progress = json.loads((folder / "progress.json").read_text(encoding="utf-8"))
    validation = [ValidationImage(v["step"], v["prompt"], out / v["file"],
                                  _has_word(v["prompt"], cfg.identifier))
                  for v in progress["validation"]]
    return (int(progress["step"]), progress["history"],
            {int(k): v for k, v in progress["eval_losses"].items()}, validation)


def _optimizer_step(cfg: DreamBoothConfig, accelerator: Any, step: int, inputs: _Inputs,
                    unet: Any, text_encoder: Any, noise_scheduler: Any, optimizer: Any,
                    lr_scheduler: Any, params: list[Any], dtype: Any) -> dict[str, float]:
    """One optimiser step (``gradient_accumulation`` micro-batches); returns its losses and
    learning rate, averaged over micro-batches and processes."""
    parts = []
    for micro in range(cfg.gradient_accumulation):
        g = _step_generator(cfg.seed, step, micro, accelerator.process_index)
        batch = _batch(cfg, inputs, g, noise_scheduler.config.num_train_timesteps)
        with accelerator.accumulate(*[m for m in (unet, text_encoder) if m is not None]):
            loss, part = _loss(unet, text_encoder, noise_scheduler, batch,
                               inputs.klass is not None, cfg.prior_loss_weight,
                               accelerator.device, dtype)
            accelerator.backward(loss)
            if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        parts.append(part)
    record = _mean_parts(parts, accelerator)
    record.update(step=step + 1, lr=float(lr_scheduler.get_last_lr()[0]))
    return record


def _optimizer(cfg: DreamBoothConfig, params: list[Any]) -> Any:
    import torch

    if cfg.use_8bit_adam:
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=cfg.learning_rate, weight_decay=1e-2)
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=1e-2)


def _mean_parts(parts: list[dict[str, float]], accelerator: Any) -> dict[str, float]:
    """The micro-batches' losses averaged, and averaged over processes."""
    import torch

    keys = list(parts[0])
    local = torch.tensor([sum(p[k] for p in parts) / len(parts) for k in keys],
                         device=accelerator.device)
    if accelerator.num_processes > 1:
        local = accelerator.reduce(local, reduction="mean")
    return {k: float(v) for k, v in zip(keys, local.tolist())}


def _register_hooks(accelerator: Any, unet: Any, text_encoder: Any, main: bool) -> None:
    """Checkpoints hold only the LoRA weights (a few MB), not the frozen UNet."""
    raw_unet = accelerator.unwrap_model(unet)
    raw_text = accelerator.unwrap_model(text_encoder) if text_encoder is not None else None

    def save(models_: list[Any], weights: list[Any], folder: str) -> None:
        if main:
            _save_lora(Path(folder), raw_unet, raw_text)
        weights.clear()

    def load(models_: list[Any], folder: str) -> None:
        _load_lora_state(Path(folder), raw_unet, raw_text)
        models_.clear()

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


def _write_progress(path: Path, step: int, history: list[dict[str, float]],
                    eval_losses: dict[int, float], validation: list[ValidationImage],
                    out: Path) -> None:
    _write_json(path, {
        "step": step, "history": history,
        "eval_losses": {str(k): v for k, v in eval_losses.items()},
        "validation": [{"step": v.step, "prompt": v.prompt,
                        "file": v.path.relative_to(out).as_posix()} for v in validation],
    })


def _save_checkpoint(accelerator: Any, out: Path, step: int, history: list[dict[str, float]],
                     eval_losses: dict[int, float], validation: list[ValidationImage]) -> None:
    """Optimizer, scheduler, RNG states and LoRA weights; ``progress.json`` last, so a
    checkpoint cut short is never taken for a complete one."""
    folder = out / "checkpoints" / f"step-{step:06d}"
    accelerator.wait_for_everyone()
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        _write_progress(folder / "progress.json", step, history, eval_losses, validation, out)
        _write_progress(out / "progress.json", step, history, eval_losses, validation, out)
    accelerator.wait_for_everyone()


# ---------------------------------------------------------------- using the LoRA

def lora_folder(folder: str | Path) -> Path:
    """The folder holding ``pytorch_lora_weights.safetensors``: ``folder`` itself, its
    ``lora/`` (a training output folder) or a checkpoint folder.

    Raises:
        FileNotFoundError: there is no LoRA there; the message says what was looked for.
    """
    root = Path(folder)
    for candidate in (root, root / "lora"):
        if (candidate / LORA_FILE).is_file():
            return candidate
    raise FileNotFoundError(
        f"no LoRA in {str(root)!r}: expected {LORA_FILE} there or in its lora/ folder. Pass "
        "result.lora_dir from dreambooth.train, or a checkpoint folder."
    )


def _lora_cross_attention_dim(path: Path) -> int | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        for key in fh.keys():  # noqa: SIM118  (safe_open has no __iter__)
            if key.startswith("unet.") and "attn2.to_k" in key and \
                    ("lora_A" in key or "lora.down" in key):
                return int(fh.get_slice(key).get_shape()[1])
    return None


def load_lora(pipe: Any, folder: str | Path, weight: float = 1.0,
              adapter_name: str = ADAPTER) -> Any:
    """Load a DreamBooth LoRA into a Stable Diffusion pipeline (text-to-image or inpainting).

    Loading again under the same ``adapter_name`` replaces the earlier one, so a cell can
    run twice. The pipeline is changed in place (and returned): ``set_lora_weight(pipe, 0)``
    gives the base model's output back, ``unload_lora(pipe)`` removes the adapter.

    Args:
        pipe: a diffusers Stable Diffusion pipeline of the base model the LoRA was trained
            on (e.g. ``models.load("sd15").model`` or ``models.load("sd15-inpaint").model``).
        folder: ``result.lora_dir``, a training output folder or a checkpoint folder.
        weight: how strongly the LoRA acts (0: not at all, 1: as trained).

    Raises:
        FileNotFoundError: no LoRA in ``folder``.
        ValueError: the LoRA was trained for another model size than ``pipe``'s.
    """
    if not _is_number(weight):
        raise ValueError(f"weight {weight!r} must be a number (0: base model, 1: as trained)")
    root = lora_folder(folder)
    trained_dim = _lora_cross_attention_dim(root / LORA_FILE)
    pipe_dim = pipe.unet.config.cross_attention_dim
    if trained_dim is not None and trained_dim != pipe_dim:
        info = root / INFO_FILE
        base = json.loads(info.read_text())["base_model"] if info.exists() else "another model"
        raise ValueError(
            f"the LoRA in {str(root)!r} was trained on {base!r}, whose UNet reads text "
            f"embeddings of size {trained_dim}, but this pipeline's UNet reads {pipe_dim}: "
            "load it into a pipeline of the same base model (SD 1.x LoRAs into SD 1.x "
            "pipelines, e.g. 'sd15' or 'sd15-inpaint')."
        )
    if adapter_name in _adapters(pipe):
        pipe.delete_adapters(adapter_name)
    from diffusers.utils import logging as dif_logging

    level = dif_logging.get_verbosity()
    dif_logging.set_verbosity_error()  # not "no text-encoder LoRA found" for a UNet-only LoRA
    try:
        pipe.load_lora_weights(str(root), weight_name=LORA_FILE, adapter_name=adapter_name)
    finally:
        dif_logging.set_verbosity(level)
    set_lora_weight(pipe, weight, adapter_name)
    return pipe


def _adapters(pipe: Any) -> set[str]:
    return {name for names in pipe.get_list_adapters().values() for name in names}


def set_lora_weight(pipe: Any, weight: float, adapter_name: str = ADAPTER) -> Any:
    """Scale a loaded LoRA: 0 turns it off (the base model's pixels), 1 is as trained."""
    if not _is_number(weight):
        raise ValueError(f"weight {weight!r} must be a number (0: base model, 1: as trained)")
    if adapter_name not in _adapters(pipe):
        raise ValueError(f"no LoRA named {adapter_name!r} in this pipeline; load one with "
                         "dreambooth.load_lora(pipe, folder)")
    pipe.set_adapters([adapter_name], adapter_weights=[float(weight)])
    return pipe


def unload_lora(pipe: Any, adapter_name: str = ADAPTER) -> Any:
    """Remove a loaded LoRA, so the (kernel-wide cached) pipeline is the base model again."""
    if adapter_name in _adapters(pipe):
        pipe.delete_adapters(adapter_name)
    return pipe


# ---------------------------------------------------------------- pictures of a run

def loss_curve(result: DreamBoothResult, smooth: int = 10) -> Image.Image:
    """The training loss (raw and smoothed), the prior loss and the evaluation loss by step."""
    import numpy as np
    from matplotlib.figure import Figure

    from helpers import viz

    if not result.history:
        raise ValueError("the run has no training steps to plot")
    steps = np.array([h["step"] for h in result.history])
    fig = Figure(figsize=(6.4, 3.4), dpi=100)
    ax = fig.add_subplot()

    def rgb(i: int) -> tuple[float, ...]:
        return tuple(c / 255 for c in viz.color(i))

    loss = np.array([h["instance_loss"] for h in result.history])
    ax.plot(steps, loss, color=rgb(0), alpha=0.3, lw=1)
    k = max(1, min(smooth, len(loss)))
    ax.plot(steps[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), color=rgb(0),
            lw=2, label=f"instance loss ({k}-step mean)")
    if "prior_loss" in result.history[0]:
        prior = np.array([h["prior_loss"] for h in result.history])
        ax.plot(steps[k - 1:], np.convolve(prior, np.ones(k) / k, mode="valid"),
                color=rgb(1), lw=2, label="prior loss")
    if result.eval_losses:
        xs = sorted(result.eval_losses)
        ax.plot(xs, [result.eval_losses[x] for x in xs], "o-", color=rgb(2), lw=2,
                label="fixed evaluation batch")
    ax.set_xlabel("step")
    ax.set_ylabel("denoising loss (MSE)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return viz.figure_image(fig)


def validation_grid(result: DreamBoothResult, cell: int = 160) -> Image.Image:
    """Validation images over training: one row per prompt, one column per step."""
    from helpers import viz

    steps = result.validation_steps()
    if not steps:
        raise ValueError("the run drew no validation images (validation_every=0)")
    prompts = list(dict.fromkeys(v.prompt for v in result.validation))
    by_key = {(v.step, v.prompt): v for v in result.validation}
    pictures, captions = [], []
    for prompt in prompts:
        for step in steps:
            v = by_key.get((step, prompt))
            if v is not None:
                pictures.append(v.image)
                captions.append(f"step {step}\n{prompt[:28]}")
    return viz.grid(pictures, captions, cols=len(steps), cell=cell)


# ---------------------------------------------------------------- command line

def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.dreambooth --config cfg.json`` (also under ``accelerate launch``)."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.dreambooth",
        description="Train a DreamBooth LoRA (run it with `accelerate launch -m "
                    "helpers.dreambooth ...` on several GPUs).")
    parser.add_argument("--config", type=Path, help="a JSON file of DreamBoothConfig settings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting (VALUE is JSON, or a plain string)")
    parser.add_argument("--resume", default=None,
                        help="'latest' or a checkpoint folder to continue from")
    parser.add_argument("--project", default=None,
                        help="track the run in this tracking project (e.g. lesson-05)")
    parser.add_argument("--offline", action="store_true", help="track offline only")
    parser.add_argument("--write-config", type=Path, metavar="FILE",
                        help="write the default settings to FILE and exit")
    args = parser.parse_args(argv)
    if args.write_config:
        DreamBoothConfig().to_json(args.write_config)
        print(f"wrote {args.write_config}")
        return 0
    values = DreamBoothConfig.from_json(args.config).to_dict() if args.config else {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r} must look like KEY=VALUE, e.g. max_steps=100")
        values[key.strip()] = _parse_value(value)
    config = DreamBoothConfig.from_dict(values)
    run = None
    if args.project and os.environ.get("RANK", "0") == "0":  # the main process tracks
        run = tracking.start(args.project, online=False if args.offline else None)
    result = train(config, run=run, resume=args.resume)
    if run is not None:
        run.end()
    if os.environ.get("RANK", "0") == "0":
        print(f"final loss {result.final_loss:.4f}; LoRA in {result.lora_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
