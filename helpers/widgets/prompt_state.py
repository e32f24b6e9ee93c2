"""``PromptState``: the point and box prompts of one image with undo, a history of
``Prompt`` values. The picker (``widgets.picker``) keeps its prompts in one; it works and is
tested without a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from helpers.prompts import INCLUDE, SAVE_AGAIN, Prompt


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
        """Prompts saved by ``to_json`` (read by ``Prompt.from_json``, which says what it
        refuses), as a state with no undo history."""
        prompt = Prompt.from_json(text, size, source)
        state = cls(prompt.size)
        state.prompt = prompt
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
            raise ValueError(f"{source} are not text ({err}); {SAVE_AGAIN}") from None
        return cls.from_json(text, size, source)
