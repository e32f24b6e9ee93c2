"""The local record of a run, on disk: ``run.json``, ``events.jsonl`` and the image files.

A run folder ``<runs dir>/<project>/<run id>/`` holds:

- ``run.json``: the summary (name, tags, mode, environment, status), rewritten atomically;
- ``events.jsonl``: one JSON line per thing logged, appended as it happens, so a crash
  loses nothing logged before it (a last line cut short is skipped when read);
- ``images/`` (the PNGs), ``inputs/`` (what recipes read, by content), ``datasets/``
  (manifests) and ``comet/`` (the offline archive).

Everything a record refers to is relative to its folder, so a copied folder is still a
whole record. ``load_record`` folds the events into one dict; ``logged_images`` lists the
images of many runs for a gallery (each a ``LoggedImage``, which draws itself with what was
logged with it: ``annotated()``); ``add_pick`` records a pick and ``best`` finds the latest.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers import images

if TYPE_CHECKING:
    from PIL import Image

RUNS_ENV = "HELPERS_RUNS_DIR"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")


class ImageRecord(dict):  # type: ignore[type-arg]
    """A logged image's record: a plain dict (what ``reproduce`` takes, what the run folder
    holds as JSON), shown in one line, so a cell that ends with ``run.log_image(...)``
    does not print every polygon point of its masks."""

    def __repr__(self) -> str:
        layers = len(self.get("annotations") or [])
        extra = ", recipe" if self.get("recipe") else ""
        return (f"<image {self.get('index')} {self.get('name')!r} of run {self.get('run')}: "
                f"{self.get('width')}x{self.get('height')}, {layers} annotation layer(s){extra}>")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's display
        printer.text(repr(self))


def runs_dir(directory: str | Path | None = None) -> Path:
    """Where local run records go: ``directory``, else ``$HELPERS_RUNS_DIR``, else ``runs``."""
    if directory is not None:
        return Path(directory)
    return Path(os.environ.get(RUNS_ENV) or "runs")


def check_name(kind: str, value: Any) -> str:
    """``value`` if it is a plain name (letters, digits, spaces, ``_-.``), else a ValueError."""
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise ValueError(
            f"{kind} {value!r} must be a plain name of letters, digits, spaces, '_', '-' or "
            f"'.' (at most 100 characters), not a path; for example 'lesson-02'"
        )
    return value


def file_stem(name: str) -> str:
    """A file-name-safe version of ``name`` (at most 80 characters)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    return stem[:80] or "image"


