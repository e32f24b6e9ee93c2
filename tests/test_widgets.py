"""widgets: the prompt state (no browser) and the picker driven by simulated DOM events."""

from __future__ import annotations

from pathlib import Path

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


def test_picker_events_map_display_pixels_to_image_pixels(seg: sam.Segmenter) -> None:
    photo = images.sample("astronaut")  # 512 x 512 shown at 256 x 256
    picker = widgets.PointPicker(seg, photo, display=256)
    view = picker.widget  # builds the ipywidgets view without a browser
    assert type(view).__name__ == "VBox" and picker.display_size == (256, 256)
    picture, status, candidates = view.children[1:4]
    before = picture.value

    picker.handle_event({"type": "mousedown", "dataX": 50, "dataY": 30})
    picker.handle_event({"type": "mouseup", "dataX": 51, "dataY": 30})
    assert picker.points == [(102, 60)] and picker.labels == [1]
    assert picker.result is not None and picture.value != before
    assert "(102, 60)+" in status.value
    assert len(candidates.children) == 3

    picker.handle_event({"type": "mousedown", "dataX": 10, "dataY": 10, "shiftKey": True})
    picker.handle_event({"type": "mouseup", "dataX": 10, "dataY": 10, "shiftKey": True})
    assert picker.labels == [1, 0]

    picker.handle_event({"type": "mousedown", "dataX": 20, "dataY": 20})
    picker.handle_event({"type": "mouseup", "dataX": 120, "dataY": 80})
    assert picker.box == (40, 40, 240, 160)

    picker.undo()
    assert picker.box is None
    picker.clear()
    assert picker.result is None


def test_picker_modes_and_save_load(seg: sam.Segmenter, tmp_path: Path) -> None:
    picker = widgets.PointPicker(seg, images.sample("coffee"))
    picker.mode = "exclude"
    picker.click(100, 100)
    picker.mode = "box"
    picker.handle_event({"type": "mousedown", "dataX": 5, "dataY": 5})
    picker.handle_event({"type": "mouseup", "dataX": 5, "dataY": 6})  # a click in box mode: nothing
    assert picker.labels == [0] and picker.box is None
    picker.drag(300, 60, 430, 330)
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
