"""Finishing a run whose process died before ``end()``: a kernel killed, a machine that lost
power, a disk that filled up while the run ended.

Such a run keeps a whole local record (``events.jsonl`` is appended as things are logged)
but its ``run.json`` still says "running", and its Comet offline archive is empty or
missing: Comet writes the archive only when the experiment ends. ``recover(folder)`` reads
the local record back, logs it again into a new offline experiment under the run's own
Comet key (so ``comet upload`` gives the same experiment), checks the archive and marks the
run ended. ``tracking.start`` does it by itself for the runs of its project whose process
is gone, and says so.

A run records which process writes it (``run.json`` "process": pid and host); a run whose
process is still alive on this machine is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import time
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from helpers import compat
from helpers.tracking import comet, record

OWN_RUNS: set[str] = set()
"""Ids of the runs this process started: a run that names this process's pid but is not
among them was written by an earlier process that had the same pid (a restarted container)."""


def this_process(run_id: str) -> dict[str, Any]:
    """What ``run.json`` records of the process that writes run ``run_id``."""
    OWN_RUNS.add(run_id)
    return {"pid": os.getpid(), "host": socket.gethostname()}


def alive(process: Any, run_id: Any = None) -> bool | None:
    """Whether the process that writes run ``run_id`` is still alive: True, False, or None
    when it cannot be told (no record of it, another machine, a system without signal 0)."""
    if not isinstance(process, Mapping) or process.get("host") != socket.gethostname():
        return None
    pid = process.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0 or os.name == "nt":
        return None  # on Windows os.kill would stop the process instead of asking
    if pid == os.getpid():
        return run_id in OWN_RUNS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def archive_ok(path: Path) -> bool:
    """True when ``path`` is a readable Comet offline archive (experiment and messages in it)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            return {comet.EXPERIMENT_FILE, comet.MESSAGES_FILE} <= names and z.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


def ensure_archive(folder: Path) -> Path:
    """The run's Comet offline archive, rebuilt from the local record when Comet left none
    or a damaged one (which is kept beside it, renamed ``*.zip.damaged``)."""
    archives = sorted((folder / "comet").glob("*.zip"), key=lambda p: p.stat().st_mtime)
    if archives and archive_ok(archives[-1]):
        return archives[-1]
    need = 2**20 + sum(p.stat().st_size for p in folder.glob("images/*.png"))
    free = shutil.disk_usage(folder).free
    if free < need:  # Comet would fail half-way, loudly: say it once, plainly
        raise OSError(errno.ENOSPC, f"the disk has {free / 2**20:.1f} MB free and the run's "
                      f"Comet archive needs about {need / 2**20:.1f} MB")
    built, skipped = rebuild(folder)
    for bad in archives:  # kept beside the new one, never overwritten by it
        os.replace(bad, bad.with_name(bad.name + ".damaged"))
    final = folder / "comet" / built.name
    os.replace(built, final)
    built.parent.rmdir()
    if skipped:
        compat.warn(f"the rebuilt Comet archive of {folder} lacks {skipped} logged image(s) "
                    "whose PNG is missing or unreadable; the rest is in it")
    return final


def rebuild(folder: Path) -> tuple[Path, int]:
    """Log a run's local record again into a new Comet offline experiment with the run's
    Comet key; returns (the archive, how many images were left out).

    Everything the local record holds goes in: parameters, metrics (with their steps),
    texts, other values, tags (picks included), images with their annotations, metadata and
    steps, and dataset manifests. An image whose PNG is missing or unreadable is left out
    and counted. The archive is built in a folder of its own inside ``comet/`` and returned
    there only when it is whole, so a failed rebuild never leaves a partial archive.

    Raises:
        RuntimeError: this process holds another Comet experiment open (a new one would
            end it): end that run first.
        OSError: the archive could not be written (the disk is full or read-only).
    """
    import shutil as _shutil

    import comet_ml
    from PIL import Image

    running = comet_ml.get_running_experiment()
    if running is not None and getattr(running, "alive", True):
        raise RuntimeError(
            f"this kernel has a tracked run open (Comet experiment {running.get_key()}), and "
            "Comet keeps one experiment per process: end that run first (run.end()), then "
            "recover this one")
    header = record.load_record(folder)
    staging = folder / "comet" / f".rebuild-{os.getpid()}-{time.time_ns()}"
    staging.mkdir(parents=True)
    skipped = 0
    try:
        experiment = comet.make_experiment(
            staging, str(header.get("project") or folder.parent.name),
            str(header.get("name") or folder.name), _tags(header.get("tags")),
            online=False, staging=True,
            key=header.get("comet_key") if isinstance(header.get("comet_key"), str) else None)
        try:
            for event in record.read_events(folder):
                with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
                    skipped += _replay(experiment, folder, event, Image)
        finally:
            experiment.end()
        archives = sorted(staging.glob("*.zip"))
        if not archives or not archive_ok(archives[-1]):
            raise OSError(errno.EIO, f"Comet wrote no readable archive into {staging}; is the "
                          "disk full or read-only?")
        if len(archives) > 1:
            raise OSError(errno.EIO, f"Comet wrote {len(archives)} archives into {staging}")
    except BaseException:
        _shutil.rmtree(staging, ignore_errors=True)
        raise
    return archives[0], skipped


