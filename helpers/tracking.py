"""Tracking: every run recorded with Comet (online or offline) and in a local folder.

``tracking.start("lesson-02")`` returns a ``Run``. Everything logged through it goes two ways:

- to **Comet**: online when an API key is configured and the server answers within a few
  seconds; otherwise to an offline archive (``comet upload <archive>.zip`` sends it later).
  Offline makes no network attempt at all, so a learner without an account loses nothing.
- to a **local record** under ``runs/<project>/<run-id>/``: the images as PNG files, an
  append-only ``events.jsonl`` written as things are logged (so a crash loses nothing
  logged before it) and a ``run.json`` summary with parameters, prompts, seeds, model names,
  library versions and device. The inline ``gallery`` reads these records, and
  ``reproduce`` regenerates an image from its recipe.

Images are logged with their prompts as Comet annotations (boxes with label and score,
masks as polygons, points), which Comet's image panel can toggle and filter by score.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import json
import math
import os
import re
import secrets
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers import images

if TYPE_CHECKING:
    from PIL import Image

    from helpers.detections import Detections

DEFAULT_SERVER = "https://www.comet.com/clientlib/"
PROBE_TIMEOUT = 3.0
RECIPE_KEY = "helpers_recipe"
"""``PIL.Image.info`` key under which generating functions leave their recipe."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")
_ACTIVE: dict[str, Run] = {}
_ATEXIT = False
_RECIPES: dict[str, Callable[..., Image.Image]] = {}
# recipe kind prefix -> module that registers it on import
_RECIPE_MODULES = {"generate": "helpers.generate", "sam": "helpers.sam",
                   "detect": "helpers.detect", "inpaint": "helpers.inpaint"}


# ---------------------------------------------------------------- configuration

def _config_files() -> list[Path]:
    """Comet's configuration files, in the order Comet itself reads them."""
    files = []
    for variable in ("COMET_INI", "COMET_CONFIG"):
        override = os.environ.get(variable)
        if override:
            path = Path(override).expanduser()
            files.append(path / ".comet.config" if path.is_dir() else path)
    files += [Path(".comet.config"), Path("/content/drive/MyDrive/.comet.config"),
              Path("~/.comet.config").expanduser()]
    return files


def _check_config_files() -> None:
    """Raise a clear error for a config file Comet would fail to parse."""
    from configobj import ConfigObj, ConfigObjError

    for path in _config_files():
        if not path.is_file():
            continue
        try:
            ConfigObj(str(path), encoding="utf-8", list_values=False)
        except (ConfigObjError, UnicodeDecodeError) as err:
            raise ValueError(
                f"the Comet config file {str(path)!r} cannot be read ({err}). Fix it (it should "
                "look like '[comet]' then 'api_key = ...'), move it away, or run "
                "`comet init` to write a new one."
            ) from err


def _comet_config() -> Any:
    _prepare_comet_environment()
    _check_config_files()
    from comet_ml.config import get_config

    return get_config()


def api_key() -> str | None:
    """The Comet API key as Comet itself finds it (environment, .env, config files), or None."""
    config = _comet_config()
    from comet_ml.config import get_api_key

    key = get_api_key(None, config)
    return str(key).strip() or None if key else None


def runs_dir(directory: str | Path | None = None) -> Path:
    """Where local run records go: ``directory``, else ``$HELPERS_RUNS_DIR``, else ``runs``."""
    if directory is not None:
        return Path(directory)
    return Path(os.environ.get("HELPERS_RUNS_DIR") or "runs")


def server_url() -> str:
    """The Comet server the online mode would talk to (as Comet's own settings say)."""
    config = _comet_config()
    from comet_ml.config import get_api_key, get_backend_address

    get_api_key(None, config)  # a key can carry its own server address: this applies it
    return str(get_backend_address(config))


