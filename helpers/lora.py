r"""Using a LoRA: load one into a Stable Diffusion pipeline, weigh it, take it out again.

A LoRA (for instance the one ``dreambooth.train`` saves) is a small set of low-rank weights
beside a UNet's attention layers. The inpainting UNet of a model family shares those
layers with the text-to-image UNet, so the same file loads into both::

    painter = inpaint.Inpainter.from_pretrained("sd15-inpaint")
    lora.load(painter, result.lora_dir)      # or a generate.Generator, or a raw pipeline
    lora.set_weight(painter, 0.5)            # 0: exactly the base model's pixels
    lora.unload(painter)

A LoRA stacks on a few-step model (``"sd15-inpaint-lcm"``, whose LCM-LoRA is fused into
its weights): both act, and ``set_weight`` scales the loaded one only. Several LoRAs
under different ``adapter_name`` values act together, each with its own weight.

Pipelines are shared by the whole kernel (``models.load`` keeps one per name), so a LoRA
loaded into one changes what every cell that uses it draws, until ``unload``. Images made
by a pipeline that carries a LoRA have no recipe: a model name alone cannot rebuild it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from helpers import checks
from helpers.weights import LORA_FILE  # noqa: F401  (the file a LoRA folder holds)

INFO_FILE = "dreambooth.json"
"""Beside the LoRA: the base model, prompts and settings it was trained with."""
ADAPTER = "dreambooth"
"""The adapter name ``load`` uses by default."""


def pipeline(target: Any) -> Any:
    """The diffusers pipeline of ``target``: an ``Inpainter`` or ``Generator`` (its
    ``.pipe``) or a pipeline itself."""
    pipe = getattr(target, "pipe", target)
    if not hasattr(pipe, "load_lora_weights"):
        raise TypeError(f"{type(target).__name__} is not a Stable Diffusion pipeline, an "
                        "Inpainter or a Generator; a LoRA loads into one of those")
    return pipe


def folder(path: str | Path) -> Path:
    """The folder holding ``pytorch_lora_weights.safetensors``: ``path`` itself, or its
    ``lora/`` (a DreamBooth output folder); a checkpoint folder, or the file itself, works too.

    Raises:
        FileNotFoundError: there is no LoRA there; the message says what was looked for.
    """
    root = Path(path)
    if root.name == LORA_FILE and root.is_file():  # the file itself
        return root.parent
    for candidate in (root, root / "lora"):
        if (candidate / LORA_FILE).is_file():
            return candidate
    found = ("the path does not exist" if not root.exists() else
             "it is a file, not a folder" if root.is_file() else "the folder lacks it")
    raise FileNotFoundError(
        f"no LoRA in {str(root)!r}: expected {LORA_FILE} there or in its lora/ folder "
        f"({found}). Pass result.lora_dir from dreambooth.train, or a checkpoint folder."
    )


def adapters(target: Any) -> set[str]:
    """The names of the LoRA adapters loaded into ``target``'s pipeline."""
    lister = getattr(pipeline(target), "get_list_adapters", None)
    if lister is None:
        return set()
    return {name for found in lister().values() for name in found}


def has_adapters(target: Any) -> bool:
    """True when ``target`` carries a LoRA loaded on top of its model (its output is not
    the model's own: a name cannot rebuild it). The LCM-LoRA of a few-step name is fused
    into its weights, so it is part of the model and does not count.

    Anything that is not a LoRA-capable pipeline has none.
    """
    try:
        return bool(adapters(target))
    except (TypeError, AttributeError, ValueError):
        return False


def weights(target: Any) -> dict[str, float]:
    """adapter name -> the weight it acts with, for every LoRA loaded into ``target``."""
    pipe = pipeline(target)
    kept = getattr(pipe, "_helpers_adapter_weights", {})
    return {name: float(kept.get(name, 1.0)) for name in sorted(adapters(pipe))}


def _delete(pipe: Any, names: list[str]) -> None:
    """Delete adapters, quietly: peft's "... was active which is now deleted" is meant."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Adapter .* was active which is now deleted")
        pipe.delete_adapters(names)


def _activate(pipe: Any, chosen: dict[str, float]) -> None:
    """Make exactly the adapters of ``chosen`` act, each with its weight."""
    pipe._helpers_adapter_weights = dict(chosen)
    if chosen:
        pipe.set_adapters(list(chosen), adapter_weights=list(chosen.values()))


def _check_weight(weight: Any) -> float:
    return checks.number("weight", weight, hint="0: base model, 1: as trained")


_AGAIN = ("train it again with dreambooth.train, or point to the folder it wrote "
          "(result.lora_dir)")
_HALVES = {".lora_A.weight": "A", ".lora_B.weight": "B",  # peft's names (diffusers >= 0.26)
           ".lora.down.weight": "A", ".lora.up.weight": "B"}  # diffusers' older names
_INCOMING = "helpers_incoming"
"""The name a LoRA loads under first when it replaces one: the old one stays until it fits."""


def _trained_on(root: Path) -> str:
    """The base model named in the folder's ``dreambooth.json``, or 'another model'."""
    try:
        base = json.loads((root / INFO_FILE).read_text(encoding="utf-8"))["base_model"]
    except (OSError, ValueError, KeyError, TypeError):
        return "another model"
    return repr(base) if isinstance(base, str) else "another model"


