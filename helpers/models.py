"""The model registry: short names → where the weights live, and loading each model once.

Every model the course uses has a short name (``"clip-b32"``, ``"sam-vit-b"``, ...) that maps
to a Hugging Face hub id at a pinned revision, or to an official checkpoint URL with its
published SHA-256. ``load(name)`` fetches the weights (with a progress bar, into a cache),
builds the model, moves it to the device and keeps it for the rest of the kernel: a second
``load`` with the same name, device and dtype returns the same object at no cost.

In tiny mode (``HELPERS_TINY_MODELS=1``) every name resolves to a tiny random model of the
same family, built in code by ``helpers.tiny``, saved to a folder, and loaded back through
exactly the same loader as the real weights.

When weights cannot be fetched (no network, no disk space, a wrong name) the error says
what to do instead of showing a stack of HTTP internals.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from helpers import runtime

FAMILIES = ("sam", "clip", "owlvit", "owlv2", "grounding-dino", "sd-inpaint", "sd")
DIFFUSION_FAMILIES = ("sd-inpaint", "sd")
CACHE_ENV = "HELPERS_CACHE"


class WeightsUnavailableError(RuntimeError):
    """Model weights could not be fetched or read; the message says what to do."""


@dataclass(frozen=True)
class ModelSpec:
    """Where one model's weights live.

    Attributes:
        name: the short registry name.
        family: one of ``FAMILIES``; it decides which loader builds the model.
        source: a hub id (``"org/repo"``), an ``https://`` checkpoint URL, a local path,
            or ``"tiny"`` for the family's tiny random model.
        revision: the hub revision (commit or tag) for hub ids.
        sha256: the published SHA-256 of a checkpoint file (URLs only).
        size_bytes: the approximate download size, used to check free disk space first.
        arch: the architecture variant where the family has several (SAM: vit_b/l/h).
        description: one line for listings.
    """

    name: str
    family: str
    source: str
    revision: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    arch: str | None = None
    description: str = ""

    @property
    def is_tiny(self) -> bool:
        return self.source == "tiny"

    @property
    def is_url(self) -> bool:
        return self.source.startswith(("https://", "http://"))


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_GB = 1_000_000_000

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        # Segment Anything: the official checkpoints and the hashes published with them.
        ModelSpec("sam-vit-b", "sam", _SAM_URL + "sam_vit_b_01ec64.pth",
                  sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
                  size_bytes=375_042_383, arch="vit_b", description="SAM ViT-B (91M)"),
        ModelSpec("sam-vit-l", "sam", _SAM_URL + "sam_vit_l_0b3195.pth",
                  sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
                  size_bytes=1_250_000_000, arch="vit_l", description="SAM ViT-L (308M)"),
        ModelSpec("sam-vit-h", "sam", _SAM_URL + "sam_vit_h_4b8939.pth",
                  sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
                  size_bytes=2_564_550_879, arch="vit_h", description="SAM ViT-H (636M)"),
        # CLIP
        ModelSpec("clip-b32", "clip", "openai/clip-vit-base-patch32", revision="main",
                  size_bytes=int(0.6 * _GB), description="CLIP ViT-B/32"),
        ModelSpec("clip-l14", "clip", "openai/clip-vit-large-patch14", revision="main",
                  size_bytes=int(1.7 * _GB), description="CLIP ViT-L/14"),
        # Open-vocabulary detectors
        ModelSpec("owlvit-b32", "owlvit", "google/owlvit-base-patch32", revision="main",
                  size_bytes=int(0.6 * _GB), description="OWL-ViT B/32"),
        ModelSpec("owlvit-b16", "owlvit", "google/owlvit-base-patch16", revision="main",
                  size_bytes=int(0.6 * _GB), description="OWL-ViT B/16"),
        ModelSpec("owlv2-b16", "owlv2", "google/owlv2-base-patch16-ensemble", revision="main",
                  size_bytes=int(0.6 * _GB), description="OWLv2 B/16 (ensemble)"),
        ModelSpec("grounding-dino-tiny", "grounding-dino", "IDEA-Research/grounding-dino-tiny",
                  revision="main", size_bytes=int(0.7 * _GB), description="Grounding DINO T"),
        ModelSpec("grounding-dino-base", "grounding-dino", "IDEA-Research/grounding-dino-base",
                  revision="main", size_bytes=int(0.9 * _GB), description="Grounding DINO B"),
        # Stable Diffusion
        ModelSpec("sd2-inpaint", "sd-inpaint", "stabilityai/stable-diffusion-2-inpainting",
                  revision="main", size_bytes=int(5.2 * _GB), description="SD 2 inpainting"),
        ModelSpec("sd15-inpaint", "sd-inpaint",
                  "stable-diffusion-v1-5/stable-diffusion-inpainting", revision="main",
                  size_bytes=int(4.3 * _GB), description="SD 1.5 inpainting"),
        ModelSpec("sd15", "sd", "stable-diffusion-v1-5/stable-diffusion-v1-5", revision="main",
                  size_bytes=int(4.3 * _GB), description="SD 1.5 text-to-image"),
    ]
}
# One tiny random model per family: what tiny mode swaps in (see helpers.tiny).
TINY: dict[str, ModelSpec] = {
    family: ModelSpec(f"tiny-{family}", family, "tiny", arch="tiny",
                      description=f"tiny random {family} (tests and tiny mode)")
    for family in FAMILIES
}
REGISTRY.update({spec.name: spec for spec in TINY.values()})


def cache_dir() -> Path:
    """Where downloaded checkpoints and tiny models live (``HELPERS_CACHE`` or ~/.cache/helpers)."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "helpers")
    return Path(root)


