"""Stable Diffusion inpainting that leaves the rest of the photo exactly as it was.

``Inpainter.inpaint(photo, mask, "a realistic green dragon")`` repaints the masked region:

1. **mask preparation**: the mask is grown (``grow`` pixels) so the new content covers the
   object's edge, and feathered (``feather`` pixels) *inside* the grown mask, so the blend
   is soft yet every pixel outside the grown mask keeps its value;
2. **work region**: a crop around the grown mask with some context, scaled uniformly (never
   squashed) so its long side is the model's native resolution, sides a multiple of 8: a
   small mask on a large photo gets the model's full resolution;
3. **composite**: the generated crop is scaled back and blended in with the feathered mask;
   outside the grown mask the output *is* the input, pixel for pixel.

Each output carries a recipe (``image.info["helpers_recipe"]``), so a logged image can be
made again with ``tracking.reproduce``. ``sweep`` varies one setting with the same starting
noise for every value.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from helpers import checks, compat, images, models, runtime, tracking
from helpers.diffusion import Diffusion, count, guidance, side

if TYPE_CHECKING:
    from helpers.tracking import Run

SWEEPABLE = ("seed", "steps", "guidance_scale", "strength", "negative_prompt", "prompt",
             "grow", "feather", "resolution")
MAX_GROW = 512
"""The most pixels a mask grows by, or feathers over (the kernel is a disc this wide)."""


# ---------------------------------------------------------------- masks

def as_mask(mask: Any, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool from a bool/0-1/0-255 array, a PIL image, a mask stack or a ``Detections``.

    A mask that is not binary is thresholded at half its range, with a warning.

    Raises:
        ValueError: another size than the photo, or an empty mask.
    """
    from helpers.detections import Detections

    w, h = size
    if isinstance(mask, Detections):
        if mask.masks is None:
            raise ValueError(
                "these detections have no masks yet: add them with Segmenter.segment("
                "detections), or pass detections.to_mask(photo.size, boxes_if_no_masks=True) "
                "to repaint the whole boxes")
        arr = mask.to_mask(size)
    elif isinstance(mask, Image.Image):
        arr = np.asarray(mask.convert("L"))
    elif mask is None:
        raise ValueError("the mask is None: give an (H, W) bool array (True = repaint), a "
                         "PIL mask or segmented Detections")
    else:
        arr = np.asarray(mask)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"the mask must be an array of bools or numbers (True or 1 = "
                             f"repaint); got an array of {arr.dtype}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(
                f"the mask holds {int(np.isnan(arr).sum())} NaN and "
                f"{int(np.isinf(arr).sum())} infinite values; it must say for every pixel "
                "whether to repaint it. Make it a bool array first, e.g. "
                "np.nan_to_num(mask) > 0.5")
        if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[:2] == (h, w):
            arr = arr[..., 0]
        elif arr.ndim == 3:
            arr = np.asarray(arr.any(axis=0))
    if arr.shape != (h, w):
        shrunk = arr.ndim > 1 and arr.shape[0] * arr.shape[1] > images.max_pixels() >= w * h
        raise ValueError(
            f"the mask is {arr.shape[1] if arr.ndim > 1 else '?'}x{arr.shape[0]} but the photo "
            f"is {w}x{h}; make the mask for this photo (e.g. with Segmenter.segment)"
            + ("; a photo above the pixel budget is downscaled as it loads, so load it with "
               "images.load first and make the mask for that" if shrunk else ""))
    if arr.dtype != bool:
        values = set(np.unique(arr).tolist())
        if values <= {0, 1}:
            arr = arr == 1
        elif values <= {0, 255}:
            arr = arr == 255
        else:
            middle = 127.5 if max(values) > 1 else 0.5
            compat.warn(
                f"the mask is not binary (values from {min(values):g} to {max(values):g}); "
                f"it was thresholded at {middle:g}")
            arr = arr >= middle
    if not arr.any():
        raise ValueError("the mask is empty: nothing to inpaint. Check the detection or prompt "
                         "that made it (an empty mask means nothing was found)")
    return np.asarray(arr, dtype=bool)


def grow_mask(mask: np.ndarray, grow: int) -> np.ndarray:
    """The mask dilated by ``grow`` pixels (a disc), bool."""
    if grow <= 0:
        return mask.copy()
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return np.asarray(cv2.dilate(mask.astype(np.uint8), kernel) > 0)


