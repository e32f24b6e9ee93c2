"""Loading any picture as an RGB ``PIL.Image``, the course's sample photos, and resizing.

Every lesson starts from an image; ``load`` accepts whatever a learner is likely to have:
a file path, a URL, a PIL image or a NumPy array. Whatever comes in, an 8-bit RGB image
comes out, turned upright by its EXIF orientation. Grey, grey+alpha, palette, RGBA,
16-bit and CMYK inputs are converted (transparent areas are laid on white).

Pixel limits live here, in one place: a pixel budget (``max_pixels()``, 40 megapixels by
default; ``HELPERS_MAX_PIXELS`` or ``set_max_pixels(n)`` changes it) and a hard ceiling of
``CEILING`` times the budget. A file's size is read from its header before it is decoded: a
photo between the budget and the ceiling is downscaled to the budget with a warning (a JPEG
is decoded at 1/2, 1/4 or 1/8 scale straight away); above the ceiling, or refused by PIL as a
decompression bomb, it is a ValueError that names its size. ``check_pixels(width, height,
what)`` raises the same error for any other picture about to be made or stored.

The sample photos live in ``data/`` with a manifest (source, licence, size, SHA-256);
``sample(name)`` loads one by name and ``samples()`` lists them.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from helpers import checks, compat

DATA_ENV = "HELPERS_DATA_DIR"
_URL_PREFIXES = ("http://", "https://")
MAX_PIXELS_ENV = "HELPERS_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 40_000_000
"""The default pixel budget: 40 megapixels (a 7730 x 5150 photo, 120 MB as 8-bit RGB)."""
CEILING = 4
"""A picture up to ``CEILING`` times the budget is downscaled to it; a larger one is refused."""
_RESIZABLE = ("RGB", "RGBA", "L", "LA", "CMYK", "I", "F")
"""Modes PIL resizes with a real filter (others are converted to RGB first)."""
_budget: int | None = None


# ---------------------------------------------------------------- pixel limits

def max_pixels() -> int:
    """The pixel budget: ``set_max_pixels``'s value, else ``HELPERS_MAX_PIXELS``, else 40 M.

    Raises:
        ValueError: ``HELPERS_MAX_PIXELS`` is not a positive whole number of pixels.
    """
    if _budget is not None:
        return _budget
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise ValueError(f"{MAX_PIXELS_ENV}={os.environ[MAX_PIXELS_ENV]!r} must be a whole "
                         "number of pixels, e.g. 40000000 (or 40e6); unset it for the default "
                         f"of {DEFAULT_MAX_PIXELS:,}")
    return int(value)


def set_max_pixels(n: int | None) -> int:
    """Set the pixel budget for this process (None: back to ``HELPERS_MAX_PIXELS`` or the
    default); returns the budget now in force."""
    global _budget
    _budget = None if n is None else checks.integer("max_pixels", n, 1)
    return max_pixels()


def _megapixels(pixels: float) -> str:
    return f"{pixels / 1e6:,.1f} megapixels" if pixels >= 1e5 else f"{int(pixels):,} pixels"


def check_pixels(width: int, height: int, what: str = "the image", *,
                 limit: int | None = None, hint: str | None = None) -> None:
    """Raise a ValueError when a ``width`` x ``height`` picture is more than ``limit`` pixels
    (default: the budget, ``max_pixels()``); call it before making or storing a picture.

    Args:
        what: how the message names the picture ("the logged image", ...).
        hint: what to do instead (default: downscale it first).
    """
    w, h = checks.integer("width", width, 0), checks.integer("height", height, 0)
    top = max_pixels() if limit is None else limit
    if w * h <= top:
        return
    todo = hint or ("downscale it first (e.g. images.resize_long_side(img, 4096)), or raise "
                    f"the budget with images.set_max_pixels(n) or {MAX_PIXELS_ENV}")
    raise ValueError(f"{what} is {w}x{h} pixels ({_megapixels(w * h)}), more than the limit "
                     f"of {_megapixels(top)}: {todo}")


def _fit(w: int, h: int, pixels: int) -> tuple[int, int]:
    """The largest (w', h') of the same aspect with w' * h' <= pixels."""
    scale = math.sqrt(pixels / (w * h))
    tw, th = max(1, math.floor(w * scale)), max(1, math.floor(h * scale))
    while tw * th > pixels:  # the square root's rounding
        if tw >= th:
            tw -= 1
        else:
            th -= 1
    return tw, th


def _check_ceiling(w: int, h: int, what: str) -> None:
    """Refuse a picture above the ceiling (``CEILING`` times the budget), naming its size."""
    check_pixels(w, h, what, limit=CEILING * max_pixels(),
                 hint=f"that is more than {CEILING} times the pixel budget, too large to "
                      "downscale here. Downscale it first (an image editor, or PIL's "
                      "Image.thumbnail), or raise the budget with images.set_max_pixels(n) or "
                      f"{MAX_PIXELS_ENV}")


def _within_budget(img: Image.Image, what: str, draft: bool = False) -> Image.Image:
    """``img`` as RGB, downscaled to the budget (with a warning) when it is larger.

    Its size is read from its header: above the ceiling it is refused before decoding;
    ``draft`` lets a JPEG decode at a reduced scale (only for an image ``load`` opened
    itself: it changes the image object).
    """
    w, h = img.size
    budget = max_pixels()
    if w * h <= budget:
        return _to_rgb(img)
    _check_ceiling(w, h, what)
    target = _fit(w, h, budget)
    if draft:
        img.draft(img.mode, target)  # a JPEG decodes at 1/2, 1/4 or 1/8 scale; others: no-op
    if img.mode == "1":  # 1-bit and palette images would resize with NEAREST only
        img = img.convert("L")
    elif img.mode not in _RESIZABLE:
        img = _to_rgb(img)
    if (img.size[0] < img.size[1]) != (target[0] < target[1]):
        target = target[::-1]  # turned upright by its EXIF orientation already
    out = _to_rgb(img.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0))
    compat.warn(f"{what} is {w}x{h} pixels ({_megapixels(w * h)}), more than the pixel budget "
                f"of {_megapixels(budget)}: it was downscaled to {out.size[0]}x{out.size[1]}. "
                "Downscale it yourself to choose how, or raise the budget with "
                f"images.set_max_pixels(n) or {MAX_PIXELS_ENV}.")
    return out


# ---------------------------------------------------------------- loading

def data_dir() -> Path:
    """The folder with the sample photos and ``manifest.json`` (``HELPERS_DATA_DIR`` overrides)."""
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "data"


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    img = ImageOps.exif_transpose(img) or img
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if mode == "F" and arr.max() <= 1.0:
            top = 1.0
        grey = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        return img.convert("RGB")
    return img.convert("RGB")


def from_array(array: Any) -> Image.Image:
    """An RGB image from an array: (H,W) grey, (H,W,1), (H,W,3) RGB or (H,W,4) RGBA.

    uint8 is taken as is; uint16 is scaled from 0..65535; bool is black/white; floats must
    lie in [0, 1] (as from ``skimage``) and are scaled to 0..255.
    """
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(
            f"an image array must have shape (H, W), (H, W, 3) or (H, W, 4); got {arr.shape}. "
            "Channels-first arrays (3, H, W) need arr.transpose(1, 2, 0) first."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"an image array must not be empty; got shape {arr.shape}")
    _check_ceiling(arr.shape[1], arr.shape[0], "the image array")  # before any conversion
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.float64) / 65535.0 * 255.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("the image array holds NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"a float image array must lie in [0, 1]; got values from {lo:g} to {hi:g}. "
                "Divide by 255 (or by its maximum) first, or pass it as uint8."
            )
        arr = (arr * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 255:
            arr = arr.astype(np.uint8)
        else:
            raise ValueError(
                f"image arrays must be uint8, uint16, bool or float in [0, 1]; got {arr.dtype}"
            )
    return _within_budget(Image.fromarray(np.ascontiguousarray(arr)), "the image array")


def _open_bytes(data: bytes, where: str) -> Image.Image:
    """The image in ``data`` as RGB within the budget; its size is checked from its header,
    before its pixels are decoded."""
    try:
        with warnings.catch_warnings():  # the budget below supersedes PIL's bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{_megapixels(int(found.group(1)))}, " if found else "its size is "
        raise ValueError(
            f"{where} is too large to open: {size}more than PIL's decompression-bomb limit "
            f"of {_megapixels(2 * (Image.MAX_IMAGE_PIXELS or 0))} (the pixel budget is "
            f"{_megapixels(max_pixels())}). If it is a real photo, downscale it first with an "
            "image editor; if not, do not open it") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise _unreadable(where, err) from err
    try:
        return _within_budget(img, where, draft=True)
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise _unreadable(where, err) from err


def _unreadable(where: str, err: BaseException) -> ValueError:
    return ValueError(f"{where} is not an image that PIL can read ({err}). Use a PNG, JPEG, "
                      "WebP, TIFF or BMP file.")


def _fetch_url(url: str, timeout: float) -> bytes:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "helpers-course/0.1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read())
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise ValueError(
            f"could not download the image at {url} ({reason}). Check the address and the "
            "network, or download the file and pass its path instead."
        ) from err


def load(src: Any, timeout: float = 20.0) -> Image.Image:
    """Load an image as 8-bit RGB, upright by its EXIF orientation.

    Args:
        src: a path (str or ``Path``), an ``http(s)://`` URL, a ``PIL.Image.Image``, or a
            NumPy array (see ``from_array``).
        timeout: seconds to wait for a URL.

    Returns:
        A ``PIL.Image.Image`` in mode "RGB"; ``img.size`` is (width, height) in pixels. A
        picture above the pixel budget (``max_pixels()``) comes downscaled to it, with a
        warning that names both sizes.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file or URL is not an image, the array cannot be one, or it is more
            than ``CEILING`` times the pixel budget (checked before decoding).
        TypeError: ``src`` is none of the above.
    """
    if isinstance(src, Image.Image):
        return _within_budget(src, "the image")
    if isinstance(src, np.ndarray):
        return from_array(src)
    if isinstance(src, (str, os.PathLike)):
        text = os.fspath(src)
        if isinstance(text, str) and text.startswith(_URL_PREFIXES):
            return _open_bytes(_fetch_url(text, timeout), text)
        if not text.strip():
            raise ValueError("the image path is empty ''; give a file path, a URL, a PIL image "
                             "or an array")
        path = Path(text).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"image file {str(path)!r} does not exist. Check the path (relative paths "
                f"start from {Path.cwd().name}/), or use images.sample(name) for the "
                f"course photos: {', '.join(samples())}."
            )
        if path.is_dir():
            raise ValueError(f"{str(path)!r} is a folder, not an image file")
        return _open_bytes(path.read_bytes(), repr(str(path)))
    raise TypeError(
        f"cannot load an image from {type(src).__name__}; pass a path, a URL, a PIL image "
        "or a NumPy array"
    )


@lru_cache(maxsize=1)
def _manifest_cached(path: str, mtime: float) -> dict[str, dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        entries = json.load(fh)["images"]
    return {entry["name"]: entry for entry in entries}


def manifest() -> dict[str, dict[str, Any]]:
    """The sample photos' records by name: file, source, licence, size and SHA-256."""
    path = data_dir() / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(
            f"no sample manifest at {path}; the data/ folder is missing from this checkout"
        )
    return dict(_manifest_cached(str(path), path.stat().st_mtime))


