"""The gallery: logged images side by side with their settings, grouped or sorted by one
setting, with a "pick as best" button under each image.

``gallery(project)`` reads the local records (``tracking.logged_images``); a pick is logged
on the image's run with ``tracking.pick`` (also after the run ended: it reaches the run's
local record and its Comet record). Each image is drawn with what was logged with it
(masks, boxes with labels and scores, include/exclude points, as ``viz.annotate`` draws
them); the "annotations" toggle switches every image between that and the bare picture.
Each caption says which run logged the image when the gallery shows several runs, and the
heading names them all (project / run, when it started).

``panel(run)`` is the gallery of one run, with Comet's own page for it embedded below when
the run is online. Shown in a notebook, both also carry a static picture of the grid
(``Gallery.picture``), which a page without a kernel shows instead (``widgets.static``).
"""

from __future__ import annotations

import html
import io
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from helpers import checks, tracking, viz
from helpers.tracking import LoggedImage
from helpers.widgets import static

GalleryEntry = LoggedImage
"""The gallery's name for one logged image (``tracking.LoggedImage``)."""


def problem_key(entry: LoggedImage) -> str:
    """The key of an image in ``Gallery.problems``: its label and, when its run numbered
    it, its number (two images of one run may share a name)."""
    index = entry.record.get("index")
    return entry.label if index is None else f"{entry.label} #{index}"


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


def _short(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:max(1, chars - 3)] + "..."


def _when(started: float | None) -> str:
    return "" if not started else time.strftime("%Y-%m-%d %H:%M", time.localtime(started))


