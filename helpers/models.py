"""Loading each model once per kernel, and the base class of the lesson nouns.

``load(name)`` resolves a name (``helpers.registry``), fetches the weights
(``helpers.weights``), builds the model with its family's loader, moves it to the device
and keeps it for the rest of the kernel: a second ``load`` with the same name, device and
dtype returns the same object at no cost. In tiny mode every name loads a tiny random model
of the same family through exactly the same loader.

``Pretrained`` is the base of ``clip.Embedder``, ``sam.Segmenter``, ``detect.Detector``,
``inpaint.Inpainter`` and ``generate.Generator``: one ``from_pretrained(name, device)``, one
``.name`` and ``.device``, one alias table (the registry's) and one error format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from helpers import compat, runtime
from helpers.registry import (  # noqa: F401  (re-exported: the registry's public face)
    CACHE_ENV,
    DIFFUSION_FAMILIES,
    FAMILIES,
    REGISTRY,
    TINY,
    ModelSpec,
    aliases,
    cache_dir,
    names,
    noun,
    resolve,
)
from helpers.weights import (  # noqa: F401  (re-exported)
    WeightsUnavailableError,
    download,
    fetch,
    offline_help,
    sha256_file,
    translate_hub_error,
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
            "tokens, so its files are missing. " + offline_help(spec)
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
    """``runtime.dtype``'s policy for ``family``: float16 on CUDA for the diffusion
    pipelines, float32 for everything else."""
    return runtime.dtype(device_name, diffusion=family in DIFFUSION_FAMILIES)


def load(name: str, device: str | None = None, dtype: Any = None,
         family: str | Sequence[str] | None = None, cached: bool = True) -> Loaded:
    """Load a model once per kernel and return it (with its processor) on ``device``.

    Args:
        name: a registry name (see ``names()``); with ``family``, also a hub id or folder.
        device: None for the best available device, or "cuda", "mps", "cpu".
        dtype: None for the family default (float16 on CUDA for diffusion models,
            float32 otherwise), or a torch dtype.
        family: restrict ``name`` to one family or several (the lesson nouns pass theirs);
            aliases such as ``"vit_b"`` and ``"tiny"`` are looked up within them.
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
        raise translate_hub_error(spec, err) from err
    except Exception as err:  # hub errors that are not OSErrors (e.g. offline entry missing)
        if spec.is_tiny or spec.is_url or "huggingface_hub" not in type(err).__module__:
            raise
        raise translate_hub_error(spec, err) from err
    loaded = Loaded(model, processor, replace(spec), source, dev, dtype)
    if cached:
        _CACHE[key] = loaded
    return loaded


def clear_cache() -> None:
    """Forget every loaded model (frees their memory once no cell holds them)."""
    _CACHE.clear()


# ---------------------------------------------------------------- the lesson nouns' base

class Pretrained:
    """The base of the classes that wrap one loaded model (``Embedder``, ``Segmenter``, ...).

    A subclass names the families it takes and its default model; ``from_pretrained``
    resolves a name or alias within those families, loads the model once per kernel and
    builds the wrapper. ``__init__`` also takes an already ``Loaded`` model, so tests and
    experiments can wrap a private copy (``load(..., cached=False)``).
    """

    families: ClassVar[tuple[str, ...]] = ()
    default: ClassVar[str] = ""

    def __init__(self, loaded: Loaded) -> None:
        if loaded.spec.family not in self.families:
            raise ValueError(
                f"{loaded.spec.name!r} is a {loaded.spec.family} model, but "
                f"{type(self).__name__} takes a {noun(self.families)} "
                f"({', '.join(names(self.families))})"
            )
        self.loaded = loaded
        self.device: str = loaded.device

    @classmethod
    def from_pretrained(cls, name: str | None = None, device: str | None = None) -> Any:
        """Load ``name`` (default ``cls.default``; a registry name, an alias such as
        ``"tiny"``, or for some families a hub id) on ``device`` (None: the best one present).

        Raises:
            ValueError: an unknown name or device, before anything is downloaded.
            WeightsUnavailableError: the weights cannot be fetched; the message says what
                to do.
        """
        return cls(cls._load(name, device))

    @classmethod
    def _load(cls, name: str | None, device: str | None, dtype: Any = None) -> Loaded:
        """The model ``name`` of this class's families (what ``from_pretrained`` wraps)."""
        return load(cls.default if name is None else name, device=device, dtype=dtype,
                    family=cls.families)

    @property
    def name(self) -> str:
        """The registry name of the model (``"tiny-sam"`` in tiny mode)."""
        return self.loaded.spec.name

    @property
    def spec(self) -> ModelSpec:
        """Where the loaded model came from (source, revision, family)."""
        return self.loaded.spec

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, device={self.device!r})"


__getattr__ = compat.moved(__name__, {
    "has_adapters": "lora.has_adapters (from helpers import lora)"})