def names(family: str | None = None) -> list[str]:
    """Registry names, optionally for one family only."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family {family!r} is not one of {', '.join(FAMILIES)}")
    return [n for n, s in REGISTRY.items() if family is None or s.family == family]


def resolve(name: str, family: str | None = None) -> ModelSpec:
    """The spec that ``name`` stands for, with tiny mode applied.

    Args:
        name: a registry name, or (with ``family``) a hub id ``"org/repo"`` or a local folder.
        family: required for names outside the registry, so the right loader is used.

    Raises:
        ValueError: the name is unknown (the message lists close matches), or belongs to
            another family than the one asked for.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"model name {name!r} must be a non-empty string, e.g. 'clip-b32'")
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family {family!r} is not one of {', '.join(FAMILIES)}")
    spec = REGISTRY.get(name)
    if spec is None:
        looks_like_source = "/" in name or os.sep in name or Path(name).exists()
        if family is not None and looks_like_source:
            spec = ModelSpec(name, family, name, description="user-supplied")
        else:
            pool = names(family)
            close = difflib.get_close_matches(name, pool, n=3, cutoff=0.4)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            extra = " (or a hub id 'org/repo' or a local folder)" if family else ""
            raise ValueError(
                f"unknown model name {name!r}.{hint} Known names: {', '.join(pool)}{extra}."
            )
    if family is not None and spec.family != family:
        raise ValueError(
            f"model {name!r} is a {spec.family} model, not {family}; "
            f"choose one of {', '.join(names(family))}"
        )
    if runtime.tiny_mode() and not spec.is_tiny:
        spec = TINY[spec.family]
    return spec


# ---------------------------------------------------------------- fetching weights

def _offline_help(spec: ModelSpec) -> str:
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
            f"{spec.size_bytes / _GB:.1f} GB and {folder} has {free / _GB:.1f} GB free. "
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
    import urllib.request

    from tqdm.auto import tqdm

    dest = Path(dest)
    note = dest.with_name(dest.name + ".sha256")
    if dest.exists():
        if sha256 is None or (note.exists() and note.read_text().strip() == sha256):
            return dest
        if sha256_file(dest) == sha256:
            note.write_text(sha256)
            return dest
        dest.unlink()
        print(f"{dest} did not match its published SHA-256 (a partial or corrupt copy); "
              "deleted it, downloading it again", file=sys.stderr)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            if total:
                free = shutil.disk_usage(dest.parent).free
                if free < total:
                    raise OSError(errno.ENOSPC, "not enough space", str(dest.parent))
            with open(part, "wb") as fh, tqdm(total=total, unit="B", unit_scale=True,
                                              desc=dest.name, disable=not progress) as bar:
                while block := response.read(1 << 20):
                    fh.write(block)
                    digest.update(block)
                    bar.update(len(block))
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
    got = digest.hexdigest()
    if sha256 is not None and got != sha256:
        part.unlink(missing_ok=True)
        raise WeightsUnavailableError(
            f"the file downloaded from {url} has SHA-256 {got}, not the published {sha256}: "
            "it is corrupt or not the official file. Nothing was kept; run the cell again "
            "to retry, or check the URL."
        )
    os.replace(part, dest)
    if sha256 is not None:
        note.write_text(sha256)
    return dest


