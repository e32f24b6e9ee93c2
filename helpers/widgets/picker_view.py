"""The live view of a ``PointPicker``: an anywidget canvas inside ipywidgets buttons and labels.

``PickerView(picker)`` builds the widgets once, when the picker is first shown; the picker
(``helpers.widgets.picker``) holds the state and calls ``sync`` (prompts, mode and status:
cheap) or ``refresh`` (also the picture and the candidate masks) after a change. The canvas
(``canvas_class``, its ES module in ``picker.js``) draws the kernel's picture and, over it,
the prompts in display pixels; on mouse up it sends one message, which ``on_canvas_message``
hands to ``PointPicker.handle_message`` and answers with the new state and the message's
``seq``. What goes wrong in a handler shows under the picture (``guard``).
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

MODES = ("include", "exclude", "box")
MIN_DRAG = 4  # display pixels: a shorter press (in both directions) is a click
PICKER_JS = Path(__file__).with_name("picker.js")
"""The canvas view's ES module; anywidget sends it from the kernel to the browser."""

HINTS = {
    "include": "click: include point · Shift/Alt+click: exclude point · drag: box",
    "exclude": "click: exclude point · drag: box",
    "box": "click one corner, then the opposite one (or drag): box · "
           "Shift/Alt+click: exclude point",
}
"""The line under the status, per mode."""
CORNER_HINT = "click the opposite corner · Esc forgets the first one"
"""The line under the status while a box has its first corner."""


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def jpeg(img: Image.Image) -> bytes:
    """JPEG for the live view: several times faster to encode than PNG at this size."""
    import io

    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class PickerView:
    """The widgets of one picker: a toolbar (modes, Undo, Clear), the canvas, the status
    line, the candidate masks and an area for errors; ``root`` is the whole view."""

    def __init__(self, picker: Any) -> None:  # a PointPicker (which imports this module)
        import ipywidgets as w

        self.picker = picker
        self.failed = False  # the errors area shows something
        width, height = picker.display_size
        self.canvas = canvas_class()(width=width, height=height, min_drag=MIN_DRAG,
                                     style=self.style(), mode=picker.mode)
        self.canvas.add_class("pv-picker-canvas")
        self.canvas.on_msg(self.on_canvas_message)
        self.status = w.HTML()
        self.status.add_class("pv-picker-status")
        self.candidates = w.HBox()
        self.candidates.add_class("pv-picker-candidates")
        self.errors = w.Output()
        self.errors.add_class("pv-picker-errors")
        self.modes = w.ToggleButtons(options=list(MODES), value=picker.mode,
                                     tooltips=["click adds an include point",
                                               "click adds an exclude point",
                                               "click two corners (or drag) for a box"])
        self.modes.add_class("pv-picker-modes")
        self.modes.observe(lambda change: self.guard(setattr, picker, "mode", change["new"]),
                           names="value")
        undo = w.Button(description="Undo", icon="undo")
        clear = w.Button(description="Clear", icon="trash")
        undo.add_class("pv-picker-undo")
        clear.add_class("pv-picker-clear")
        undo.on_click(lambda _b: self.guard(picker.undo))
        clear.on_click(lambda _b: self.guard(picker.clear))
        toolbar = w.HBox([self.modes, undo, clear])
        self.root = w.VBox([toolbar, self.canvas, self.status, self.candidates, self.errors])

    def style(self) -> dict[str, Any]:
        """How the browser draws the prompts: ``viz.annotate``'s colours and sizes."""
        from helpers import viz

        long = max(self.picker.display_size)
        return {"include": _hex(viz.POSITIVE), "exclude": _hex(viz.NEGATIVE),
                "box": _hex(viz.PROMPT_BOX), "radius": max(5, round(long / 45)),
                "line": max(2, round(long / 160)) + 1}

    def guard(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a handler of the view; what goes wrong shows up under the picture (a bad
        prompt as one line, anything else with its traceback)."""
        if self.failed:  # the last action's error goes with the next action
            self.errors.clear_output()
            self.failed = False
        with self.errors:
            try:
                fn(*args)
            except ValueError as error:
                self.failed = True
                print(f"{type(error).__name__}: {error}")
            except BaseException:
                self.failed = True
                raise  # the Output shows the traceback

    def on_canvas_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """A message from the canvas: handle it, then answer with the new state and the
        message's ``seq`` in one update, so the browser drops what it drew ahead. The
        status line follows that update (what it says, the canvas knows)."""
        with self.status.hold_sync(), self.canvas.hold_sync():
            try:
                self.guard(self.picker.handle_message, content)
            finally:
                self.sync()
                seq = content.get("seq") if isinstance(content, Mapping) else None
                if isinstance(seq, int) and not isinstance(seq, bool):
                    self.canvas.ack = max(self.canvas.ack, seq)

    def status_html(self) -> str:
        """The status line and the hint for what a click does now."""
        picker = self.picker
        hint = CORNER_HINT if picker.corner is not None else HINTS[picker.mode]
        return (f"<code>{html.escape(picker.status())}</code><br>"
                f"<small>{html.escape(hint)}</small>")

    def sync(self) -> None:
        """Send the prompts (display pixels), the mode and the status: cheap, no picture."""
        picker = self.picker
        sx, sy = picker.display_size[0] / picker.image.width, \
            picker.display_size[1] / picker.image.height

        def shown(x: float, y: float) -> list[float]:  # prompts are float32: round the noise
            return [round(x * sx, 3), round(y * sy, 3)]

        box = picker.state.box
        corner = picker.display_corner
        canvas = self.canvas
        with canvas.hold_sync():
            canvas.points = [shown(x, y) for x, y in picker.state.points]
            canvas.labels = picker.state.labels
            canvas.box = [] if box is None else [*shown(box[0], box[1]), *shown(box[2], box[3])]
            canvas.corner = [] if corner is None else list(corner)
            canvas.mode = picker.mode
        self.modes.value = picker.mode
        self.status.value = self.status_html()

    def refresh(self) -> None:
        """Redraw after a prompt change: the picture, the candidates, then ``sync``."""
        import ipywidgets as w

        picker = self.picker
        with self.canvas.hold_sync():
            self.canvas.picture = jpeg(picker.render(prompts=False))
            self.sync()
        thumbs = []
        if picker.result is not None:
            for i, (picture, score) in enumerate(zip(picker.thumbnails(),
                                                     picker.result.scores)):
                thumbs.append(w.VBox([w.Image(value=jpeg(picture), format="jpeg"),
                                      w.HTML(f"<small>candidate {i + 1}: score "
                                             f"{score:.3f}</small>")]))
        self.candidates.children = thumbs


@functools.cache
def canvas_class() -> type[Any]:
    """``PickerCanvas``, the anywidget canvas of the view, made on first use: anywidget
    imports ipywidgets, and importing helpers stays cheap without a notebook."""
    import anywidget
    import traitlets as t

    class PickerCanvas(anywidget.AnyWidget):  # type: ignore[misc]
        """The kernel's picture and the prompts, in display pixels, for ``picker.js``.

        The browser only reads these traits; it sends what the mouse did as messages
        (``PointPicker.handle_message``), each with a ``seq`` that the kernel hands back in
        ``ack`` with the state that follows from it.
        """

        _esm = PICKER_JS
        picture = t.Bytes(b"", help="JPEG of the photo and the best mask").tag(sync=True)
        width = t.Int(1, help="display width, in CSS pixels").tag(sync=True)
        height = t.Int(1, help="display height, in CSS pixels").tag(sync=True)
        # display pixels: [[x, y], ...]; [1 or 0, ...]; [] or [x1, y1, x2, y2]; [] or [x, y]
        points: t.List[Any] = t.List(help="point prompts").tag(sync=True)
        labels: t.List[Any] = t.List(help="1 include, 0 exclude").tag(sync=True)
        box: t.List[Any] = t.List(help="the box prompt, or []").tag(sync=True)
        corner: t.List[Any] = t.List(help="a box's first corner in box mode").tag(sync=True)
        mode = t.Unicode("include", help="one of MODES").tag(sync=True)
        min_drag = t.Int(MIN_DRAG, help="a shorter press is a click").tag(sync=True)
        style = t.Dict(help="colours and sizes of points and box").tag(sync=True)
        ack = t.Int(0, help="seq of the last message handled").tag(sync=True)

    return PickerCanvas