def _placeholder(text: str, width: int) -> Image.Image:
    """A grey card saying why there is no picture (its file is missing or unreadable)."""
    from PIL import ImageDraw

    card = Image.new("RGB", (width, max(8, width * 3 // 4)), (225, 225, 225))
    draw = ImageDraw.Draw(card)
    for k, line in enumerate(text.split("\n")):
        draw.text((6, 6 + 14 * k), _short(line, max(8, width // 7)), fill=(90, 90, 90))
    return card


@dataclass
class Gallery:
    """Logged images side by side with their settings; pick the best with a click.

    The state (the entries, whether annotations are drawn, what was picked) is a plain
    object that works without a browser; the ipywidgets view is built when first shown.

    Args:
        entries: the images to show.
        by: a setting to group and sort by (e.g. "guidance_scale"); None keeps log order.
        on_pick: called with the picked entry; returns a message shown under the gallery.
        cell: the width of each image in pixels.
        annotations: draw what was logged with each image (masks, boxes, points) on it;
            False shows the bare pictures. The view's "annotations" toggle switches it.
    """

    entries: Sequence[LoggedImage]
    by: str | None = None
    on_pick: Callable[[GalleryEntry], str] | None = None
    cell: int = 220
    picked: list[GalleryEntry] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    annotations: bool = True
    problems: dict[str, str] = field(default_factory=dict)  # problem_key(entry) -> why
    """Why an image is drawn bare although annotations are on: label -> reason."""
    _widget: Any = field(default=None, repr=False)
    _status: Any = field(default=None, repr=False)
    _toggle: Any = field(default=None, repr=False)
    _views: list[tuple[GalleryEntry, Any]] = field(default_factory=list, repr=False)
    _cache: dict[tuple[int, bool], Image.Image] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.cell = checks.integer("cell", self.cell, 32, 2048, hint="pixels per image")
        self.entries = list(self.entries)
        stray = next((e for e in self.entries if not isinstance(e, LoggedImage)), None)
        if stray is not None:
            raise ValueError(f"a gallery shows logged images (tracking.logged_images(...)), "
                             f"not {stray!r:.60}")
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

    # ------------------------------------------------------------ which runs
    def runs(self) -> list[str]:
        """One title per run shown, in order: "project / run name, started <date time>"."""
        titles: dict[str, str] = {}
        for entry in self.entries:
            titles.setdefault(entry.run_id, entry.run_title)
        return list(titles.values())

    @property
    def several_runs(self) -> bool:
        """True when the entries come from more than one run (captions then name theirs)."""
        return len({e.run_id for e in self.entries}) > 1

    def heading(self) -> str:
        """The runs the gallery shows, one line each (``runs()``), under a count."""
        titles = self.runs()
        if not titles:
            return ""
        if len(titles) == 1:
            return f"run {titles[0]}"
        return "\n".join([f"{len(titles)} runs:"] + [f"  {t}" for t in titles])

    def group_title(self, value: Any) -> str:
        """The heading of one group: "<by> = <value>" (empty when not grouped)."""
        return "" if self.by is None else f"{self.by} = {_fmt(value)}"

    def caption(self, entry: GalleryEntry) -> str:
        """The settings shown under an image: its own metadata, ``by`` first; when the
        gallery mixes runs, a last line names the image's run and when it started."""
        keys = list(entry.metadata)
        if self.by in entry.params:
            keys = [self.by] + [k for k in keys if k != self.by]
        lines = [entry.name] + [f"{k} = {_fmt(entry.params[k])}"
                                for k in keys if k in entry.params]
        if self.several_runs:
            started = _when(entry.started)
            lines.append(f"run {entry.run_name}" + (f" ({started})" if started else ""))
        return "\n".join(lines)

    # ------------------------------------------------------------ the pictures
    def drawn(self, entry: GalleryEntry, annotations: bool | None = None) -> Image.Image:
        """The picture of ``entry`` as the gallery shows it: drawn with what was logged with
        it (``LoggedImage.annotated``) when ``annotations`` (default: the gallery's
        setting) is on, else bare. An image whose annotations cannot be read is drawn bare
        (``problems`` says why); one whose file is missing becomes a grey card saying so."""
        on = self.annotations if annotations is None else bool(annotations)
        key = (id(entry), on)
        if key not in self._cache:
            self._cache[key] = self._draw(entry, on)
        return self._cache[key]

    def _draw(self, entry: GalleryEntry, on: bool) -> Image.Image:
        try:
            bare = entry.image()
        except (OSError, ValueError, KeyError, TypeError) as err:
            self.problems[problem_key(entry)] = f"the image file cannot be read ({err})"
            return _placeholder(f"{entry.name}\nimage file missing\nor unreadable", self.cell)
        if not on:
            return bare
        try:
            return entry.annotated()
        except (ValueError, KeyError, TypeError, IndexError, OSError) as err:
            self.problems[problem_key(entry)] = f"annotations not drawn: {err}"
            return bare

    def show_annotations(self, on: bool = True) -> None:
        """Draw every image with its annotations (True) or bare (False)."""
        self.annotations = bool(on)
        if self._toggle is not None and self._toggle.value != self.annotations:
            self._toggle.value = self.annotations  # its observer calls back here: no change
        for entry, view in self._views:
            view.value = self._png(entry)

    def _png(self, entry: GalleryEntry) -> bytes:
        picture = self.drawn(entry)
        most = 2 * self.cell  # enough for a sharp cell; a big photo need not travel whole
        if max(picture.size) > most:
            picture = picture.copy()
            picture.thumbnail((most, most), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        return buffer.getvalue()

    def picture(self, cols: int = 4, rows: int = 2, limit: int = 24) -> Image.Image:
        """A static picture of the gallery (a PIL image): the runs it shows, then each group
        under its heading as a grid of its images (drawn as ``drawn`` draws them, each
        ``cell`` px wide) with short captions.

        Its size is bounded: at most ``rows`` rows of ``cols`` images per group and
        ``limit`` images in all; what is left out is said in the picture.
        """
        chars = max(8, self.cell // 7)
        parts: list[Image.Image | None] = []
        titles: list[str | None] = []
        top = self.heading()
        note = "annotations drawn" if self.annotations else "annotations off (bare pictures)"
        titles.append("\n".join(t for t in (top, f"{len(self.entries)} images, {note}") if t))
        parts.append(None)
        if not self.entries:
            titles[0] = "No logged images yet: log some with run.log_image(...)."
        shown, left_out = 0, 0
        for value, members in self.groups():
            room = max(0, min(cols * rows, limit - shown))
            chosen, rest = members[:room], len(members) - min(room, len(members))
            title = self.group_title(value)
            if not chosen:
                left_out += rest
                continue
            pictures = [self.drawn(e) for e in chosen]
            captions = []
            for e in chosen:
                lines = self.caption(e).split("\n")
                lines = lines[:3] + lines[-1:] if len(lines) > 4 else lines
                problem = self.problems.get(problem_key(e), "")
                if problem.startswith("the image file"):
                    lines = [lines[0], "(image file missing)", *lines[1:3]]
                elif self.annotations and problem:
                    lines = [lines[0], "(drawn bare: record damaged)", *lines[1:3]]
                captions.append("\n".join(_short(line, chars) for line in lines))
            tallest = max(p.height / p.width for p in pictures)
            height = min(self.cell * 4 // 3, max(self.cell // 3, round(self.cell * tallest)))
            parts.append(viz.grid(pictures, captions, cols=min(cols, len(chosen)),
                                  cell=self.cell, height=height))
            if rest:
                title = (f"{title}  " if title else "") + f"(+{rest} more not shown here)"
            titles.append(title or None)
            shown += len(chosen)
            left_out += rest
        if left_out:
            parts.append(None)
            titles.append(f"{shown} of {len(self.entries)} images shown; the live gallery "
                          "shows them all.")
        if self.picked:
            parts.append(None)
            titles.append(f"best: {self.picked[-1].label}")
        return viz.stack(parts, titles, size=max(11, self.cell // 16))

    # ------------------------------------------------------------ picking
    def pick(self, entry: GalleryEntry | int) -> str:
        """Pick an entry (or its index in ``entries``) as the best; returns what was logged."""
        if not isinstance(entry, LoggedImage):
            entry = checks.integer("pick", entry, hint="an entry or its index in entries")
            if not 0 <= entry < len(self.entries):
                raise IndexError(f"pick {entry} is out of range for {len(self.entries)} images")
            entry = self.entries[entry]
        try:
            message = self.on_pick(entry) if self.on_pick else f"picked {entry.label}"
        except Exception as err:  # a click's callback: say it under the gallery, keep going
            if self._widget is None:
                raise
            self._status.value = (f"<b>could not pick {html.escape(entry.label)}:</b> "
                                  f"{html.escape(str(err))}")
            return f"could not pick {entry.label}: {err}"
        self.picked.append(entry)  # only a pick that was recorded counts
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

        self._views = []
        self._toggle = w.ToggleButton(
            value=self.annotations, description="annotations", icon="pencil",
            tooltip="draw what was logged with each image: masks, boxes, points")
        self._toggle.observe(lambda change: self.show_annotations(change["new"]), "value")
        top = html.escape(self.heading()).replace("\n", "<br>")
        rows = [w.HBox([self._toggle, w.HTML(f"<small>{top}</small>")])]
        for value, members in self.groups():
            cells = []
            for entry in members:
                image = w.Image(value=self._png(entry), format="png",
                                layout=w.Layout(width=f"{self.cell}px"))
                self._views.append((entry, image))
                text = html.escape(self.caption(entry)).replace("\n", "<br>")
                if problem_key(entry) in self.problems:
                    text += f"<br><i>{html.escape(self.problems[problem_key(entry)])}</i>"
                button = w.Button(description="pick as best", icon="star",
                                  layout=w.Layout(width=f"{self.cell}px"))
                button.on_click(lambda _b, e=entry: self.pick(e))
                cells.append(w.VBox([image, w.HTML(f"<small>{text}</small>"), button]))
            heading = self.group_title(value)
            title = f"<b>{html.escape(heading)}</b>" if heading else ""
            rows.append(w.VBox([w.HTML(title), w.HBox(cells, layout=w.Layout(
                flex_flow="row wrap"))]))
        self._status = w.HTML("" if not self.picked
                              else f"<b>best:</b> {html.escape(self.picked[-1].label)}")
        if not self.entries:
            self._status.value = "No logged images yet: log some with run.log_image(...)."
        return w.VBox([*rows, self._status])

    def _summary(self) -> str:
        runs = self.runs()
        where = runs[0] if len(runs) == 1 else f"{len(runs)} runs"
        grouped = f", grouped by {self.by}" if self.by else ""
        best = f"; best: {self.picked[-1].label}" if self.picked else ""
        return f"gallery of {len(self.entries)} logged images of {where}{grouped}{best}"

    def _ipython_display_(self) -> None:
        static.show(self.widget, self.picture(), alt=self._summary(),
                    caption=self._summary(), text=repr(self))

    def __repr__(self) -> str:
        return (f"Gallery({len(self.entries)} images, by={self.by!r}, "
                f"groups={len(self.groups())}, picked={[e.label for e in self.picked]})")


@dataclass(repr=False)
class Panel(Gallery):
    """The gallery of an online run with Comet's own page for it embedded below.

    A ``Gallery`` in every other way (pick, drawn, picture); its static picture is the
    gallery's, its caption names the Comet page.
    """

    url: str = ""
    height: int = 800

    def _build(self) -> Any:
        import ipywidgets as w

        page = w.HTML(f'<iframe src="{html.escape(self.url)}" width="100%" '
                      f'height="{int(self.height)}"></iframe>')
        return w.VBox([super()._build(), page])

    def _summary(self) -> str:
        return f"{super()._summary()}; Comet: {self.url}"


def gallery(project: str | None = None, runs: Iterable[Any] | None = None,
            by: str | None = None, directory: str | Path | None = None,
            annotations: bool = True) -> Gallery:
    """An inline gallery of logged images with their settings; pick the best with a click.

    Args:
        project: show every run of this project (default: every project).
        runs: or only these runs (``Run`` objects or run folders).
        by: a setting (image metadata or run parameter) to group and sort by, e.g.
            "guidance_scale".
        directory: where the run records are (default ``tracking.runs_dir()``).
        annotations: draw what was logged with each image (the view's toggle switches it).

    Returns:
        A ``Gallery``; a pick is logged as a tag ("best:<image>") on its run, also once the
        run has ended (``tracking.pick``), and ``tracking.best(...)`` finds it again.
    """
    entries = tracking.logged_images(project, runs, directory)
    return Gallery(entries, by=by, on_pick=tracking.pick, annotations=annotations)


def panel(run: Any, height: int = 800) -> Gallery:
    """The run's gallery. Online: a ``Panel``, the gallery with Comet's own page for the run
    below. Offline: the ``Gallery``. Either shows a static picture where no kernel runs."""
    local = gallery(runs=[run])
    url = getattr(run, "record", {}).get("comet_url")
    if getattr(run, "online", False) and url:
        return Panel(local.entries, by=local.by, on_pick=local.on_pick, url=str(url),
                     height=height)
    return local
