"""Example images as detection queries: "find every object like this one".

A query for ``Detector.detect`` is a text ("a cup") or an example image. An example is a
whole picture (a PIL image, an array, a ``pathlib.Path``) or an ``Example``: a picture with
an optional crop box ``[x1, y1, x2, y2]`` in *that picture's* pixels and an optional label.
A plain ``str`` is always a text query; give a file path as ``pathlib.Path("cup.jpg")`` or
``Example("cup.jpg")``.

This module only reads and checks queries (no model): ``parse`` sorts texts from examples
and ``Example.crop`` cuts the picture the detector will see, each with a clear error before
any model runs.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers import checks, images

MIN_SIDE = 8
"""The smallest example, in pixels per side: a smaller crop holds too little to match."""

_KINDS = ("a text such as 'a cat', an example image (a PIL image, an array or a "
          "pathlib.Path) or detect.Example(image, box=[x1, y1, x2, y2])")


def is_picture(value: Any) -> bool:
    """True for what can be a whole-picture example: a PIL image, an image array, a path
    object (a ``str`` is a text query, never a path here)."""
    from PIL import Image

    if isinstance(value, np.ndarray):
        return value.dtype.kind not in "USO"  # an array of texts is a list of texts
    return isinstance(value, (Image.Image, os.PathLike))


def _shown(box: Any) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def _box(box: Any) -> tuple[float, float, float, float]:
    text = f"{box!r:.60}"
    values = None
    if not isinstance(box, (str, bytes)):
        with contextlib.suppress(TypeError, ValueError):
            values = np.asarray(box)
    if values is not None:
        # (4,) or a detection's (1, 4) dets[0].xyxy
        values = values.reshape(-1).astype(np.float64) \
            if values.dtype.kind in "iuf" and values.shape in ((4,), (1, 4)) else None
    if values is None:
        raise checks.WrongType(f"Example box {text} must be 4 numbers [x1, y1, x2, y2] in "
                               "pixels of the example photo")
    x1, y1, x2, y2 = (float(v) for v in values)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError(f"Example box {text} must hold finite numbers, not NaN or infinity")
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"Example box {text} has {'x2 <= x1' if x2 <= x1 else 'y2 <= y1'}: "
                         "a box is [x1, y1, x2, y2] pixels with x2 > x1 and y2 > y1 (for "
                         "[x, y, w, h] write [x, y, x + w, y + h])")
    return x1, y1, x2, y2


@dataclass(frozen=True, eq=False)
class Example:
    """An example image as a query: "find every object like this one".

    Attributes:
        image: the example's photo: anything ``images.load`` accepts (a PIL image, an
            (H, W, 3) uint8 array, a path as ``str`` or ``Path``). It may be the very photo
            searched.
        box: None for the whole picture, or ``[x1, y1, x2, y2]`` pixels of ``image`` (not
            of the photo searched) to crop, kept as a tuple of 4 floats; fractional corners
            round to whole pixels. The box must lie inside ``image`` and the crop be at
            least ``MIN_SIDE`` pixels on each side.
        label: the label of the boxes it finds (None: "example 1", "example 2", ... by its
            place among the example queries).
    """

    image: Any
    box: Sequence[float] | np.ndarray | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.image, str) or is_picture(self.image)):
            raise checks.WrongType(
                f"Example image {self.image!r:.60} is a {type(self.image).__name__}, not an "
                "image: give a PIL image, an (H, W, 3) array or a path to a picture")
        if self.box is not None:
            object.__setattr__(self, "box", _box(self.box))
        if self.label is not None and (not isinstance(self.label, str)
                                       or not self.label.strip()):
            raise checks.WrongType(f"Example label {self.label!r:.60} must be a non-empty "
                                   "text such as 'cup', or None for 'example 1'")
        if self.label is not None:
            object.__setattr__(self, "label", self.label.strip())

    def __repr__(self) -> str:
        from PIL import Image

        img = self.image
        shown = (f"<{img.size[0]}x{img.size[1]} image>" if isinstance(img, Image.Image)
                 else f"<array {img.shape}>" if isinstance(img, np.ndarray) else repr(img))
        return f"Example({shown}, box={self.box}, label={self.label!r})"

    def crop(self) -> Any:
        """The picture the detector sees: ``image`` loaded as RGB and cut to ``box``.

        Returns:
            A ``PIL.Image.Image`` (RGB), at least ``MIN_SIDE`` x ``MIN_SIDE`` pixels.

        Raises:
            ValueError: the picture cannot be read, the box reaches outside it, or the
                crop (or the whole picture) is smaller than ``MIN_SIDE`` pixels on a side.
        """
        img = images.load(self.image)
        w, h = img.size
        what = "example image"
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
                raise ValueError(
                    f"Example box {_shown(self.box)} reaches outside the example photo, which "
                    f"is {w}x{h} pixels (width x height): keep 0 <= x1 < x2 <= {w} and "
                    f"0 <= y1 < y2 <= {h}. The box is in pixels of the example's own photo.")
            left, top, right, bottom = (int(round(v)) for v in self.box)
            img = img.crop((left, top, right, bottom))
            w, h = img.size
            what = f"example crop {_shown(self.box)}"
        if w < MIN_SIDE or h < MIN_SIDE:
            raise ValueError(f"the {what} is {w}x{h} pixels, too small to match: an example "
                             f"must be at least {MIN_SIDE} pixels on each side; draw a "
                             "larger box around the object")
        return img


def parse(queries: Any) -> list[str | Example]:
    """``queries`` as a list of texts (stripped) and ``Example`` s, in the order given.

    One query (a text, a picture or an ``Example``) or a list of them; a picture becomes
    ``Example(picture)``.
    """
    if isinstance(queries, (str, Example)) or is_picture(queries):
        items = [queries]
    elif isinstance(queries, Iterable):
        items = list(queries)
    else:
        raise ValueError(f"queries {queries!r:.60} must be {_KINDS}, or a list of them")
    if not items:
        raise ValueError("queries is empty; give a text such as 'a cat', an example image, "
                         "or a list of them")
    parsed: list[str | Example] = []
    for q in items:
        if isinstance(q, str):
            if not q.strip():
                raise ValueError(f"query {q!r} must be a non-empty text such as 'a cat'")
            parsed.append(q.strip())
        elif isinstance(q, Example):
            parsed.append(q)
        elif is_picture(q):
            parsed.append(Example(q))
        else:
            raise checks.WrongType(f"query {q!r:.60} is a {type(q).__name__}; a query is "
                                   f"{_KINDS}")
    return parsed


def labels(parsed: Sequence[str | Example]) -> list[str]:
    """Each query's label: a text labels itself; an example its ``label``, else
    "example k" (k counts the examples from 1)."""
    out, k = [], 0
    for q in parsed:
        if isinstance(q, str):
            out.append(q)
        else:
            k += 1
            out.append(q.label or f"example {k}")
    return out
