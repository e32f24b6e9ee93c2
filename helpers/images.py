"""Loading any picture as an RGB ``PIL.Image``, the course's sample photos, and resizing.

Every lesson starts from an image; ``load`` accepts whatever a learner is likely to have:
a file path, a URL, a PIL image or a NumPy array. Whatever comes in, an 8-bit RGB image
comes out, turned upright by its EXIF orientation. Grey, grey+alpha, palette, RGBA,
16-bit and CMYK inputs are converted (transparent areas are laid on white).

The sample photos live in ``data/`` with a manifest (source, licence, size, SHA-256);
``sample(name)`` loads one by name and ``samples()`` lists them.
"""

from __future__ import annotations

import io
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DATA_ENV = "HELPERS_DATA_DIR"
_URL_PREFIXES = ("http://", "https://")


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
    return _to_rgb(Image.fromarray(np.ascontiguousarray(arr)))


def _open_bytes(data: bytes, where: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(
            f"{where} is not an image that PIL can read ({err}). Use a PNG, JPEG, "
            "WebP, TIFF or BMP file."
        ) from err
    return img


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
        A ``PIL.Image.Image`` in mode "RGB"; ``img.size`` is (width, height) in pixels.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file or URL is not an image, or the array cannot be one.
        TypeError: ``src`` is none of the above.
    """
    if isinstance(src, Image.Image):
        return _to_rgb(src)
    if isinstance(src, np.ndarray):
        return from_array(src)
    if isinstance(src, (str, os.PathLike)):
        text = os.fspath(src)
        if isinstance(text, str) and text.startswith(_URL_PREFIXES):
            return _to_rgb(_open_bytes(_fetch_url(text, timeout), text))
        path = Path(text).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"image file {str(path)!r} does not exist. Check the path (relative paths "
                f"start from {Path.cwd().name}/), or use images.sample(name) for the "
                f"course photos: {', '.join(samples())}."
            )
        if path.is_dir():
            raise ValueError(f"{str(path)!r} is a folder, not an image file")
        return _to_rgb(_open_bytes(path.read_bytes(), repr(str(path))))
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

    h = hashlib.sha256(f"{img.mode}{img.size}".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def resize_long_side(img: Image.Image, n: int) -> Image.Image:
    """Resize so the longer side is ``n`` pixels, keeping the aspect ratio.

    The shorter side is rounded and never below 1 pixel. Downscaling uses a box-filtered
    Lanczos resample, so thin lines do not alias.
    """
    if not isinstance(img, Image.Image):
        raise TypeError(f"resize_long_side takes a PIL image; got {type(img).__name__}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"long side {n!r} must be a positive integer number of pixels")
    w, h = img.size
    scale = int(n) / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return img.copy()
    return img.resize(size, Image.Resampling.LANCZOS)
