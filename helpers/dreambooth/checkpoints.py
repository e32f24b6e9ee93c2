"""The output folder of a run: checkpoints that resume exactly, the finished LoRA, and the
checks that keep a saved run from being overwritten.

``output_dir/`` holds ``config.json`` (the settings), ``checkpoints/step-NNNNNN/`` (LoRA
weights, optimiser, scheduler and random states, then ``progress.json`` written last, so
a checkpoint cut short is never taken for a complete one), ``validation/`` (the images),
``progress.json`` and, at the end, ``lora/`` (``pytorch_lora_weights.safetensors`` and
``dreambooth.json``). A checkpoint holds only the LoRA, a few MB, not the frozen UNet.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from helpers.dreambooth.config import SAME_ON_RESUME, DreamBoothConfig, has_word
from helpers.dreambooth.report import DreamBoothResult
from helpers.dreambooth.validation import ValidationImage
from helpers.lora import INFO_FILE, LORA_FILE
from helpers.tracking.record import write_json


def saved_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (their ``progress.json`` is written last), oldest first."""
    found = []
    for folder in (out / "checkpoints").glob("step-*"):
        match = re.fullmatch(r"step-(\d+)", folder.name)
        if match and (folder / "progress.json").exists():
            found.append((int(match.group(1)), folder))
    return sorted(found)


def check_folder(out: Path) -> None:
    """Refuse an output folder that is a file, lies under a file, or cannot be written,
    before anything is made (accelerate, the model)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir {str(out)!r} is a file, not a folder: choose another "
                         "output_dir (the file is left as it is)")
    parent = out
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"output_dir {str(out)!r} lies under {str(parent)!r}, which is a "
                         "file: choose another output_dir (the file is left as it is)")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"output_dir {str(out)!r} cannot be made: {str(parent)!r} is not "
                         "writable; choose a folder of your own")


def check_output(cfg: DreamBoothConfig, resume: str | Path | None) -> Path | None:
    """The checkpoint to resume from (or None), after checking that nothing saved is lost.

    Raises:
        ValueError: ``output_dir`` is a file or cannot be made; it holds a run and ``resume``
            is None; the resumed run used other settings; ``resume`` names no checkpoint.
    """
    if resume is not None and not isinstance(resume, (str, os.PathLike)):
        raise ValueError(f"resume={resume!r} must be None, 'latest' or a checkpoint folder")
    out = cfg.output_path
    check_folder(out)
    saved = saved_checkpoints(out)
    finished = (out / "lora" / LORA_FILE).exists()
    if resume is None:
        if saved or finished:
            what = (f"checkpoints at step {', '.join(str(s) for s, _ in saved)}" if saved
                    else "a finished LoRA")
            raise ValueError(
                f"output_dir {str(out)!r} already holds a DreamBooth run ({what}). Pass "
                "resume='latest' to continue it, or choose another output_dir; nothing was "
                "changed."
            )
        return None
    if resume == "latest" and finished and not saved:
        steps = json.loads((out / "lora" / INFO_FILE).read_text(encoding="utf-8")).get("steps")
        if steps != cfg.max_steps:
            raise ValueError(
                f"the run in {str(out)!r} finished at step {steps} and kept no checkpoint, so "
                f"it cannot go on to max_steps={cfg.max_steps}; use another output_dir (the "
                "finished LoRA stays where it is)."
            )
    if resume != "latest":
        folder = Path(resume)
        if not (folder / "progress.json").exists():
            raise ValueError(f"resume={str(resume)!r} is not a checkpoint folder (no "
                             "progress.json); pass 'latest' or a folder such as "
                             f"{str(out / 'checkpoints' / 'step-000100')!r}")
        saved = [(json.loads((folder / "progress.json").read_text())["step"], folder)]
    if (out / "config.json").exists():
        before = json.loads((out / "config.json").read_text(encoding="utf-8"))
        now = cfg.to_dict()
        changed = [f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in SAME_ON_RESUME
                   if before.get(k) != now[k]]
        if changed:
            raise ValueError(
                f"cannot resume the run in {str(out)!r}: it was trained with other settings "
                f"({'; '.join(changed)}). Use the same settings, or another output_dir for a "
                "new run."
            )
    return saved[-1][1] if saved else None


def _lora_layers(unet: Any, text_encoder: Any) -> dict[str, Any]:
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    layers = {"unet_lora_layers": convert_state_dict_to_diffusers(
        get_peft_model_state_dict(unet))}
    if text_encoder is not None:
        layers["text_encoder_lora_layers"] = convert_state_dict_to_diffusers(
            get_peft_model_state_dict(text_encoder))
    return layers


def save_lora(folder: Path, unet: Any, text_encoder: Any) -> None:
    """Save the LoRA weights of ``unet`` (and ``text_encoder``) in diffusers' format."""
    from diffusers import StableDiffusionPipeline

    StableDiffusionPipeline.save_lora_weights(str(folder), **_lora_layers(unet, text_encoder),
                                              safe_serialization=True)


