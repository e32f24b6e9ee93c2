"""``start`` and ``Run``: one tracked run, logged to Comet and to a local record at once.

The record also lists the models the kernel holds (``models.loaded()``: name, source, the hub
commit the files came from, device, dtype), when the run starts and again when it ends.

Every ``log_*`` call checks its input, writes to the local record (``tracking.record``) and
sends the same to the Comet experiment (``tracking.comet``); values go through
``annotations.plain`` first and never carry the API key. ``end()`` closes both, and runs by
itself at exit (also on SIGTERM).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import json
import secrets
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers import checks, images, models
from helpers.tracking import comet, crashes, record
from helpers.tracking.annotations import comet_annotations, odd_values, plain, redact
from helpers.tracking.recipes import Recipe
from helpers.tracking.recipes import of as recipe_of

if TYPE_CHECKING:
    from helpers.detections import Detections

_ACTIVE: dict[str, Run] = {}
_ATEXIT = False


class Run:
    """One tracked run: a Comet experiment (online or offline) plus a local record.

    Create it with ``tracking.start(...)``. Every ``log_*`` call writes to Comet and appends
    to the local record at once; ``end()`` closes both (and runs by itself at exit).
    """

    def __init__(self, project: str, name: str | None, tags: Iterable[str], online: bool,
                 directory: Path, reason: str) -> None:
        self.project = project
        self._secret = comet.api_key()  # known only to keep it out of everything logged
        tags = [redact(str(t), self._secret) for t in tags]
        self.id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        self.name = name or self.id
        self.folder = directory / project / self.id
        self.ended = False
        self.archive: Path | None = None
        self._lock = threading.Lock()
        self._counter = 0
        self._comet_closed = False
        with record.writing(self.folder, "the new run's folder"):
            (self.folder / "images").mkdir(parents=True, exist_ok=False)
        self.experiment, self.online, fallback = comet.start_experiment(
            self.folder, project, self.name, tags, online)
        self.reason = fallback or reason
        self.record: dict[str, Any] = {
            "id": self.id, "project": project, "name": self.name, "tags": list(tags),
            "mode": "online" if self.online else "offline", "mode_reason": self.reason,
            "comet_key": self.experiment.get_key(),
            "comet_url": getattr(self.experiment, "url", None) if self.online else None,
            "comet_archive": None, "started": time.time(), "ended": None, "status": "running",
            "environment": record.environment(), "models": models.loaded(),
            "process": crashes.this_process(self.id),
        }
        with record.writing(self.folder, "run.json"):
            record.write_json(self.folder / "run.json", self.record)

    # -------------------------------------------------- local record
    def _append(self, event: dict[str, Any], what: str = "the event") -> None:
        with record.writing(self.folder, what):
            record.append_event(self.folder, redact(plain(event), self._secret))

    def _check_open(self, what: str) -> None:
        if self._comet_closed and not self.ended:
            raise RuntimeError(
                f"run {self.name!r} is ending: end() could not finish, so {what} was not "
                f"logged. Everything logged before is kept in {self.folder}; free the disk, "
                "then call run.end() again, and start a new run to log more.")
        if self.ended:
            raise RuntimeError(
                f"run {self.name!r} of project {self.project!r} has ended, so {what} was not "
                f"logged. Everything logged before is kept in {self.folder}. Start a new run "
                "with tracking.start(...) to log more."
            )

    # -------------------------------------------------- logging
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log settings (seed, prompt, model name, ...): a dict of name -> value."""
        self._check_open("log_params")
        if not isinstance(params, Mapping):
            raise TypeError(
                f"log_params takes a dict of name -> value; got {type(params).__name__}")
        odd = odd_values(params)
        if odd:
            listed = ", ".join(f"{where.strip('[]')} ({kind})" for where, kind in odd[:5])
            warnings.warn(f"log_params keeps {listed} only as text (a repr, which cannot be "
                          "read back); log numbers, texts or lists of them, and images with "
                          "log_image", stacklevel=2)
        clean = redact(plain(params), self._secret)
        self._append({"type": "params", "params": clean}, "the params")
        self.experiment.log_parameters(clean)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numbers (loss, score, seconds, ...) at an optional integer ``step``."""
        self._check_open("log_metrics")
        if not isinstance(metrics, Mapping):
            raise TypeError(
                f"log_metrics takes a dict of name -> number; got {type(metrics).__name__}")
        clean = {}
        for key, value in metrics.items():
            number = plain(value)
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                raise ValueError(f"metric {key!r} = {value!r} is not a finite number")
            clean[redact(str(key), self._secret)] = number
        if step is not None:
            step = checks.integer("step", step, hint="e.g. the training step")
        self._append({"type": "metrics", "metrics": [
            {"name": k, "value": v, "step": None if step is None else int(step)}
            for k, v in clean.items()]}, "the metrics")
        self.experiment.log_metrics(clean, step=None if step is None else int(step))

    def log_text(self, text: str, metadata: Mapping[str, Any] | None = None) -> None:
        """Log a piece of text (a prompt, a note) with optional metadata."""
        self._check_open("log_text")
        if not isinstance(text, str):
            raise ValueError(f"log_text takes a text (a str), not {text!r:.60}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ValueError(f"metadata {metadata!r:.60} must be a dict of name -> value, "
                             "e.g. {'kind': 'prompt'}")
        clean_text = redact(text, self._secret)
        meta = redact(plain(dict(metadata or {})), self._secret)
        self._append({"type": "text", "text": clean_text, "metadata": meta}, "the text")
        self.experiment.log_text(clean_text, metadata=meta)

    def log_other(self, key: str, value: Any) -> None:
        """Log one key/value that is neither a setting nor a metric (e.g. a dataset digest)."""
        self._check_open("log_other")
        clean = redact(plain(value), self._secret)
        key = redact(str(key), self._secret)
        self._append({"type": "other", "key": key, "value": clean}, f"the value {key!r}")
        self.experiment.log_other(key, clean)

    def add_tag(self, tag: str) -> None:
        """Add a tag to the run (in Comet and in the local record)."""
        self._check_open("add_tag")
        if not isinstance(tag, str) or not tag.strip():
            raise ValueError(f"tag {tag!r:.60} must be a non-empty text, e.g. 'sd15'")
        tag = redact(tag, self._secret)
        self._append({"type": "tag", "tag": tag}, f"the tag {tag!r}")
        self.record["tags"].append(tag)
        self.experiment.add_tag(tag)

    def log_image(self, image: Any, name: str, metadata: Mapping[str, Any] | None = None,
                  detections: Detections | None = None, points: Any = None, labels: Any = None,
                  step: int | None = None, recipe: Recipe | Mapping[str, Any] | None = None
                  ) -> dict[str, Any]:
        """Log an image with its prompt and results as annotations.

        Args:
            image: anything ``images.load`` accepts.
            name: a short name shown in Comet and in the gallery.
            metadata: settings that made this image (seed, guidance scale, ...); the gallery
                groups and sorts by these.
            detections: boxes (with labels and scores) and masks to draw as annotations.
            points, labels: point prompts, (N, 2) pixels and (N,) 1 include / 0 exclude.
            step: an optional integer step (e.g. a training step).
            recipe: how to make the image again; taken from the image itself when a
                helpers function made it. Its input images are stored in the run folder.

        Returns:
            The image's record (what ``reproduce`` takes): a dict, shown in one line.
        """
        self._check_open("log_image")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"image name {name!r} must be a non-empty string")
        name = redact(name, self._secret)
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ValueError(f"metadata {metadata!r:.60} must be a dict of setting -> value, "
                             "e.g. {'seed': 1}")
        from helpers.detections import Detections

        if detections is not None and not isinstance(detections, Detections):
            raise ValueError(f"detections {detections!r:.60} must be a Detections (from a "
                             "Detector or Segmenter, or Detections(boxes, scores, labels))")
        if step is not None:
            step = checks.integer("step", step, hint="e.g. the training step")
        made = Recipe.coerce(recipe) if recipe is not None else recipe_of(image)
        img = images.load(image)
        layers = comet_annotations(img.size, detections, points, labels)
        meta = redact(plain(dict(metadata or {})), self._secret)
        with record.writing(self.folder, f"the inputs of image {name!r}"):
            stored = None if made is None else made.stored(self.folder)  # before any file
        png = io.BytesIO()
        img.save(png, format="PNG")
        with self._lock:  # a failed write takes no number: the files stay numbered 1, 2, ...
            index = self._counter + 1
            file = f"images/{index:04d}-{record.file_stem(name)}.png"
            with record.writing(self.folder, f"image {name!r}"):
                record.write_bytes(self.folder / file, png.getvalue())
            self._counter = index
        entry = record.ImageRecord({
            "index": index, "name": name, "file": file, "step": step,
            "width": img.width, "height": img.height, "metadata": meta,
            "annotations": layers,
            "detections": None if detections is None else detections.to_records(),
            "points": None if points is None else plain(np.asarray(points).reshape(-1, 2)),
            "labels": None if labels is None else plain(np.asarray(labels).reshape(-1)),
            "recipe": stored,
            "sha256": hashlib.sha256(png.getvalue()).hexdigest(),
            "run": self.id, "project": self.project, "folder": str(self.folder.resolve()),
        })
        try:
            self._append({"type": "image", "image": entry | {"comet": True}}, f"image {name!r}")
        except record.RecordWriteError:  # the PNG alone would be an image nobody lists
            with contextlib.suppress(OSError):
                (self.folder / file).unlink()
            with self._lock:
                if self._counter == index:  # no later image took a number meanwhile
                    self._counter = index - 1
            raise
        sent = self.experiment.log_image(img, name=name, metadata=meta or None,
                                         annotations=layers or None, step=step)
        entry["comet"] = sent is not None
        if sent is None:
            warnings.warn(f"Comet refused image {name!r} (see its message above); the image is "
                          f"kept in the local record ({self.folder / file})", stacklevel=2)
            with contextlib.suppress(record.RecordWriteError):
                self._append({"type": "comet_refused", "index": index})
        return entry

    def log_audio(self, audio: Any, name: str, metadata: Mapping[str, Any] | None = None,
                  step: int | None = None, sampling_rate: int | None = None) -> dict[str, Any]:
        """Log a sound (a spoken prompt): what ``speech.load_audio`` returned, or an array
        of samples in [-1, 1] with its ``sampling_rate``. It is kept as a WAV in the run
        folder and played in Comet's audio panel; returns its record."""
        from helpers.tracking import sounds

        return sounds.log_audio(self, audio, name, metadata, step, sampling_rate)

    def log_dataset(self, folder: str | Path, name: str) -> str:
        """Record exactly which files a dataset folder held; returns its digest.

        Online, the folder becomes a Comet Artifact (a new version only when the content
        changed). Offline, a manifest (every file with its size and SHA-256) is logged as an
        asset and its digest as a parameter. Either way the local record keeps the manifest.
        """
        self._check_open("log_dataset")
        record.check_name("dataset name", name)
        root = Path(folder)
        if not root.is_dir():
            raise ValueError(f"dataset folder {str(root)!r} does not exist or is not a folder")
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ValueError(f"dataset folder {str(root)!r} holds no files")
        manifest = [{"path": p.relative_to(root).as_posix(), "bytes": p.stat().st_size,
                     "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in files]
        digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
        document = {"name": name, "digest": digest, "files": manifest}
        local = self.folder / "datasets" / f"{record.file_stem(name)}-{digest[:12]}.json"
        with record.writing(self.folder, f"the manifest of dataset {name!r}"):
            local.parent.mkdir(exist_ok=True)
            record.write_bytes(local, json.dumps(document, indent=2).encode("utf-8"))
        version, problem = None, None
        if self.online:
            try:
                version = self._log_artifact(root, files, name, digest)
            except Exception as err:  # noqa: BLE001  (a server error must not stop the lesson)
                problem = f"{type(err).__name__}: {err}"
                print(f"Comet did not take dataset {name!r} as an artifact ({problem}); its "
                      "manifest is logged as an asset instead.")
        if version is None:
            self.experiment.log_asset(str(local), file_name=f"datasets/{local.name}")
        self.experiment.log_parameter(f"dataset/{name}", digest)
        self._append({"type": "dataset", "dataset": {
            "name": name, "digest": digest, "files": len(manifest), "manifest": str(
                local.relative_to(self.folder)), "artifact_version": version,
            "artifact_error": problem}})
        return digest

    def _log_artifact(self, root: Path, files: list[Path], name: str,
                      digest: str) -> str | None:
        import comet_ml

        try:  # the latest version already holds this content: record its use, add nothing
            existing = self.experiment.get_artifact(name)
            if (existing.metadata or {}).get("digest") == digest:
                return str(existing.version)
        except Exception:  # noqa: BLE001  (no such artifact yet, or not readable)
            pass
        artifact = comet_ml.Artifact(name, "dataset", metadata={"digest": digest})
        for path in files:  # exactly the files of the manifest (no hidden files)
            artifact.add(str(path), logical_path=path.relative_to(root).as_posix())
        logged = self.experiment.log_artifact(artifact)
        return str(getattr(logged, "version", None))

    def __getattr__(self, name: str) -> Any:
        if name == "panel":  # a view never lives in tracking
            raise AttributeError("Run.panel has moved: use widgets.panel(run) "
                                 "(from helpers import widgets)")
        raise AttributeError(f"'Run' object has no attribute {name!r}")

    def __repr__(self) -> str:
        state = "ended" if self.ended else "running"
        return (f"Run({self.project}/{self.name}, {self.record['mode']}, {state}, "
                f"folder={self.folder})")

    # -------------------------------------------------- end
    def end(self) -> None:
        """Close the run: finish the Comet experiment (writing the offline archive) and the
        local summary. Calling it again does nothing once it has worked.

        If the disk refuses a write (full, read-only), a ``RecordWriteError`` says so; the
        run stays open and everything logged is kept. Free space and call ``end()`` again:
        it finishes the summary, and rebuilds the offline archive from the local record if
        Comet could not write it.
        """
        if self.ended:
            return
        if not self._comet_closed:
            self._comet_closed = True  # a Comet experiment ends once, even when that fails
            try:
                self.experiment.end()
            except Exception as err:  # noqa: BLE001  (the archive is checked and rebuilt below)
                rebuilt = ("; its offline archive is rebuilt from the local record"
                           if self.record.get("mode") != "online" else "")
                print(f"Comet could not finish run {self.name} ({type(err).__name__}: "
                      f"{err}){rebuilt}.")
        with record.writing(self.folder, "the end of the run (run.json, the Comet archive)"):
            if self.record.get("mode") != "online":
                self.archive = crashes.ensure_archive(self.folder)
            with comet.locked(self.folder / "run.json"):  # a pick from elsewhere is not lost
                summary = record.load_record(self.folder)
                summary.update(status="finished", ended=time.time(), models=models.loaded(),
                               comet_archive=None if self.archive is None
                               else str(self.archive.relative_to(self.folder)))
                record.write_json(self.folder / "run.json", summary)
        self.record = summary
        self.ended = True
        if _ACTIVE.get(self.project) is self:
            _ACTIVE.pop(self.project)
        if self.archive is not None:
            print(f"Run saved: {self.folder}. Upload it to Comet later with: "
                  f"comet upload {self.archive}")


def start(project: str, name: str | None = None, tags: Iterable[str] = (),
          online: bool | None = None, directory: str | Path | None = None) -> Run:
    """Start a tracked run.

    Args:
        project: the Comet project and the local folder name, e.g. "lesson-02".
        name: a name for this run (default: its id, a timestamp).
        tags: tags for the run.
        online: None decides by itself: online when an API key is configured and the
            Comet server answers within a few seconds, otherwise offline with a one-line
            notice. False is always offline and makes no network attempt. True asks for
            online, and still falls back to offline (with a notice) when that is impossible.
        directory: where local records go (``<directory>/<project>/<run-id>/``); default
            ``$HELPERS_RUNS_DIR`` or ``runs`` beside the notebook.

    Comet keeps one experiment per process, so starting a run ends the run this process
    had open (re-running the cell that calls ``start``, or another lesson's run), with a
    notice; both local records stay complete.
    """
    global _ATEXIT
    record.check_name("project name", project)
    if name is not None:
        record.check_name("run name", name)
    if not isinstance(tags, str) and not isinstance(tags, Iterable):
        raise ValueError(f"tags {tags!r:.60} must be a list of strings, e.g. ['sd15']")
    tags = [str(t) for t in ([tags] if isinstance(tags, str) else tags)]
    if online is not None:
        from helpers import checks

        try:
            online = checks.flag("online", online)
        except ValueError:
            raise ValueError(f"online={online!r} must be None (decide), True or False") from None
    comet.check_config_files()
    root = record.runs_dir(directory)
    for place in (root, root / project):
        if place.exists() and not place.is_dir():
            raise ValueError(f"directory {str(place)!r} is a file, not a folder: give start("
                             "directory=...) a folder for the run records (or leave it out)")
    use_online, reason = comet.choose_mode(online)
    for previous in list(_ACTIVE.values()):  # Comet holds one experiment per process
        try:
            previous.end()
        except record.RecordWriteError as err:
            _ACTIVE.pop(previous.project, None)
            print(f"The earlier run {previous.name} could not be finished: {err} Its record "
                  "is kept; call its end() again once the disk has room.")
            continue
        print(f"Ended the earlier run {previous.name} of project {previous.project} (Comet "
              f"keeps one experiment per process); its record is complete in {previous.folder}")
    for message in crashes.crashed(root / project, skip=[r.id for r in _ACTIVE.values()]):
        print(message)
    run = Run(project, name, tags, use_online, root, reason)
    _ACTIVE[project] = run
    if not _ATEXIT:
        atexit.register(_end_all)
        _exit_on_sigterm()
        _ATEXIT = True
    if run.online:
        print(f"Comet: online, {run.record['comet_url'] or 'project ' + project}")
    else:
        print(f"Comet: offline ({run.reason}); saving to {run.folder}. When the run ends, "
              "`comet upload <archive>` sends it to a Comet account.")
    return run


def active(project: str | None = None) -> list[Run]:
    """Runs started in this process that have not ended."""
    return [r for p, r in _ACTIVE.items() if project is None or p == project]


def _end_all() -> None:
    for run in list(_ACTIVE.values()):
        try:
            run.end()
        except Exception as err:  # noqa: BLE001  (at exit, report and go on)
            print(f"tracking: could not end run {run.name}: {err}")


def _exit_on_sigterm() -> None:
    """Make SIGTERM exit through atexit (Python's default skips it), so runs end cleanly."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