def fetch(spec: ModelSpec) -> str:
    """A local path (file or folder) or hub id for ``spec``, downloading checkpoint files.

    Hub ids are returned as they are: the loaders' ``from_pretrained`` downloads them into
    the Hugging Face cache with its own progress bars.
    """
    if spec.is_tiny:
        from helpers import tiny

        return str(tiny.ensure(spec.family))
    if spec.is_url:
        folder = cache_dir() / "checkpoints"
        dest = folder / spec.source.rsplit("/", 1)[-1]
        if not dest.exists():
            _check_disk(spec, folder)
        return str(download(spec.source, dest, sha256=spec.sha256))
    if Path(spec.source).exists():
        return spec.source
    if spec.size_bytes:
        from huggingface_hub.constants import HF_HUB_CACHE

        _check_disk(spec, Path(HF_HUB_CACHE))
    return spec.source


def _translate_hub_error(spec: ModelSpec, err: Exception) -> Exception:
    text = str(err)
    kind = type(err).__name__
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return WeightsUnavailableError(
            f"ran out of disk space while fetching {spec.name!r} ({spec.source}). Free some "
            "space or set HF_HOME to a folder on a larger disk."
        )
    if "RepositoryNotFound" in kind or "404" in text and "Repository" in text:
        return WeightsUnavailableError(
            f"the hub has no repository {spec.source!r} (model {spec.name!r}). Check the "
            f"name; known names are {', '.join(names(spec.family))}."
        )
    if "Gated" in kind:
        return WeightsUnavailableError(
            f"{spec.source!r} is gated: accept its licence on the hub and log in with "
            "`hf auth login`, then run the cell again."
        )
    first_line = text.splitlines()[0] if text else ""
    return WeightsUnavailableError(
        f"could not fetch {spec.name!r} ({spec.source}): {kind}: {first_line}. "
        + _offline_help(spec)
    )


# ---------------------------------------------------------------- loaders per family

@dataclass
class Loaded:
    """A loaded model: the network, its pre/post-processor (None for pipelines), and where
    it came from."""

    model: Any
    processor: Any
    spec: ModelSpec
    path: str
    device: str
    dtype: Any


def _sam_architecture(spec: ModelSpec, path: Path) -> Any:
    if spec.arch == "tiny":
        from helpers import tiny

        return tiny.sam_architecture(path.parent)
    from segment_anything import sam_model_registry

    if spec.arch not in sam_model_registry:
        raise ValueError(f"SAM variant {spec.arch!r} is not one of vit_b, vit_l, vit_h")
    return sam_model_registry[spec.arch](checkpoint=None)


