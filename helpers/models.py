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

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from helpers import compat, runtime
from helpers.registry import (  # noqa: F401  (re-exported: the registry's public face)
    ADAPTER,
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
    LORA_FILE,
    WeightsUnavailableError,
    classify,
    download,
    fetch,
    hub_commit,
    offline_help,
    parts,
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
    commit: str | None = None
    """The hub commit the files came from (None for tiny models, checkpoints, folders)."""


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

    if spec.arch == "hf":  # a transformers SamModel (SlimSAM): its processor comes along
        from helpers import sam_hf

        return sam_hf.load(source, spec.revision, device)
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
        "align": (tf.AlignModel, tf.AlignProcessor),
        "owlvit": (tf.OwlViTForObjectDetection, tf.OwlViTProcessor),
        "owlv2": (tf.Owlv2ForObjectDetection, tf.Owlv2Processor),
        "grounding-dino": (tf.AutoModelForZeroShotObjectDetection, tf.AutoProcessor),
        "clipseg": (tf.CLIPSegForImageSegmentation, tf.CLIPSegProcessor),
        "sam3": (tf.Sam3Model, tf.Sam3Processor),
        "sam2-video": (tf.Sam2VideoModel, tf.Sam2VideoProcessor),
        "whisper": (tf.WhisperForConditionalGeneration, tf.WhisperProcessor),
    }[family]


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No per-model "Loading weights" or "Loading pipeline components" bars and no library
    chatter while a model is built; the hub's download bars (one per file) stay, and so do
    errors."""
    from diffusers.utils import logging as dif_logging
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hook = hf_logging.set_tqdm_hook(
        lambda factory, args, kwargs: hf_logging.EmptyTqdm(*args, **kwargs))
    bar = dif_logging.is_progress_bar_enabled()
    logs = (hf_logging, dif_logging, hub_logging)
    levels = [log.get_verbosity() for log in logs]
    dif_logging.disable_progress_bar()  # diffusers' own bars only; the hub's are separate
    for log in logs:  # e.g. "Could not reach the Hub ... using cached commit" when offline
        log.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_tqdm_hook(hook)
        for log, level in zip(logs, levels):
            log.set_verbosity(level)
        if bar:
            dif_logging.enable_progress_bar()


def _load_transformers(spec: ModelSpec, source: str, device: str, dtype: Any) -> tuple[Any, Any]:
    import os

    # Some repositories (CLIPSeg, ALIGN) ship only pytorch_model.bin; on each such load
    # transformers would ask the hub's conversion bot for a safetensors copy from a
    # background thread. The lessons only read, so that request is switched off here
    # (unless the environment says otherwise).
    os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")
    model_cls, processor_cls = _hf_classes(spec.family)
    kwargs: dict[str, Any] = {"revision": spec.revision} if spec.revision else {}
    model = model_cls.from_pretrained(source, dtype=dtype, **kwargs)
    processor = processor_cls.from_pretrained(source, **kwargs)
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None and len(tokenizer) < 100:
        # Offline, some tokenizers "load" as an empty two-token stub instead of failing.
        raise WeightsUnavailableError(
            f"the tokenizer of {spec.name!r} loaded from {source} has only {len(tokenizer)} "
            "tokens, so its files are missing. " + offline_help(spec)
        )
    return model.to(device).eval(), processor


def _load_extra(spec: ModelSpec, arch: str, build: Any) -> Any:
    """Build a spec's LoRA (``arch`` "lora") or VAE ("vae") from its tiny build or hub id;
    a hub failure is told as one about that part (``weights.parts`` names it)."""
    source = (spec.adapter if arch == "lora" else spec.vae) or ""
    if source == "tiny":
        from helpers import tiny

        return build(str(tiny.ensure("lcm-lora" if arch == "lora" else "taesd")))
    part = next(p for p in parts(spec) if p.arch == arch)
    try:
        return build(source)
    except Exception as err:  # noqa: BLE001  (a hub error is ours to explain)
        if classify(err) is None and not isinstance(err, OSError):
            raise
        raise translate_hub_error(part, err) from err


def add_adapter(pipe: Any, spec: ModelSpec) -> None:
    """Load ``spec``'s own LoRA (the LCM-LoRA of a few-step name) into ``pipe`` as adapter
    ``registry.ADAPTER``, fetched from the hub or built tiny; a hub failure says what to do."""
    import warnings

    def into(where: str) -> None:
        with warnings.catch_warnings(), quiet_loading():  # beside a trained adapter: meant
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            pipe.load_lora_weights(where, weight_name=LORA_FILE, adapter_name=ADAPTER)

    _load_extra(spec, "lora", into)


def _load_diffusers(spec: ModelSpec, source: str, device: str, dtype: Any) -> tuple[Any, Any]:
    import diffusers

    cls = (diffusers.StableDiffusionInpaintPipeline if spec.family == "sd-inpaint"
           else diffusers.StableDiffusionPipeline)
    kwargs: dict[str, Any] = {"revision": spec.revision} if spec.revision else {}
    if spec.vae:  # built in, so the pipeline's latent scale follows this VAE
        kwargs["vae"] = _load_extra(spec, "vae", lambda where: (
            diffusers.AutoencoderTiny.from_pretrained(where, dtype=dtype)))
    # The course shows every image it makes; the SD 1.x safety checker (1.2 GB) is left out.
    pipe = cls.from_pretrained(source, dtype=dtype, safety_checker=None,
                               feature_extractor=None, requires_safety_checker=False, **kwargs)
    if spec.adapter:  # folded into the UNet's weights: each step costs what the plain
        add_adapter(pipe, spec)  # model's does (an unfused rank-64 LoRA adds about a quarter)
        pipe.fuse_lora(components=["unet"], lora_scale=1.0, adapter_names=[ADAPTER])
        pipe.unload_lora_weights()
    pipe = pipe.to(device)
    if spec.is_tiny:
        pipe.set_progress_bar_config(disable=True)
    return pipe, None


_LOADERS = {
    "sam": _load_sam,
    "clip": _load_transformers,
    "align": _load_transformers,
    "owlvit": _load_transformers,
    "owlv2": _load_transformers,
    "grounding-dino": _load_transformers,
    "clipseg": _load_transformers,
    "sam3": _load_transformers,
    "sam2-video": _load_transformers,
    "whisper": _load_transformers,
    "sd-inpaint": _load_diffusers,
    "sd": _load_diffusers,
}
_CACHE: dict[tuple[str, ...], Loaded] = {}


def default_dtype(family: str, device_name: str) -> Any:
    """``runtime.dtype``'s policy for ``family``: float16 on CUDA for the diffusion
    pipelines, float32 for everything else."""
    return runtime.dtype(device_name, diffusion=family in DIFFUSION_FAMILIES)


def load(name: str, device: str | None = None, dtype: Any = None,
         family: str | Sequence[str] | None = None, cached: bool = True,
         revision: str | None = None) -> Loaded:
    """Load a model once per kernel and return it (with its processor) on ``device``.

    Args:
        name: a registry name (see ``names()``); with ``family``, also a hub id or folder.
        device: None for the best available device, or "cuda", "mps", "cpu".
        dtype: None for the family default (float16 on CUDA for diffusion models,
            float32 otherwise), or a torch dtype.
        family: restrict ``name`` to one family or several (the lesson nouns pass theirs);
            aliases such as ``"vit_b"`` and ``"tiny"`` are looked up within them.
        cached: False loads a private copy, outside the per-kernel cache, for a caller
            that changes the model (training adds adapters and drops parts). On a CPU the
            cache keeps one diffusion pipeline: loading another, or a private copy of any,
            releases the one before.
        revision: a hub commit (as a recipe recorded it), branch or tag instead of the
            registry's; ignored for tiny models and checkpoint files.

    Returns:
        A ``Loaded`` whose ``commit`` is the hub commit the files came from.

    Raises:
        ValueError: unknown name or device, before anything is downloaded.
        WeightsUnavailableError: the weights cannot be fetched; the message says whether the
            repository is gone, gated, or out of reach, and what to do.
    """
    spec = resolve(name, family)
    dev = runtime.device(device)
    if dtype is None:
        dtype = default_dtype(spec.family, dev)
    if revision is not None:
        if not isinstance(revision, str) or not revision.strip():
            raise ValueError(f"revision {revision!r} must be a commit, branch or tag name")
        if spec.is_hub:
            spec = replace(spec, revision=revision)
    # tiny models live under HELPERS_CACHE, so a changed cache folder means another model
    source_key = str(cache_dir()) if spec.is_tiny else spec.source
    key = (spec.name, source_key, str(spec.revision), dev, str(dtype))
    if cached and key in _CACHE:
        return _CACHE[key]
    if spec.family in DIFFUSION_FAMILIES and dev == "cpu":
        # a laptop has room for one Stable Diffusion at a time, a private copy included
        _forget_pipelines(keep=key if cached else ())
    source = fetch(spec)
    with quiet_loading():
        loaded = _build(spec, source, dev, dtype)
    if cached:
        _CACHE[key] = loaded
    return loaded


def _build(spec: ModelSpec, source: str, dev: str, dtype: Any) -> Loaded:
    """Build ``spec`` from ``source``; a hub repository that is gone gives way to the
    spec's mirrors, in order, with a notice naming the one used."""
    candidates = [source, *spec.mirrors] if spec.is_hub else [source]
    gone: list[str] = []
    for candidate in candidates:
        try:
            model, processor = _LOADERS[spec.family](spec, candidate, dev, dtype)
        except WeightsUnavailableError:
            raise
        except Exception as err:  # noqa: BLE001  (sorted out below: ours to explain or not)
            kind = classify(err)
            if spec.is_tiny or spec.is_url or (kind is None and not isinstance(
                    err, (OSError, ValueError))):
                raise
            if kind == "gone" and candidate != candidates[-1]:
                gone.append(candidate)
                continue
            raise translate_hub_error(replace(spec, source=candidate), err,
                                      tuple(gone)) from err
        if gone:
            print(f"{spec.name}: {', '.join(gone)} is gone from the hub; loaded the mirror "
                  f"{candidate} instead.")
        used = replace(spec, source=candidate) if spec.is_hub else replace(spec)
        return Loaded(model, processor, used, candidate, dev, dtype,
                      hub_commit(used, candidate))
    raise AssertionError("unreachable: the last candidate returns or raises")


