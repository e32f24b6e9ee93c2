"""A static picture beside every widget view, for pages that have no kernel.

A widget shown in a notebook is an ipywidgets view: it needs a live kernel, or at least the
widget manager's JavaScript, to draw anything. A pre-rendered page (``make lessons``) or a
notebook opened without its kernel would show a blank. So each widget is displayed as one
output holding two representations of the same state:

- ``application/vnd.jupyter.widget-view+json``: the live view, which JupyterLab, Notebook 7,
  VS Code and Colab prefer whenever they can draw it;
- ``text/html``: an ``<img class="pv-widget-picture">`` of what the widget shows at that
  moment (the picker's prompts and mask, the slider's boxes, the gallery's grid, the upload
  hint), which a static page shows instead.

Each widget object implements ``picture()`` (a PIL image of its current state) and calls
``show`` from its ``_ipython_display_``.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

PICTURE_CLASS = "pv-widget-picture"
"""The CSS class of every static widget picture (tests and pages find them by it)."""

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def data_url(picture: Image.Image, quality: int = 85) -> str:
    """A ``data:`` URL of the picture: JPEG when it is opaque (a photo), else PNG."""
    buffer = io.BytesIO()
    if picture.mode in ("RGBA", "LA", "P"):
        picture.save(buffer, format="PNG", optimize=True)
        kind = "png"
    else:
        picture.convert("RGB").save(buffer, format="JPEG", quality=quality)
        kind = "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def picture_html(picture: Image.Image, alt: str, caption: str | None = None) -> str:
    """The static picture as HTML: an image at its own size, with an optional caption."""
    img = (f'<img class="{PICTURE_CLASS}" src="{data_url(picture)}" alt="{html.escape(alt)}" '
           f'width="{picture.width}" height="{picture.height}" style="max-width:100%">')
    if caption:
        img += f'<div class="pv-widget-caption"><code>{html.escape(caption)}</code></div>'
    return f'<div class="pv-widget-static">{img}</div>'


def bundle(view: Any, picture: Image.Image, alt: str, caption: str | None = None,
           text: str | None = None) -> dict[str, Any]:
    """The display bundle of ``view`` (an ipywidgets widget) with a static picture added."""
    shown = view._repr_mimebundle_() or {}
    if isinstance(shown, tuple):  # (data, metadata), as an anywidget widget returns it
        shown = shown[0]
    data: dict[str, Any] = dict(shown)
    data["text/html"] = picture_html(picture, alt, caption)
    if text is not None:
        data["text/plain"] = text
    return data


def show(view: Any, picture: Image.Image, alt: str, caption: str | None = None,
         text: str | None = None) -> None:
    """Display ``view`` as one output that also carries the static picture."""
    from IPython.display import display

    display(bundle(view, picture, alt, caption, text), raw=True)
