"""``Prompt``: the points, labels, box and mask that steer a promptable segmenter.

One prompt refers to one image of ``size`` = (width, height) and is checked once, when it
is made, by one set of rules:

- points are ``(x, y)`` pixels of the original image with ``0 <= x < width`` and
  ``0 <= y < height``; each has a label, 1 (include) or 0 (exclude);
- the box is ``[x1, y1, x2, y2]`` pixels with ``x2 > x1``, ``y2 > y1``, inside the image;
- the mask is a low-resolution logit map from an earlier result (SAM's ``logits[i]``),
  used to refine; its exact shape is the model's business (``Segmenter`` checks it).

A prompt outside the image is an error, never silently moved: a learner who types a wrong
coordinate should hear about it. Only an interface whose input can leave the picture (a
mouse drag past its edge) clips, and it says so by calling ``Prompt.clipped``.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

INCLUDE, EXCLUDE = 1, 0


def _points(points: Any) -> np.ndarray:
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"points must be (N, 2) numbers, (x, y) pixels; got {points!r:.60}"
                         ) from err
    if pts.size == 0:
        raise ValueError("points is empty; give at least one (x, y) point or None")
    pts = pts.reshape(-1, 2) if pts.ndim == 1 and pts.size == 2 else pts
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2) as (x, y) pixels; got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError(f"points must be finite numbers; got {pts.tolist()}")
    return pts


def _box(box: Any) -> np.ndarray:
    try:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"box must be [x1, y1, x2, y2] pixels; got {box!r}") from err
    if b.shape != (4,) or not np.isfinite(b).all():
        raise ValueError(f"box must be [x1, y1, x2, y2] pixels; got {np.asarray(box).tolist()}")
    return b


@dataclass(frozen=True, eq=False)
class Prompt:
    """Point, box and mask prompts on one image, checked when made.

    Attributes:
        size: (width, height) of the image the prompt refers to, in pixels.
        points: (N, 2) float32 ``(x, y)`` pixels, or None.
        labels: (N,) int32, 1 = include, 0 = exclude (one per point), or None.
        box: (4,) float32 ``[x1, y1, x2, y2]`` pixels, or None.
        mask: (1, h, w) float32 low-resolution logits from an earlier result, or None.

    Raises:
        ValueError: a point or box outside the image, a box without area, labels other
            than 0/1 or of another length than the points, labels without points.
    """

    size: tuple[int, int]
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        try:
            w, h = (int(v) for v in self.size)
        except (TypeError, ValueError) as err:
            raise ValueError(f"image size {self.size!r} must be (width, height) in pixels"
                             ) from err
        if w < 1 or h < 1:
            raise ValueError(f"image size {self.size!r} must be (width, height) >= 1 pixel")
        set_ = object.__setattr__
        set_(self, "size", (w, h))
        if self.points is None:
            if self.labels is not None:
                raise ValueError("labels were given without points")
        else:
            set_(self, "points", self._checked_points(_points(self.points)))
            set_(self, "labels", self._checked_labels(self.labels))
        if self.box is not None:
            set_(self, "box", self._checked_box(_box(self.box)))
        if self.mask is not None:
            try:
                m = np.asarray(self.mask, dtype=np.float32)
            except (TypeError, ValueError) as err:
                raise ValueError("mask must be (1, h, w) logits from an earlier result "
                                 "(result.logits[i:i+1])") from err
            m = m[None] if m.ndim == 2 else m
            if m.ndim != 3 or m.shape[0] != 1 or not np.isfinite(m).all():
                raise ValueError(f"mask must be (1, h, w) finite logits from an earlier "
                                 f"result (result.logits[i:i+1]); got shape {m.shape}")
            set_(self, "mask", m)

    def _checked_points(self, pts: np.ndarray) -> np.ndarray:
        w, h = self.size
        for x, y in pts:
            if not (0 <= x < w and 0 <= y < h):
                raise ValueError(
                    f"point ({x:g}, {y:g}) is outside the {w}x{h} image; points are (x, y) "
                    "pixels of the original image"
                )
        return pts.astype(np.float32)

    def _checked_labels(self, labels: Any) -> np.ndarray:
        n = len(self.points)  # type: ignore[arg-type]
        if labels is None:
            raise ValueError(f"{n} point(s) but no labels; give labels=[1, ...] (1 = include, "
                             "0 = exclude), one per point")
        labs = np.asarray(labels).reshape(-1)
        if len(labs) != n:
            raise ValueError(f"{n} points but {len(labs)} labels; give one label each")
        if not np.isin(labs, (INCLUDE, EXCLUDE)).all():
            raise ValueError(f"labels must be 1 (include) or 0 (exclude); got {labs.tolist()}")
        return labs.astype(np.int32)

    def _checked_box(self, b: np.ndarray) -> np.ndarray:
        w, h = self.size
        x1, y1, x2, y2 = b
        if x2 <= x1 or y2 <= y1:
            raise ValueError(
                f"box {b.tolist()} needs x2 > x1 and y2 > y1; boxes are [x1, y1, x2, y2] "
                "pixels (for [x, y, w, h] use Detections.from_xywh(...).xyxy[0])"
            )
        if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
            raise ValueError(f"box {b.tolist()} reaches outside the {w}x{h} image")
        return b.astype(np.float32)

    # ------------------------------------------------------------ constructors
    @classmethod
    def of(cls, size: tuple[int, int], points: Any = None, labels: Any = None, box: Any = None,
           mask: Any = None, default_label: int | None = None) -> Prompt:
        """A prompt from loose values; points without labels get ``default_label`` when
        it is given (an error otherwise)."""
        if points is not None and labels is None and default_label is not None:
            labels = [default_label] * len(_points(points))
        return cls(size, points, labels, box, mask)

    @classmethod
    def clipped(cls, size: tuple[int, int], points: Any = None, labels: Any = None,
                box: Any = None) -> Prompt:
        """A prompt from input that may leave the picture (a mouse drag past its edge):
        points are moved to the nearest pixel inside, the box corners are put in order
        and clipped to the image. A box with less than a pixel of area inside is an error."""
        w, h = (int(v) for v in size)
        if points is not None:
            pts = _points(points)
            points = np.stack([pts[:, 0].clip(0, w - 1), pts[:, 1].clip(0, h - 1)], axis=1)
        if box is not None:
            x1, y1, x2, y2 = _box(box)
            xs = sorted((min(max(x1, 0.0), w), min(max(x2, 0.0), w)))
            ys = sorted((min(max(y1, 0.0), h), min(max(y2, 0.0), h)))
            if xs[1] - xs[0] < 1 or ys[1] - ys[0] < 1:
                raise ValueError(f"box ({xs[0]:g}, {ys[0]:g}, {xs[1]:g}, {ys[1]:g}) has no "
                                 f"area inside the {w}x{h} image")
            box = [xs[0], ys[0], xs[1], ys[1]]
        return cls((w, h), points, labels, box)

    # ------------------------------------------------------------ edits (new prompts)
    def with_point(self, x: float, y: float, label: int = INCLUDE) -> Prompt:
        """This prompt plus one point."""
        pts = [] if self.points is None else self.points.tolist()
        labs = [] if self.labels is None else self.labels.tolist()
        return Prompt(self.size, np.asarray(pts + [[x, y]]), np.asarray(labs + [label]),
                      self.box, self.mask)

    def with_box(self, box: Any) -> Prompt:
        """This prompt with ``box`` instead of its box (None removes it)."""
        return Prompt(self.size, self.points, self.labels, box, self.mask)

    # ------------------------------------------------------------ reading
    def is_empty(self) -> bool:
        """True when there is no point, box or mask."""
        return self.points is None and self.box is None and self.mask is None

    def __len__(self) -> int:
        """The number of points."""
        return 0 if self.points is None else len(self.points)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Prompt):
            return NotImplemented
        return self.size == other.size and all(
            same_arrays(getattr(self, k), getattr(other, k)) for k in ("points", "labels", "box",
                                                                  "mask"))

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the mask, model-specific logits, is left out)."""
        return {"size": list(self.size),
                "points": [] if self.points is None else self.points.tolist(),
                "labels": [] if self.labels is None else self.labels.tolist(),
                "box": None if self.box is None else self.box.tolist()}

    def to_json(self) -> str:
        """The prompt as JSON: size (w, h), points (x, y), labels and box, in pixels."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str, size: tuple[int, int] | None = None,
                  source: str = "these prompts") -> Prompt:
        """A prompt saved by ``to_json``; with ``size``, checks it was made for that size.

        Raises:
            ValueError: ``text`` is not JSON, not what ``to_json`` writes (a size, points,
                labels and a box, each of numbers), or its prompts do not fit the image;
                the message starts with ``source`` (a file's name, for a loader).
        """
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as err:  # JSONDecodeError is a ValueError
            raise ValueError(f"{source} are not JSON ({err}); {SAVE_AGAIN}") from None
        saved = _saved_size(data, source)
        if size is not None and saved != tuple(size):
            raise ValueError(f"{source} were saved for a {saved[0]}x{saved[1]} image, not "
                             f"{size[0]}x{size[1]}; load them for that image")
        points = _numbers(data.get("points"), 2, "points", source)
        labels = data.get("labels")
        if not isinstance(labels, list) or not all(type(v) is int for v in labels):
            raise ValueError(f"{source}: labels {labels!r:.80} must be a list of 1 (include) "
                             f"and 0 (exclude); {SAVE_AGAIN}")
        box = _numbers(data.get("box") or None, 4, "box", source)
        try:
            return cls(saved, np.asarray(points) if points else None,
                       np.asarray(labels) if points or labels else None,
                       np.asarray(box[0]) if box else None)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None


def same_arrays(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """True when both are None, or both are arrays with equal shape and values."""
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b))


SAVE_AGAIN = "save the prompts again with picker.save(path)"
"""What every refusal of a saved prompt ends with."""


def _saved_size(data: Any, source: str) -> tuple[int, int]:
    """The image size of saved prompts: ``data`` must be the object ``to_json`` writes."""
    keys = ("size", "points", "labels", "box")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        kinds = {"list": "list", "str": "string", "int": "number", "float": "number",
                 "bool": "true or false", "NoneType": "null"}
        held = ("an object without " + ", ".join(k for k in keys if k not in data)
                if isinstance(data, dict) else f"a JSON {kinds.get(type(data).__name__)}")
        raise ValueError(f"{source} are {held}, not saved prompts (an object with size, "
                         f"points, labels and box); {SAVE_AGAIN}")
    size = data["size"]
    if not isinstance(size, list) or len(size) != 2 or \
            not all(type(v) is int and v >= 1 for v in size):
        raise ValueError(f"{source}: size {size!r:.80} must be [width, height] in whole "
                         f"pixels; {SAVE_AGAIN}")
    return int(size[0]), int(size[1])


def _numbers(value: Any, width: int, what: str, source: str) -> list[list[float]]:
    """``value`` as rows of ``width`` finite numbers (one row for a box); [] for none."""
    if value is None:
        return []
    rows = [value] if what == "box" else value
    if not isinstance(rows, list) or not all(
            isinstance(row, list) and len(row) == width and
            all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                for v in row) for row in rows):
        shape = "[x1, y1, x2, y2] pixels" if what == "box" else "a list of [x, y] pixels"
        raise ValueError(f"{source}: {what} {value!r:.80} must be {shape}; {SAVE_AGAIN}")
    return [[float(v) for v in row] for row in rows]