def _forget_pipelines(keep: tuple[str, ...]) -> None:
    """Drop every other diffusion pipeline on the CPU from the kernel's cache (each is
    about 4 GB in float32), with a notice; its memory is freed once no cell holds it."""
    import gc

    for key, held in list(_CACHE.items()):
        if key != keep and held.spec.family in DIFFUSION_FAMILIES and held.device == "cpu":
            del _CACHE[key]
            if not held.spec.is_tiny:
                print(f"Released {held.spec.name} from this kernel's models to make room "
                      "(one Stable Diffusion pipeline at a time on a CPU); a variable that "
                      "still holds it keeps it in memory until it is deleted.")
    gc.collect()


def loaded() -> list[dict[str, Any]]:
    """The models this kernel holds: name, source, commit, device and dtype of each."""
    return [{"name": m.spec.name, "source": m.spec.source, "commit": m.commit,
             "device": m.device, "dtype": str(m.dtype).replace("torch.", "")}
            for m in _CACHE.values()]


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
    def from_pretrained(cls, name: str | None = None, device: str | None = None, *,
                        revision: str | None = None) -> Any:
        """Load ``name`` (default ``cls.default``; a registry name, an alias such as
        ``"tiny"``, or for some families a hub id) on ``device`` (None: the best one
        present), at the hub ``revision`` (a commit a recipe recorded; None: the registry's).

        Raises:
            ValueError: an unknown name or device, before anything is downloaded.
            WeightsUnavailableError: the weights cannot be fetched; the message says what
                to do.
        """
        return cls(cls._load(name, device, revision=revision))

    @classmethod
    def _load(cls, name: str | None, device: str | None, dtype: Any = None,
              revision: str | None = None) -> Loaded:
        """The model ``name`` of this class's families (what ``from_pretrained`` wraps)."""
        return load(cls.default if name is None else name, device=device, dtype=dtype,
                    family=cls.families, revision=revision)

    @property
    def name(self) -> str:
        """The registry name of the model (``"tiny-sam"`` in tiny mode)."""
        return self.loaded.spec.name

    @property
    def commit(self) -> str | None:
        """The hub commit the weights came from (None for tiny models and checkpoints)."""
        return self.loaded.commit

    @property
    def spec(self) -> ModelSpec:
        """Where the loaded model came from (source, revision, family)."""
        return self.loaded.spec

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, device={self.device!r})"


__getattr__ = compat.moved(__name__, {
    "has_adapters": "lora.has_adapters (from helpers import lora)"})


if __name__ == "__main__":  # `python -m helpers.models`: the teacher's tool (list, fetch, doctor)
    import sys

    from helpers.teacher import main as _main

    sys.exit(_main())
