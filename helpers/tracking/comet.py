"""The Comet side of a run: its configuration, a bounded probe of the server, and starting
an experiment online (with a deadline) or offline (with no network attempt at all).

Comet reads its switches when ``comet_ml`` is first imported, so ``prepare_environment``
sets them before every import here. Offline, the experiment writes an archive under the
run folder that ``comet upload <archive>.zip`` sends later.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

DEFAULT_SERVER = "https://www.comet.com/clientlib/"
PROBE_TIMEOUT = 3.0
ONLINE_START_TIMEOUT = 30.0
COMET_DEFAULTS = {
    "COMET_DISABLE_AUTO_LOGGING": "1",  # no monkey-patching of torch and friends
    "COMET_ERROR_TRACKING_ENABLE": "0",  # no crash reports sent to Comet's error tracker
    "COMET_LOGGING_CONSOLE": "ERROR",  # helpers prints its own one-line notices
    "COMET_DISABLE_ANNOUNCEMENT": "1",
}


def prepare_environment() -> None:
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


def config_files() -> list[Path]:
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


def check_config_files() -> None:
    """Raise a clear error for a config file Comet would fail to parse."""
    from configobj import ConfigObj, ConfigObjError

    for path in config_files():
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


def _config() -> Any:
    prepare_environment()
    check_config_files()
    from comet_ml.config import get_config

    return get_config()


def api_key() -> str | None:
    """The Comet API key as Comet itself finds it (environment, .env, config files), or None."""
    config = _config()
    from comet_ml.config import get_api_key

    key = get_api_key(None, config)
    return str(key).strip() or None if key else None


def server_url() -> str:
    """The Comet server the online mode would talk to (as Comet's own settings say)."""
    config = _config()
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


def choose_mode(online: bool | None) -> tuple[bool, str]:
    """(online?, why) for ``start(online=...)``: online only with a key and a server."""
    if online is False:
        return False, "offline was asked for"
    if not api_key():
        return False, "no Comet API key is configured"
    if not server_answers():
        return False, f"the Comet server ({server_url()}) did not answer"
    return True, "API key found and server reachable"


def with_deadline(fn: Callable[[], Any], seconds: float) -> tuple[Any, str | None]:
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


def make_experiment(folder: Path, project: str, name: str, tags: Iterable[str],
                    online: bool, key: str | None = None, staging: bool = False) -> Any:
    """A new Comet experiment that captures nothing by itself (no code, no environment),
    writing its offline archive into ``folder / "comet"`` (``staging``: into ``folder``
    itself); ``key`` gives it a Comet key of its own (a run rebuilt from its record)."""
    prepare_environment()
    import comet_ml

    config = comet_ml.ExperimentConfig(
        offline_directory=str(folder if staging else folder / "comet"),
        name=name, tags=list(tags),
        log_code=False, log_graph=False, parse_args=False, log_git_metadata=False,
        log_git_patch=False, log_env_details=False, log_env_gpu=False, log_env_host=False,
        log_env_cpu=False, log_env_network=False, log_env_disk=False,
        auto_output_logging=False, auto_param_logging=False, auto_metric_logging=False,
        auto_log_co2=False, display_summary_level=0,
    )
    return comet_ml.start(project_name=project, online=online, mode="create",
                          experiment_key=key, experiment_config=config)


def start_experiment(folder: Path, project: str, name: str, tags: Iterable[str],
                     online: bool, timeout: float | None = None) -> tuple[Any, bool, str | None]:
    """(experiment, online?, why it fell back or None): online within ``timeout`` seconds
    (default ``ONLINE_START_TIMEOUT``), else offline."""
    tags = list(tags)
    if not online:
        return make_experiment(folder, project, name, tags, online=False), False, None
    experiment, problem = with_deadline(
        lambda: make_experiment(folder, project, name, tags, online=True),
        ONLINE_START_TIMEOUT if timeout is None else timeout)
    if problem is None and getattr(experiment, "alive", False):
        return experiment, True, None
    if experiment is not None:
        with contextlib.suppress(Exception):
            experiment.end()
    why = problem or "it refused the run: is the API key right?"
    offline = make_experiment(folder, project, name, tags, online=False)
    return offline, False, f"the Comet server did not start the run ({why})"


# ------------------------------------------------------------------ after the run ended
_ARCHIVE_LOCK = threading.Lock()
EXPERIMENT_FILE = "experiment.json"
MESSAGES_FILE = "messages.json"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder of ``path`` (other processes wait too, where
    the system has ``fcntl``; elsewhere only this process's threads do), for a read, change
    and rewrite of ``path`` that must not interleave with another one. The folder, not the
    file, is locked: the rewrite renames a new file over the old one, and it leaves no lock
    file behind."""
    with _ARCHIVE_LOCK:
        try:
            import fcntl
        except ImportError:  # Windows: one process at a time is all that is kept
            yield
            return
        handle = os.open(path.parent, os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # closing releases the lock


def unique_tmp(path: Path) -> Path:
    """A temporary file beside ``path`` that no other writer uses (for tmp + rename)."""
    import tempfile

    handle, name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    # mkstemp makes it owner-only; a record keeps the usual permissions when renamed
    with contextlib.suppress(AttributeError, OSError):  # no fchmod on Windows
        os.fchmod(handle, 0o666 & ~_umask())
    os.close(handle)
    return Path(name)


def _umask() -> int:
    """This process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def add_to_archive(archive: str | Path, tags: Iterable[str] = (),
                   others: Mapping[str, Any] | None = None) -> Path:
    """Add tags and "other" values to a finished offline archive, so that ``comet upload
    <archive>`` carries them; returns the archive.

    An offline archive is a zip of ``experiment.json`` (the experiment: project, times,
    ``tags``, ...), ``messages.json`` (one JSON message a line, each ``{"payload": {...,
    "message_id": n}, "type": ...}``; an other value is ``{"payload": {"key", "message_id",
    "value"}, "type": "log_other"}``) and the files the messages upload. The tags go into
    ``experiment.json`` (the upload adds them to the experiment), each other value becomes
    one more ``log_other`` message. Every other member is copied unchanged.

    The new archive is written beside the old one, flushed to disk and renamed over it, so
    a crash leaves the old archive or the new one, never half of one.

    Raises:
        ValueError: the file is not a Comet offline archive.
    """
    import zipfile

    archive = Path(archive)
    with locked(archive):
        tmp = unique_tmp(archive)
        try:
            with zipfile.ZipFile(archive) as old:
                _rewrite(old, tmp, archive, list(tags), dict(others or {}))
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, archive)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return archive


def _rewrite(old: Any, tmp: Path, archive: Path, tags: list[str],
             others: dict[str, Any]) -> None:
    import json
    import shutil
    import zipfile

    names = old.namelist()
    if EXPERIMENT_FILE not in names or MESSAGES_FILE not in names:
        raise ValueError(f"{archive} is not a Comet offline archive (it has no "
                         f"{EXPERIMENT_FILE} and {MESSAGES_FILE})")
    experiment = json.loads(old.read(EXPERIMENT_FILE).decode("utf-8"))
    listed = experiment.setdefault("tags", [])
    listed.extend(t for t in dict.fromkeys(str(t) for t in tags) if t not in listed)
    lines = [line for line in old.read(MESSAGES_FILE).decode("utf-8").splitlines()
             if line.strip()]
    used = [0]
    for line in lines:
        with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
            used.append(int(json.loads(line)["payload"].get("message_id") or 0))
    for offset, (key, value) in enumerate(others.items(), start=max(used) + 1):
        lines.append(json.dumps({"payload": {"key": str(key), "message_id": offset,
                                             "value": value}, "type": "log_other"},
                                sort_keys=True, separators=(",", ":")))
    content = {EXPERIMENT_FILE: json.dumps(experiment).encode("utf-8"),
               MESSAGES_FILE: "".join(line + "\n" for line in lines).encode("utf-8")}
    with zipfile.ZipFile(tmp, "w", allowZip64=True) as new:
        for info in old.infolist():
            member = zipfile.ZipInfo(info.filename, info.date_time)
            member.compress_type = info.compress_type
            member.external_attr = info.external_attr
            if info.filename in content:
                new.writestr(member, content[info.filename])
                continue
            member.file_size = info.file_size  # lets a large member use zip64
            with old.open(info) as src, new.open(member, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def add_to_experiment(key: str, tags: Iterable[str] = (),
                      others: Mapping[str, Any] | None = None,
                      timeout: float | None = None) -> str | None:
    """Add tags and "other" values to an experiment on the Comet server (an online run that
    has ended), through ``comet_ml.APIExperiment``; None, or why it did not work (no key,
    no answer within ``timeout`` seconds, default ``ONLINE_START_TIMEOUT``, or an error)."""
    secret = api_key()
    if not secret:
        return "no Comet API key is configured"
    tags, others = list(tags), dict(others or {})

    def send() -> None:
        import comet_ml

        experiment = comet_ml.APIExperiment(api_key=secret, previous_experiment=key)
        for tag in tags:
            experiment.add_tag(tag)
        for name, value in others.items():
            experiment.log_other(name, value)

    _, problem = with_deadline(send, ONLINE_START_TIMEOUT if timeout is None else timeout)
    return None if problem is None else problem.replace(secret, "***")