def feather_mask(grown: np.ndarray, feather: int) -> np.ndarray:
    """(H, W) float32 blend weights: 1 deep inside, ramping down to 0 at the grown edge.

    The ramp lies inside ``grown``, so the weight is exactly 0 everywhere outside it.
    """
    if feather <= 0:
        return grown.astype(np.float32)
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * feather + 1, 2 * feather + 1))
    core = cv2.erode(grown.astype(np.uint8), kernel).astype(np.float32)
    soft = cv2.GaussianBlur(core, (0, 0), sigmaX=feather / 2.0)
    soft = np.maximum(soft, core)
    return np.where(grown, soft, 0.0).astype(np.float32)


@dataclass(frozen=True)
class WorkRegion:
    """Where the model works: ``box`` (x1, y1, x2, y2) of the photo, resized to ``size``."""

    box: tuple[int, int, int, int]
    size: tuple[int, int]

    @property
    def scale(self) -> float:
        """Work-size pixels per photo pixel (the same on both axes)."""
        return self.size[0] / (self.box[2] - self.box[0])


def work_region(mask: np.ndarray, native: int, margin: float = 0.25,
                crop: bool = True) -> WorkRegion:
    """A crop around ``mask`` with ``margin`` (a fraction of its size, at least 16 px) of
    context, scaled uniformly so its long side is ``native`` and both sides are multiples
    of 8. ``crop=False`` uses the whole photo."""
    h, w = mask.shape
    if crop:
        ys, xs = np.nonzero(mask)
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        pad = max(16, int(margin * max(x2 - x1, y2 - y1)))
        x1, y1, x2, y2 = max(0, x1 - pad), max(0, y1 - pad), min(w, x2 + pad), min(h, y2 + pad)
    else:
        x1, y1, x2, y2 = 0, 0, w, h
    cw, ch = x2 - x1, y2 - y1
    scale = native / max(cw, ch)
    tw, th = (max(8, int(np.ceil(v * scale / 8)) * 8) for v in (cw, ch))
    # widen the crop to the exact aspect of (tw, th), so the resize is uniform (no squashing)
    need_w, need_h = min(w, round(tw / scale)), min(h, round(th / scale))
    x1 = int(min(max(0, x1 - (need_w - cw) // 2), w - need_w))
    y1 = int(min(max(0, y1 - (need_h - ch) // 2), h - need_h))
    return WorkRegion((x1, y1, x1 + need_w, y1 + need_h), (tw, th))


# ---------------------------------------------------------------- the inpainter

def _check(steps: Any, guidance_scale: Any, strength: Any, num_images: Any, grow: Any,
           feather: Any, seed: Any) -> tuple[int, float, float, int, int, int, int]:
    """(steps, guidance_scale, strength, num_images, grow, feather, seed), plain and checked."""
    steps = count("steps", steps, 1, 1000)
    num_images = count("num_images", num_images, 1)
    grow = count("grow", grow, 0, MAX_GROW)
    feather = count("feather", feather, 0, MAX_GROW)
    seed = checks.seed(seed)
    if seed + num_images > checks.SEED_LIMIT:
        raise ValueError(f"seed {seed} with num_images={num_images}: image i uses seed + i, "
                         "which must stay below 2**63; use a smaller seed")
    strength = checks.number("strength", strength, 0.0, 1.0, low_open=True,
                             hint="1 repaints from pure noise")
    guidance_scale = guidance(guidance_scale)
    if int(steps * strength) < 1:
        need = int(np.ceil(1 / strength))
        raise ValueError(
            f"strength {strength} runs only steps x strength = {steps * strength:g} denoising "
            f"steps, fewer than one; use at least {need} steps with this strength"
        )
    return steps, guidance_scale, strength, num_images, grow, feather, seed


class Inpainter(Diffusion):
    """Stable Diffusion inpainting with exact compositing and reproducible outputs.

    ``Inpainter.from_pretrained(name)`` takes ``"sd15-inpaint"`` (the default; also
    ``"sd15"``: the base of lesson 5's LoRA; 25 DPM-Solver++ steps), ``"sd15-inpaint-lcm"``
    (also ``"lcm"``: the same model with the LCM-LoRA and TAESD, 4 steps, guidance 1: the
    CPU choice), ``"sd2-inpaint"`` (also ``"sd2"``) or ``"tiny"``. float16 on CUDA, float32
    elsewhere. ``cpu_offload=True`` keeps only the running sub-model on the GPU (for small
    cards). ``scheduler`` (a name of ``helpers.schedulers``) overrides the model's own.
    """

    families = ("sd-inpaint",)
    default = "sd15-inpaint"

    def __init__(self, loaded: models.Loaded, cpu_offload: bool = False,
                 scheduler: str | None = None) -> None:
        super().__init__(loaded, scheduler)
        self.native = int(self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor)
        # PyTorch's fused attention is used by default; attention slicing would slow it down.
        if self.device.startswith("cuda") and cpu_offload:
            self.pipe.enable_model_cpu_offload()

    @classmethod
    def from_pretrained(cls, name: str | None = None, device: str | None = None,
                        dtype: Any = None, cpu_offload: bool = False, *,
                        revision: str | None = None,
                        scheduler: str | None = None) -> Inpainter:
        """Load the inpainting model ``name`` (see the class docstring) on ``device``;
        ``dtype`` None follows ``runtime.dtype`` (float16 on CUDA, float32 elsewhere);
        ``revision`` is a hub commit (as a recipe recorded it), None for the registry's;
        ``scheduler`` a scheduler name (``"dpm++"``, ``"pndm"``, ``"lcm"``, ...), None for
        the model's own."""
        cls._check_scheduler(scheduler)
        return cls(cls._load(name, device, dtype, revision), cpu_offload, scheduler)

    def _settings(self, prompt: str, negative_prompt: str | None = None, seed: Any = 0,
                  steps: Any = None, guidance_scale: Any = None, strength: Any = 1.0,
                  num_images: Any = 1, grow: Any = 8, feather: Any = 8, margin: Any = 0.25,
                  crop: Any = True, resolution: Any = None, *, warn: bool = True
                  ) -> dict[str, Any]:
        """``inpaint``'s settings (the same defaults), every one checked and made a plain
        Python value, before any work; ``warn`` also gives the advice for them."""
        steps, guidance_scale = self._defaults(steps, guidance_scale)
        steps, guidance_scale, strength, num_images, grow, feather, seed = _check(
            steps, guidance_scale, strength, num_images, grow, feather, seed)
        margin = checks.number("margin", margin, 0.0,
                               hint="context around the mask, a fraction of its size: 0.25")
        crop = checks.flag("crop", crop)
        if resolution is not None:
            resolution = side("resolution", resolution, 64)
        work = resolution or self.native
        self._check_size(f"resolution {work}", height=work, width=work,
                         guidance_scale=guidance_scale)
        self._check_prompts(prompt, negative_prompt, warn)
        if warn:
            self._advise(steps, guidance_scale, negative_prompt)
        return {"prompt": prompt, "negative_prompt": negative_prompt, "seed": seed,
                "steps": steps, "guidance_scale": guidance_scale, "strength": strength,
                "num_images": num_images, "grow": grow, "feather": feather, "margin": margin,
                "crop": crop, "resolution": resolution}

    def prepare(self, image: Any, mask: Any, grow: int = 8, feather: int = 8,
                margin: float = 0.25, crop: bool = True, resolution: int | None = None
                ) -> tuple[Image.Image, np.ndarray, np.ndarray, np.ndarray, WorkRegion]:
        """(photo, mask, grown mask, blend weights, work region) for an inpainting call."""
        grow = count("grow", grow, 0, MAX_GROW)
        feather = count("feather", feather, 0, MAX_GROW)
        margin = checks.number("margin", margin, 0.0,
                               hint="context around the mask, a fraction of its size: 0.25")
        crop = checks.flag("crop", crop)
        if resolution is not None:
            resolution = side("resolution", resolution, 64)
        photo = images.load(image)
        raw = as_mask(mask, photo.size)
        grown = grow_mask(raw, grow)
        return photo, raw, grown, feather_mask(grown, feather), work_region(
            grown, resolution or self.native, margin, crop)

    def inpaint(self, image: Any, mask: Any, prompt: str, negative_prompt: str | None = None,
                seed: int = 0, steps: int | None = None,
                guidance_scale: float | None = None, strength: float = 1.0,
                num_images: int = 1, grow: int = 8, feather: int = 8,
                margin: float = 0.25, crop: bool = True,
                resolution: int | None = None) -> list[Image.Image]:
        """Repaint the masked region of ``image`` from ``prompt``.

        Args:
            image: the photo (anything ``images.load`` accepts).
            mask: (H, W) bool (True = repaint), a PIL mask, or a segmented ``Detections``.
            prompt, negative_prompt: what to draw, and what to steer away from.
            seed: the starting noise; image ``i`` uses ``seed + i``.
            steps: denoising steps (cost grows linearly); None: the model's default
                (``self.steps``: 25 with DPM-Solver++, 4 with LCM).
            guidance_scale: how strongly the prompt steers (0 ignores it; at 1 or less
                the negative prompt does nothing); None: the model's default (7.5, LCM 1).
            strength: 1 repaints from pure noise; lower keeps more of the original.
            num_images: how many variations.
            grow, feather: pixels the mask grows by, and the width of the soft edge inside.
            margin: context around the mask, as a fraction of its size.
            crop: False works on the whole photo (squashed into the native resolution).
            resolution: the long side of the work region in pixels (a multiple of 8);
                default the model's native size (512 for SD). Smaller is much faster on a
                CPU (the cost grows with the pixel count) and blurrier. At most
                ``diffusion.MAX_SIDE``, and refused before any work when its estimated
                memory (``diffusion.activation_bytes``) is more than the device has free.

        Every setting is checked (NumPy numbers are taken; NaN, infinity and booleans are
        not) before the photo is loaded; the recipe records plain Python values.

        Returns:
            ``num_images`` PIL images, the size of the photo; outside the grown mask they
            are identical to it.
        """
        s = self._settings(prompt, negative_prompt, seed, steps, guidance_scale, strength,
                           num_images, grow, feather, margin, crop, resolution)
        photo, raw, grown, weights, region = self.prepare(
            image, mask, s["grow"], s["feather"], s["margin"], s["crop"], s["resolution"])
        mask_image = Image.fromarray(raw.astype(np.uint8) * 255)
        outputs = []
        adapted = self.has_lora()  # a LoRA on top: a name cannot rebuild this pipeline
        for i in range(s["num_images"]):
            out = self._generate(photo, grown, weights, region, s["prompt"],
                                 s["negative_prompt"], s["seed"] + i, s["steps"],
                                 s["guidance_scale"], s["strength"])
            outputs.append(out)
            if adapted:
                continue
            args = {**{k: v for k, v in s.items() if k != "num_images"}, "seed": s["seed"] + i,
                    "model": self.name, "revision": self.commit, "device": self.device,
                    "scheduler": self.schedule.name}
            context = {**self.context(), "work_region": list(region.box),
                       "work_size": list(region.size)}
            tracking.Recipe(tracking.kind_of(Inpainter.inpaint), args,
                            {"image": photo, "mask": mask_image}, context).attach(out)
        return outputs

    def _generate(self, photo: Image.Image, grown: np.ndarray, weights: np.ndarray,
                  region: WorkRegion, prompt: str, negative_prompt: str | None, seed: int,
                  steps: int, guidance_scale: float, strength: float) -> Image.Image:
        import torch

        x1, y1, x2, y2 = region.box
        tw, th = region.size
        crop_img = photo.crop(region.box).resize((tw, th), Image.Resampling.LANCZOS)
        crop_mask = Image.fromarray(grown[y1:y2, x1:x2].astype(np.uint8) * 255).resize(
            (tw, th), Image.Resampling.NEAREST)
        generator = runtime.generator(int(seed))
        with torch.inference_mode(), self.sampling():
            result = self.pipe(prompt=prompt, negative_prompt=negative_prompt, image=crop_img,
                               mask_image=crop_mask, height=th, width=tw,
                               num_inference_steps=steps, guidance_scale=guidance_scale,
                               strength=strength, generator=generator).images[0]
        painted = result.resize((x2 - x1, y2 - y1), Image.Resampling.LANCZOS)
        return composite(photo, painted, weights, region.box)

    def sweep(self, image: Any, mask: Any, prompt: str, param: str, values: Sequence[Any],
              seed: int = 0, run: Run | None = None, **settings: Any
              ) -> tuple[list[Image.Image], Image.Image]:
        """One image per value of ``param``, all from the same starting noise.

        Args:
            param: the setting to vary, one of ``SWEEPABLE``.
            values: its values, e.g. ``[5, 20, 50]`` for steps.
            seed: the seed used for every value (unless ``param`` is "seed").
            run: a tracking run to log each image to, with its settings.
            settings: other ``inpaint`` settings, the same for every value.

        Every value (and the photo and mask) is checked before the first image is made.

        Returns:
            (images, a captioned grid of them).
        """
        from helpers import viz

        if param not in SWEEPABLE:
            raise ValueError(f"cannot sweep {param!r}; choose one of {', '.join(SWEEPABLE)}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ValueError(f"values {values!r:.60} must be a list of settings to try, e.g. "
                             "[1, 2, 4] for steps")
        values = list(values)
        if run is not None and not isinstance(run, tracking.Run):
            raise ValueError(f"run {run!r:.60} must be a tracking run (tracking.start(...)) "
                             "or None")
        if not values:
            raise ValueError("values is empty; give at least one value to try")
        if param in settings:
            raise ValueError(f"{param!r} is the swept setting; do not also pass it")
        known = set(inspect.signature(Inpainter.inpaint).parameters) - {"self", "image", "mask"}
        if unknown := sorted(set(settings) - known):
            raise TypeError(f"sweep got unknown setting(s) {', '.join(map(repr, unknown))}; "
                            f"inpaint takes {', '.join(sorted(known))}")
        # every value, the photo and the mask are checked before the first image is made
        asked = [{"seed": seed, "prompt": prompt, **settings, param: v} for v in values]
        checked = [self._settings(**kwargs, warn=False) for kwargs in asked]
        photo = images.load(image)
        as_mask(mask, photo.size)
        outputs = []
        for kwargs, plain in zip(asked, checked):
            out = self.inpaint(photo, mask, **kwargs)[0]
            outputs.append(out)
            if run is not None:
                shown = {k: plain[k] for k in kwargs if k != "prompt"}
                run.log_image(out, f"{param}={plain[param]}",
                              metadata={"prompt": plain["prompt"], **shown, "sweep": param})
        captions = [f"{param} = {plain[param]}" for plain in checked]
        return outputs, viz.grid(outputs, captions, cols=min(len(values), 5))


def composite(photo: Image.Image, painted: Image.Image, weights: np.ndarray,
              box: tuple[int, int, int, int]) -> Image.Image:
    """Blend ``painted`` (the size of ``box``) into ``photo`` with ``weights`` (H, W).

    Where a weight is 0 the photo's pixel is copied unchanged, so the result equals the
    photo exactly outside the mask.
    """
    x1, y1, x2, y2 = box
    base = np.array(photo)
    w = weights[y1:y2, x1:x2, None]
    region = base[y1:y2, x1:x2].astype(np.float32)
    blended = region + w * (np.asarray(painted, np.float32) - region)
    base[y1:y2, x1:x2] = np.where(w > 0, np.clip(np.round(blended), 0, 255), region).astype(
        np.uint8)
    return Image.fromarray(base)


@tracking.recipe(Inpainter.inpaint)
def _remake(image: Image.Image, mask: Image.Image, model: str, device: str,
            revision: str | None = None, scheduler: str | None = None,
            **settings: Any) -> Image.Image:
    known = set(inspect.signature(Inpainter.inpaint).parameters) - {"self", "image", "mask"}
    if unknown := sorted(set(settings) - known):
        raise ValueError(f"the recipe has setting(s) {', '.join(map(repr, unknown))} that "
                         "inpaint does not take; was the record edited by hand?")
    _check(*(settings.get(k, d) for k, d in (("steps", 1), ("guidance_scale", 0.0),
                                              ("strength", 1.0), ("num_images", 1),
                                              ("grow", 8), ("feather", 8), ("seed", 0))))
    inpainter = Inpainter.from_pretrained(model, device=device, revision=revision,
                                          scheduler=scheduler)
    restored_mask = np.asarray(mask.convert("L")) > 127
    return inpainter.inpaint(image.convert("RGB"), restored_mask, **settings)[0]


def difference(a: Any, b: Any) -> np.ndarray:
    """(H, W) float32 per-pixel largest channel difference between two images, 0..255."""
    x = np.asarray(images.load(a), np.int16)
    y = np.asarray(images.load(b), np.int16)
    if x.shape != y.shape:
        raise ValueError(f"images differ in size: {x.shape[1]}x{x.shape[0]} vs "
                         f"{y.shape[1]}x{y.shape[0]}")
    return np.abs(x - y).max(axis=-1).astype(np.float32)


__getattr__ = compat.moved(__name__, {
    "NAMES": "registry.aliases('sd-inpaint') (names and aliases live in helpers.registry)"})