def check_file(path: str | Path) -> dict[str, tuple[int, ...]]:
    """tensor name -> shape for every tensor of a LoRA file, each read once to prove the
    file whole; nothing is loaded into a pipeline.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is empty, cut off, damaged, of another format (a pickle
            written by ``torch.save``), holds no LoRA tensors, or holds NaN or infinity;
            the message names the file and says what to do.
    """
    import torch
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"the LoRA file {str(path)!r} does not exist; {_AGAIN}")
    if path.stat().st_size == 0:
        raise ValueError(f"the LoRA file {str(path)!r} is empty (0 bytes): it was not "
                         f"written to the end; {_AGAIN}")
    with open(path, "rb") as fh:
        head = fh.read(9)
    safetensors_like = len(head) == 9 and head[8:9] == b"{"  # 8-byte length, then JSON
    if not safetensors_like and (head[:2] == b"PK" or head[:1] == b"\x80"):
        raise ValueError(f"the LoRA file {str(path)!r} is a PyTorch pickle (torch.save), "
                         "not safetensors: save it with save_lora_weights(..., "
                         f"safe_serialization=True), or {_AGAIN}")
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118  (safe_open has no __iter__)
                tensor = fh.get_tensor(key)  # damaged bytes show here, not mid-load
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    raise ValueError(f"the LoRA file {str(path)!r} holds NaN or infinite "
                                     f"values in {key!r} (training diverged); {_AGAIN}")
                shapes[key] = tuple(tensor.shape)
    except SafetensorError as err:
        raise ValueError(f"the LoRA file {str(path)!r} is damaged, cut off or not a "
                         f"safetensors file ({err}); {_AGAIN}") from None
    if not any("lora" in key.lower() for key in shapes):
        what = f"tensors such as {next(iter(shapes))!r}" if shapes else "no tensors at all"
        raise ValueError(f"the LoRA file {str(path)!r} holds no LoRA weights ({what}); "
                         f"{_AGAIN}")
    return shapes


def _cross_attention_dim(shapes: dict[str, tuple[int, ...]]) -> int | None:
    for key, shape in shapes.items():
        if key.startswith("unet.") and "attn2.to_k" in key and \
                ("lora_A" in key or "lora.down" in key) and len(shape) >= 2:
            return int(shape[1])
    return None


