"""The browser harness works: an image widget in JupyterLab gets real clicks and drags.

The widget is a tiny anywidget defined in the notebook: an <img> that sends its mouse
events to the kernel in image pixels, and the kernel draws a dot where it was clicked. It
needs no widget package beyond anywidget, and checks that anywidget works offline (its
module comes from the kernel, never from a CDN).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from . import browser

pytestmark = [pytest.mark.browser, browser.needs_browser]

ESM = """\
export default {
  render({ model, el }) {
    const img = document.createElement("img");
    img.className = "smoke-image";
    img.draggable = false;
    let url = null;
    const show = () => {
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(new Blob([model.get("value")], { type: "image/png" }));
      img.src = url;
    };
    const report = (event) => {
      event.preventDefault();
      const rect = img.getBoundingClientRect();
      model.send({
        type: event.type,
        x: Math.floor((event.clientX - rect.left) * img.naturalWidth / rect.width),
        y: Math.floor((event.clientY - rect.top) * img.naturalHeight / rect.height),
      });
    };
    for (const type of ["click", "mousedown", "mouseup"]) img.addEventListener(type, report);
    model.on("change:value", show);
    show();
    el.appendChild(img);
  },
};
"""

NOTEBOOK = f'''\
import io
import json

import anywidget
import ipywidgets as widgets
import traitlets
from PIL import Image, ImageDraw


class Picture(anywidget.AnyWidget):
    _esm = {ESM!r}
    value = traitlets.Bytes().tag(sync=True)


def png(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


picture = Image.new("RGB", (200, 100), (40, 90, 160))
image = Picture(value=png(picture))
label = widgets.Label("[]")
label.add_class("smoke-label")
log = widgets.Output()
log.add_class("smoke-log")
seen = []


@log.capture()
def on_event(event):
    x, y = event["x"], event["y"]
    seen.append([event["type"], x, y])
    label.value = json.dumps(seen)
    if event["type"] == "click":
        ImageDraw.Draw(picture).ellipse([x - 4, y - 4, x + 4, y + 4], fill=(255, 40, 40))
        image.value = png(picture)


image.on_msg(lambda _widget, content, _buffers: on_event(content))
widgets.VBox([image, label, log])
'''


def seen(nb: browser.Notebook) -> list[list[Any]]:
    return list(json.loads(nb.text(".smoke-label")))


def test_click_and_drag_reach_the_kernel(tmp_path: Path) -> None:
    start = time.monotonic()
    browser.write_notebook(tmp_path / "smoke.ipynb", NOTEBOOK)
    with browser.lab(tmp_path) as server, browser.open_notebook(server, "smoke.ipynb") as nb:
        ready = time.monotonic()
        geometry = nb.image_geometry(".smoke-image")
        assert (geometry["naturalWidth"], geometry["naturalHeight"]) == (200, 100)
        sx = geometry["naturalWidth"] / geometry["width"]  # image pixels per CSS pixel
        sy = geometry["naturalHeight"] / geometry["height"]
        before = nb.screenshot(".smoke-image")

        nb.click(".smoke-image", 50, 30)
        events = nb.wait_until(lambda: [e for e in seen(nb) if e[0] == "click"], "the click")
        _, x, y = events[-1]
        assert abs(x - 50 * sx) <= 2 and abs(y - 30 * sy) <= 2, events
        nb.wait_for_new_screenshot(".smoke-image", before)  # the kernel drew a dot

        count = len(seen(nb))
        nb.drag(".smoke-image", (20, 20), (120, 80))

        def dragged() -> list[list[Any]]:
            new = seen(nb)[count:]
            return new if any(e[0] == "mouseup" for e in new) else []

        after = nb.wait_until(dragged, "the drag")
        down = next(e for e in after if e[0] == "mousedown")
        up = next(e for e in after if e[0] == "mouseup")
        assert abs(down[1] - 20 * sx) <= 2 and abs(down[2] - 20 * sy) <= 2, after
        assert abs(up[1] - 120 * sx) <= 2 and abs(up[2] - 80 * sy) <= 2, after

        # image pixels -> element offsets, for tests that aim at a pixel of the picture
        nb.click(".smoke-image", *nb.image_offset(".smoke-image", 150, 70))
        events = nb.wait_until(lambda: [e for e in seen(nb) if e[0] == "click"][2:], "a click")
        assert events[-1][1:] == [150, 70], events

        assert nb.text(".smoke-log").strip() == ""  # the handler raised nothing
        nb.assert_loopback_only()
    print(f"\nbrowser smoke: ready in {ready - start:.1f} s, "
          f"total {time.monotonic() - start:.1f} s")
