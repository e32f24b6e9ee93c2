"""What ``train`` returns and pictures of it: the loss curves and the validation grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from helpers.dreambooth.validation import ValidationImage

if TYPE_CHECKING:
    from PIL import Image


@dataclass
class DreamBoothResult:
    """What ``train`` made.

    Attributes:
        lora_dir: the folder with ``pytorch_lora_weights.safetensors`` (for ``lora.load``).
        final_loss: the training loss at the last step.
        history: one dict per step: step, loss, instance_loss, prior_loss (with prior
            preservation), lr.
        eval_losses: step -> loss on the fixed evaluation batch (every validation).
        validation: the validation images, in order of step then prompt.
        steps: optimiser steps done; seconds: wall time of this call.
        trainable_parameters, unet_parameters: LoRA size vs the UNet's.
        skipped: files of the instance folder that were not readable images, with why.
    """

    lora_dir: Path
    output_dir: Path
    final_loss: float
    history: list[dict[str, float]]
    eval_losses: dict[int, float]
    validation: list[ValidationImage]
    steps: int
    seconds: float
    trainable_parameters: int
    unet_parameters: int
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def losses(self) -> list[float]:
        """The training loss of every step."""
        return [h["loss"] for h in self.history]

    def validation_at(self, step: int) -> list[ValidationImage]:
        """The validation images drawn at ``step``."""
        return [v for v in self.validation if v.step == step]

    def validation_steps(self) -> list[int]:
        """The steps at which validation images were drawn, in order."""
        return sorted({v.step for v in self.validation})


def loss_curve(result: DreamBoothResult, smooth: int = 10) -> Image.Image:
    """The training loss (raw and smoothed), the prior loss and the evaluation loss by step."""
    import numpy as np
    from matplotlib.figure import Figure

    from helpers import viz

    if not result.history:
        raise ValueError("the run has no training steps to plot")
    steps = np.array([h["step"] for h in result.history])
    fig = Figure(figsize=(6.4, 3.4), dpi=100)
    ax = fig.add_subplot()

    def rgb(i: int) -> tuple[float, ...]:
        return tuple(c / 255 for c in viz.color(i))

    loss = np.array([h["instance_loss"] for h in result.history])
    ax.plot(steps, loss, color=rgb(0), alpha=0.3, lw=1)
    k = max(1, min(smooth, len(loss)))
    ax.plot(steps[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), color=rgb(0),
            lw=2, label=f"instance loss ({k}-step mean)")
    if "prior_loss" in result.history[0]:
        prior = np.array([h["prior_loss"] for h in result.history])
        ax.plot(steps[k - 1:], np.convolve(prior, np.ones(k) / k, mode="valid"),
                color=rgb(1), lw=2, label="prior loss")
    if result.eval_losses:
        xs = sorted(result.eval_losses)
        ax.plot(xs, [result.eval_losses[x] for x in xs], "o-", color=rgb(2), lw=2,
                label="fixed evaluation batch")
    ax.set_xlabel("step")
    ax.set_ylabel("denoising loss (MSE)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return viz.figure_image(fig)


def validation_grid(result: DreamBoothResult, cell: int = 160) -> Image.Image:
    """Validation images over training: one row per prompt, one column per step."""
    from helpers import viz

    steps = result.validation_steps()
    if not steps:
        raise ValueError("the run drew no validation images (validation_every=0)")
    prompts = list(dict.fromkeys(v.prompt for v in result.validation))
    by_key = {(v.step, v.prompt): v for v in result.validation}
    pictures, captions = [], []
    for prompt in prompts:
        for step in steps:
            v = by_key.get((step, prompt))
            if v is not None:
                pictures.append(v.image)
                captions.append(f"step {step}\n{prompt[:28]}")
    return viz.grid(pictures, captions, cols=len(steps), cell=cell)