def _load_sam(spec: ModelSpec, source: str, device: str, dtype: Any) -> tuple[Any, Any]:
    import torch

    path = Path(source)
    if path.is_dir():
        path = path / "sam.pth"
    model = _sam_architecture(spec, path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as err:
        raise WeightsUnavailableError(
            f"could not read the SAM checkpoint {path}: {err}. Delete the file and run "
            "the cell again to download it afresh."
        ) from err
    model.load_state_dict(state)
    # SAM stays float32: its mask decoder is not reliable in half precision.
    return model.to(device).eval(), None


def _hf_classes(family: str) -> tuple[Any, Any]:
    import transformers as tf

    return {
        "clip": (tf.CLIPModel, tf.CLIPProcessor),
        "owlvit": (tf.OwlViTForObjectDetection, tf.OwlViTProcessor),
        "owlv2": (tf.Owlv2ForObjectDetection, tf.Owlv2Processor),
        "grounding-dino": (tf.AutoModelForZeroShotObjectDetection, tf.AutoProcessor),
    }[family]


def _load_transformers(spec: ModelSpec, source: str, device: str, dtype: Any) -> tuple[Any, Any]:
    model_cls, processor_cls = _hf_classes(spec.family)
    kwargs: dict[str, Any] = {"revision": spec.revision} if spec.revision else {}
    from transformers.utils import logging as hf_logging

    quiet = spec.is_tiny and hf_logging.is_progress_bar_enabled()
    if quiet:  # a tiny model loads in milliseconds: a progress bar is only noise
        hf_logging.disable_progress_bar()
    try:
        model = model_cls.from_pretrained(source, dtype=dtype, **kwargs)
        processor = processor_cls.from_pretrained(source, **kwargs)
    finally:
        if quiet:
            hf_logging.enable_progress_bar()
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None and len(tokenizer) < 100:
        # Offline, some tokenizers "load" as an empty two-token stub instead of failing.
        raise WeightsUnavailableError(
            f"the tokenizer of {spec.name!r} loaded from {source} has only {len(tokenizer)} "
            "tokens, so its files are missing. " + _offline_help(spec)
        )
    return model.to(device).eval(), processor


def _load_diffusers(spec: ModelSpec, source: str, device: str, dtype: Any) -> tuple[Any, Any]:
    import diffusers

    cls = (diffusers.StableDiffusionInpaintPipeline if spec.family == "sd-inpaint"
           else diffusers.StableDiffusionPipeline)
    kwargs: dict[str, Any] = {"revision": spec.revision} if spec.revision else {}
    from diffusers.utils import logging as dif_logging
    from transformers.utils import logging as hf_logging

    quiet = spec.is_tiny and dif_logging.is_progress_bar_enabled()
    if quiet:
        dif_logging.disable_progress_bar()
        hf_logging.disable_progress_bar()
    try:
        # The course shows every image it makes; the SD 1.x safety checker (1.2 GB) is left out.
        pipe = cls.from_pretrained(source, dtype=dtype, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False,
                                   **kwargs)
    finally:
        if quiet:
            dif_logging.enable_progress_bar()
            hf_logging.enable_progress_bar()
    pipe = pipe.to(device)
    if spec.is_tiny:
        pipe.set_progress_bar_config(disable=True)
    return pipe, None


_LOADERS = {
    "sam": _load_sam,
    "clip": _load_transformers,
    "owlvit": _load_transformers,
    "owlv2": _load_transformers,
    "grounding-dino": _load_transformers,
    "sd-inpaint": _load_diffusers,
    "sd": _load_diffusers,
}
_CACHE: dict[tuple[str, str, str, str], Loaded] = {}


def default_dtype(family: str, device_name: str) -> Any:
    """float16 on CUDA for the diffusion pipelines; float32 for everything else."""
    import torch

    if family in DIFFUSION_FAMILIES:
        return runtime.dtype(device_name)
    return torch.float32


def load(name: str, device: str | None = None, dtype: Any = None,
         family: str | None = None, cached: bool = True) -> Loaded:
    """Load a model once per kernel and return it (with its processor) on ``device``.

    Args:
        name: a registry name (see ``names()``); with ``family``, also a hub id or folder.
        device: None for the best available device, or "cuda", "mps", "cpu".
        dtype: None for the family default (float16 on CUDA for diffusion models,
            float32 otherwise), or a torch dtype.
        family: restrict ``name`` to one family (the lesson modules pass theirs).
        cached: False loads a private copy, outside the per-kernel cache, for a caller
            that changes the model (training adds adapters and drops parts).

    Raises:
        ValueError: unknown name or device, before anything is downloaded.
        WeightsUnavailableError: the weights cannot be fetched; the message says what to do.
    """
    spec = resolve(name, family)
    dev = runtime.device(device)
    if dtype is None:
        dtype = default_dtype(spec.family, dev)
    # tiny models live under HELPERS_CACHE, so a changed cache folder means another model
    source_key = str(cache_dir()) if spec.is_tiny else spec.source
    key = (spec.name, source_key, dev, str(dtype))
    if cached and key in _CACHE:
        return _CACHE[key]
    source = fetch(spec)
    try:
        model, processor = _LOADERS[spec.family](spec, source, dev, dtype)
    except WeightsUnavailableError:
        raise
    except (OSError, ValueError) as err:
        if spec.is_tiny or spec.is_url:
            raise
        raise _translate_hub_error(spec, err) from err
    except Exception as err:  # hub errors that are not OSErrors (e.g. offline entry missing)
        if spec.is_tiny or spec.is_url or "huggingface_hub" not in type(err).__module__:
            raise
        raise _translate_hub_error(spec, err) from err
    loaded = Loaded(model, processor, replace(spec), source, dev, dtype)
    if cached:
        _CACHE[key] = loaded
    return loaded


def has_adapters(pipe: Any) -> bool:
    """True when a diffusers pipeline carries a loaded LoRA (its output is not the base model's)."""
    lister = getattr(pipe, "get_list_adapters", None)
    if lister is None:
        return False
    try:
        return any(lister().values())
    except (AttributeError, ValueError):
        return False


def clear_cache() -> None:
    """Forget every loaded model (frees their memory once no cell holds them)."""
    _CACHE.clear()
