"""The local record of a run, on disk: ``run.json``, ``events.jsonl`` and the image files.

A run folder ``<runs dir>/<project>/<run id>/`` holds:

- ``run.json``: the summary (name, tags, mode, environment, status), rewritten atomically;
- ``events.jsonl``: one JSON line per thing logged, appended as it happens, so a crash
  loses nothing logged before it (a last line cut short is skipped when read);
- ``images/`` (the PNGs), ``inputs/`` (what recipes read, by content), ``datasets/``
  (manifests) and ``comet/`` (the offline archive).

Everything a record refers to is relative to its folder, so a copied folder is still a
whole record. ``load_record`` folds the events into one dict; ``logged_images`` lists the
images of many runs for a gallery.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers import images

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
        env.update({k: v for k, v in runtime.describe().items() if k != "tiny_mode"})
    return env


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def append_event(folder: Path, event: dict[str, Any]) -> None:
    """Append one event (already plain JSON values) to the run's ``events.jsonl``."""
    with open(folder / "events.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(event) + "\n")
        fh.flush()


def read_events(folder: Path) -> list[dict[str, Any]]:
    """The events of a run folder, oldest first; a line cut short by a crash is skipped."""
    path = folder / "events.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
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
    record = json.loads(header_path.read_text(encoding="utf-8"))
    if record.get("status") == "running":
        record.update(params={}, metrics=[], texts=[], images=[], datasets=[], picks=[],
                      others={})
        for event in read_events(folder):
            _fold(record, event)
    here = str(folder.resolve())
    record["images"] = [ImageRecord(image, folder=here) for image in record.get("images", [])]
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
    elif kind == "tag":
        if event["tag"] not in record["tags"]:
            record["tags"].append(event["tag"])
    elif kind == "pick":
        record["picks"].append(event["pick"])
    elif kind == "other":
        record["others"][event["key"]] = event["value"]


def runs(project: str | None = None,
         directory: str | Path | None = None) -> list[dict[str, Any]]:
    """Records of every run under ``directory`` (one project, or all), oldest first."""
    root = runs_dir(directory)
    if project is not None:
        root = root / check_name("project name", project)
    if not root.exists():
        return []
    folders = sorted({p.parent for p in root.glob("**/run.json")})
    records = [load_record(f) | {"folder": str(f)} for f in folders]
    return sorted(records, key=lambda r: r.get("started", 0))


@dataclass
class LoggedImage:
    """One logged image with the settings that made it, as a gallery shows it.

    Attributes:
        record: the image record (name, file, metadata, recipe, annotations, ...).
        params: the run's parameters overlaid with the image's own metadata.
        run_id, run_name, project: which run logged it.
        folder: the run folder; ``path`` is the PNG file inside it.
    """

    record: dict[str, Any]
    params: dict[str, Any]
    run_id: str
    run_name: str
    project: str
    folder: str

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


def logged_images(project: str | None = None, runs_: Iterable[Any] | None = None,
                  directory: str | Path | None = None) -> list[LoggedImage]:
    """The images of every run of ``project`` (or of all projects), or of ``runs_`` only
    (``Run`` objects or run folders), in the order they were logged."""
    if runs_ is not None:
        folders = [Path(getattr(item, "folder", item)) for item in runs_]
        records = [load_record(f) | {"folder": str(f)} for f in folders]
    else:
        records = runs(project, directory)
    found = []
    for rec in records:
        for image in rec.get("images", []):
            params = dict(rec.get("params", {}))
            params.update(image.get("metadata") or {})
            found.append(LoggedImage(image, params, rec["id"], rec["name"], rec["project"],
                                     rec["folder"]))
    return found


def add_pick(folder: Path, image_name: str) -> str:
    """Record a pick ("best:<image>") in the run folder of a run this process does not
    hold; returns what happened."""
    folder = Path(folder)
    tag = f"best:{image_name}"
    pick = {"image": image_name, "time": time.time()}
    record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    if record.get("status") == "running":  # another process still writes it: add events
        append_event(folder, {"type": "pick", "pick": pick})
        append_event(folder, {"type": "tag", "tag": tag})
        return f"run {record['name']} is still running elsewhere: {tag!r} added to its record"
    record.setdefault("picks", []).append(pick)
    if tag not in record["tags"]:
        record["tags"].append(tag)
    write_json(folder / "run.json", record)
    return (f"run {record['name']} has ended: {tag!r} is saved in its local record "
            f"({folder / 'run.json'}), not in its Comet archive")


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