def load_lora_state(folder: Path, unet: Any, text_encoder: Any) -> None:
    """Put the LoRA weights saved in a checkpoint back into the training models."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft.utils import set_peft_model_state_dict

    state, _ = StableDiffusionPipeline.lora_state_dict(str(folder))
    unet_state = convert_unet_state_dict_to_peft(
        {k.removeprefix("unet."): v for k, v in state.items() if k.startswith("unet.")})
    result = set_peft_model_state_dict(unet, unet_state, adapter_name="default")
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"the checkpoint {folder} does not fit this model: unexpected LoRA "
                         f"weights {result.unexpected_keys[:3]}")
    if text_encoder is not None:
        from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_peft

        text_state = {k.removeprefix("text_encoder."): v for k, v in state.items()
                      if k.startswith("text_encoder.")}
        set_peft_model_state_dict(
            text_encoder, convert_state_dict_to_peft(convert_state_dict_to_diffusers(text_state)),
            adapter_name="default")


def finished(out: Path, cfg: DreamBoothConfig) -> DreamBoothResult | None:
    """The saved result of a finished run of ``cfg`` in ``out``, or None."""
    info_path = out / "lora" / INFO_FILE
    if not info_path.exists():
        return None
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("steps") != cfg.max_steps:
        return None
    return result_from_disk(out, cfg, info, seconds=0.0)


def result_from_disk(out: Path, cfg: DreamBoothConfig, info: dict[str, Any],
                     seconds: float) -> DreamBoothResult:
    """The ``DreamBoothResult`` of a finished run, read back from its output folder."""
    _, history, eval_losses, validation = read_progress(out, out, cfg)
    return DreamBoothResult(
        lora_dir=out / "lora", output_dir=out, final_loss=float(info["final_loss"]),
        history=history, eval_losses=eval_losses, validation=validation,
        steps=int(info["steps"]), seconds=seconds,
        trainable_parameters=int(info["trainable_parameters"]),
        unet_parameters=int(info["unet_parameters"]), skipped=info.get("skipped", {}),
    )


def read_progress(folder: Path, out: Path, cfg: DreamBoothConfig
                  ) -> tuple[int, list[dict[str, float]], dict[int, float],
                             list[ValidationImage]]:
    """(step, loss history, evaluation losses, validation images) saved in a checkpoint."""
    progress = json.loads((folder / "progress.json").read_text(encoding="utf-8"))
    validation = [ValidationImage(v["step"], v["prompt"], out / v["file"],
                                  has_word(v["prompt"], cfg.identifier))
                  for v in progress["validation"]]
    return (int(progress["step"]), progress["history"],
            {int(k): v for k, v in progress["eval_losses"].items()}, validation)


def register_hooks(accelerator: Any, unet: Any, text_encoder: Any, main: bool) -> None:
    """Checkpoints hold only the LoRA weights (a few MB), not the frozen UNet."""
    raw_unet = accelerator.unwrap_model(unet)
    raw_text = accelerator.unwrap_model(text_encoder) if text_encoder is not None else None

    def save(models_: list[Any], weights: list[Any], folder: str) -> None:
        if main:
            save_lora(Path(folder), raw_unet, raw_text)
        weights.clear()

    def load(models_: list[Any], folder: str) -> None:
        load_lora_state(Path(folder), raw_unet, raw_text)
        models_.clear()

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


def write_progress(path: Path, step: int, history: list[dict[str, float]],
                   eval_losses: dict[int, float], validation: list[ValidationImage],
                   out: Path) -> None:
    """Write what a resume needs besides accelerate's state: the step, the loss history,
    the evaluation losses and the validation images (relative to ``out``)."""
    write_json(path, {
        "step": step, "history": history,
        "eval_losses": {str(k): v for k, v in eval_losses.items()},
        "validation": [{"step": v.step, "prompt": v.prompt,
                        "file": v.path.relative_to(out).as_posix()} for v in validation],
    })


def save_checkpoint(accelerator: Any, out: Path, step: int, history: list[dict[str, float]],
                    eval_losses: dict[int, float], validation: list[ValidationImage]) -> None:
    """Optimizer, scheduler, RNG states and LoRA weights; ``progress.json`` last, so a
    checkpoint cut short is never taken for a complete one."""
    folder = out / "checkpoints" / f"step-{step:06d}"
    accelerator.wait_for_everyone()
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        write_progress(folder / "progress.json", step, history, eval_losses, validation, out)
        write_progress(out / "progress.json", step, history, eval_losses, validation, out)
    accelerator.wait_for_everyone()
