"""Fetching model weights: checkpoint downloads with hashes, hub ids, disk checks, and errors
that say what to do.

``fetch(spec)`` returns something a loader can read: a local file for a checkpoint URL
(downloaded once, with a progress bar, into ``registry.cache_dir()`` and checked against
its published SHA-256), the folder of a tiny model (built by ``helpers.tiny``), or a hub id
that the loader's own ``from_pretrained`` downloads into the Hugging Face cache. When
weights cannot be fetched (no network, no disk space, a wrong name), the error says what to
do instead of showing a stack of HTTP internals.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sys
from pathlib import Path

from helpers.registry import CACHE_ENV, GB, ModelSpec, cache_dir, names


class WeightsUnavailableError(RuntimeError):
    """Model weights could not be fetched or read; the message says what to do."""


def offline_help(spec: ModelSpec) -> str:
    """What to do when the weights of ``spec`` cannot be fetched."""
    return (
        "Connect this machine to the internet and run the cell again, or copy the weights "
        f"into {cache_dir()} (checkpoints) or the Hugging Face cache, or set "
        "HELPERS_TINY_MODELS=1 to run the lesson with tiny random models."
    )


def _check_disk(spec: ModelSpec, folder: Path) -> None:
    if not spec.size_bytes:
        return
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < spec.size_bytes * 1.1:
        raise WeightsUnavailableError(
            f"not enough disk space for {spec.name!r}: it needs about "
            f"{spec.size_bytes / GB:.1f} GB and {folder} has {free / GB:.1f} GB free. "
            f"Free some space or point {CACHE_ENV} (checkpoints) or HF_HOME (hub models) "
            "at a larger disk."
        )


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_path(spec: ModelSpec) -> Path:
    """Where the checkpoint file of a URL spec is kept (``cache_dir()/checkpoints/<file>``)."""
    return cache_dir() / "checkpoints" / spec.source.rsplit("/", 1)[-1]


def parts(spec: ModelSpec) -> list[ModelSpec]:
    """The hub repositories ``spec`` adds to its own (the LCM-LoRA and TAESD of a few-step
    name), as specs of their own: ``arch`` "lora" or "vae", with their download sizes."""
    from helpers.registry import PART_BYTES

    found = []
    for source, arch, what in ((spec.adapter, "lora", "LoRA"), (spec.vae, "vae", "VAE")):
        if source and source != "tiny":
            found.append(ModelSpec(f"{spec.name}'s {what}", spec.family, source,
                                   revision="main", size_bytes=PART_BYTES.get(source),
                                   arch=arch))
    return found


def is_cached(spec: ModelSpec) -> tuple[bool, str | None]:
    """(whether ``spec``'s weights are on this machine, the hub commit they are at).

    A checkpoint counts once its download was verified (the ``.sha256`` note beside it);
    a hub model once the Hugging Face cache holds its files for ``spec.revision``, and
    those of its ``parts``.
    """
    if spec.is_url:
        path = checkpoint_path(spec)
        note = path.with_name(path.name + ".sha256")
        return path.exists() and note.exists() and note.read_text().strip() == spec.sha256, None
    commit = hub_commit(spec)
    return commit is not None and all(hub_commit(p) for p in parts(spec)), commit


def missing_bytes(specs: list[ModelSpec]) -> int:
    """What fetching ``specs`` would download: each repository not cached yet counted once
    (two names of one base model share its files)."""
    seen: set[str] = set()
    total = 0
    for spec in specs:
        for piece in (spec, *parts(spec)):
            if piece.source in seen:
                continue
            seen.add(piece.source)
            if not (is_cached(piece)[0] if piece.is_url else hub_commit(piece)):
                total += piece.size_bytes or 0
    return total


def _verified_copy(dest: Path, sha256: str | None) -> bool:
    """True when ``dest`` is already the file asked for; a copy that fails its hash is
    deleted (with a line saying so)."""
    note = dest.with_name(dest.name + ".sha256")
    if not dest.exists():
        return False
    if sha256 is None or (note.exists() and note.read_text().strip() == sha256):
        return True
    if sha256_file(dest) == sha256:
        note.write_text(sha256)
        return True
    dest.unlink()
    print(f"{dest} did not match its published SHA-256 (a partial or corrupt copy); "
          "deleted it, downloading it again", file=sys.stderr)
    return False


def _stream(url: str, part: Path, timeout: float, progress: bool) -> str:
    """Write ``url`` into ``part`` with a progress bar; returns the SHA-256 of what came."""
    import urllib.request

    from helpers import runtime

    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        if total and shutil.disk_usage(part.parent).free < total:
            raise OSError(errno.ENOSPC, "not enough space", str(part.parent))
        with open(part, "wb") as fh, runtime.progress(total=total, unit="B", unit_scale=True,
                                          desc=part.name.removesuffix(".part"),
                                          disable=not progress) as bar:
            while block := response.read(1 << 20):
                fh.write(block)
                digest.update(block)
                bar.update(len(block))
    return digest.hexdigest()


def download(url: str, dest: str | Path, sha256: str | None = None,
             timeout: float = 30.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` with a progress bar and check its SHA-256.

    The file is written to ``dest + ".part"`` and renamed only once complete and verified,
    so an interrupted download never leaves a file that looks finished. A verified file is
    remembered (a ``.sha256`` note beside it) and not hashed again.

    Raises:
        WeightsUnavailableError: no network, a server error, a hash mismatch or a full disk.
    """
    import urllib.error

    dest = Path(dest)
    if _verified_copy(dest, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        got = _stream(url, part, timeout, progress)
    except urllib.error.HTTPError as err:
        part.unlink(missing_ok=True)
        raise WeightsUnavailableError(
            f"the server answered HTTP {err.code} ({err.reason}) for {url}. The file may have "
            f"moved: check the address, download the file by hand to {dest}, or set "
            "HELPERS_TINY_MODELS=1 to use tiny random models."
        ) from err
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        part.unlink(missing_ok=True)
        reason = getattr(err, "reason", err)
        raise WeightsUnavailableError(
            f"could not download {url} ({reason}). The machine may be offline or the server "
            "unreachable. Connect to the internet and try again, download the file by hand "
            f"to {dest}, or set HELPERS_TINY_MODELS=1 to use tiny random models."
        ) from err
    except OSError as err:
        part.unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise WeightsUnavailableError(
                f"not enough disk space to download {url} into {dest.parent}. Free some "
                f"space or set {CACHE_ENV} to a folder on a larger disk."
            ) from err
        raise
    if sha256 is not None and got != sha256:
        part.unlink(missing_ok=True)
        raise WeightsUnavailableError(
            f"the file downloaded from {url} has SHA-256 {got}, not the published {sha256}: "
            "it is corrupt or not the official file. Nothing was kept; run the cell again "
            "to retry, or check the URL."
        )
    os.replace(part, dest)
    if sha256 is not None:
        dest.with_name(dest.name + ".sha256").write_text(sha256)
    return dest


def fetch(spec: ModelSpec) -> str:
    """A local path (file or folder) or hub id for ``spec``, downloading checkpoint files.

    Hub ids are returned as they are: the loaders' ``from_pretrained`` downloads them into
    the Hugging Face cache with its own progress bars.
    """
    if spec.is_tiny:
        from helpers import tiny

        return str(tiny.ensure(tiny.kind_of(spec)))
    if spec.is_url:
        dest = checkpoint_path(spec)
        if not dest.exists():
            _check_disk(spec, dest.parent)
        return str(download(spec.source, dest, sha256=spec.sha256))
    if Path(spec.source).exists():
        return spec.source
    if spec.size_bytes:
        from huggingface_hub.constants import HF_HUB_CACHE

        _check_disk(spec, Path(HF_HUB_CACHE))
    return spec.source


HUB_FILES = {"sd-inpaint": "model_index.json", "sd": "model_index.json"}
LORA_FILE = "pytorch_lora_weights.safetensors"
"""The file a LoRA repository or folder holds (diffusers' format)."""
PART_FILES = {"lora": LORA_FILE, "vae": "config.json"}
"""The file whose cached copy tells which commit a hub model was loaded from."""


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and every exception it was raised from or during (libraries wrap hub errors:
    diffusers raises a plain OSError chained from RepositoryNotFoundError)."""
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def classify(err: BaseException) -> str | None:
    """What went wrong when fetching from the hub: "gated", "gone" (no such repository),
    "revision" (no such commit or branch), "disk", "offline", or None (not a fetch error)."""
    from huggingface_hub import errors as hub

    chain = _chain(err)
    for kind, types in (("gated", (hub.GatedRepoError,)), ("gone", (hub.RepositoryNotFoundError,)),
                        ("revision", (hub.RevisionNotFoundError,))):
        if any(isinstance(e, types) for e in chain):
            return kind
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in chain):
        return "disk"
    offline = (hub.LocalEntryNotFoundError, hub.OfflineModeIsEnabled, ConnectionError,
               TimeoutError, hub.HfHubHTTPError)
    if any(isinstance(e, offline) or type(e).__module__.startswith(("httpx", "httpcore"))
           for e in chain):
        return "offline"
    return None


def translate_hub_error(spec: ModelSpec, err: Exception,
                        tried: tuple[str, ...] = ()) -> Exception:
    """A ``WeightsUnavailableError`` that says what to do, for a hub or disk error.

    Args:
        tried: hub ids tried before ``spec.source`` and found gone (mirrors).
    """
    kind = classify(err)
    where = f"{spec.name!r} ({spec.source})"
    if kind == "disk":
        return WeightsUnavailableError(
            f"ran out of disk space while fetching {where}. Free some space or set HF_HOME "
            "to a folder on a larger disk.")
    if kind == "gated":
        return WeightsUnavailableError(
            f"{spec.source!r} is gated: accept its licence on "
            f"https://huggingface.co/{spec.source}, log in with `hf auth login` (or set "
            "HF_TOKEN), then run the cell again.")
    if kind == "gone":
        gone = ", ".join(repr(s) for s in (*tried, spec.source))
        others = [n for n in names(spec.family) if not n.startswith("tiny-") and n != spec.name]
        return WeightsUnavailableError(
            f"the hub has no repository {gone} any more (model {spec.name!r}): it was removed "
            f"or renamed. Use another model ({', '.join(map(repr, others)) or 'none'}), or a "
            "mirror of it by its hub id.")
    if kind == "revision":
        return WeightsUnavailableError(
            f"{spec.source!r} has no commit or branch {spec.revision!r} on the hub, and it is "
            "not in the local cache: the files that made this image are gone, so it cannot "
            "be made again exactly. Pass revision=None for the current version.")
    if kind == "offline" and spec.revision and len(spec.revision) == 40:
        return WeightsUnavailableError(
            f"commit {spec.revision} of {spec.source!r} is not in this machine's Hugging Face "
            "cache and the hub cannot be reached, so that exact version cannot be loaded. "
            + offline_help(spec))
    text = str(err)
    first_line = text.splitlines()[0] if text else ""
    return WeightsUnavailableError(
        f"could not fetch {where}: {type(err).__name__}: {first_line}. " + offline_help(spec))


def hub_commit(spec: ModelSpec, source: str | None = None) -> str | None:
    """The commit a hub model was loaded from, read from the Hugging Face cache (None for
    a tiny model, a checkpoint URL, a local folder, or a file not in the cache)."""
    source = spec.source if source is None else source
    if spec.is_tiny or spec.is_url or Path(source).exists():
        return None
    from huggingface_hub import try_to_load_from_cache

    file = PART_FILES.get(spec.arch or "") or HUB_FILES.get(spec.family, "config.json")
    found = try_to_load_from_cache(source, file, revision=spec.revision)
    if not isinstance(found, str):
        return None
    commit = Path(found).parent.name
    return commit if len(commit) == 40 else None