def environment() -> dict[str, Any]:
    """Python, platform, library versions, tiny mode and the device this run uses."""
    import platform
    from importlib import metadata

    versions = {}
    for dist in ("torch", "torchvision", "transformers", "diffusers", "segment-anything",
                 "accelerate", "peft", "comet_ml", "numpy", "pillow", "prompting-vision-models"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    from helpers import runtime

    env: dict[str, Any] = {"python": platform.python_version(), "platform": platform.system(),
                           "libraries": versions, "tiny_mode": runtime.tiny_mode()}
    with contextlib.suppress(ImportError):
        env.update({k: v for k, v in runtime.describe(announce=False).items() if k != "tiny_mode"})
    return env


class RecordWriteError(OSError):
    """The disk refused a write to a run's record (full, read-only, gone): nothing of that
    call was kept, everything logged before it is."""


@contextlib.contextmanager
def writing(folder: Path, what: str) -> Iterator[None]:
    """Turn a disk error while writing ``what`` into the run ``folder`` into one clear
    ``RecordWriteError`` that says what was kept and what to do."""
    try:
        yield
    except RecordWriteError:
        raise
    except OSError as err:
        kept = len(list((folder / "images").glob("*.png"))) if folder.is_dir() else 0
        reason = err.strerror or str(err)
        if err.errno == errno.ENOSPC:
            todo = "Free some space on that disk"
        elif err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            todo = "Make that folder writable (or start runs in another directory)"
        else:
            todo = "Fix the disk problem"
        raise RecordWriteError(
            err.errno, f"could not write {what} to the run record in {folder} ({reason}). "
            f"Nothing of this call was kept; everything logged before it is ({kept} image(s) "
            f"in {folder / 'images'}). {todo}, then call it again.") from None


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically (a reader never sees half a file; two
    writers never share a temporary file)."""
    write_bytes(path, json.dumps(value, indent=2).encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: into a temporary file beside it, flushed to
    disk, then renamed over it. A full disk leaves the old file (or none), never a short one."""
    from helpers.tracking.comet import unique_tmp

    tmp = unique_tmp(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def append_event(folder: Path, event: dict[str, Any]) -> None:
    """Append one event (already plain JSON values) to the run's ``events.jsonl`` as one
    whole line. If a crash or a full disk cut the last line short, the new line starts on
    a line of its own, so the cut line is the only one lost."""
    line = (json.dumps(event) + "\n").encode("utf-8")
    path = folder / "events.jsonl"
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(handle).st_size
        if size:
            with open(path, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    line = b"\n" + line
        written = os.write(handle, line)
        if written != len(line):  # a short write: end it, so the next line stands alone
            with contextlib.suppress(OSError):
                os.write(handle, b"\n")
            raise OSError(errno.ENOSPC, "the disk took only part of the line")
    finally:
        os.close(handle)


class DamagedRunError(ValueError):
    """A run folder whose ``run.json`` cannot be read (empty, cut short, not a record)."""


def read_events(folder: Path) -> list[dict[str, Any]]:
    """The events of a run folder, oldest first. A line cut short by a crash, a line that
    is not UTF-8 or not JSON, and an event without a ``"type"`` are skipped: one damaged
    line never hides the others."""
    path = folder / "events.jsonl"
    if not path.exists():
        return []
    events = []
    for raw in path.read_bytes().splitlines():
        try:
            event = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(event, dict) and isinstance(event.get("type"), str):
            events.append(event)
    return events


def load_record(folder: str | Path) -> dict[str, Any]:
    """The full record of one run folder: ``run.json`` with every logged event folded in.

    Each image record's ``folder`` is the folder it was read from, so a record copied to
    another place (or machine) points at its own files.
    """
    folder = Path(folder)
    header_path = folder / "run.json"
    if not header_path.exists():
        raise FileNotFoundError(f"{str(folder)!r} is not a run folder (it has no run.json)")
    try:
        record = json.loads(header_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DamagedRunError(
            f"{str(folder)!r} is a damaged run: its run.json is empty, cut short or not "
            f"JSON ({err}); its images are still in that folder") from None
    if not isinstance(record, dict):
        raise DamagedRunError(f"{str(folder)!r} is a damaged run: its run.json holds "
                              f"{type(record).__name__}, not a run record")
    if record.get("status") == "running":
        record.update(params={}, metrics=[], texts=[], images=[], datasets=[], picks=[],
                      others={}, audio=[])
        record.setdefault("tags", [])
        for event in read_events(folder):
            with contextlib.suppress(KeyError, TypeError, AttributeError, ValueError):
                _fold(record, event)  # an event missing its fields is skipped
    images = record.get("images")
    record["images"] = images if isinstance(images, list) else []
    here = str(folder.resolve())
    record["images"] = [ImageRecord(image, folder=here) for image in record["images"]
                        if isinstance(image, dict)]
    return record


def _fold(record: dict[str, Any], event: dict[str, Any]) -> None:
    kind = event["type"]
    if kind == "params":
        record["params"].update(event["params"])
    elif kind == "metrics":
        record["metrics"].extend(event["metrics"])
    elif kind == "text":
        record["texts"].append({"text": event["text"], "metadata": event.get("metadata")})
    elif kind == "image":
        record["images"].append(event["image"])
    elif kind == "dataset":
        record["datasets"].append(event["dataset"])
    elif kind == "audio":
        record.setdefault("audio", []).append(event["audio"])
    elif kind == "tag":
        if event["tag"] not in record["tags"]:
            record["tags"].append(event["tag"])
    elif kind == "pick":
        record["picks"].append(event["pick"])
    elif kind == "other":
        record["others"][event["key"]] = event["value"]
    elif kind == "comet_refused":  # Comet did not take an image the record holds
        for image in record["images"]:
            if image.get("index") == event["index"]:
                image["comet"] = False


def runs(project: str | None = None,
         directory: str | Path | None = None) -> list[dict[str, Any]]:
    """Records of every run under ``directory`` (one project, or all), oldest first."""
    root = runs_dir(directory)
    if project is not None:
        root = root / check_name("project name", project)
    if not root.exists():
        return []
    folders = sorted({p.parent for p in root.glob("**/run.json")})
    return _readable(folders)


def _readable(folders: Iterable[Path]) -> list[dict[str, Any]]:
    """The records of ``folders``, oldest first; a damaged run is left out with a warning
    that names it, so one bad folder never hides the others."""
    import warnings

    records, damaged = [], []
    for folder in folders:
        try:
            records.append(load_record(folder) | {"folder": str(folder)})
        except DamagedRunError as err:
            damaged.append(str(err))
    if damaged:
        warnings.warn("left out " + "; ".join(damaged), stacklevel=3)

    def started(record: dict[str, Any]) -> float:
        value = record.get("started", 0)
        return float(value) if isinstance(value, (int, float)) else 0.0

    return sorted(records, key=started)


@dataclass(repr=False)
class LoggedImage(Mapping[str, Any]):
    """One logged image with the settings that made it, as a gallery shows it.

    It reads like its image record (``entry["name"]``, ``entry.get("recipe")``), so
    ``reproduce(entry)`` and ``same_pixels(entry, image)`` take it as they take the record.

    Attributes:
        record: the image record (name, file, metadata, recipe, annotations, ...).
        params: the run's parameters overlaid with the image's own metadata.
        run_id, run_name, project: which run logged it.
        folder: the run folder; ``path`` is the PNG file inside it.
        started: when the run started (seconds since the epoch), None if unknown.
    """

    record: dict[str, Any]
    params: dict[str, Any]
    run_id: str
    run_name: str
    project: str
    folder: str
    started: float | None = None

    # ----------------------------------------------------------- the record, as a mapping
    def __getitem__(self, key: str) -> Any:
        return self.record[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.record)

    def __len__(self) -> int:
        return len(self.record)

    def __bool__(self) -> bool:  # an entry is there, whatever its record holds
        return True

    # ----------------------------------------------------------- what it is
    @property
    def name(self) -> str:
        """The name the image was logged under."""
        return str(self.record["name"])

    @property
    def metadata(self) -> dict[str, Any]:
        """The settings logged with the image itself (not the run's)."""
        return dict(self.record.get("metadata") or {})

    @property
    def path(self) -> Path:
        """The PNG file."""
        return Path(self.folder) / self.record["file"]

    @property
    def label(self) -> str:
        """"run name / image name", as the gallery shows it."""
        return f"{self.run_name} / {self.name}"

    @property
    def run_title(self) -> str:
        """Which run logged it: "project / run name, started <date time>"."""
        title = f"{self.project} / {self.run_name}"
        if self.started:
            title += f", started {time.strftime('%Y-%m-%d %H:%M', time.localtime(self.started))}"
        return title

    def image(self) -> Image.Image:
        """The logged picture as it was logged (bare): an RGB PIL image."""
        return images.load(self.path)

    def annotated(self) -> Image.Image:
        """The logged picture with what was logged with it drawn on (``viz.annotate``): its
        masks, its boxes with labels and scores, its include/exclude points.

        Raises:
            ValueError: the record's annotations cannot be read (a damaged record).
        """
        from helpers import viz
        from helpers.tracking.annotations import decode

        picture = self.image()
        try:
            drawn = decode(self.record)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ValueError(f"the annotations of image {self.name!r} (run {self.run_id}) "
                             f"cannot be read: {type(err).__name__}: {err}") from err
        if drawn["masks"] is not None and drawn["masks"].shape[1:] != (picture.height,
                                                                        picture.width):
            raise ValueError(f"the masks of image {self.name!r} are {drawn['masks'].shape[2]}x"
                             f"{drawn['masks'].shape[1]} but its file is {picture.width}x"
                             f"{picture.height}")
        return viz.annotate(picture, **drawn)

    def __repr__(self) -> str:
        return (f"<logged image {self.record.get('index')} {self.record.get('name')!r} of run "
                f"{self.project}/{self.run_name}{', recipe' if self.record.get('recipe') else ''}>")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's display
        printer.text(repr(self))


def _records(project: str | None, runs_: Iterable[Any] | None,
             directory: str | Path | None) -> list[dict[str, Any]]:
    if runs_ is not None:
        return _readable(Path(getattr(item, "folder", item)) for item in runs_)
    return runs(project, directory)


def _entries(rec: dict[str, Any]) -> list[LoggedImage]:
    found = []
    folder = Path(rec["folder"])
    run_id = str(rec.get("id") or folder.name)
    for image in rec.get("images", []):
        params = dict(rec.get("params") or {})
        metadata = image.get("metadata")
        params.update(metadata if isinstance(metadata, dict) else {})
        started = rec.get("started")
        found.append(LoggedImage(image, params, run_id, str(rec.get("name") or run_id),
                                 str(rec.get("project") or folder.parent.name), str(folder),
                                 started if isinstance(started, (int, float)) else None))
    return found


def logged_images(project: str | None = None, runs_: Iterable[Any] | None = None,
                  directory: str | Path | None = None) -> list[LoggedImage]:
    """The images of every run of ``project`` (or of all projects), or of ``runs_`` only
    (``Run`` objects or run folders), in the order they were logged."""
    return [entry for rec in _records(project, runs_, directory) for entry in _entries(rec)]


def image_path(image_record: dict[str, Any], directory: str | Path | None = None) -> Path:
    """Where the PNG of a logged image lives."""
    if directory is None and image_record.get("folder"):
        return Path(image_record["folder"]) / image_record["file"]
    return (runs_dir(directory) / image_record["project"] / image_record["run"]
            / image_record["file"])


def same_pixels(image_record: dict[str, Any], image: Any,
                directory: str | Path | None = None) -> bool:
    """True when ``image`` has exactly the pixels of the logged image."""
    logged = np.asarray(images.load(image_path(image_record, directory)))
    return bool(np.array_equal(logged, np.asarray(images.load(image))))
