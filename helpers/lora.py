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
import math
import warnings
from pathlib import Path
from typing import Any

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
    ``lora/`` (a DreamBooth output folder); a checkpoint folder works too.

    Raises:
        FileNotFoundError: there is no LoRA there; the message says what was looked for.
    """
    root = Path(path)
    for candidate in (root, root / "lora"):
        if (candidate / LORA_FILE).is_file():
            return candidate
    raise FileNotFoundError(
        f"no LoRA in {str(root)!r}: expected {LORA_FILE} there or in its lora/ folder. Pass "
        "result.lora_dir from dreambooth.train, or a checkpoint folder."
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


def _activate(pipe: Any, chosen: dict[str, float]) -> None:
    """Make exactly the adapters of ``chosen`` act, each with its weight."""
    pipe._helpers_adapter_weights = dict(chosen)
    if chosen:
        pipe.set_adapters(list(chosen), adapter_weights=list(chosen.values()))


def _check_weight(weight: Any) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
            or not math.isfinite(weight):
        raise ValueError(f"weight {weight!r} must be a number (0: base model, 1: as trained)")
    return float(weight)


def _cross_attention_dim(path: Path) -> int | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        for key in fh.keys():  # noqa: SIM118  (safe_open has no __iter__)
            if key.startswith("unet.") and "attn2.to_k" in key and \
                    ("lora_A" in key or "lora.down" in key):
                return int(fh.get_slice(key).get_shape()[1])
    return None


def load(target: Any, path: str | Path, weight: float = 1.0,
         adapter_name: str = ADAPTER) -> Any:
    """Load a LoRA into ``target`` (an ``Inpainter``, a ``Generator`` or a pipeline).

    Loading again under the same ``adapter_name`` replaces the earlier one, so a cell can
    run twice. ``target`` is changed in place and returned.

    Args:
        path: ``result.lora_dir``, a DreamBooth output folder or a checkpoint folder.
        weight: how strongly the LoRA acts (0: not at all, 1: as trained).

    Raises:
        FileNotFoundError: no LoRA in ``path``.
        ValueError: a bad weight, or a LoRA trained for another model size than the
            pipeline's (checked before anything is loaded).
    """
    weight = _check_weight(weight)
    pipe = pipeline(target)
    root = folder(path)
    trained_dim = _cross_attention_dim(root / LORA_FILE)
    pipe_dim = pipe.unet.config.cross_attention_dim
    if trained_dim is not None and trained_dim != pipe_dim:
        info = root / INFO_FILE
        base = json.loads(info.read_text())["base_model"] if info.exists() else "another model"
        raise ValueError(
            f"the LoRA in {str(root)!r} was trained on {base!r}, whose UNet reads text "
            f"embeddings of size {trained_dim}, but this pipeline's UNet reads {pipe_dim}: "
            "load it into a pipeline of the same base model (SD 1.x LoRAs into SD 1.x "
            "pipelines, e.g. 'sd15' or 'sd15-inpaint')."
        )
    if adapter_name in adapters(pipe):
        pipe.delete_adapters(adapter_name)
    from diffusers.utils import logging as dif_logging

    level = dif_logging.get_verbosity()
    dif_logging.set_verbosity_error()  # not "no text-encoder LoRA found" for a UNet-only LoRA
    try:
        with warnings.catch_warnings():  # a second LoRA beside another is meant
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            pipe.load_lora_weights(str(root), weight_name=LORA_FILE, adapter_name=adapter_name)
    finally:
        dif_logging.set_verbosity(level)
    set_weight(pipe, weight, adapter_name)
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
        pipe.delete_adapters(adapter_name)
        del current[adapter_name]
        _activate(pipe, current)
    return target
