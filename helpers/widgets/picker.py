"""The point and box picker: click on a photo for include/exclude points, drag for a box,
and the Segment Anything mask follows live.

Its state is a ``PromptState``, the undo history of one ``Prompt``; it works and is tested
without a browser. The ipywidgets view (an ``Image`` with ipyevents mouse events) is built
only when the picker is shown. Executed headlessly (CI, ``make lessons``), the picker still
builds and keeps its starting prompts, which is what later cells see.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.prompts import EXCLUDE, INCLUDE, Prompt

if TYPE_CHECKING:
    from PIL import Image

    from helpers.sam import SamResult, Segmenter

MODES = ("include", "exclude", "box")
MIN_DRAG = 4  # display pixels: a shorter drag is a click


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
    def from_json(cls, text: str, size: tuple[int, int] | None = None) -> PromptState:
        """Prompts saved by ``to_json``; with ``size``, checks they were made for that size."""
        prompt = Prompt.from_json(text, size)
        state = cls(prompt.size)
        state.prompt = prompt
        return state


class PointPicker:
    """Click to add include/exclude points, drag to draw a box; the mask follows live.

    Args:
        segmenter: a ``sam.Segmenter`` (the image embedding is computed once here).
        image: the photo to prompt.
        points, labels, box: starting prompts. Executed without a browser (CI, ``make
            lessons``), these are what the notebook's later cells see.
        display: the long side, in pixels, of the picture shown in the notebook.

    A click adds a point in the current mode ("include" or "exclude"); a click with Shift
    or Alt held adds an exclude point; a drag draws the box. Undo and Clear take prompts back.
    ``.points``, ``.labels``, ``.box`` and ``.result`` always reflect the current prompts.
    """

    def __init__(self, segmenter: Segmenter, image: Any, points: Any = None,
                 labels: Any = None, box: Any = None, display: int = 640,
                 multimask: bool = True) -> None:
        from helpers import images

        self.segmenter = segmenter
        self.image = images.load(image)
        segmenter.set_image(self.image)
        pts = [] if points is None else [tuple(p) for p in points]
        labs = [] if labels is None else [int(v) for v in labels]
        if labels is None and pts:
            labs = [1] * len(pts)
        self.state = PromptState(self.image.size, pts, labs, box)
        self.multimask = multimask
        self.mode = "include"
        scale = min(1.0, display / max(self.image.size))
        self.display_size = (max(1, round(self.image.width * scale)),
                             max(1, round(self.image.height * scale)))
        self._base = self.image.resize(self.display_size) if scale < 1 else self.image.copy()
        self._press: tuple[float, float] | None = None
        self._view: Any = None
        self.result: SamResult | None = None
        self.update()

    # ------------------------------------------------------------ state
    @property
    def points(self) -> list[tuple[float, float]]:
        """[(x, y), ...] point prompts in original-image pixels."""
        return list(self.state.points)

    @property
    def labels(self) -> list[int]:
        """[1 or 0, ...] one per point: 1 include, 0 exclude."""
        return list(self.state.labels)

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        """(x1, y1, x2, y2) box prompt in original-image pixels, or None."""
        return self.state.box

    def to_image(self, x: float, y: float) -> tuple[float, float]:
        """Display pixels -> original image pixels (clamped inside the image)."""
        sx = self.image.width / self.display_size[0]
        sy = self.image.height / self.display_size[1]
        return (min(max(x * sx, 0.0), self.image.width - 1.0),
                min(max(y * sy, 0.0), self.image.height - 1.0))

    def click(self, x: float, y: float, label: int | None = None) -> None:
        """Add a point at original pixel (x, y): label 1/0, or by the current mode."""
        if label is None:
            label = EXCLUDE if self.mode == "exclude" else INCLUDE
        self.state.add_point(x, y, label)
        self.update()

    def drag(self, x1: float, y1: float, x2: float, y2: float) -> None:
        """Set the box from a drag between two original-pixel corners."""
        self.state.set_box(x1, y1, x2, y2)
        self.update()

    def undo(self) -> None:
        """Take back the last prompt change and update the mask."""
        if self.state.undo():
            self.update()

    def clear(self) -> None:
        """Remove every prompt (undo brings them back)."""
        self.state.clear()
        self.update()

    def save(self, path: str | Path) -> Path:
        """Save the prompts as JSON."""
        path = Path(path)
        path.write_text(self.state.to_json(), encoding="utf-8")
        return path

    def load(self, path: str | Path) -> None:
        """Load prompts saved with ``save`` (for the same image size)."""
        self.state = PromptState.from_json(Path(path).read_text(encoding="utf-8"),
                                           self.image.size)
        self.update()

    # ------------------------------------------------------------ model and picture
    def update(self) -> None:
        """Run the mask decoder on the current prompts and redraw the view."""
        if self.state.empty:
            self.result = None
        else:
            self.result = self.segmenter.predict(prompt=self.state.prompt,
                                                 multimask=self.multimask)
        if self._view is not None:
            self._refresh()

    def render(self) -> Image.Image:
        """The display-size picture: best mask, box and points over the photo."""
        from PIL import Image as PILImage

        from helpers import viz

        sx = self.display_size[0] / self.image.width
        sy = self.display_size[1] / self.image.height
        masks = None
        if self.result is not None:
            small = PILImage.fromarray(self.result.best).resize(self.display_size,
                                                                PILImage.Resampling.NEAREST)
            masks = np.asarray(small)[None]
        points = [(x * sx, y * sy) for x, y in self.state.points] or None
        box = None if self.state.box is None else [
            self.state.box[0] * sx, self.state.box[1] * sy,
            self.state.box[2] * sx, self.state.box[3] * sy]
        return viz.annotate(self._base, points=points, labels=self.state.labels or None,
                            box=box, masks=masks)

    @staticmethod
    def _encode(img: Image.Image) -> bytes:
        """JPEG for the live view: several times faster to encode than PNG at this size."""
        import io

        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()

    def status(self) -> str:
        """One line of text: the prompts in original pixels and the best score."""
        pts = ", ".join(f"({x:.0f}, {y:.0f}){'+' if lab else '-'}"
                        for (x, y), lab in zip(self.state.points, self.state.labels))
        box = "none" if self.state.box is None else "[" + ", ".join(
            f"{v:.0f}" for v in self.state.box) + "]"
        score = "" if self.result is None else f" | best score {self.result.scores[0]:.3f}"
        return f"mode: {self.mode} | points: {pts or 'none'} | box: {box}{score}"

    # ------------------------------------------------------------ the view
    @property
    def widget(self) -> Any:
        """The ipywidgets view, built on first use."""
        if self._view is None:
            self._view = self._build()
            self._refresh()
        return self._view

    def _build(self) -> Any:
        import ipywidgets as w
        from ipyevents import Event

        self._picture = w.Image(format="jpeg", layout=w.Layout(
            width=f"{self.display_size[0]}px", height=f"{self.display_size[1]}px"))
        self._picture.add_class("pv-picker-image")
        self._status = w.HTML()
        self._status.add_class("pv-picker-status")
        self._candidates = w.HBox()
        self._errors = w.Output()
        self._errors.add_class("pv-picker-errors")
        modes = w.ToggleButtons(options=list(MODES), value=self.mode,
                                tooltips=["click adds an include point",
                                          "click adds an exclude point",
                                          "drag draws a box"])
        modes.observe(lambda change: self._set_mode(change["new"]), names="value")
        undo = w.Button(description="Undo", icon="undo")
        clear = w.Button(description="Clear", icon="trash")
        undo.on_click(lambda _b: self._guard(self.undo))
        clear.on_click(lambda _b: self._guard(self.clear))
        self._events = Event(source=self._picture, watched_events=["mousedown", "mouseup"],
                             prevent_default_action=True)
        self._events.on_dom_event(lambda event: self._guard(self.handle_event, event))
        toolbar = w.HBox([modes, undo, clear])
        return w.VBox([toolbar, self._picture, self._status, self._candidates, self._errors])

    def _set_mode(self, mode: str) -> None:
        self.mode = mode
        self._refresh()

    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._errors:  # errors in a handler show up under the picture
            fn(*args)

    def handle_event(self, event: dict[str, Any]) -> None:
        """Handle one ipyevents mouse event (``mousedown``/``mouseup`` with ``dataX``/``dataY``
        in display pixels): a short press is a click, a longer one a drag."""
        x, y = float(event.get("dataX", 0)), float(event.get("dataY", 0))
        if event["type"] == "mousedown":
            self._press = (x, y)
            return
        if event["type"] != "mouseup" or self._press is None:
            return
        (x0, y0), self._press = self._press, None
        if abs(x - x0) >= MIN_DRAG or abs(y - y0) >= MIN_DRAG:
            self.drag(*self.to_image(x0, y0), *self.to_image(x, y))
        elif self.mode == "box":
            return
        else:
            exclude = bool(event.get("shiftKey") or event.get("altKey"))
            self.click(*self.to_image(x, y), label=0 if exclude else None)

    def _refresh(self) -> None:
        import ipywidgets as w

        from helpers import viz

        self._picture.value = self._encode(self.render())
        self._status.value = f"<code>{html.escape(self.status())}</code>"
        thumbs = []
        if self.result is not None:
            from PIL import Image as PILImage

            size = (max(1, self.display_size[0] // 3), max(1, self.display_size[1] // 3))
            base = self._base.resize(size)
            for i, (mask, score) in enumerate(zip(self.result.masks, self.result.scores)):
                small = PILImage.fromarray(mask).resize(size, PILImage.Resampling.NEAREST)
                picture = viz.overlay_masks(base, small)
                thumbs.append(w.VBox([w.Image(value=self._encode(picture), format="jpeg"),
                                      w.HTML(f"<small>candidate {i + 1}: score "
                                             f"{score:.3f}</small>")]))
        self._candidates.children = thumbs

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"PointPicker({self.status()})"
