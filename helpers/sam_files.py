"""SAM image-embedding files: reading back what ``Segmenter.save_embedding`` wrote, every
part checked, with an error that names the file for anything else.

A file holds a dict: ``model`` (the registry name), ``features`` ((1, C, g, g) float
tensor), ``original_size`` and ``input_size`` ((H, W) pixels), ``image_png`` (the photo as
PNG bytes) and ``format`` (an int).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from helpers import images

SAVE_AGAIN = "make it again: seg.set_image(image), then seg.save_embedding(path)"


def read_embedding(path: Path) -> dict[str, Any]:
    """What ``save_embedding`` wrote to ``path``, its parts checked, plus the ``photo``
    decoded; a clear error naming the file for anything else (an empty, cut-off or
    damaged file, another kind of file)."""
    import io

    import torch
    from PIL import Image as PILImage

    if not path.is_file():
        raise FileNotFoundError(f"embedding file {str(path)!r} does not exist; {SAVE_AGAIN}")
    if path.stat().st_size == 0:
        raise ValueError(f"embedding file {str(path)!r} is empty (0 bytes); {SAVE_AGAIN}")
    try:
        with warnings.catch_warnings():  # not "Detected pickle protocol 4" beside the error
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds here: pickle, zip, EOF, runtime
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"embedding file {str(path)!r} is damaged, cut off or not one "
                         f"save_embedding wrote ({type(err).__name__}: {reason}); "
                         f"{SAVE_AGAIN}") from None
    parts = ("model", "features", "original_size", "input_size", "image_png")
    if not isinstance(data, dict) or any(k not in data for k in parts):
        held = (f"a {type(data).__name__}" if not isinstance(data, dict) else "no " +
                ", ".join(k for k in parts if k not in data))
        raise ValueError(f"embedding file {str(path)!r} holds {held}, not an embedding "
                         f"save_embedding wrote; {SAVE_AGAIN}")
    data.setdefault("format", 1)
    features, sizes = data["features"], [data["original_size"], data["input_size"]]
    if not isinstance(features, torch.Tensor) or not features.is_floating_point() \
            or not bool(torch.isfinite(features).all()) or not isinstance(data["model"], str) \
            or not isinstance(data["image_png"], bytes) or type(data["format"]) is not int \
            or not all(isinstance(v, (list, tuple)) and len(v) == 2 and
                       all(type(n) is int and n > 0 for n in v) for v in sizes):
        raise ValueError(f"embedding file {str(path)!r} is damaged: its parts are not what "
                         f"save_embedding writes; {SAVE_AGAIN}")
    try:
        data["photo"] = images.load(PILImage.open(io.BytesIO(data["image_png"])))
    except (OSError, ValueError) as err:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f"{str(path)!r} is damaged: its photo cannot be read ({err}); "
                         f"{SAVE_AGAIN}") from None
    return data