def _misfits(pipe: Any, shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """What in the LoRA does not fit ``pipe``'s layers: missing layers, other sizes, a
    lora_A of another rank than its lora_B. Keys of formats diffusers converts itself
    (kohya's ``lora_unet_...``) are left to diffusers."""
    layers: dict[tuple[str, str], dict[str, tuple[int, ...]]] = {}
    for key, shape in shapes.items():
        component, _, rest = key.partition(".")
        for suffix, half in _HALVES.items():
            if rest.endswith(suffix):
                layers.setdefault((component, rest[:-len(suffix)]), {})[half] = shape
    found = []
    for (component, name), halves in layers.items():
        model = getattr(pipe, component, None)
        where = f"{component}.{name}"
        if model is None or not hasattr(model, "get_submodule"):
            found.append(f"{where} (this pipeline has no {component})")
            continue
        try:
            layer = model.get_submodule(name)
        except AttributeError:
            found.append(f"{where} (no such layer here)")
            continue
        base = getattr(layer, "base_layer", layer)  # a layer that already carries a LoRA
        a, b = halves.get("A"), halves.get("B")
        if a is None or b is None or len(a) < 2 or len(b) < 2:
            found.append(f"{where} (only half of its low-rank pair: lora_A and lora_B "
                         "go together)")
            continue
        if a[0] != b[1]:
            found.append(f"{where} (lora_A has rank {a[0]}, lora_B rank {b[1]})")
            continue
        size_in = getattr(base, "in_features", getattr(base, "in_channels", a[1]))
        size_out = getattr(base, "out_features", getattr(base, "out_channels", b[0]))
        if (a[1], b[0]) != (size_in, size_out):
            found.append(f"{where} (the LoRA maps {a[1]} -> {b[0]} features, the layer "
                         f"{size_in} -> {size_out})")
    return found


def _check_fits(pipe: Any, root: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    trained_dim = _cross_attention_dim(shapes)
    pipe_dim = pipe.unet.config.cross_attention_dim
    if trained_dim is not None and trained_dim != pipe_dim:
        raise ValueError(
            f"the LoRA in {str(root)!r} was trained on {_trained_on(root)}, whose UNet reads "
            f"text embeddings of size {trained_dim}, but this pipeline's UNet reads "
            f"{pipe_dim}: load it into a pipeline of the same base model (SD 1.x LoRAs into "
            "SD 1.x pipelines, e.g. 'sd15' or 'sd15-inpaint')."
        )
    misfits = _misfits(pipe, shapes)
    if misfits:
        more = f" and {len(misfits) - 3} more" if len(misfits) > 3 else ""
        raise ValueError(
            f"the LoRA in {str(root)!r} does not fit this pipeline's model: "
            f"{'; '.join(misfits[:3])}{more}. It was trained on {_trained_on(root)}: load it "
            f"into a pipeline of that model, or {_AGAIN}"
        )


def _load_file(pipe: Any, root: Path, adapter_name: str) -> None:
    from diffusers.utils import logging as dif_logging

    level = dif_logging.get_verbosity()
    # Quiet: not "no text-encoder LoRA found" for a UNet-only LoRA, and not diffusers' own
    # log of a failure, which load() raises again with what to do.
    dif_logging.set_verbosity(dif_logging.CRITICAL)
    try:
        with warnings.catch_warnings():  # a second LoRA beside another is meant
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            pipe.load_lora_weights(str(root), weight_name=LORA_FILE, adapter_name=adapter_name)
    finally:
        dif_logging.set_verbosity(level)
    if adapter_name not in adapters(pipe):
        raise ValueError("no layer of this pipeline took any of its weights")


def load(target: Any, path: str | Path, weight: float = 1.0,
         adapter_name: str = ADAPTER) -> Any:
    """Load a LoRA into ``target`` (an ``Inpainter``, a ``Generator`` or a pipeline).

    Loading again under the same ``adapter_name`` replaces the earlier one, so a cell can
    run twice. ``target`` is changed in place and returned. The file is read and checked
    against the pipeline's layers first; a load that fails all the same is taken back, so
    the pipeline holds the LoRAs (and weights) it held before.

    Args:
        path: ``result.lora_dir``, a DreamBooth output folder or a checkpoint folder.
        weight: how strongly the LoRA acts (0: not at all, 1: as trained).

    Raises:
        FileNotFoundError: no LoRA in ``path``.
        ValueError: a bad weight; a LoRA file that is empty, damaged, cut off or of another
            format; or a LoRA trained for another model than the pipeline's (checked
            before anything is loaded).
    """
    weight = _check_weight(weight)
    if not isinstance(adapter_name, str) or not adapter_name.strip():
        raise ValueError(f"adapter_name {adapter_name!r} must be a name such as 'dreambooth'")
    pipe = pipeline(target)
    root = folder(path)
    _check_fits(pipe, root, check_file(root / LORA_FILE))
    before = weights(pipe)
    incoming = _INCOMING if adapter_name in before else adapter_name
    try:
        _load_file(pipe, root, incoming)
    except Exception as err:
        if incoming in adapters(pipe):
            _delete(pipe, [incoming])
        _activate(pipe, before)
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise ValueError(f"the LoRA in {str(root)!r} could not be loaded into this pipeline "
                         f"({reason}); the pipeline is as it was. Load it into the base model "
                         f"it was trained on ({_trained_on(root)}), or {_AGAIN}") from err
    if incoming != adapter_name:  # it fits: now replace the old one under its name
        _delete(pipe, [incoming, adapter_name])
        _load_file(pipe, root, adapter_name)
    _activate(pipe, {**before, adapter_name: weight})
    return target


def set_weight(target: Any, weight: float, adapter_name: str = ADAPTER) -> Any:
    """Scale one loaded LoRA: 0 turns it off (the pixels of the model without it), 1 is as
    trained. Other loaded LoRAs keep their weights."""
    weight = _check_weight(weight)
    pipe = pipeline(target)
    current = weights(pipe)
    if adapter_name not in current:
        raise ValueError(f"no LoRA named {adapter_name!r} in this pipeline (it holds "
                         f"{', '.join(map(repr, current)) or 'none'}); load one with "
                         "lora.load(target, folder)")
    _activate(pipe, {**current, adapter_name: weight})
    return target


def unload(target: Any, adapter_name: str = ADAPTER) -> Any:
    """Remove a loaded LoRA, so the (kernel-wide cached) pipeline is its model again; the
    adapters that stay keep their weights."""
    pipe = pipeline(target)
    current = weights(pipe)
    if adapter_name in current:
        _delete(pipe, [adapter_name])
        del current[adapter_name]
        _activate(pipe, current)
    return target
