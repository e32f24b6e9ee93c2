"""widgets: the prompt state (no browser) and the picker driven by the messages its canvas
sends (tests/test_browser_picker.py sends them from a real browser)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import images, sam, widgets
from helpers.widgets import PromptState


def test_prompt_state_edits_and_undo() -> None:
    state = PromptState((100, 50))
    assert state.empty and state.prompt.is_empty() and state.prompt.size == (100, 50)
    state.add_point(10, 20, 1)
    state.add_point(30, 40, 0)
    state.set_box(80, 45, 20, 5)  # corners in any order
    assert state.points == [(10, 20), (30, 40)] and state.labels == [1, 0]
    assert state.box == (20, 5, 80, 45)
    assert state.prompt.box.tolist() == [20, 5, 80, 45]  # type: ignore[union-attr]
    state.clear()
    assert state.empty
    assert state.undo() and state.box == (20, 5, 80, 45)
    assert state.undo() and state.box is None and len(state.points) == 2
    assert state.undo() and state.undo() and state.empty
    assert not state.undo()


def test_prompt_state_clips_boxes_and_round_trips(tmp_path: Path) -> None:
    state = PromptState((100, 50), [(1, 2)], [1])
    state.set_box(-10, -10, 200, 30)
    assert state.box == (0, 0, 100, 30)
    again = PromptState.from_json(state.to_json(), size=(100, 50))
    assert (again.points, again.labels, again.box) == (state.points, state.labels, state.box)
    with pytest.raises(ValueError, match="saved for a 100x50 image, not 60x40"):
        PromptState.from_json(state.to_json(), size=(60, 40))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.add_point(100, 10), r"point \(100, 10\) is outside the 100x50 image"),
        (lambda s: s.add_point(5, 5, 3), r"1 \(include\) or 0 \(exclude\); got \[3\]"),
        (lambda s: PromptState((100, 50), box=(0, 0, 200, 10)), "reaches outside"),
        (lambda s: s.set_box(5, 5, 5.5, 40), "no area"),
        (lambda s: PromptState((100, 50), [(1, 1)], []), "1 points but 0 labels"),
    ],
)
def test_prompt_state_bad_input(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call(PromptState((100, 50)))


def test_picker_starts_from_defaults(seg: sam.Segmenter) -> None:
    picker = widgets.PointPicker(seg, images.sample("chelsea"), points=[[265, 238]], labels=[1])
    assert picker.result is not None and picker.result.masks.shape == (3, 300, 451)
    assert picker.points == [(265, 238)] and picker.box is None
    empty = widgets.PointPicker(seg, images.sample("chelsea"))
    assert empty.result is None and "points: none" in empty.status()
    assert empty.mode == "include" and "mode: include" in empty.status()


def click(x: float, y: float, **flags: Any) -> dict[str, Any]:
    return {"kind": "click", "x": x, "y": y, "shift": False, "alt": False, **flags}


def drag(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"kind": "drag", "x0": x0, "y0": y0, "x1": x1, "y1": y1}


def test_picker_view_is_an_anywidget_canvas_in_buttons(seg: sam.Segmenter) -> None:
    picker = widgets.PointPicker(seg, images.sample("chelsea"), display=300)
    view = picker.widget  # builds the view without a browser
    toolbar, canvas, status, candidates, errors = view.children
    assert type(view).__name__ == "VBox" and type(canvas).__name__ == "PickerCanvas"
    assert [b.description for b in toolbar.children[1:]] == ["Undo", "Clear"]
    assert list(toolbar.children[0].options) == list(widgets.MODES)
    assert (canvas.width, canvas.height) == picker.display_size == (300, 200)
    assert canvas.min_drag == widgets.MIN_DRAG and canvas.mode == "include"
    assert canvas.style["include"] == "#00c853" and canvas.style["radius"] == 7
    # the ES module travels from the kernel (no CDN) and is the file next to picker.py
    js = Path(widgets.picker.__file__).with_name("picker.js").read_text(encoding="utf-8")
    assert canvas._esm == js and "export default" in js and "http" not in js
    assert canvas.picture[:2] == b"\xff\xd8"  # a JPEG
    assert "pv-picker-status" in status._dom_classes and "pv-picker-errors" in errors._dom_classes
    assert "mode: include" in status.value and "click: include point" in status.value
    assert candidates.children == ()


def test_picker_js_ships_with_the_package() -> None:
    import tomllib

    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert "*.js" in config["tool"]["setuptools"]["package-data"]["helpers.widgets"]
    assert widgets.picker_view.PICKER_JS.is_file()


def test_picker_messages_map_display_pixels_to_image_pixels(seg: sam.Segmenter) -> None:
    photo = images.sample("astronaut")  # 512 x 512 shown at 256 x 256
    picker = widgets.PointPicker(seg, photo, display=256)
    canvas, status, candidates = picker.widget.children[1:4]
    assert picker.display_size == (256, 256)
    before = canvas.picture

    picker.handle_message(click(51, 30))
    assert picker.points == [(102, 60)] and picker.labels == [1]
    assert picker.result is not None and canvas.picture != before  # the new mask
    assert canvas.points == [[51, 30]] and canvas.labels == [1]  # back in display pixels
    assert "(102, 60)+" in status.value
    assert len(candidates.children) == 3

    picker.handle_message(click(10, 10, shift=True))
    picker.handle_message(click(12.5, 20, alt=True))
    assert picker.labels == [1, 0, 0] and picker.points[2] == (25, 40)

    picker.handle_message(drag(20, 20, 120, 80))
    assert picker.box == (40, 40, 240, 160) and canvas.box == [20, 20, 120, 80]
    # a drag shorter than MIN_DRAG both ways is a click at the release
    picker.handle_message(drag(100, 100, 100 + widgets.MIN_DRAG - 1, 101))
    assert picker.points[-1] == (2 * (100 + widgets.MIN_DRAG - 1), 202)
    assert picker.box == (40, 40, 240, 160)
    # a drag past the picture's edge is clipped to the image
    picker.handle_message(drag(-30, 200, 300, 290))
    assert picker.box == (0, 400, 511, 511)

    picker.undo()
    assert picker.box == (40, 40, 240, 160)
    picker.clear()
    assert picker.result is None and canvas.points == [] and canvas.box == []


@pytest.mark.parametrize(("size", "display", "at", "expected"), [
    ((451, 300), (300, 200), (150, 100), (225.5, 150.0)),  # landscape
    ((300, 451), (200, 300), (100, 250), (150.0, 375.8)),  # portrait
    ((200, 120), (200, 120), (33, 44), (33.0, 44.0)),  # smaller than `display`: not scaled
])
def test_picker_maps_landscape_and_portrait_display_pixels(
        seg: sam.Segmenter, size: tuple[int, int], display: tuple[int, int],
        at: tuple[float, float], expected: tuple[float, float]) -> None:
    photo = images.sample("chelsea").resize(size)
    picker = widgets.PointPicker(seg, photo, display=300)
    assert picker.display_size == display
    picker.handle_message(click(*at))
    ((x, y),) = picker.points
    assert abs(x - expected[0]) < 0.1 and abs(y - expected[1]) < 0.1, picker.points
    picker.handle_message(drag(0, 0, display[0], display[1]))  # the whole picture
    assert picker.box == (0, 0, size[0] - 1, size[1] - 1)


def test_picker_box_mode_clicks_two_corners(seg: sam.Segmenter) -> None:
    picker = widgets.PointPicker(seg, images.sample("coffee"), display=300)  # 600 x 400
    canvas, status = picker.widget.children[1:3]
    picker.mode = "box"
    assert canvas.mode == "box" and "mode: box |" in status.value
    picker.handle_message(click(30, 20))
    assert picker.box is None and picker.points == [] and picker.corner == (60, 40)
    assert canvas.corner == [30, 20]
    assert "first corner at (60, 40): click the opposite corner" in picker.status()
    assert "click the opposite corner" in status.value
    picker.handle_message(click(200, 150, shift=True))  # an exclude point, the corner stays
    assert picker.labels == [0] and picker.corner == (60, 40)
    picker.handle_message(click(150, 120))
    assert picker.box == (60, 40, 300, 240) and picker.corner is None and canvas.corner == []
    assert "click the opposite corner" not in status.value and picker.result is not None

    picker.handle_message(click(10, 10))  # a new first corner ...
    picker.handle_message({"kind": "cancel"})  # ... forgotten (Esc)
    assert picker.corner is None and picker.box == (60, 40, 300, 240)
    picker.handle_message(click(10, 10))
    picker.undo()  # Undo takes back the corner first, then the box
    assert picker.corner is None and picker.box == (60, 40, 300, 240)
    picker.handle_message(click(10, 10))
    picker.mode = "include"  # so does another mode
    assert picker.corner is None and canvas.corner == []
    picker.handle_message(drag(10, 10, 50, 60))  # a drag draws a box in every mode
    assert picker.box == (20, 20, 100, 120)


def test_picker_answers_the_canvas_with_its_seq(seg: sam.Segmenter,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    picker = widgets.PointPicker(seg, images.sample("chelsea"), display=300)
    canvas = picker.widget.children[1]
    picker._view.on_canvas_message(canvas, {**click(100, 80), "seq": 1}, [])
    assert canvas.ack == 1 and len(picker.points) == 1 and canvas.points == [[100, 80]]
    # a bad message: the error shows under the picture, the view still gets its answer
    picker._view.on_canvas_message(canvas, {"kind": "wheel", "seq": 2}, [])
    assert canvas.ack == 2 and len(picker.points) == 1
    assert "picker message kind 'wheel' is not one of" in capsys.readouterr().out


@pytest.mark.parametrize(("message", "error"), [
    ({"kind": "wheel"}, r"kind 'wheel' is not one of 'click', 'drag', 'cancel'"),
    ({"x": 1, "y": 2}, r"kind None is not one of"),
    ({"kind": "click", "x": "10", "y": 5}, r"'x' must be a finite number .* got '10'"),
    ({"kind": "click", "x": 10, "y": float("nan")}, r"'y' must be a finite number .* got nan"),
    ({"kind": "click", "x": True, "y": 5}, r"'x' must be a finite number .* got True"),
    ({"kind": "drag", "x0": 1, "y0": 1, "x1": 50}, r"'y1' must be a finite number .* None"),
    ({"kind": "click", "x": 1, "y": 1, "shift": "yes"}, r"'shift' must be true or false"),
    ([1, 2], r"a dict with a 'kind', got \[1, 2\]"),
])
def test_picker_bad_messages_name_the_value(seg: sam.Segmenter, message: Any,
                                            error: str) -> None:
    picker = widgets.PointPicker(seg, images.sample("chelsea"), display=300)
    with pytest.raises(ValueError, match=error):
        picker.handle_message(message)
    assert picker.points == [] and picker.box is None


def test_picker_mode_is_checked(seg: sam.Segmenter) -> None:
    picker = widgets.PointPicker(seg, images.sample("chelsea"))
    with pytest.raises(ValueError, match=r"mode 'boxes' is not one of 'include', 'exclude'"):
        picker.mode = "boxes"
    for display in (0, float("nan"), "640"):
        with pytest.raises(ValueError, match=rf"display {display!r} must be (a|>= 1)"):
            widgets.PointPicker(seg, images.sample("chelsea"), display=display)  # type: ignore[arg-type]


def test_picker_modes_and_save_load(seg: sam.Segmenter, tmp_path: Path) -> None:
    picker = widgets.PointPicker(seg, images.sample("coffee"))
    picker.mode = "exclude"
    picker.click(100, 100)
    picker.handle_message(click(5, 5))  # display = image pixels here: an exclude point
    assert picker.labels == [0, 0] and picker.points[1] == (5, 5)
    picker.mode = "box"
    picker.handle_message(click(5, 5))  # a first click in box mode: a corner, no box yet
    assert picker.labels == [0, 0] and picker.box is None and picker.corner == (5, 5)
    picker.drag(300, 60, 430, 330)
    assert picker.corner is None
    path = picker.save(tmp_path / "prompts.json")
    other = widgets.PointPicker(seg, images.sample("coffee"))
    other.load(path)
    assert other.points == picker.points and other.box == picker.box
    assert other.result is not None
    assert np.array_equal(other.result.masks, picker.result.masks)  # type: ignore[union-attr]
    wrong = widgets.PointPicker(seg, images.sample("chelsea"))
    with pytest.raises(ValueError, match="saved for a 600x400 image"):
        wrong.load(path)


def test_picker_render_shows_prompts(seg: sam.Segmenter) -> None:
    picker = widgets.PointPicker(seg, images.sample("coffee"), points=[[290, 150]], labels=[1],
                                 box=[170, 15, 410, 310], display=300)
    picture = picker.render()
    assert picture.size == (300, 200)
    plain = picker.image.resize(picture.size)
    assert np.abs(np.asarray(picture, int) - np.asarray(plain, int)).sum() > 0
    # the live view's picture: the mask only (the browser draws the prompts)
    bare = np.asarray(picker.render(prompts=False), int)
    drawn = np.asarray(picture, int)
    changed = np.abs(drawn - bare).sum(axis=2) > 0
    x, y = round(290 / 2), round(150 / 2)  # the point, in display pixels
    assert changed[y - 2:y + 3, x - 2:x + 3].all()
    assert changed[8:12, 85:140].any()  # the box's top edge at y = 15 / 2
    assert not changed[180:, :40].any()  # far from every prompt


def test_picker_picture_adds_the_candidates(seg: sam.Segmenter) -> None:
    picker = widgets.PointPicker(seg, images.sample("chelsea"), display=300)
    assert picker.picture().size == picker.render().size == (300, 200)  # no result: the render
    picker.click(265, 238)
    picture = picker.picture()
    assert picture.width == 300 and picture.height > 200 + 200 // 3
    top = np.asarray(picture, int)[:200]
    assert np.array_equal(top, np.asarray(picker.render(), int))
    strip = np.asarray(picture, int)[200:]
    assert (strip != 255).any(axis=2).sum() > 3 * 80 * 50  # three thumbnails


def test_picker_displays_live_view_and_static_picture(seg: sam.Segmenter,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(IPython.display, "display",
                        lambda *objs, **kwargs: shown.extend((o, kwargs) for o in objs))
    picker = widgets.PointPicker(seg, images.sample("chelsea"), points=[[265, 238]], display=300)
    picker._ipython_display_()
    ((bundle, kwargs),) = shown
    assert kwargs.get("raw") is True
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == \
        picker.widget.model_id
    page = bundle["text/html"]
    assert 'class="pv-widget-picture"' in page and "data:image/jpeg;base64," in page
    assert 'alt="SAM point picker: mode: include | points: (265, 238)+' in page
    assert 'width="300"' in page and "best score" in page
    # the canvas alone is an anywidget, whose bundle comes as (data, metadata)
    from helpers.widgets import static

    canvas = static.bundle(picker.widget.children[1], picker.picture(), alt="canvas")
    assert canvas["application/vnd.jupyter.widget-view+json"]["model_id"] == \
        picker.widget.children[1].model_id and "text/html" in canvas


def _node_gestures(gestures: list[dict[str, Any]], size: tuple[int, int]) -> dict[str, Any]:
    """Run picker.js's own gesture/replay code in node: the messages it sends and the
    prompts it draws ahead of the kernel."""
    js = Path(widgets.picker.__file__).with_name("picker.js").as_uri()
    script = f"""
