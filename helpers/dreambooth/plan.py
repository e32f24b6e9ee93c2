"""What a run will cost, said before it starts: trainable size, time and memory.

``probe`` times one forward and backward pass on a real batch (nothing is updated), and
``describe`` turns it into the lines ``train`` prints before its first step: the LoRA's
share of the UNet, the data per step, the estimated time (with the validations) and the
memory measured so far.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from helpers import runtime
from helpers.dreambooth.config import DreamBoothConfig
from helpers.dreambooth.data import duration
from helpers.dreambooth.inputs import Inputs, batch_loss, sample_batch


def peak_memory_gb(device: Any) -> tuple[float, str]:
    """(peak memory in GB, what was measured): the GPU's allocator, else the process."""
    import resource

    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 1e9, "GPU"
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    scale = 1e9 if sys.platform == "darwin" else 1e6
    return peak_kb / scale, "process"


def probe(unet: Any, text_encoder: Any, scheduler: Any, cfg: DreamBoothConfig,
          inputs: Inputs, params: list[Any], device: Any, dtype: Any) -> float:
    """Seconds for one forward and backward pass on a real batch; nothing is updated."""
    import torch

    g = runtime.generator(cfg.seed + 999)
    batch = sample_batch(cfg, inputs, g, scheduler.config.num_train_timesteps)
    start = time.perf_counter()
    loss, _ = batch_loss(unet, text_encoder, scheduler, batch, inputs.klass is not None,
                         cfg.prior_loss_weight, device, dtype)
    loss.backward()
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    for p in params:
        p.grad = None
    return seconds


def describe(cfg: DreamBoothConfig, n_photos: int, n_class: int, trainable: int,
             total: int, step_seconds: float, validation_seconds: float | None,
             processes: int, device: Any, start_step: int) -> str:
    """The lines printed before training: size of the LoRA, time and memory to expect."""
    steps_left = cfg.max_steps - start_step
    micro = cfg.gradient_accumulation
    train_s = step_seconds * micro * steps_left
    validations = len({s for s in range(start_step + 1, cfg.max_steps + 1)
                       if s % cfg.validation_every == 0 or s == cfg.max_steps}
                      ) if cfg.validation_every else 0
    val_s = (validation_seconds or 0.0) * validations
    peak, where = peak_memory_gb(device)
    lines = [
        f"DreamBooth LoRA: {trainable:,} trainable parameters (rank {cfg.rank}) = "
        f"{100 * trainable / max(total, 1):.2f}% of the UNet's {total:,}.",
        f"Data: {n_photos} photo(s)" + (" + mirrored" if cfg.random_flip else "")
        + (f", {n_class} class image(s)" if n_class else "")
        + f"; {cfg.batch_size * processes * micro} photo(s) per step on {processes} "
          f"process(es), {device}, {cfg.resolution} px.",
        f"Estimate: {step_seconds * micro:.2f} s per step x {steps_left} steps = "
        f"{duration(train_s)}"
        + (f", plus {validations} validation(s) of {validation_seconds:.1f} s"
           if validation_seconds is not None and validations else "")
        + f" -> about {duration(train_s + val_s)} in all.",
        f"Memory: peak so far {peak:.2f} GB ({where}); training stays near it.",
    ]
    return "\n".join(lines)