def server_answers(url: str | None = None, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when the Comet server answers an HTTP request within ``timeout`` seconds.

    The probe runs in a thread, so a name lookup that hangs cannot hold the lesson longer
    than ``timeout`` either.
    """
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url or server_url())
    probe = f"{parts.scheme}://{parts.netloc}/"
    answer: list[bool] = []

    def ask() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(probe, method="HEAD"),
                                        timeout=timeout):
                answer.append(True)
        except urllib.error.HTTPError:
            answer.append(True)  # it answered, even if not with 200
        except Exception:  # noqa: BLE001  (any failure means "not reachable")
            answer.append(False)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])


ONLINE_START_TIMEOUT = 30.0


def _with_deadline(fn: Callable[[], Any], seconds: float) -> tuple[Any, str | None]:
    """Run ``fn`` in a thread; (result, None), or (None, why) on an error or past the deadline.

    A late result is ended as soon as it arrives, so no half-started experiment lingers.
    """
    box: dict[str, Any] = {}
    abandoned = threading.Event()

    def call() -> None:
        try:
            box["value"] = fn()
        except Exception as err:  # noqa: BLE001  (reported to the caller as a reason)
            box["error"] = f"{type(err).__name__}: {err}"
        if abandoned.is_set() and box.get("value") is not None:
            with contextlib.suppress(Exception):
                box["value"].end()

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        abandoned.set()
        return None, f"no answer within {seconds:g} s"
    return box.get("value"), box.get("error")


def _exit_on_sigterm() -> None:
    """Make SIGTERM exit through atexit (Python's default skips it), so runs end cleanly."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


COMET_DEFAULTS = {
    "COMET_DISABLE_AUTO_LOGGING": "1",  # no monkey-patching of torch and friends
    "COMET_ERROR_TRACKING_ENABLE": "0",  # no crash reports sent to Comet's error tracker
    "COMET_LOGGING_CONSOLE": "ERROR",  # helpers prints its own one-line notices
    "COMET_DISABLE_ANNOUNCEMENT": "1",
}


def _prepare_comet_environment() -> None:
    """Set Comet's switches before comet_ml is imported (it reads them at import time).

    If comet_ml was imported earlier with its error tracker on, that tracker is closed, so
    an offline run still makes no network attempt.
    """
    for key, value in COMET_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if "comet_ml" in sys.modules and os.environ["COMET_ERROR_TRACKING_ENABLE"] == "0":
        with contextlib.suppress(Exception):
            import sentry_sdk

            client = sentry_sdk.get_client()
            if client.is_active():
                client.close(timeout=0)


# ---------------------------------------------------------------- plain values

def _plain(value: Any) -> Any:
    """JSON-safe plain Python: numpy and tuples become lists, floats, ints; NaN becomes None.

    Comet silently drops an image whose annotations hold numpy values, so everything logged
    goes through here first.
    """
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and hasattr(value, "tolist"):  # torch tensors, without importing torch
        return _plain(value.tolist())
    return str(value)


def _redact(value: Any, secret: str | None) -> Any:
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, "***")
    if isinstance(value, list):
        return [_redact(v, secret) for v in value]
    if isinstance(value, dict):
        return {_redact(k, secret): _redact(v, secret) for k, v in value.items()}
    return value


def _check_name(kind: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise ValueError(
            f"{kind} {value!r} must be a plain name of letters, digits, spaces, '_', '-' or "
            f"'.' (at most 100 characters), not a path; for example 'lesson-02'"
        )
    return value


def _file_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    return stem[:80] or "image"


def _environment() -> dict[str, Any]:
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


# ---------------------------------------------------------------- annotations

def _mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of a bool mask as flat [x1, y1, x2, y2, ...] pixel lists."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        contour = cv2.approxPolyDP(contour, 0.75, True)
        if len(contour) >= 3:
            polygons.append([float(v) for v in contour.reshape(-1)])
    return polygons


def comet_annotations(size: tuple[int, int], detections: Detections | None = None,
                points: Any = None, labels: Any = None) -> list[dict[str, Any]]:
    """Comet annotation layers for an image of ``size`` = (width, height).

    Boxes become ``[x, y, w, h]`` (clipped to the image, with a warning), masks become
    polygons, and point prompts small squares labelled "include" or "exclude". All values
    are plain lists and floats.

    Raises:
        ValueError: masks of another size than the image, points outside the image, or a
            different number of points and labels.
    """
    w, h = size
    layers: list[dict[str, Any]] = []
    if detections is not None and len(detections):
        clipped = detections.clip((w, h))
        box = clipped.xyxy
        gone = (box[:, 2] <= box[:, 0]) | (box[:, 3] <= box[:, 1])
        for i in np.flatnonzero(gone):
            warnings.warn(
                f"box {i} {detections.xyxy[i].round(1).tolist()} lies entirely outside the "
                f"{w}x{h} image; it is not logged as an annotation", stacklevel=3)
        for i in np.flatnonzero((clipped.xyxy != detections.xyxy).any(axis=1) & ~gone):
            warnings.warn(
                f"box {i} {detections.xyxy[i].round(1).tolist()} reaches outside the {w}x{h} "
                f"image; it is logged clipped to {clipped.xyxy[i].round(1).tolist()}",
                stacklevel=3,
            )
        boxes = [{"boxes": [[round(float(v), 2) for v in xywh]], "label": label,
                  "score": round(float(score), 4)}
                 for xywh, label, score, out in zip(clipped.xywh, clipped.labels,
                                                    clipped.scores, gone) if not out]
        layers.append({"name": "boxes", "data": boxes})
        if detections.masks is not None:
            if detections.masks.shape[1:] != (h, w):
                raise ValueError(
                    f"masks have size {detections.masks.shape[2]}x{detections.masks.shape[1]} "
                    f"but the image is {w}x{h}; log the image the masks were made for"
                )
            scores = (detections.mask_scores if detections.mask_scores is not None
                      else detections.scores)
            polys = [{"points": _mask_polygons(m), "label": label, "score": round(float(s), 4)}
                     for m, label, s in zip(detections.masks, detections.labels, scores)]
            layers.append({"name": "masks", "data": [p for p in polys if p["points"]]})
    if points is not None and np.asarray(points).size:
        from helpers.detections import check_points

        pts, labs = check_points(points, labels, (w, h), default_label=1)
        r = max(2.0, max(w, h) / 200)
        data = []
        for (x, y), lab in zip(pts, labs):
            x1, y1 = max(0.0, float(x) - r), max(0.0, float(y) - r)
            x2, y2 = min(float(w), float(x) + r), min(float(h), float(y) + r)
            data.append({"boxes": [[x1, y1, x2 - x1, y2 - y1]],
                         "label": "include" if lab == 1 else "exclude", "score": 1.0})
        if data:
            layers.append({"name": "prompt points", "data": data})
    return _plain(layers)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- records on disk

def _read_events(folder: Path) -> list[dict[str, Any]]:
    path = folder / "events.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: skip it, keep the rest
    return events


def load_record(folder: str | Path) -> dict[str, Any]:
    """The full record of one run folder: ``run.json`` with every logged event folded in."""
    folder = Path(folder)
    header_path = folder / "run.json"
    if not header_path.exists():
        raise FileNotFoundError(f"{str(folder)!r} is not a run folder (it has no run.json)")
    record = json.loads(header_path.read_text(encoding="utf-8"))
    if record.get("status") != "running":
        return record  # an ended run's summary already holds everything
    record.update(params={}, metrics=[], texts=[], images=[], datasets=[], picks=[],
                  others={})
    for event in _read_events(folder):
        _fold(record, event)
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
        root = root / _check_name("project name", project)
    if not root.exists():
        return []
    folders = sorted({p.parent for p in root.glob("**/run.json")})
    records = [load_record(f) | {"folder": str(f)} for f in folders]
    return sorted(records, key=lambda r: r.get("started", 0))


_all_runs = runs  # gallery() has a parameter called runs


# ---------------------------------------------------------------- the run

class Run:
    """One tracked run: a Comet experiment (online or offline) plus a local record.

    Create it with ``tracking.start(...)``. Every ``log_*`` call writes to Comet and appends
    to the local record at once; ``end()`` closes both (and runs by itself at exit).
    """

    def __init__(self, project: str, name: str | None, tags: Iterable[str], online: bool,
                 directory: Path, reason: str) -> None:
        self.project = project
        self._secret = api_key()  # known only to keep it out of everything logged
        tags = [_redact(str(t), self._secret) for t in tags]
        self.id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        self.name = name or self.id
        self.folder = directory / project / self.id
        self.online = online
        self.reason = reason
        self.ended = False
        self.archive: Path | None = None
        self._lock = threading.Lock()
        self._counter = 0
        (self.folder / "images").mkdir(parents=True, exist_ok=False)
        self.experiment = self._start_comet(tags)
        self.record: dict[str, Any] = {
            "id": self.id, "project": project, "name": self.name, "tags": list(tags),
            "mode": "online" if self.online else "offline", "mode_reason": self.reason,
            "comet_key": self.experiment.get_key(),
            "comet_url": getattr(self.experiment, "url", None) if self.online else None,
            "comet_archive": None, "started": time.time(), "ended": None, "status": "running",
            "environment": _environment(),
        }
        self._write_header()

    # -------------------------------------------------- comet
    def _start_comet(self, tags: Iterable[str]) -> Any:
        if not self.online:
            return self._make_experiment(tags, online=False)
        experiment, problem = _with_deadline(lambda: self._make_experiment(tags, online=True),
                                             ONLINE_START_TIMEOUT)
        if problem is None and getattr(experiment, "alive", False):
            return experiment
        if experiment is not None:
            with contextlib.suppress(Exception):
                experiment.end()
        self.online = False
        why = problem or "it refused the run: is the API key right?"
        self.reason = f"the Comet server did not start the run ({why})"
        return self._make_experiment(tags, online=False)

    def _make_experiment(self, tags: Iterable[str], online: bool) -> Any:
        _prepare_comet_environment()
        import comet_ml

        config = comet_ml.ExperimentConfig(
            offline_directory=str(self.folder / "comet"),
            name=self.name, tags=list(tags),
            log_code=False, log_graph=False, parse_args=False, log_git_metadata=False,
            log_git_patch=False, log_env_details=False, log_env_gpu=False, log_env_host=False,
            log_env_cpu=False, log_env_network=False, log_env_disk=False,
            auto_output_logging=False, auto_param_logging=False, auto_metric_logging=False,
            auto_log_co2=False, display_summary_level=0,
        )
        return comet_ml.start(project_name=self.project, online=online, mode="create",
                              experiment_config=config)

    # -------------------------------------------------- local record
    def _write_header(self) -> None:
        path = self.folder / "run.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.record, indent=2), encoding="utf-8")
        os.replace(tmp, path)

    def _append(self, event: dict[str, Any]) -> None:
        line = json.dumps(_redact(_plain(event), self._secret))
        with open(self.folder / "events.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()

    def _check_open(self, what: str) -> None:
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
        clean = _redact(_plain(params), self._secret)
        self.experiment.log_parameters(clean)
        self._append({"type": "params", "params": clean})

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numbers (loss, score, seconds, ...) at an optional integer ``step``."""
        self._check_open("log_metrics")
        if not isinstance(metrics, Mapping):
            raise TypeError(
                f"log_metrics takes a dict of name -> number; got {type(metrics).__name__}")
        clean = {}
        for key, value in metrics.items():
            number = _plain(value)
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                raise ValueError(f"metric {key!r} = {value!r} is not a finite number")
            clean[_redact(str(key), self._secret)] = number
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, np.integer))):
            raise ValueError(f"step {step!r} must be an integer")
        self.experiment.log_metrics(clean, step=None if step is None else int(step))
        self._append({"type": "metrics", "metrics": [
            {"name": k, "value": v, "step": None if step is None else int(step)}
            for k, v in clean.items()]})

    def log_text(self, text: str, metadata: Mapping[str, Any] | None = None) -> None:
        """Log a piece of text (a prompt, a note) with optional metadata."""
        self._check_open("log_text")
        clean_text = _redact(str(text), self._secret)
        meta = _redact(_plain(dict(metadata or {})), self._secret)
        self.experiment.log_text(clean_text, metadata=meta)
        self._append({"type": "text", "text": clean_text, "metadata": meta})

    def log_other(self, key: str, value: Any) -> None:
        """Log one key/value that is neither a setting nor a metric (e.g. a dataset digest)."""
        self._check_open("log_other")
        clean = _redact(_plain(value), self._secret)
        key = _redact(str(key), self._secret)
        self.experiment.log_other(key, clean)
        self._append({"type": "other", "key": key, "value": clean})

    def add_tag(self, tag: str) -> None:
        """Add a tag to the run (in Comet and in the local record)."""
        self._check_open("add_tag")
        tag = _redact(str(tag), self._secret)
        self.experiment.add_tag(tag)
        self.record["tags"].append(tag)
        self._append({"type": "tag", "tag": tag})

    def log_image(self, image: Any, name: str, metadata: Mapping[str, Any] | None = None,
                  detections: Detections | None = None, points: Any = None, labels: Any = None,
                  step: int | None = None, recipe: Mapping[str, Any] | None = None
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
            recipe: how to make the image again (``{"kind": ..., "args": {...}}``); taken
                from the image itself when a helpers function made it.

        Returns:
            The image's record (what ``reproduce`` takes).
        """
        self._check_open("log_image")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"image name {name!r} must be a non-empty string")
        name = _redact(name, self._secret)
        if recipe is None and hasattr(image, "info"):
            recipe = image.info.get(RECIPE_KEY)
        img = images.load(image)
        layers = comet_annotations(img.size, detections, points, labels)
        meta = _redact(_plain(dict(metadata or {})), self._secret)
        with self._lock:
            self._counter += 1
            index = self._counter
        file = f"images/{index:04d}-{_file_stem(name)}.png"
        img.save(self.folder / file)
        entry = {
            "index": index, "name": name, "file": file, "step": step,
            "width": img.width, "height": img.height, "metadata": meta,
            "annotations": layers,
            "detections": None if detections is None else detections.to_records(),
            "points": None if points is None else _plain(np.asarray(points).reshape(-1, 2)),
            "labels": None if labels is None else _plain(np.asarray(labels).reshape(-1)),
            "recipe": _plain(dict(recipe)) if recipe else None,
            "sha256": hashlib.sha256((self.folder / file).read_bytes()).hexdigest(),
            "run": self.id, "project": self.project, "folder": str(self.folder.resolve()),
        }
        self.experiment.log_image(img, name=name, metadata=meta or None,
                                  annotations=layers or None, step=step)
        self._append({"type": "image", "image": entry})
        return entry

    def log_dataset(self, folder: str | Path, name: str) -> str:
        """Record exactly which files a dataset folder held; returns its digest.

        Online, the folder becomes a Comet Artifact (a new version only when the content
        changed). Offline, a manifest (every file with its size and SHA-256) is logged as an
        asset and its digest as a parameter. Either way the local record keeps the manifest.
        """
        self._check_open("log_dataset")
        _check_name("dataset name", name)
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
        (self.folder / "datasets").mkdir(exist_ok=True)
        local = self.folder / "datasets" / f"{_file_stem(name)}-{digest[:12]}.json"
        local.write_text(json.dumps(document, indent=2), encoding="utf-8")
        version = None
        if self.online:
            version = self._log_artifact(root, files, name, digest)
        else:
            self.experiment.log_asset(str(local), file_name=f"datasets/{local.name}")
        self.experiment.log_parameter(f"dataset/{name}", digest)
        self._append({"type": "dataset", "dataset": {
            "name": name, "digest": digest, "files": len(manifest), "manifest": str(
                local.relative_to(self.folder)), "artifact_version": version}})
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

    # -------------------------------------------------- views
    def panel(self, height: int = 800) -> Any:
        """Online: Comet's own page for this run, embedded. Offline: the local gallery."""
        local = gallery(runs=[self])
        if self.online and self.record.get("comet_url"):
            import html

            import ipywidgets as w

            page = w.HTML(f'<iframe src="{html.escape(self.record["comet_url"])}" '
                          f'width="100%" height="{int(height)}"></iframe>')
            return w.VBox([local.widget, page])
        return local

    def __repr__(self) -> str:
        state = "ended" if self.ended else "running"
        return (f"Run({self.project}/{self.name}, {self.record['mode']}, {state}, "
                f"folder={self.folder})")

    # -------------------------------------------------- end
    def end(self) -> None:
        """Close the run: finish the Comet experiment (writing the offline archive) and the
        local summary. Calling it again does nothing."""
        if self.ended:
            return
        self.ended = True
        _ACTIVE.pop(self.project, None)
        try:
            self.experiment.end()
        finally:
            archives = sorted((self.folder / "comet").glob("*.zip"))
            if archives:
                self.archive = archives[-1]
            record = load_record(self.folder)
            record.update(status="finished", ended=time.time(),
                          comet_archive=None if self.archive is None
                          else str(self.archive.relative_to(self.folder)))
            self.record = record
            self._write_header()
        if self.archive is not None:
            print(f"Run saved: {self.folder}. Upload it to Comet later with: "
                  f"comet upload {self.archive}")


# ---------------------------------------------------------------- public functions

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

    Re-running the cell that calls ``start`` ends the earlier run of the same project.
    """
    global _ATEXIT
    _check_name("project name", project)
    if name is not None:
        _check_name("run name", name)
    tags = [str(t) for t in ([tags] if isinstance(tags, str) else tags)]
    if online not in (None, True, False):
        raise ValueError(f"online={online!r} must be None (decide), True or False")
    _check_config_files()
    if online is False:
        use_online, reason = False, "offline was asked for"
    elif not api_key():
        use_online, reason = False, "no Comet API key is configured"
    elif not server_answers():
        use_online, reason = False, f"the Comet server ({server_url()}) did not answer"
    else:
        use_online, reason = True, "API key found and server reachable"
    previous = _ACTIVE.get(project)
    if previous is not None:
        previous.end()
    run = Run(project, name, tags, use_online, runs_dir(directory), reason)
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


def recipe(kind: str) -> Callable[[Callable[..., Image.Image]], Callable[..., Image.Image]]:
    """Register ``fn(**args) -> PIL image`` as the way to regenerate images of ``kind``."""
    def register(fn: Callable[..., Image.Image]) -> Callable[..., Image.Image]:
        _RECIPES[kind] = fn
        return fn

    return register


def reproduce(image_record: Mapping[str, Any]) -> Image.Image:
    """Make a logged image again from its record's recipe.

    Same device, same seed, same settings give identical pixels; ``same_pixels(record,
    image)`` checks it against the logged file.

    Raises:
        ValueError: the record has no recipe (the image was not made by a helpers
            function that knows how to make it again), or an unknown recipe kind.
    """
    if not isinstance(image_record, Mapping) or "name" not in image_record:
        raise ValueError("reproduce takes an image record, as returned by Run.log_image or "
                         "found in tracking.runs(...)[i]['images']")
    spec = image_record.get("recipe")
    if not spec or "kind" not in spec:
        raise ValueError(
            f"image {image_record['name']!r} has no recipe, so it cannot be made again; only "
            "images made by helpers functions (e.g. generate.text_to_image) carry one"
        )
    kind = spec["kind"]
    if kind not in _RECIPES:
        module = _RECIPE_MODULES.get(kind.split(".")[0])
        if module is not None:
            importlib.import_module(module)
    if kind not in _RECIPES:
        raise ValueError(f"no recipe of kind {kind!r} is known; known: {sorted(_RECIPES)}")
    return _RECIPES[kind](**spec.get("args", {}))


def image_path(image_record: Mapping[str, Any], directory: str | Path | None = None) -> Path:
    """Where the PNG of a logged image lives."""
    if directory is None and image_record.get("folder"):
        return Path(image_record["folder"]) / image_record["file"]
    return (runs_dir(directory) / image_record["project"] / image_record["run"]
            / image_record["file"])


def same_pixels(image_record: Mapping[str, Any], image: Any,
                directory: str | Path | None = None) -> bool:
    """True when ``image`` has exactly the pixels of the logged image."""
    logged = np.asarray(images.load(image_path(image_record, directory)))
    return bool(np.array_equal(logged, np.asarray(images.load(image))))


def gallery(project: str | None = None, runs: Iterable[Run | str | Path] | None = None,
            by: str | None = None, directory: str | Path | None = None) -> Any:
    """An inline gallery of logged images with their settings; pick the best with a click.

    Args:
        project: show every run of this project (default: every project).
        runs: or only these runs (``Run`` objects or run folders).
        by: a setting (image metadata or run parameter) to group and sort by, e.g.
            "guidance_scale".

    Returns:
        A ``widgets.Gallery``; the pick is logged as a tag ("best:<image>") on its run.
    """
    from helpers import widgets

    if runs is not None:
        records = []
        for item in runs:
            folder = item.folder if isinstance(item, Run) else Path(item)
            records.append(load_record(folder) | {"folder": str(folder)})
    else:
        records = _all_runs(project, directory)
    entries = [widgets.GalleryEntry.from_records(rec, img) for rec in records
               for img in rec.get("images", [])]
    return widgets.Gallery(entries, by=by, on_pick=_record_pick)


def _record_pick(entry: Any) -> str:
    """Log a gallery pick as a tag on the image's run; returns what happened."""
    tag = f"best:{entry.image['name']}"
    pick = {"type": "pick", "pick": {"image": entry.image["name"], "time": time.time()}}
    run = next((r for r in _ACTIVE.values() if r.id == entry.run_id), None)
    if run is not None:
        run.add_tag(tag)
        run._append(pick)
        return f"tagged run {run.name} with {tag!r}"
    folder = Path(entry.folder)
    record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    if record.get("status") == "running":  # another process still writes it: add an event
        with open(folder / "events.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(pick) + "\n")
            fh.write(json.dumps({"type": "tag", "tag": tag}) + "\n")
        return f"run {record['name']} is still running elsewhere: {tag!r} added to its record"
    record.setdefault("picks", []).append(pick["pick"])
    if tag not in record["tags"]:
        record["tags"].append(tag)
    tmp = folder / "run.json.tmp"
    tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(tmp, folder / "run.json")
    return (f"run {record['name']} has ended: {tag!r} is saved in its local record "
            f"({folder / 'run.json'}), not in its Comet archive")