import {{ gesture, replay }} from {json.dumps(js)};
const [width, height] = {json.dumps(list(size))};
const state = {{ width, height, points: [], labels: [], box: null, corner: null }};
const messages = [];
for (const g of {json.dumps(gestures)}) {{
  const done = gesture(g.start, g.end, {{ ...g, minDrag: {widgets.MIN_DRAG}, width, height }});
  messages.push(done ? done[0] : null);
  if (done) replay(state, done[1]);
}}
console.log(JSON.stringify({{ messages, state }}));
"""
    out = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_picker_js_draws_ahead_what_the_kernel_does(seg: sam.Segmenter) -> None:
    """The browser's guess (what it draws before the kernel answers) is the kernel's answer."""
    picker = widgets.PointPicker(seg, images.sample("chelsea"), display=300)
    canvas = picker.widget.children[1]
    gestures = [
        {"start": [100, 80], "end": [101, 81], "mode": "include"},  # click
        {"start": [250, 40], "end": [250, 40], "mode": "include", "shift": True},
        {"start": [20, 30], "end": [120, 90], "mode": "include"},  # drag
        {"start": [50, 50], "end": [90, 50], "dragging": True, "mode": "include"},  # flat
        {"start": [60, 60], "end": [61, 60], "dragging": True, "mode": "include"},  # back
        {"start": [10, 20], "end": [10, 20], "mode": "exclude"},
        {"start": [30, 40], "end": [30, 40], "mode": "box"},  # first corner
        {"start": [200, 20], "end": [200, 20], "mode": "box", "alt": True},  # exclude
        {"start": [180, 150], "end": [180, 151], "mode": "box"},  # opposite corner
        {"start": [70, 70], "end": [70, 70], "mode": "box"},  # a corner left waiting
    ]
    ran = _node_gestures(gestures, picker.display_size)
    kinds = [m and m["kind"] for m in ran["messages"]]
    assert kinds == ["click", "click", "drag", "drag", None, "click", "click", "click",
                     "click", "click"]
    assert ran["messages"][0] == click(101, 81)  # a click where the button came up
    assert ran["messages"][7]["alt"] is True
    for gesture, message in zip(gestures, ran["messages"]):
        if message is None:
            continue
        picker.mode = gesture["mode"]
        if message["kind"] == "drag" and message["y0"] == message["y1"]:
            # a flat drag: the kernel refuses the box (the browser drops its guess on the
            # answer); the box clicks below replace it in both anyway
            with pytest.raises(ValueError, match="no area"):
                picker.handle_message(message)
            continue
        picker.handle_message(message)
    state = ran["state"]
    assert canvas.labels == state["labels"] == [1, 0, 0, 0]
    assert np.allclose(canvas.points, state["points"], atol=0.01)
    assert np.allclose(canvas.box, state["box"], atol=0.01)
    assert state["box"] == [30, 40, 180, 151]
    assert canvas.corner == state["corner"] == [70, 70]