def _tags(tags: Any) -> list[str]:
    return [str(t) for t in tags] if isinstance(tags, list) else []


def _replay(experiment: Any, folder: Path, event: Mapping[str, Any], image_type: Any) -> int:
    """Log one event of the local record to ``experiment``; 1 for an image left out."""
    kind = event["type"]
    if kind == "params":
        experiment.log_parameters(dict(event["params"]))
    elif kind == "metrics":
        for metric in event["metrics"]:
            experiment.log_metric(metric["name"], metric["value"], step=metric.get("step"))
    elif kind == "text":
        experiment.log_text(str(event["text"]), metadata=event.get("metadata") or None)
    elif kind == "other":
        experiment.log_other(str(event["key"]), event["value"])
    elif kind == "tag":
        experiment.add_tag(str(event["tag"]))
    elif kind == "image":
        image = event["image"]
        try:
            with image_type.open(folder / image["file"]) as picture:
                pixels = picture.convert("RGB")
        except (OSError, ValueError):  # missing, cut short, not a PNG: counted, not fatal
            return 1
        experiment.log_image(pixels, name=str(image["name"]),
                             metadata=image.get("metadata") or None,
                             annotations=image.get("annotations") or None,
                             step=image.get("step"))
    elif kind == "audio":
        sound = event["audio"]
        if not (folder / sound["file"]).is_file():
            return 1
        experiment.log_audio(str(folder / sound["file"]), file_name=f"{sound['name']}.wav",
                             metadata=sound.get("metadata") or None, step=sound.get("step"))
    elif kind == "dataset":
        dataset = event["dataset"]
        manifest = folder / dataset["manifest"]
        if manifest.is_file():
            experiment.log_asset(str(manifest), file_name=f"datasets/{manifest.name}")
        experiment.log_parameter(f"dataset/{dataset['name']}", dataset["digest"])
    return 0


def recover(folder: str | Path) -> str:
    """Finish a run whose process ended without ``end()``; returns what was done.

    Its Comet offline archive is rebuilt from the local record (an online run's data is
    already on the server) and its ``run.json`` is marked ended, with ``recovered`` set to
    when this happened. A run that has ended is left as it is.

    Raises:
        FileNotFoundError: ``folder`` is not a run folder.
        RuntimeError: the run's process is still alive on this machine.
        tracking.DamagedRunError: its ``run.json`` cannot be read.
        OSError: the disk refused the new archive or ``run.json`` (nothing is lost: call
            it again once there is room).
    """
    folder = Path(folder)
    header = record.load_record(folder)
    name = header.get("name") or folder.name
    if header.get("status") != "running":
        return f"run {name} has already ended ({header.get('status')}): nothing to recover"
    process = header.get("process")
    if alive(process, header.get("id")):
        pid = process.get("pid") if isinstance(process, Mapping) else "?"
        raise RuntimeError(
            f"run {name} is still being written by process {pid} on this "
            "machine; end it there (run.end()) instead, or stop that process first")
    with record.writing(folder, "the recovered run (run.json, the Comet archive)"):
        archive = None if header.get("mode") == "online" else ensure_archive(folder)
        with comet.locked(folder / "run.json"):  # a pick at the same time is not lost
            summary = record.load_record(folder)
            events = folder / "events.jsonl"
            last = events.stat().st_mtime if events.exists() else summary.get("started")
            summary.update(status="finished", ended=last, recovered=time.time(),
                           comet_archive=None if archive is None
                           else str(archive.relative_to(folder)))
            record.write_json(folder / "run.json", summary)
    count = len(summary.get("images") or [])
    if archive is None:
        return (f"recovered run {name} of project {summary.get('project')}: its process ended "
                f"without end(); it is marked ended ({count} image(s) in its local record; "
                "what it sent to Comet online is on the server)")
    return (f"recovered run {name} of project {summary.get('project')}: its process ended "
            f"without end(); its Comet offline archive was rebuilt from the local record "
            f"({count} image(s)): `comet upload {archive}` sends it")


def crashed(project_folder: Path, skip: Iterable[str] = ()) -> list[str]:
    """Recover every run under ``project_folder`` whose process is known to be gone (not
    the runs named in ``skip``, which this process holds); one line per run, for the
    learner. A run that cannot be recovered now is named and left for a later try."""
    if not project_folder.is_dir():
        return []
    held = set(skip)
    notes = []
    for path in sorted(project_folder.glob("*/run.json")):
        folder = path.parent
        try:
            header = record.load_record(folder)
        except (OSError, ValueError):
            continue  # a damaged run: the readers name it
        if header.get("status") != "running" or header.get("id") in held:
            continue
        if alive(header.get("process"), header.get("id")) is not False:
            continue  # alive, or no way to tell
        try:
            note = recover(folder)
            notes.append(note[0].upper() + note[1:])
        except (OSError, RuntimeError, ValueError) as err:
            notes.append(f"Could not recover run {header.get('name')} in {folder} ({err}); "
                         "tracking.recover(folder) tries again")
    return notes