def samples() -> list[str]:
    """The names accepted by ``sample``."""
    try:
        return sorted(manifest())
    except FileNotFoundError:
        return []


def sample(name: str) -> Image.Image:
    """One of the course's sample photos by name (see ``samples()``), as RGB."""
    entries = manifest()
    if name not in entries:
        import difflib

        close = difflib.get_close_matches(str(name), list(entries), n=2, cutoff=0.5)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown sample image {name!r}.{hint} Available: {', '.join(sorted(entries))}."
        )
    return load(data_dir() / entries[name]["file"])


def digest(img: Image.Image) -> str:
    """The SHA-256 of an image's content: its mode, size and pixels (not its file encoding),
    so the same picture has the same digest however it was saved or loaded."""
    import hashlib

    if not isinstance(img, Image.Image):
        raise ValueError(f"digest takes a PIL image (images.load(...) makes one from a path or "
                         f"an array), not a {type(img).__name__}")
    h = hashlib.sha256(f"{img.mode}{img.size}".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def resize_long_side(img: Image.Image, n: int) -> Image.Image:
    """Resize so the longer side is ``n`` pixels, keeping the aspect ratio.

    The shorter side is rounded and never below 1 pixel. Downscaling uses a box-filtered
    Lanczos resample, so thin lines do not alias.

    Raises:
        ValueError: ``n`` is not a positive integer, or the result would be more than the
            pixel budget (``max_pixels()``); nothing is allocated then.
    """
    if not isinstance(img, Image.Image):
        raise TypeError(f"resize_long_side takes a PIL image; got {type(img).__name__}")
    try:
        n = checks.integer("long side", n, 1)
    except ValueError as err:  # checks.WrongType stays a TypeError too
        raise type(err)(f"long side {n!r} must be a positive integer number of pixels") from None
    w, h = img.size
    scale = n / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    check_pixels(*size, f"resize_long_side(img, {n}) would make a picture that",
                 hint=f"choose a smaller long side (at most about "
                      f"{max(_fit(w, h, max_pixels()))} px for this {w}x{h} image)")
    if size == (w, h):
        return img.copy()
    return img.resize(size, Image.Resampling.LANCZOS)
