"""Interactive pieces of the lessons: a plain state object plus a thin ipywidgets view.

Each widget keeps its state (what is shown, what was picked) in an object that works and
is tested without a browser; the ipywidgets view is built only when the widget is shown.
Executed headlessly (CI, ``make lessons``), the widgets still build and keep their state.

- ``PointPicker``: click on a photo to add include/exclude points, drag to draw a box; the
  Segment Anything mask updates after every change. Its state is a ``PromptState``.
- ``ThresholdSlider``: detector boxes re-filtered live by a score slider, without running
  the detector again.
- ``Gallery``: logged images side by side with their settings, grouped or sorted by one
  setting; a "pick" button on each image records the best one.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from helpers.sam import SamResult, Segmenter


@dataclass
class GalleryEntry:
    """One logged image with the settings that made it.

    Attributes:
        image: the image record from the run (name, file, metadata, recipe, ...).
        params: the run's parameters overlaid with the image's own metadata.
        run_id, run_name, project: which run logged it.
        folder: the run folder; ``path`` is the PNG file inside it.
    """

    image: dict[str, Any]
    params: dict[str, Any]
    run_id: str
    run_name: str
    project: str
    folder: str

    @property
    def path(self) -> Path:
        return Path(self.folder) / self.image["file"]

    @property
    def label(self) -> str:
        return f"{self.run_name} / {self.image['name']}"

    @classmethod
    def from_records(cls, run: dict[str, Any], image: dict[str, Any]) -> GalleryEntry:
        params = dict(run.get("params", {}))
        params.update(image.get("metadata") or {})
        return cls(image, params, run["id"], run["name"], run["project"], run["folder"])


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, json.dumps(value, sort_keys=True, default=str))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class Gallery:
    """Logged images side by side with their settings; pick the best with a click.

    Args:
        entries: the images to show.
        by: a setting to group and sort by (e.g. "guidance_scale"); None keeps log order.
        on_pick: called with the picked entry; returns a message shown under the gallery.
        cell: the width of each image in pixels.
    """

    entries: Sequence[GalleryEntry]
    by: str | None = None
    on_pick: Callable[[GalleryEntry], str] | None = None
    cell: int = 220
    picked: list[GalleryEntry] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    _widget: Any = field(default=None, repr=False)
    _status: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.by is not None and self.entries and not any(
                self.by in e.params for e in self.entries):
            known = sorted({k for e in self.entries for k in e.params})
            raise ValueError(
                f"no logged image has a setting called {self.by!r}; group by one of {known}"
            )

    def groups(self) -> list[tuple[Any, list[GalleryEntry]]]:
        """(value, entries) pairs: one group per value of ``by``, sorted; one group if None."""
        if self.by is None:
            return [(None, list(self.entries))]
        buckets: dict[str, tuple[Any, list[GalleryEntry]]] = {}
        for entry in self.entries:
            value = entry.params.get(self.by)
            key = json.dumps(value, sort_keys=True, default=str)
            buckets.setdefault(key, (value, []))[1].append(entry)
        return sorted(buckets.values(), key=lambda item: _sort_key(item[0]))

    def caption(self, entry: GalleryEntry) -> str:
        """The settings shown under an image: its own metadata, ``by`` first."""
        keys = list((entry.image.get("metadata") or {}).keys())
        if self.by in entry.params:
            keys = [self.by] + [k for k in keys if k != self.by]
        return "\n".join([entry.image["name"]] + [f"{k} = {_fmt(entry.params[k])}"
                                                  for k in keys if k in entry.params])

    def pick(self, entry: GalleryEntry | int) -> str:
        """Pick an entry (or its index in ``entries``) as the best; returns what was logged."""
        if isinstance(entry, int):
            if not 0 <= entry < len(self.entries):
                raise IndexError(f"pick {entry} is out of range for {len(self.entries)} images")
            entry = self.entries[entry]
        self.picked.append(entry)
        message = self.on_pick(entry) if self.on_pick else f"picked {entry.label}"
        self.messages.append(message)
        if self._widget is not None:
            shown = html.escape(f"{entry.label} — {message}")
            self._status.value = f"<b>best:</b> {shown}"
        return message

    # ------------------------------------------------------------ the view
    @property
    def widget(self) -> Any:
        """The ipywidgets view, built on first use."""
        if self._widget is None:
            self._widget = self._build()
        return self._widget

    def _build(self) -> Any:
        import ipywidgets as w

        rows = []
        for value, members in self.groups():
            cells = []
            for entry in members:
                image = w.Image(value=entry.path.read_bytes(), format="png",
                                layout=w.Layout(width=f"{self.cell}px"))
                text = html.escape(self.caption(entry)).replace("\n", "<br>")
                button = w.Button(description="pick as best", icon="star",
                                  layout=w.Layout(width=f"{self.cell}px"))
                button.on_click(lambda _b, e=entry: self.pick(e))
                cells.append(w.VBox([image, w.HTML(f"<small>{text}</small>"), button]))
            heading = f"{self.by} = {_fmt(value)}"
            title = "" if self.by is None else f"<b>{html.escape(heading)}</b>"
            rows.append(w.VBox([w.HTML(title), w.HBox(cells, layout=w.Layout(
                flex_flow="row wrap"))]))
        self._status = w.HTML("" if not self.picked else f"<b>best:</b> {self.picked[-1].label}")
        if not self.entries:
            self._status.value = "No logged images yet: log some with run.log_image(...)."
        return w.VBox([*rows, self._status])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return (f"Gallery({len(self.entries)} images, by={self.by!r}, "
                f"groups={len(self.groups())}, picked={[e.label for e in self.picked]})")


# ------------------------------------------------------------------ point and box picker

MODES = ("include", "exclude", "box")
MIN_DRAG = 4  # display pixels: a shorter drag is a click


@dataclass
class PromptState:
    """Point and box prompts on one image, with undo; no widgets involved.

    Attributes:
        size: (width, height) of the image in pixels.
        points: [(x, y), ...] pixels of the original image.
        labels: [1 or 0, ...], 1 = include, 0 = exclude.
        box: (x1, y1, x2, y2) pixels, or None.
    """

    size: tuple[int, int]
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    _history: list[tuple[Any, ...]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.points = [(float(x), float(y)) for x, y in self.points]
        self.labels = [int(v) for v in self.labels]
        if len(self.points) != len(self.labels):
            raise ValueError(f"{len(self.points)} points but {len(self.labels)} labels")
        for (x, y), lab in zip(self.points, self.labels):
            self._check_point(x, y, lab)
        if self.box is not None:
            self.box = self._check_box(*self.box)

    def _check_point(self, x: float, y: float, label: int) -> None:
        w, h = self.size
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f"point ({x:g}, {y:g}) is outside the {w}x{h} image")
        if label not in (0, 1):
            raise ValueError(f"label {label!r} must be 1 (include) or 0 (exclude)")

    def _check_box(self, x1: float, y1: float, x2: float,
                   y2: float) -> tuple[float, float, float, float]:
        w, h = self.size
        x1, x2 = sorted((min(max(float(x1), 0.0), w), min(max(float(x2), 0.0), w)))
        y1, y2 = sorted((min(max(float(y1), 0.0), h), min(max(float(y2), 0.0), h)))
        if x2 - x1 < 1 or y2 - y1 < 1:
            raise ValueError(f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has no area")
        return (x1, y1, x2, y2)

    def _remember(self) -> None:
        self._history.append((list(self.points), list(self.labels), self.box))

    def add_point(self, x: float, y: float, label: int = 1) -> None:
        """Add a point in original pixels; label 1 includes, 0 excludes."""
        self._check_point(float(x), float(y), int(label))
        self._remember()
        self.points.append((float(x), float(y)))
        self.labels.append(int(label))

    def set_box(self, x1: float, y1: float, x2: float, y2: float) -> None:
        """Set the box from two corners in any order (clipped to the image)."""
        box = self._check_box(x1, y1, x2, y2)
        self._remember()
        self.box = box

    def undo(self) -> bool:
        """Take back the last change; False when there is nothing to undo."""
        if not self._history:
            return False
        points, labels, box = self._history.pop()
        self.points, self.labels, self.box = points, labels, box
        return True

    def clear(self) -> None:
        """Remove every prompt (undo brings them back)."""
        if self.points or self.box is not None:
            self._remember()
        self.points, self.labels, self.box = [], [], None

    @property
    def empty(self) -> bool:
        return not self.points and self.box is None

    def prompt(self) -> dict[str, Any]:
        """Keyword arguments for ``Segmenter.predict``."""
        return {"points": self.points or None, "labels": self.labels or None,
                "box": None if self.box is None else list(self.box)}

    def to_json(self) -> str:
        """The prompts as JSON: size (w, h), points (x, y), labels and box, in pixels."""
        return json.dumps({"size": list(self.size), "points": [list(p) for p in self.points],
                           "labels": self.labels,
                           "box": None if self.box is None else list(self.box)})

    @classmethod
    def from_json(cls, text: str, size: tuple[int, int] | None = None) -> PromptState:
        """Prompts saved by ``to_json``; with ``size``, checks they were made for that size."""
        data = json.loads(text)
        saved = tuple(data["size"])
        if size is not None and saved != tuple(size):
            raise ValueError(
                f"these prompts were saved for a {saved[0]}x{saved[1]} image, not "
                f"{size[0]}x{size[1]}"
            )
        return cls((int(saved[0]), int(saved[1])), [tuple(p) for p in data["points"]],
                   data["labels"], None if data["box"] is None else tuple(data["box"]))


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
        self.state = PromptState(self.image.size, pts, labs,
                                 None if box is None else tuple(box))
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
            label = 0 if self.mode == "exclude" else 1
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
            self.result = self.segmenter.predict(**self.state.prompt(),
                                                 multimask=self.multimask)
        if self._view is not None:
            self._refresh()

    def render(self) -> Image.Image:
        """The display-size picture: best mask, box and points over the photo."""
        import numpy as np
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
        self._events.on_dom_event(lambda event: self._guard(self._on_event, event))
        toolbar = w.HBox([modes, undo, clear])
        return w.VBox([toolbar, self._picture, self._status, self._candidates, self._errors])

    def _set_mode(self, mode: str) -> None:
        self.mode = mode
        self._refresh()

    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._errors:  # errors in a handler show up under the picture
            fn(*args)

    def _on_event(self, event: dict[str, Any]) -> None:
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


# ------------------------------------------------------------------ threshold slider

class ThresholdSlider:
    """Boxes found at a low threshold, re-filtered live by a slider (the model is not re-run).

    Args:
        image: the photo the boxes belong to.
        detections: boxes from ``Detector.detect(..., threshold=low)``.
        threshold: the starting threshold.

    ``.detections`` is always the boxes at or above the current ``.threshold``.
    """

    def __init__(self, image: Any, detections: Any, threshold: float = 0.1,
                 display: int = 640) -> None:
        from helpers import images

        self.image = images.load(image)
        self.all = detections
        self.display = display
        self._view: Any = None
        self.threshold = 0.0
        self.set_threshold(threshold)

    def set_threshold(self, value: float) -> None:
        """Show the boxes scoring at least ``value`` (in [0, 1])."""
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"threshold {value!r} must lie in [0, 1]")
        self.threshold = float(value)
        self.detections = self.all.filter(self.threshold)
        if self._view is not None:
            self._refresh()

    def render(self) -> Image.Image:
        """The photo with the kept boxes, long side at most ``display`` pixels."""
        from helpers import images, viz

        picture = viz.draw_boxes(self.image, self.detections)
        return images.resize_long_side(picture, min(self.display, max(picture.size)))

    def _refresh(self) -> None:
        import io

        buffer = io.BytesIO()
        self.render().save(buffer, format="JPEG", quality=90)
        self._picture.value = buffer.getvalue()
        self._count.value = (f"{len(self.detections)} of {len(self.all)} boxes at threshold "
                             f"{self.threshold:.2f}")

    @property
    def widget(self) -> Any:
        """The ipywidgets view, built on first use."""
        if self._view is None:
            import ipywidgets as w

            slider = w.FloatSlider(value=self.threshold, min=0.0, max=1.0, step=0.01,
                                   description="threshold", continuous_update=True)
            slider.observe(lambda change: self.set_threshold(change["new"]), names="value")
            self._picture = w.Image(format="jpeg")
            self._count = w.HTML()
            self._view = w.VBox([slider, self._count, self._picture])
            self._refresh()
        return self._view

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        kept, total = len(self.detections), len(self.all)
        return f"ThresholdSlider({kept} of {total} boxes >= {self.threshold})"
