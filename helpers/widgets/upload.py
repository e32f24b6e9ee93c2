"""``PhotoUpload``: a button that saves the photos a learner chooses into a folder (for
training on their own subject in lesson 5)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image


class PhotoUpload:
    """A file-upload button; every chosen photo is saved into ``folder`` under its name.

    ``.saved`` lists the files saved so far (plain state, testable without a browser);
    ``save(items)`` is what the button calls with ipywidgets' upload value.
    """

    def __init__(self, folder: str | Path) -> None:
        if not isinstance(folder, (str, Path)) or not str(folder).strip():
            raise ValueError(f"PhotoUpload needs a folder to save photos in, e.g. "
                             f"'my_photos'; got {folder!r:.60}")
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"{str(self.folder)!r} is a file, not a folder: give PhotoUpload a "
                             "folder for the photos")
        self.saved: list[Path] = []
        self._view: Any = None
        self._status: Any = None

    def save(self, items: Any) -> list[Path]:
        """Save uploaded files (dicts with ``name`` and ``content``) and return their paths.

        Only the file's own name is kept, so a name cannot point outside ``folder``.
        """
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise ValueError(f"save takes a list of uploads (dicts with 'name' and 'content', "
                             f"as the upload button gives), not {items!r:.60}")
        checked = []
        for item in items:  # every upload is checked before any file is written
            if not isinstance(item, Mapping) or "name" not in item or "content" not in item:
                raise ValueError(f"an upload must be a dict with 'name' and 'content'; got "
                                 f"{item!r:.60}")
            name = Path(str(item["name"])).name
            if not name or name.startswith("."):
                raise ValueError(f"cannot save an upload named {item['name']!r}")
            content = item["content"]
            if not isinstance(content, (bytes, bytearray, memoryview)):
                raise ValueError(f"the content of upload {name!r} must be bytes (the file's "
                                 f"bytes), not {type(content).__name__}")
            checked.append((name, bytes(content)))
        self.folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, content in checked:
            path = self.folder / name
            path.write_bytes(content)
            written.append(path)
        self.saved += written
        if self._status is not None:
            names = ", ".join(p.name for p in written)
            self._status.value = (f"Saved {len(written)} photo(s) to <code>{self.folder}</code>: "
                                  f"{names}")
        return written

    @property
    def widget(self) -> Any:
        """The ipywidgets view, built on first use."""
        if self._view is None:
            import ipywidgets as w

            button = w.FileUpload(accept="image/*", multiple=True, description="Add photos")
            self._status = w.HTML(f"Photos go to <code>{self.folder}</code>.")
            button.observe(lambda change: self.save(change["new"]), names="value")
            self._view = w.VBox([button, self._status])
        return self._view

    def hint(self) -> str:
        """One line: where chosen photos go and how many were saved."""
        return (f"Add photos: they go to {self.folder} "
                f"({len(self.saved)} saved so far; needs a running kernel)")

    def picture(self, thumb: int = 96) -> Image.Image:
        """A static picture of the button and the photos saved so far (for pages without a
        kernel): a drawn "Add photos" button, then a thumbnail of each saved photo."""
        from PIL import Image as PILImage
        from PIL import ImageDraw

        from helpers import images

        shown = self.saved[:8]
        width = max(360, 8 + len(shown) * (thumb + 8))
        canvas = PILImage.new("RGB", (width, 44 + (thumb + 8 if shown else 0)), "white")
        draw = ImageDraw.Draw(canvas)
        draw.rounded_rectangle([8, 8, 124, 36], radius=4, fill="#e0e0e0", outline="#9e9e9e")
        draw.text((22, 16), "Add photos", fill="black")
        placed = 0
        for path in shown:
            try:
                photo = images.load(path)
            except (OSError, ValueError):
                continue  # a file that is not a photo stays out of the picture
            photo.thumbnail((thumb, thumb))
            canvas.paste(photo, (8 + placed * (thumb + 8), 44))
            placed += 1
        others = len(self.saved) - placed if len(self.saved) <= len(shown) else 0
        note = f"{len(self.saved)} file(s) saved" + (f", {others} not a photo" if others else "")
        draw.text((136, 16), note, fill="#424242")
        return canvas

    def _ipython_display_(self) -> None:
        from helpers.widgets import static

        static.show(self.widget, self.picture(), alt="photo upload button", caption=self.hint(),
                    text=repr(self))

    def __repr__(self) -> str:
        return f"PhotoUpload({str(self.folder)!r}, saved={len(self.saved)})"
