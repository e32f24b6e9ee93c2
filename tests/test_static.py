"""Widgets carry a static picture of their state, and pre-rendered pages show it offline."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from helpers import images, lessons
from helpers.detections import Detections
from helpers.widgets import PhotoUpload, ThresholdSlider, static

IMG = re.compile(r'<img class="pv-widget-picture" src="data:image/(png|jpeg);base64,([^"]+)"')


def _decoded(html_text: str) -> Image.Image:
    found = IMG.search(html_text)
    assert found, html_text[:200]
    return Image.open(io.BytesIO(base64.b64decode(found.group(2))))


def _shown(obj: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What ``display(obj)`` publishes, captured."""
    published: list[dict[str, Any]] = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display",
                        lambda data, raw=False: published.append(data))
    obj._ipython_display_()
    assert len(published) == 1
    return published[0]


def test_slider_output_carries_the_view_and_its_boxes(monkeypatch: pytest.MonkeyPatch) -> None:
    photo = images.sample("coffee")
    dets = Detections(np.array([[50, 40, 200, 180], [300, 60, 420, 300]], float),
                      np.array([0.9, 0.2]), np.array(["cup", "cup"]))
    slider = ThresholdSlider(photo, dets, threshold=0.5)
    data = _shown(slider, monkeypatch)
    assert static.WIDGET_VIEW in data and data[static.WIDGET_VIEW]["model_id"]
    assert "1 of 2 boxes at threshold 0.50" in data["text/html"]
    picture = np.asarray(_decoded(data["text/html"]).convert("RGB")).astype(int)
    assert picture.shape[:2] == (photo.height, photo.width)
    bare = np.asarray(photo).astype(int)
    # the kept box's edge is drawn, the dropped one's is not (JPEG: compare with a margin)
    assert np.abs(picture[40, 60:190] - bare[40, 60:190]).mean() > 40
    assert np.abs(picture[60, 310:410] - bare[60, 310:410]).mean() < 15


def test_upload_picture_shows_saved_photos(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    upload = PhotoUpload(tmp_path / "mine")
    empty = upload.picture()
    buffer = io.BytesIO()
    images.sample("chelsea").save(buffer, format="PNG")
    upload.save([{"name": "cat.png", "content": buffer.getvalue()},
                 {"name": "notes.txt", "content": b"not a photo"}])
    with_photo = upload.picture()
    assert with_photo.height > empty.height  # a row of thumbnails appeared
    thumb = np.asarray(with_photo)[44:140, 8:104].astype(int)
    assert thumb.std() > 20  # a photo, not the white card
    data = _shown(upload, monkeypatch)
    assert "2 saved so far" in data["text/html"] and str(tmp_path / "mine") in data["text/html"]
    assert _decoded(data["text/html"]).size == with_photo.size


def test_data_url_keeps_transparency_as_png() -> None:
    assert static.data_url(Image.new("RGBA", (4, 4))).startswith("data:image/png;")
    assert static.data_url(Image.new("RGB", (4, 4))).startswith("data:image/jpeg;")


def test_html_page_shows_pictures_and_loads_no_widget_manager() -> None:
    import nbformat

    view = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    picture = static.picture_html(Image.new("RGB", (30, 20), "red"), alt="a widget")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("w", outputs=[
        nbformat.v4.new_output("display_data", data={
            static.WIDGET_VIEW: view, "text/html": picture, "text/plain": "VBox()"})])])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {"abc": {"model_name": "VBoxModel", "state": {}}}, "version_major": 2,
        "version_minor": 0}}
    page = lessons.html_page(nb)
    assert 'class="pv-widget-picture"' in page
    assert "html-manager" not in page and "widget-view+json" not in page
    assert "widgets" in nb.metadata  # the executed notebook keeps its widget state
