"""The SAM point picker in a real browser, in JupyterLab 4 and in Notebook 7: clicks, drags
and box-mode clicks reach the kernel in image pixels, and the browser draws them at once.

The notebook's segmenter answers late (``DELAY`` seconds per mask), so a test can tell what
the browser drew on its own (the canvas changed, the kernel's status line not yet) from
what came back from the kernel.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import pytest

from . import browser

pytestmark = [pytest.mark.browser, browser.needs_browser]

DELAY = 1.5  # seconds the kernel takes for each mask
# chelsea is 451 x 300; shown at 300 x 200, so display pixels map back by 451/300 = 1.503
NOTEBOOK = f'''\
import time

from helpers import images, sam, widgets

seg = sam.Segmenter.from_pretrained("tiny", device="cpu")
predict = seg.predict


def slow_predict(*args, **kwargs):  # the kernel answers late
    time.sleep({DELAY})
    return predict(*args, **kwargs)


seg.predict = slow_predict
picker = widgets.PointPicker(seg, images.sample("chelsea"), display=300)
picker
'''
SCALE = 451 / 300
IMAGE = ".pv-picker-image"
STATUS = ".pv-picker-status"


def status(nb: browser.Notebook) -> str:
    return nb.text(STATUS)


def points(text: str) -> list[tuple[float, float, str]]:
    return [(float(x), float(y), sign)
            for x, y, sign in re.findall(r"\((\d+), (\d+)\)([+-])", text)]


def box_of(text: str) -> list[float]:
    found = re.search(r"box: \[([^\]]+)\]", text)
    assert found, text
    return [float(v) for v in found.group(1).split(",")]


def at(nb: browser.Notebook, x: float, y: float) -> tuple[float, float]:
    """The canvas offset of display pixel (x, y)."""
    return nb.image_offset(IMAGE, x, y)


def pictures(nb: browser.Notebook) -> int:
    """How many pictures from the kernel the canvas has drawn."""
    return int(nb.element(IMAGE).evaluate("el => el.dataset.pictures || '0'"))


def kernel_picture(nb: browser.Notebook, seen: int) -> bytes:
    """Wait until the canvas drew a newer kernel picture than the ``seen``-th; its PNG."""
    nb.wait_until(lambda: pictures(nb) > seen, "the kernel's new picture")
    return nb.screenshot(IMAGE)


def drawn_ahead(nb: browser.Notebook, before: bytes, kernel_said: str) -> bytes:
    """Wait (less than the kernel's delay) for the canvas to change; the kernel's status
    must still be ``kernel_said``: the browser drew it on its own."""
    png = nb.wait_for_new_screenshot(IMAGE, before, timeout=DELAY)
    assert status(nb) == kernel_said, "the status changed before the canvas did"
    return png


@pytest.mark.parametrize("front", list(browser.FRONTS))
def test_picker_clicks_drags_and_box_clicks(tmp_path: Path, front: str) -> None:
    browser.write_notebook(tmp_path / "picker.ipynb", NOTEBOOK)
    with browser.lab(tmp_path, front=front) as server, \
            browser.open_notebook(server, "picker.ipynb") as nb:
        page = "/notebooks/picker.ipynb" if front == "notebook" else "/lab"
        assert urllib.parse.urlsplit(nb.page.url).path.startswith(page), nb.page.url
        assert nb.element(IMAGE).evaluate("el => el.tagName") == "CANVAS"
        geometry = nb.image_geometry(IMAGE)
        # drawn in display pixels, at its CSS size
        assert (geometry["naturalWidth"], geometry["naturalHeight"]) == (300, 200)
        assert (geometry["width"], geometry["height"]) == (300, 200)
        text = status(nb)
        assert "mode: include" in text and "points: none" in text, text
        seen = pictures(nb)
        assert seen >= 1
        before = nb.screenshot(IMAGE)

        # an include click at display pixel (100, 80) -> image pixel (150, 120): the point
        # shows at once, the mask when the kernel answers
        nb.click(IMAGE, *at(nb, 100, 80))
        drawn = drawn_ahead(nb, before, text)
        text = nb.wait_for_text(STATUS, r"\(\d+, \d+\)\+")
        ((x, y, sign),) = points(text)
        assert abs(x - 100 * SCALE) <= 2 and abs(y - 80 * SCALE) <= 2, text
        assert "best score" in text  # the mask decoder ran in the kernel
        after_click = kernel_picture(nb, seen)
        assert after_click != drawn  # the mask
        seen = pictures(nb)

        # shift-click adds an exclude point
        nb.click(IMAGE, *at(nb, 250, 40), modifiers=["Shift"])
        drawn_ahead(nb, after_click, text)
        text = nb.wait_for_text(STATUS, r"\)-")
        x2, y2, sign2 = points(text)[1]
        assert sign2 == "-" and abs(x2 - 250 * SCALE) <= 2 and abs(y2 - 40 * SCALE) <= 2, text

        # a drag from display (40, 30) to (200, 150): the rubber band while the button is
        # down (nothing reaches the kernel), the box on release
        shown = kernel_picture(nb, seen)
        nb.press(IMAGE, *at(nb, 40, 30))
        nb.move(IMAGE, *at(nb, 200, 150), steps=8)
        band = drawn_ahead(nb, shown, text)
        nb.release()
        drawn_ahead(nb, band, text)
        text = nb.wait_for_text(STATUS, r"box: \[")
        dragged = box_of(text)
        expected = [40 * SCALE, 30 * SCALE, 200 * SCALE, 150 * SCALE]
        assert all(abs(a - b) <= 3 for a, b in zip(dragged, expected)), text

        # box mode: the status says so; click one corner, the band follows the mouse, click
        # the opposite corner
        nb.element(".pv-picker-modes button:text-is('box')").click()
        text = nb.wait_for_text(STATUS, r"mode: box \|")
        assert box_of(text) == dragged
        nb.click(IMAGE, *at(nb, 60, 50))
        text = nb.wait_for_text(STATUS, r"click the opposite corner")
        corner = re.search(r"first corner at \((\d+), (\d+)\)", text)
        assert corner, text
        assert abs(float(corner.group(1)) - 60 * SCALE) <= 2, text
        assert abs(float(corner.group(2)) - 50 * SCALE) <= 2, text
        assert box_of(text) == dragged  # one click sets no box
        still = nb.screenshot(IMAGE)
        nb.move(IMAGE, *at(nb, 220, 170), steps=4)
        band = drawn_ahead(nb, still, text)
        nb.click(IMAGE, *at(nb, 220, 170))
        drawn_ahead(nb, band, text)
        text = nb.wait_for_text(STATUS, r"mode: box \| .*best score")
        clicked = box_of(text)
        expected = [60 * SCALE, 50 * SCALE, 220 * SCALE, 170 * SCALE]
        assert all(abs(a - b) <= 3 for a, b in zip(clicked, expected)), text
        assert len(points(text)) == 2  # box clicks add no points

        # Undo brings the dragged box back
        nb.element(".pv-picker-undo").click()
        nb.wait_until(lambda: box_of(status(nb)) == dragged, "undo to bring the drag back")
        assert nb.text(".pv-picker-errors").strip() == ""
