"""The SAM point picker in a real browser: clicks and drags reach the kernel in image pixels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from . import browser

pytestmark = [pytest.mark.browser, browser.needs_browser]

# chelsea is 451 x 300; shown at 300 x 200, so display pixels map back by 451/300 = 1.503
NOTEBOOK = '''\
from helpers import images, sam, widgets

seg = sam.Segmenter.from_pretrained("tiny", device="cpu")
picker = widgets.PointPicker(seg, images.sample("chelsea"), display=300)
picker
'''
SCALE = 451 / 300


def status(nb: browser.Notebook) -> str:
    return nb.text(".pv-picker-status")


def points(text: str) -> list[tuple[float, float, str]]:
    return [(float(x), float(y), sign)
            for x, y, sign in re.findall(r"\((\d+), (\d+)\)([+-])", text)]


def test_picker_clicks_and_drags(tmp_path: Path) -> None:
    browser.write_notebook(tmp_path / "picker.ipynb", NOTEBOOK)
    with browser.lab(tmp_path) as server, browser.open_notebook(server, "picker.ipynb") as nb:
        geometry = nb.image_geometry(".pv-picker-image")
        assert (geometry["naturalWidth"], geometry["naturalHeight"]) == (300, 200)
        assert "points: none" in status(nb)
        before = nb.screenshot(".pv-picker-image")

        # an include click at display pixel (100, 80) -> image pixel (150, 120)
        nb.click(".pv-picker-image", *nb.image_offset(".pv-picker-image", 100, 80))
        text = nb.wait_for_text(".pv-picker-status", r"\(\d+, \d+\)\+")
        ((x, y, sign),) = points(text)
        assert abs(x - 100 * SCALE) <= 2 and abs(y - 80 * SCALE) <= 2, text
        assert "best score" in text  # the mask decoder ran in the kernel
        after_click = nb.wait_for_new_screenshot(".pv-picker-image", before)

        # shift-click adds an exclude point
        offset = nb.image_offset(".pv-picker-image", 250, 40)
        nb.page.keyboard.down("Shift")
        nb.click(".pv-picker-image", *offset)
        nb.page.keyboard.up("Shift")
        text = nb.wait_for_text(".pv-picker-status", r"\)-")
        x2, y2, sign2 = points(text)[1]
        assert sign2 == "-" and abs(x2 - 250 * SCALE) <= 2 and abs(y2 - 40 * SCALE) <= 2

        # a drag from display (40, 30) to (200, 150) draws the box
        nb.drag(".pv-picker-image", nb.image_offset(".pv-picker-image", 40, 30),
                nb.image_offset(".pv-picker-image", 200, 150))
        text = nb.wait_for_text(".pv-picker-status", r"box: \[")
        box = [float(v) for v in re.search(r"box: \[([^\]]+)\]", text).group(1).split(",")]
        expected = [40 * SCALE, 30 * SCALE, 200 * SCALE, 150 * SCALE]
        assert all(abs(a - b) <= 3 for a, b in zip(box, expected)), text
        nb.wait_for_new_screenshot(".pv-picker-image", after_click)
        assert nb.text(".pv-picker-errors").strip() == ""
