"""The point and box picker: click on a photo for include/exclude points, drag (or click two
corners) for a box, and the Segment Anything mask follows live.

Its state is a ``PromptState``, the undo history of one ``Prompt``; it works and is tested
without a browser. The view (``helpers.widgets.picker_view``) is built only when the picker
is shown: an anywidget canvas (its ES module in ``picker.js``, which anywidget loads from
the kernel, never from a CDN) inside ipywidgets buttons and labels, so it works in JupyterLab 4,
Notebook 7, VS Code and Colab without extra widget managers. The browser draws the kernel's
picture (the photo and the best mask, a JPEG) and, on top of it, the points, the box and
the rubber band of a drag at once; on mouse up it sends one message to the kernel (see
``PointPicker.handle_message``), which runs SAM and sends back the new picture.

Displayed, the picker is one output that also carries a static picture of its state
(``widgets.static``), for pages without a kernel. Executed headlessly (CI, ``make
lessons``), the picker still builds and keeps its starting prompts, which is what later
cells see.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.prompts import EXCLUDE, INCLUDE
from helpers.widgets.picker_view import MIN_DRAG, MODES
from helpers.widgets.prompt_state import PromptState

if TYPE_CHECKING:
    from PIL import Image

    from helpers.sam import SamResult, Segmenter

MESSAGE_KINDS = ("click", "drag", "cancel")


def _coordinate(message: Mapping[str, Any], key: str) -> float:
    value = message.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"picker message {dict(message)!r}: {key!r} must be a finite number "
                         f"of display pixels, got {value!r}")
    return float(value)


def _flag(message: Mapping[str, Any], key: str) -> bool:
    value = message.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"picker message {dict(message)!r}: {key!r} must be true or false, "
                         f"got {value!r}")
    return value


class PointPicker:
    """Click to add include/exclude points, drag (or click two corners) for a box; the mask
    follows live.

    Args:
        segmenter: a ``sam.Segmenter`` (the image embedding is computed once here).
        image: the photo to prompt.
        points, labels, box: starting prompts. Executed without a browser (CI, ``make
            lessons``), these are what the notebook's later cells see.
        display: the long side, in pixels, of the picture shown in the notebook.

    A click adds a point in the current mode ("include" or "exclude"); in "box" mode the
    first click sets one corner of the box and the second the opposite one. A click with
    Shift or Alt held adds an exclude point in every mode; a drag draws the box in every
    mode. Undo and Clear take prompts back. ``.points``, ``.labels``, ``.box`` and
    ``.result`` always reflect the current prompts.
    """

    def __init__(self, segmenter: Segmenter, image: Any, points: Any = None,
                 labels: Any = None, box: Any = None, display: int = 640,
                 multimask: bool = True) -> None:
        from helpers import checks, images

        longest = checks.number("display", display, 1, hint="pixels of the long side")
        multimask = checks.flag("multimask", multimask)
        if not callable(getattr(segmenter, "set_image", None)) \
                or not callable(getattr(segmenter, "predict", None)):
            raise ValueError(f"PointPicker needs a sam.Segmenter (Segmenter.from_pretrained"
                             f"(...)), not {segmenter!r:.60}")
        labs = [] if labels is None else [
            checks.integer("labels item", v, 0, 1, hint="1 include, 0 exclude") for v in labels]
        self.segmenter = segmenter
        self.image = images.load(image)
        segmenter.set_image(self.image)
        pts = [] if points is None else [tuple(p) for p in points]
        if labels is None and pts:
            labs = [1] * len(pts)
        self.state = PromptState(self.image.size, pts, labs, box)
        self.multimask = multimask
        self._mode = "include"
        self._corner: tuple[float, float] | None = None  # box mode's first click, display px
        scale = min(1.0, longest / max(self.image.size))
        self.display_size = (max(1, round(self.image.width * scale)),
                             max(1, round(self.image.height * scale)))
        self._base = self.image.resize(self.display_size) if scale < 1 else self.image.copy()
        self._view: Any = None  # a PickerView once shown
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

    @property
    def mode(self) -> str:
        """What a plain click does: "include", "exclude" or "box" (a corner of the box)."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode {value!r} is not one of {', '.join(map(repr, MODES))}")
        if value != self._mode:
            self._mode = value
            self._corner = None
        self._sync()

    @property
    def corner(self) -> tuple[float, float] | None:
        """In "box" mode after one click: that first corner in original pixels, else None."""
        return None if self._corner is None else self.to_image(*self._corner)

    @property
    def display_corner(self) -> tuple[float, float] | None:
        """The same first corner in display pixels (what the view draws), else None."""
        return self._corner

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
        self._corner = None
        self.state.set_box(x1, y1, x2, y2)
        self.update()

    def undo(self) -> None:
        """Take back the last prompt change (or a box's first corner) and update the mask."""
        if self._corner is not None:
            self._corner = None
            self._sync()
        elif self.state.undo():
            self.update()

    def clear(self) -> None:
        """Remove every prompt (undo brings them back)."""
        self._corner = None
        self.state.clear()
        self.update()

    def save(self, path: str | Path) -> Path:
        """Save the prompts as JSON."""
        path = Path(path)
        path.write_text(self.state.to_json(), encoding="utf-8")
        return path

    def load(self, path: str | Path) -> None:
        """Load prompts saved with ``save`` (for the same image size). A file that is not
        such prompts is refused with its name (``PromptState.load``); the prompts stay."""
        self.state = PromptState.load(path, self.image.size)
        self._corner = None
        self.update()

    # ------------------------------------------------------------ messages from the view
    def handle_message(self, message: Mapping[str, Any]) -> None:
        """Act on one message of the canvas view, in display pixels (the browser sends one
        on each mouse up):

        - ``{"kind": "click", "x": 100, "y": 80, "shift": False, "alt": False}``: with Shift
          or Alt an exclude point; else, in "include" or "exclude" mode, a point of that
          kind, and in "box" mode the box's first corner or, once that is set, the opposite
          corner (which sets the box).
        - ``{"kind": "drag", "x0": 40, "y0": 30, "x1": 200, "y1": 150}``: the box between the
          press and the release. A drag shorter than ``MIN_DRAG`` in both directions is a
          click at the release (``shift``/``alt`` count as for a click).
        - ``{"kind": "cancel"}``: forget a box's first corner (Esc).

        Other keys (the view's ``seq``) are ignored. Raises ``ValueError`` naming the bad
        value for a message of another kind, or with a coordinate that is not a number.
        """
        if not isinstance(message, Mapping):
            raise ValueError(f"a picker message is a dict with a 'kind', got {message!r}")
        kind = message.get("kind")
        if kind == "cancel":
            if self._corner is not None:
                self._corner = None
                self._sync()
        elif kind == "click":
            x, y = _coordinate(message, "x"), _coordinate(message, "y")
            self._click_at(x, y, _flag(message, "shift") or _flag(message, "alt"))
        elif kind == "drag":
            x0, y0, x1, y1 = (_coordinate(message, k) for k in ("x0", "y0", "x1", "y1"))
            exclude = _flag(message, "shift") or _flag(message, "alt")
            if abs(x1 - x0) < MIN_DRAG and abs(y1 - y0) < MIN_DRAG:
                self._click_at(x1, y1, exclude)
            else:
                self.drag(*self.to_image(x0, y0), *self.to_image(x1, y1))
        else:
            raise ValueError(f"picker message kind {kind!r} is not one of "
                             f"{', '.join(map(repr, MESSAGE_KINDS))} (message {message!r})")

    def _click_at(self, x: float, y: float, exclude: bool) -> None:
        """A click at display pixel (x, y), as ``handle_message`` describes."""
        if exclude:
            self.click(*self.to_image(x, y), label=EXCLUDE)
        elif self.mode != "box":
            self.click(*self.to_image(x, y))
        elif self._corner is None:
            self._corner = (x, y)
            self._sync()
        else:
            (x0, y0), self._corner = self._corner, None
            self.drag(*self.to_image(x0, y0), *self.to_image(x, y))

    # ------------------------------------------------------------ model and picture
    def update(self) -> None:
        """Run the mask decoder on the current prompts and redraw the view."""
        if self.state.empty:
            self.result = None
        else:
            self.result = self.segmenter.predict(prompt=self.state.prompt,
                                                 multimask=self.multimask)
        self._refresh()

    def _display_scale(self) -> tuple[float, float]:
        return (self.display_size[0] / self.image.width,
                self.display_size[1] / self.image.height)

    def render(self, prompts: bool = True) -> Image.Image:
        """The display-size picture: best mask, box and points over the photo.

        With ``prompts=False`` only the photo and the mask: what the live view gets from
        the kernel (the browser draws the points and the box itself).
        """
        from PIL import Image as PILImage

        from helpers import viz

        sx, sy = self._display_scale()
        masks = None
        if self.result is not None:
            small = PILImage.fromarray(self.result.best).resize(self.display_size,
                                                                PILImage.Resampling.NEAREST)
            masks = np.asarray(small)[None]
        if not prompts:
            return viz.annotate(self._base, masks=masks)
        points = [(x * sx, y * sy) for x, y in self.state.points] or None
        box = None if self.state.box is None else [
            self.state.box[0] * sx, self.state.box[1] * sy,
            self.state.box[2] * sx, self.state.box[3] * sy]
        return viz.annotate(self._base, points=points, labels=self.state.labels or None,
                            box=box, masks=masks)

    def thumbnails(self) -> list[Image.Image]:
        """One small picture per candidate mask (best first); none without a result."""
        from PIL import Image as PILImage

        from helpers import viz

        if self.result is None:
            return []
        size = (max(1, self.display_size[0] // 3), max(1, self.display_size[1] // 3))
        base = self._base.resize(size)
        return [viz.overlay_masks(base, PILImage.fromarray(mask).resize(
                    size, PILImage.Resampling.NEAREST)) for mask in self.result.masks]

    def picture(self) -> Image.Image:
        """A static picture of the picker now: ``render()`` and, under it, the candidate
        masks with their scores, best first (for pages without a kernel; see
        ``widgets.static``)."""
        from PIL import Image as PILImage
        from PIL import ImageDraw, ImageFont

        shown = self.render()
        thumbs = self.thumbnails()
        if self.result is None or not thumbs:
            return shown
        pad, line = 6, 14
        try:
            font: Any = ImageFont.load_default(size=11)
        except (TypeError, OSError):  # Pillow without FreeType
            font = ImageFont.load_default()
        fit = (shown.width - pad * (len(thumbs) + 1)) / (len(thumbs) * thumbs[0].width)
        if fit < 1:  # side by side under the picture, no wider than it
            thumbs = [t.resize((max(1, int(t.width * fit)), max(1, int(t.height * fit))))
                      for t in thumbs]
        tw, th = thumbs[0].size
        strip = (pad + len(thumbs) * (tw + pad), pad + th + 3 + 2 * line + pad)
        out = PILImage.new("RGB", (max(shown.width, strip[0]), shown.height + strip[1]),
                           (255, 255, 255))
        out.paste(shown, (0, 0))
        draw = ImageDraw.Draw(out)
        for i, (thumb, score) in enumerate(zip(thumbs, self.result.scores)):
            x, y = pad + i * (tw + pad), shown.height + pad
            out.paste(thumb, (x, y))
            draw.text((x, y + th + 3), f"candidate {i + 1}", fill=(20, 20, 20), font=font)
            draw.text((x, y + th + 3 + line), f"score {score:.3f}", fill=(20, 20, 20),
                      font=font)
        return out

    def status(self) -> str:
        """One line of text: the mode, the prompts in original pixels and the best score."""
        pts = ", ".join(f"({x:.0f}, {y:.0f}){'+' if lab else '-'}"
                        for (x, y), lab in zip(self.state.points, self.state.labels))
        box = "none" if self.state.box is None else "[" + ", ".join(
            f"{v:.0f}" for v in self.state.box) + "]"
        score = "" if self.result is None else f" | best score {self.result.scores[0]:.3f}"
        mode = self.mode
        corner = self.corner
        if corner is not None:
            mode += f" (first corner at ({corner[0]:.0f}, {corner[1]:.0f}): " \
                    "click the opposite corner)"
        return f"mode: {mode} | points: {pts or 'none'} | box: {box}{score}"

    # ------------------------------------------------------------ the view
    @property
    def widget(self) -> Any:
        """The ipywidgets view (the canvas with its buttons and labels), built on first use."""
        if self._view is None:
            from helpers.widgets.picker_view import PickerView

            self._view = PickerView(self)
            self._view.refresh()
        return self._view.root

    def _sync(self) -> None:
        """Send the prompts, the mode and the status to the view, if it is built."""
        if self._view is not None:
            self._view.sync()

    def _refresh(self) -> None:
        """Redraw the view, if it is built, after a prompt change."""
        if self._view is not None:
            self._view.refresh()

    def _ipython_display_(self) -> None:
        from helpers.widgets import static

        static.show(self.widget, self.picture(), alt=f"SAM point picker: {self.status()}",
                    caption=self.status(), text=repr(self))

    def __repr__(self) -> str:
        return f"PointPicker({self.status()})"
