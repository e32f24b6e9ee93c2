"""The pictures DreamBooth trains on: the subject's photos and the class images.

``instance_photos(folder)`` reads the subject's photos (skipping, and naming, files that are
not images); ``collect_photos`` copies a learner's own photos into a folder. With prior
preservation the base model first draws ``num_class_images`` pictures of the class prompt:
``class_images`` draws only the missing ones into a cache folder keyed by the model, the
prompt and the resolution (``class_dir``), image ``i`` always from seed ``i``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers import images, models, registry, runtime, weights
from helpers.dreambooth.config import IMAGE_SUFFIXES, DreamBoothConfig

if TYPE_CHECKING:
    import torch
    from PIL import Image

_DOC_FILES = re.compile(r"^(readme|licen[cs]e|copying|notice)\b|\.md$|^manifest\.json$", re.I)


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
    if root.exists() and not root.is_dir():
        raise ValueError(f"{str(root)!r} is a file, not a folder: give collect_photos a folder "
                         "to copy the photos into")
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


def square(photo: Image.Image, size: int) -> Image.Image:
    """Resize the short side to ``size`` and crop the centre: a (size, size) RGB image."""
    from PIL import Image as PILImage

    w, h = photo.size
    scale = size / min(w, h)
    resized = photo.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                           PILImage.Resampling.LANCZOS)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))


def to_tensor(photo: Image.Image) -> torch.Tensor:
    """(3, H, W) float32 in [-1, 1], as the VAE expects."""
    import numpy as np
    import torch

    array = np.asarray(photo, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def load_pipeline(base_model: str, device: str, dtype: Any) -> Any:
    """A fresh text-to-image pipeline that ``train`` owns (not the kernel-wide cached one),
    so adding a LoRA or dropping the text encoder never changes a pipeline a cell uses."""
    pipe = models.load(base_model, device=device, dtype=dtype, family="sd",
                       cached=False).model
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample_spec(config: DreamBoothConfig) -> registry.ModelSpec:
    """The spec of the model that draws class and validation images (``sample_model``,
    else ``base_model``)."""
    return registry.resolve(config.sample_model or config.base_model, family="sd")


@contextlib.contextmanager
def sampling(config: DreamBoothConfig, pipe: Any) -> Iterator[Any]:
    """A block in which ``pipe`` (the base model, perhaps with the LoRA being trained)
    draws as ``config``'s sample model does: with its scheduler and, for a few-step name,
    with the LCM-LoRA acting beside the trained adapter. Afterwards only the trained adapter
    acts (and stays the one that trains); an LCM-LoRA added to a pipeline without one is
    taken out again."""
    from helpers import lora, schedulers

    spec = sample_spec(config)
    scheduler = (schedulers.make(spec.scheduler, pipe.scheduler.config) if spec.scheduler
                 else pipe.scheduler)  # a model from elsewhere keeps the scheduler it has
    if not spec.adapter:
        with schedulers.using(pipe, scheduler):
            yield pipe
        return
    trained = sorted(lora.adapters(pipe) - {registry.ADAPTER})
    if registry.ADAPTER not in lora.adapters(pipe):
        models.add_adapter(pipe, spec)
    pipe.set_adapters([*trained, registry.ADAPTER], adapter_weights=[1.0] * (len(trained) + 1))
    try:
        with schedulers.using(pipe, scheduler):
            yield pipe
    finally:
        if trained:
            pipe.set_adapters(trained, adapter_weights=[1.0] * len(trained))
        else:
            pipe.delete_adapters(registry.ADAPTER)


def class_dir(config: DreamBoothConfig) -> Path:
    """Where ``config``'s class images are cached: ``config.class_dir``, or a folder under
    the helpers cache keyed by the model that draws them, the class prompt and the
    resolution."""
    if config.class_dir:
        return Path(config.class_dir)
    spec = sample_spec(config)
    key = {"model": spec.name, "source": str(weights.fetch(spec)) if spec.is_tiny else spec.source,
           "revision": spec.revision, "prompt": config.class_prompt,
           "resolution": config.resolution}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9]+", "-", config.class_prompt.lower()).strip("-")[:40] or "class"
    return registry.cache_dir() / "class_images" / f"{slug}-{config.resolution}-{digest}"


def _existing_class_images(folder: Path) -> list[Path]:
    return sorted(folder.glob("class-*.png")) if folder.is_dir() else []


def duration(seconds: float) -> str:
    """Seconds as a short human duration: "4.2 s", "35 s", "12 min", "1.5 h"."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def class_images(config: DreamBoothConfig, pipe: Any = None,
                 batch_size: int = 4) -> list[Path]:
    """The first ``config.num_class_images`` class images, drawing only the missing ones.

    Image ``i`` is drawn from seed ``i`` with the class prompt, so a cache folder grows the
    same way whatever the batch size. A folder that already holds enough is used as it is.

    Args:
        pipe: the base text-to-image pipeline to draw with (default: a fresh one of
            ``config.base_model``, released afterwards).
    """
    from diffusers.training_utils import free_memory

    config = config.checked()
    folder = class_dir(config)
    have = _existing_class_images(folder)
    if len(have) >= config.num_class_images:
        return have[: config.num_class_images]
    own = pipe is None
    if pipe is None:
        device = runtime.device(config.device)
        pipe = load_pipeline(config.base_model, device, models.default_dtype("sd", device))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "class_images.json").write_text(json.dumps({
        "base_model": config.base_model, "sample_model": config.sample_model,
        "prompt": config.class_prompt,
        "resolution": config.resolution, "steps": config.sample_steps,
        "guidance_scale": config.guidance_scale}, indent=2) + "\n", encoding="utf-8")
    missing = [i for i in range(config.num_class_images)
               if not (folder / f"class-{i:04d}.png").exists()]
    print(f"Drawing {len(missing)} class image(s) of {config.class_prompt!r} into {folder} "
          "(once: they are cached for every later run)")
    started = time.perf_counter()
    for start in runtime.progress(range(0, len(missing), batch_size), desc="class images",
                      disable=len(missing) <= batch_size):
        if start == batch_size:  # one batch drawn: say what the rest will take
            each = (time.perf_counter() - started) / batch_size
            print(f"About {each:.1f} s per class image: {duration(each * (len(missing) - start))}"
                  " for the rest.")
        chunk = missing[start:start + batch_size]
        with sampling(config, pipe):
            out = pipe(prompt=[config.class_prompt] * len(chunk),
                       num_inference_steps=config.sample_steps,
                       guidance_scale=config.guidance_scale, height=config.resolution,
                       width=config.resolution,
                       generator=[runtime.generator(i) for i in chunk])
        for i, image in zip(chunk, out.images):
            tmp = folder / f".class-{i:04d}.png.tmp"
            image.save(tmp, format="PNG")
            os.replace(tmp, folder / f"class-{i:04d}.png")
    if own:
        del pipe
        free_memory()
    return _existing_class_images(folder)[: config.num_class_images]
