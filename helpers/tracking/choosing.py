"""Picking the best image of a run: ``pick`` sends the pick to wherever the run lives.

A run this process holds open gets it through its ``Run``; an ended run gets it in its
local record (``picks.add_pick``) and in its Comet record (the offline archive rewritten,
or the online experiment updated).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helpers.tracking import comet, picks, record
from helpers.tracking.run import _ACTIVE


def pick(image: record.LoggedImage) -> str:
    """Log ``image`` as the best of its run; returns where the pick went.

    The pick is a tag "best:<image name>" and an "other" value ``best`` = the image name
    (in Comet a later pick's value replaces the earlier one; the tags add up), plus a pick
    event in the local record (``tracking.best`` reads them: the latest pick wins).

    - A run this process holds open gets them in its record and its Comet experiment at
      once (offline: in the archive ``end()`` writes).
    - A run that has ended gets them in its local record and in its Comet record: offline,
      its archive is rewritten so that ``comet upload <archive>`` carries the pick; online,
      they are sent to the experiment on the server. If that fails, a one-line warning says
      so and the pick is kept in the local record.
    - A run another process still writes gets them in its local record only.
    """
    if isinstance(image, record.ImageRecord) and image.get("folder"):  # what log_image returned
        image = next((e for e in record.logged_images(runs_=[image["folder"]])
                      if e.record.get("index") == image.get("index")), image)
    if not isinstance(image, record.LoggedImage):
        raise ValueError(f"pick takes an image of tracking.logged_images() or a gallery's "
                         f"entries (or what tracking.best returns), not {image!r:.80}")
    tag = f"best:{image.name}"
    index = image.record.get("index")
    run = next((r for r in _ACTIVE.values() if r.id == image.run_id), None)
    if run is not None:
        run.add_tag(tag)
        run.log_other("best", image.name)
        run._append({"type": "pick", "pick": {"image": image.name, "index": index,
                                              "time": time.time()}})
        where = ("its Comet experiment" if run.online
                 else "its Comet offline archive (written when the run ends)")
        return f"tagged run {run.name} with {tag!r}: in its local record and in {where}"
    folder = Path(image.folder)
    header = picks.add_pick(folder, image.name, index)
    name = header.get("name", image.run_name)
    local = f"its local record ({folder})"
    if header.get("status") == "running":
        return (f"run {name} is still running elsewhere: {tag!r} added to {local} only; "
                "the process that runs it does not send it to Comet")
    problem = _pick_to_comet(header, folder, tag, image.name)
    if problem is not None:
        warnings.warn(f"the pick {tag!r} did not reach the Comet record of run {name} "
                      f"({problem}); it is kept in {local}", stacklevel=2)
        return f"run {name} has ended: {tag!r} is saved in {local} only ({problem})"
    if header.get("mode") == "online":
        return f"run {name} has ended: {tag!r} is saved in {local} and sent to its Comet experiment"
    archive = folder / header["comet_archive"]
    return (f"run {name} has ended: {tag!r} is saved in {local} and in its Comet offline "
            f"archive: `comet upload {archive}` carries it")


def _pick_to_comet(header: Mapping[str, Any], folder: Path, tag: str,
                   image_name: str) -> str | None:
    """Send a pick to the Comet record of an ended run; None, or why it did not get there."""
    others = {"best": image_name}
    try:
        if header.get("mode") == "online":
            key = header.get("comet_key")
            if not key:
                return "its record names no Comet experiment"
            return comet.add_to_experiment(str(key), [tag], others)
        if not header.get("comet_archive"):
            return "it has no Comet offline archive"
        archive = folder / header["comet_archive"]
        if not archive.is_file():
            return f"its Comet offline archive {archive} is missing"
        comet.add_to_archive(archive, [tag], others)
    except Exception as err:  # noqa: BLE001  (the pick is kept locally; say why, go on)
        return f"{type(err).__name__}: {err}"
    return None
