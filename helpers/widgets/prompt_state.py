"""``PromptState``: the point and box prompts of one image with undo, a history of
``Prompt`` values. The picker (``widgets.picker``) keeps its prompts in one; it works and is
tested without a browser."""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np

from helpers.prompts import INCLUDE, Prompt


class PromptState:
    """Point and box prompts on one image with undo: a history of ``Prompt`` values.

    Args:
        size: (width, height) of the image in pixels.
        points, labels, box: the starting prompt, checked strictly (a point or box outside
            the image is an error).

    ``add_point`` is strict too; ``set_box`` takes two drag corners in any order and clips
    them to the image (``Prompt.clipped``), because a drag may end past the picture's edge.
    """

    def __init__(self, size: tuple[int, int], points: Any = (), labels: Any = (),
                 box: Any = None) -> None:
        pts = list(points) if points is not None else []
        labs = list(labels) if labels is not None else []
        self.prompt = Prompt(size, np.asarray(pts) if pts else None,
                             np.asarray(labs) if pts or labs else None,
                             None if box is None else np.asarray(box))
        self._history: list[Prompt] = []

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the image, in pixels."""
        return self.prompt.size

    @property
    def points(self) -> list[tuple[float, float]]:
        """[(x, y), ...] pixels of the original image."""
        pts = self.prompt.points
        return [] if pts is None else [(float(x), float(y)) for x, y in pts]

    @property
    def labels(self) -> list[int]:
        """[1 or 0, ...], 1 = include, 0 = exclude."""
        labs = self.prompt.labels
        return [] if labs is None else [int(v) for v in labs]

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        """(x1, y1, x2, y2) pixels, or None."""
        b = self.prompt.box
        return None if b is None else (float(b[0]), float(b[1]), float(b[2]), float(b[3]))

    @property
    def empty(self) -> bool:
        """True when there is no point and no box."""
        return self.prompt.is_empty()

    def _push(self, new: Prompt) -> None:
        self._history.append(self.prompt)
        self.prompt = new

    def add_point(self, x: float, y: float, label: int = INCLUDE) -> None:
        """Add a point in original pixels; label 1 includes, 0 excludes."""
        self._push(self.prompt.with_point(float(x), float(y), label))

    def set_box(self, x1: float, y1: float, x2: float, y2: float) -> None:
        """Set the box from two corners in any order (clipped to the image)."""
        self._push(self.prompt.with_box(Prompt.clipped(self.size, box=[x1, y1, x2, y2]).box))

    def undo(self) -> bool:
        """Take back the last change; False when there is nothing to undo."""
        if not self._history:
            return False
        self.prompt = self._history.pop()
        return True

    def clear(self) -> None:
        """Remove every prompt (undo brings them back)."""
        if not self.empty:
            self._push(Prompt(self.size))

    def to_json(self) -> str:
        """The prompts as JSON: size (w, h), points (x, y), labels and box, in pixels."""
        return self.prompt.to_json()

    @classmethod
    def from_json(cls, text: str, size: tuple[int, int] | None = None,
                  source: str = "these prompts") -> PromptState:
        """Prompts saved by ``to_json``; with ``size``, checks they were made for that size.

        Raises:
            ValueError: ``text`` is not JSON, not what ``to_json`` writes (a size, points,
                labels and a box, each of numbers), or its prompts do not fit the image;
                the message starts with ``source`` (a file's name, for ``load``).
        """
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as err:  # JSONDecodeError is a ValueError
            raise ValueError(f"{source} are not JSON ({err}); {_SAVE_AGAIN}") from None
        state = cls(_saved_size(data, source))
        if size is not None and state.size != tuple(size):
            w, h = state.size
            raise ValueError(f"{source} were saved for a {w}x{h} image, not "
                             f"{size[0]}x{size[1]}; load them for that image")
        points = _numbers(data.get("points"), 2, "points", source)
        labels = data.get("labels")
        if not isinstance(labels, list) or not all(type(v) is int for v in labels):
            raise ValueError(f"{source}: labels {labels!r:.80} must be a list of 1 (include) "
                             f"and 0 (exclude); {_SAVE_AGAIN}")
        box = _numbers(data.get("box") or None, 4, "box", source)
        try:
            state.prompt = Prompt(state.size, np.asarray(points) if points else None,
                                  np.asarray(labels) if points or labels else None,
                                  np.asarray(box[0]) if box else None)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None
        return state

    @classmethod
    def load(cls, path: str | Path, size: tuple[int, int] | None = None) -> PromptState:
        """Prompts saved with ``Path(path).write_text(state.to_json())``; see ``from_json``.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not UTF-8 text, or ``from_json`` refuses it; the
                message names the file.
        """
        path = Path(path)
        source = f"the prompts in {str(path)!r}"
        if not path.is_file():
            raise FileNotFoundError(f"no prompts file {str(path)!r}: it does not exist; save "
                                    "prompts with picker.save(path) first")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{source} are not text ({err}); {_SAVE_AGAIN}") from None
        return cls.from_json(text, size, source)


_SAVE_AGAIN = "save the prompts again with picker.save(path)"


def _saved_size(data: Any, source: str) -> tuple[int, int]:
    """The image size of saved prompts: ``data`` must be the object ``to_json`` writes."""
    keys = ("size", "points", "labels", "box")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        kinds = {"list": "list", "str": "string", "int": "number", "float": "number",
                 "bool": "true or false", "NoneType": "null"}
        held = ("an object without " + ", ".join(k for k in keys if k not in data)
                if isinstance(data, dict) else f"a JSON {kinds.get(type(data).__name__)}")
        raise ValueError(f"{source} are {held}, not saved prompts (an object with size, "
                         f"points, labels and box); {_SAVE_AGAIN}")
    size = data["size"]
    if not isinstance(size, list) or len(size) != 2 or \
            not all(type(v) is int and v >= 1 for v in size):
        raise ValueError(f"{source}: size {size!r:.80} must be [width, height] in whole "
                         f"pixels; {_SAVE_AGAIN}")
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
        raise ValueError(f"{source}: {what} {value!r:.80} must be {shape}; {_SAVE_AGAIN}")
    return [[float(v) for v in row] for row in rows]
