"""The gallery: logged images side by side with their settings, grouped or sorted by one
setting, with a "pick as best" button under each image.

``gallery(project)`` reads the local records (``tracking.logged_images``); a pick is logged
on the image's run with ``tracking.pick``. ``panel(run)`` is the gallery of one run, with
Comet's own page for it embedded below when the run is online.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import tracking
from helpers.tracking import LoggedImage

GalleryEntry = LoggedImage
"""The gallery's name for one logged image (``tracking.LoggedImage``)."""


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

    entries: Sequence[LoggedImage]
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
        keys = list(entry.metadata)
        if self.by in entry.params:
            keys = [self.by] + [k for k in keys if k != self.by]
        return "\n".join([entry.name] + [f"{k} = {_fmt(entry.params[k])}"
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


def gallery(project: str | None = None, runs: Iterable[Any] | None = None,
            by: str | None = None, directory: str | Path | None = None) -> Gallery:
    """An inline gallery of logged images with their settings; pick the best with a click.

    Args:
        project: show every run of this project (default: every project).
        runs: or only these runs (``Run`` objects or run folders).
        by: a setting (image metadata or run parameter) to group and sort by, e.g.
            "guidance_scale".
        directory: where the run records are (default ``tracking.runs_dir()``).

    Returns:
        A ``Gallery``; a pick is logged as a tag ("best:<image>") on its run.
    """
    entries = tracking.logged_images(project, runs, directory)
    return Gallery(entries, by=by, on_pick=tracking.pick)


def panel(run: Any, height: int = 800) -> Any:
    """Online: the run's gallery with Comet's own page for it below. Offline: the gallery."""
    local = gallery(runs=[run])
    url = getattr(run, "record", {}).get("comet_url")
    if getattr(run, "online", False) and url:
        import ipywidgets as w

        page = w.HTML(f'<iframe src="{html.escape(url)}" width="100%" '
                      f'height="{int(height)}"></iframe>')
        return w.VBox([local.widget, page])
    return local
