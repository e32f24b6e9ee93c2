"""Picks: which logged image a learner chose as the best of its run, and the latest pick.

``add_pick`` records a pick of a run this process does not hold (an ended run, or one
another process writes); ``best`` finds the latest pick across runs. A pick of a run this
process holds open goes through ``Run`` itself (``tracking.pick``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from helpers.tracking.record import (
    DamagedRunError,
    LoggedImage,
    _entries,
    _records,
    append_event,
    write_json,
    writing,
)


def best(project: str | None = None, runs: Iterable[Any] | None = None,
         directory: str | Path | None = None) -> LoggedImage | None:
    """The image picked as best (``tracking.pick``, "pick as best" in a gallery), or None.

    Args:
        project: look at every run of this project (default: every project).
        runs: or only at these runs (``Run`` objects or run folders).
        directory: where the run records are (default ``runs_dir()``).

    Returns:
        The same object ``logged_images`` returns (a ``LoggedImage``, which reads like its
        record), so ``reproduce(best(...))`` makes its pixels again. When several picks
        exist, in one run or across the runs, the latest pick wins, whatever order the runs
        were made in. A pick that names an image its run no longer holds is skipped; a pick
        recorded by name only (an earlier helpers) means the last image logged under that
        name. None when nothing was picked.
    """
    latest: tuple[float, int, LoggedImage] | None = None
    order = 0
    for rec in _records(project, runs, directory):
        entries = _entries(rec)
        picks = rec.get("picks")
        for chosen in picks if isinstance(picks, list) else []:
            order += 1
            entry = _picked_entry(entries, chosen)
            if entry is None:
                continue
            when = chosen.get("time")
            if isinstance(when, bool) or not isinstance(when, (int, float)):
                when = 0.0  # a damaged time: the pick still counts, as the oldest
            key = (float(when), order)
            if latest is None or key > latest[:2]:
                latest = (*key, entry)
    return None if latest is None else latest[2]


def _picked_entry(entries: list[LoggedImage], chosen: Any) -> LoggedImage | None:
    if not isinstance(chosen, Mapping):
        return None
    index = chosen.get("index")
    if index is not None:
        return next((e for e in entries if e.record.get("index") == index), None)
    named = [e for e in entries if e.record.get("name") == chosen.get("image")]
    return named[-1] if named else None


def add_pick(folder: Path, image_name: str, index: int | None = None) -> dict[str, Any]:
    """Record a pick of a run this process does not hold in its local record: a pick
    ``{"image", "index", "time"}``, a tag "best:<image>" and the "other" value ``best``.

    A run another process still writes gets events appended; an ended run gets its
    ``run.json`` rewritten (atomically). Returns the run's summary (``run.json``).
    """
    from helpers.tracking.comet import locked

    folder = Path(folder)
    tag = f"best:{image_name}"
    pick = {"image": image_name, "index": index, "time": time.time()}
    with locked(folder / "run.json"), writing(folder, f"the pick of {image_name!r}"):
        try:  # two picks at once: neither is lost
            header = json.loads((folder / "run.json").read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DamagedRunError(f"{str(folder)!r} is a damaged run: its run.json cannot be "
                                  f"read ({err}), so the pick was not recorded") from None
        if not isinstance(header, dict):
            raise DamagedRunError(f"{str(folder)!r} is a damaged run: its run.json is not a "
                                  "run record, so the pick was not recorded")
        if header.get("status") == "running":  # another process still writes it: add events
            append_event(folder, {"type": "pick", "pick": pick})
            append_event(folder, {"type": "tag", "tag": tag})
            append_event(folder, {"type": "other", "key": "best", "value": image_name})
            return dict(header)
        header.setdefault("picks", []).append(pick)
        if tag not in header.setdefault("tags", []):
            header["tags"].append(tag)
        header.setdefault("others", {})["best"] = image_name
        write_json(folder / "run.json", header)
    return dict(header)
