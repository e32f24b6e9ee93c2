"""``train``: the DreamBooth LoRA loop, on accelerate, in stages that each do one thing.

1. **set up**: a private copy of the base pipeline; class images (made once); photos and
   prompts encoded once (``inputs``); the text encoder released and the VAE cut down to its
   decoder; LoRA adapters added to the UNet (the only trainable weights); accelerate
   prepares the UNet, optimiser and schedule;
2. **resume** from a checkpoint, when asked;
3. **announce**: one measured step gives the cost estimate printed before training;
4. **steps**: each optimiser step samples its batch from a generator seeded by (seed,
   step), so a resumed run ends with exactly the weights of an uninterrupted one;
   validation and checkpoints at their intervals;
5. **finish**: the LoRA and its ``dreambooth.json`` saved in ``output_dir/lora``.

The same code runs in one process (a notebook) and under ``accelerate launch`` on several
GPUs or machines; only the main process logs and writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import compat, registry
from helpers.dreambooth import checkpoints, plan
from helpers.dreambooth.config import (
    TEXT_ENCODER_TARGETS,
    UNET_TARGETS,
    DreamBoothConfig,
    mixed_precision,
)
from helpers.dreambooth.data import InstancePhotos, class_images, instance_photos, load_pipeline
from helpers.dreambooth.inputs import (
    Inputs,
    batch_loss,
    eval_loss,
    prepare_inputs,
    sample_batch,
    step_generator,
)
from helpers.dreambooth.report import DreamBoothResult
from helpers.dreambooth.validation import ValidationImage, log_validation, validate


def train(config: DreamBoothConfig, run: Any = None,
          resume: str | Path | None = None) -> DreamBoothResult:
    """Train a DreamBooth LoRA on ``config.instance_dir`` and save it in ``output_dir/lora``.

    Args:
        config: the settings (see ``DreamBoothConfig``).
        run: a ``tracking.Run`` for parameters, the dataset version, metrics and validation
            images (main process only), or None.
        resume: None for a new run (``output_dir`` must not hold one), "latest" to continue
            from the newest checkpoint (or start when there is none; a finished run is
            returned as it is), or a checkpoint folder.

    Returns:
        A ``DreamBoothResult`` with the LoRA folder, final loss, loss history and the
        validation images.

    Raises:
        ValueError: a bad setting, an instance folder without photos, a prompt without the
            identifier, or an output folder that holds another run: before anything heavy.
    """
    from diffusers.training_utils import free_memory

    started = time.perf_counter()
    if not isinstance(config, DreamBoothConfig):
        raise ValueError(f"train takes a DreamBoothConfig (DreamBoothConfig(max_steps=...), or "
                         f"DreamBoothConfig.from_dict(d) for a dict), not {config!r:.60}")
    cfg = config.checked()
    photos = instance_photos(cfg.instance_dir)
    checkpoint = checkpoints.check_output(cfg, resume)
    done = checkpoints.finished(cfg.output_path, cfg)
    if done is not None:
        print(f"{cfg.output_path} already holds this run, finished at step {done.steps}: "
              "nothing to train. Use another output_dir to train again.")
        return done
    mode, use_cpu = mixed_precision(cfg)
    compat.reset_accelerate_state()
    from accelerate import Accelerator

    accelerator = Accelerator(gradient_accumulation_steps=cfg.gradient_accumulation,
                              mixed_precision=mode, cpu=use_cpu)
    try:
        session = _set_up(cfg, accelerator, photos, run)
        if checkpoint is not None:
            _resume(session, checkpoint)
        _announce(session)
        _steps(session)
        return _finish(session, started)
    finally:
        accelerator.end_training()
        accelerator.free_memory()  # the models, optimiser and scheduler it holds
        free_memory()


@dataclass
class _Session:
    """What the stages of one ``train`` call share."""

    cfg: DreamBoothConfig
    accelerator: Any
    photos: InstancePhotos
    run: Any
    pipe: Any
    inputs: Inputs
    class_paths: list[Path]
    unet: Any  # prepared by accelerate
    text_encoder: Any  # prepared, or None when it is frozen (and released)
    noise_scheduler: Any
    optimizer: Any
    lr_scheduler: Any
    params: list[Any]
    trainable: int
    unet_total: int
    start_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    eval_losses: dict[int, float] = field(default_factory=dict)
    validation: list[ValidationImage] = field(default_factory=list)
    validation_seconds: float | None = None

    @property
    def main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    @property
    def device(self) -> Any:
        return self.accelerator.device

    @property
    def dtype(self) -> Any:
        return _dtype(self.accelerator)

    @property
    def offload(self) -> bool:
        """Keep the VAE off an accelerator between validations."""
        return bool(self.device.type != "cpu")

    @property
    def raw_unet(self) -> Any:
        return self.accelerator.unwrap_model(self.unet)

    @property
    def raw_text(self) -> Any:
        if self.text_encoder is None:
            return None
        return self.accelerator.unwrap_model(self.text_encoder)


# ---------------------------------------------------------------- 1. set up

def _set_up(cfg: DreamBoothConfig, accelerator: Any, photos: InstancePhotos,
            run: Any) -> _Session:
    from accelerate.utils import set_seed
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler

    pipe, inputs, class_paths = _encoded_once(cfg, accelerator, photos)
    text_encoder = pipe.text_encoder if cfg.train_text_encoder else None
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    set_seed(cfg.seed)  # the adapters' initial weights
    params = add_lora(cfg, pipe.unet, pipe.vae, text_encoder)
    unet = pipe.unet
    trainable = sum(p.numel() for p in unet.parameters() if p.requires_grad)
    unet_total = sum(p.numel() for p in unet.parameters())
    optimizer = make_optimizer(cfg, params)
    processes = accelerator.num_processes
    lr_scheduler = get_scheduler(cfg.lr_scheduler, optimizer,
                                 num_warmup_steps=cfg.lr_warmup_steps * processes,
                                 num_training_steps=cfg.max_steps * processes)
    if text_encoder is not None:
        unet, text_encoder, optimizer, lr_scheduler = accelerator.prepare(
            unet, text_encoder, optimizer, lr_scheduler)
    else:
        unet, optimizer, lr_scheduler = accelerator.prepare(unet, optimizer, lr_scheduler)
    checkpoints.register_hooks(accelerator, unet, text_encoder, accelerator.is_main_process)
    session = _Session(cfg, accelerator, photos, run, pipe, inputs, class_paths, unet,
                       text_encoder, noise_scheduler, optimizer, lr_scheduler, params,
                       trainable, unet_total)
    pipe.unet = session.raw_unet  # validation draws with the adapted UNet
    if session.raw_text is not None:
        pipe.text_encoder = session.raw_text
    return session


def _encoded_once(cfg: DreamBoothConfig, accelerator: Any,
                  photos: InstancePhotos) -> tuple[Any, Inputs, list[Path]]:
    """(a private pipeline cut down for training, the inputs encoded once, class images)."""
    from diffusers.training_utils import free_memory

    device, dtype = accelerator.device, _dtype(accelerator)
    if accelerator.is_main_process:
        cfg.output_path.mkdir(parents=True, exist_ok=True)
        checkpoints.write_json(cfg.output_path / "config.json", cfg.to_dict())
    pipe = load_pipeline(cfg.base_model, str(device), dtype)
    class_paths: list[Path] = []
    if cfg.with_prior_preservation:
        with accelerator.main_process_first():
            class_paths = class_images(cfg, pipe=pipe)
    inputs = prepare_inputs(cfg, pipe, photos, class_paths, str(device))
    if not cfg.train_text_encoder:  # prompts are embedded already: the text encoder can go
        pipe.text_encoder = None
    pipe.vae.encoder = None  # validation only decodes
    if device.type != "cpu":
        pipe.vae.to("cpu")
    free_memory()
    return pipe, inputs, class_paths


def _dtype(accelerator: Any) -> Any:
    """The dtype the frozen weights run in: accelerate's mixed precision, else float32."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
        accelerator.mixed_precision, torch.float32)


def add_lora(cfg: DreamBoothConfig, unet: Any, vae: Any, text_encoder: Any) -> list[Any]:
    """Freeze the models, add LoRA adapters (the UNet's attention; the text encoder's when it
    trains) and return the trainable parameters, in float32 even under fp16."""
    import torch
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig

    for module in (unet, vae, text_encoder):
        if module is not None:
            module.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=cfg.rank, lora_alpha=cfg.rank, init_lora_weights="gaussian",
                                target_modules=list(UNET_TARGETS)))
    if text_encoder is not None:
        text_encoder.add_adapter(LoraConfig(r=cfg.rank, lora_alpha=cfg.rank,
                                            init_lora_weights="gaussian",
                                            target_modules=list(TEXT_ENCODER_TARGETS)))
    trained = [m for m in (unet, text_encoder) if m is not None]
    cast_training_params(trained, dtype=torch.float32)
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        if text_encoder is not None:
            text_encoder.gradient_checkpointing_enable()
    return [p for m in trained for p in m.parameters() if p.requires_grad]


def make_optimizer(cfg: DreamBoothConfig, params: list[Any]) -> Any:
    """AdamW (bitsandbytes' 8-bit AdamW with ``use_8bit_adam``) over the LoRA weights."""
    import torch

    if cfg.use_8bit_adam:
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=cfg.learning_rate, weight_decay=1e-2)
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=1e-2)


# ---------------------------------------------------------------- 2.-4. resume, announce, steps

def _resume(s: _Session, checkpoint: Path) -> None:
    s.accelerator.load_state(str(checkpoint))
    s.start_step, s.history, s.eval_losses, s.validation = checkpoints.read_progress(
        checkpoint, s.cfg.output_path, s.cfg)
    if s.main:
        print(f"Resuming from {checkpoint} (step {s.start_step} of {s.cfg.max_steps}).")


def _evaluate(s: _Session, step: int) -> None:
    """The evaluation loss and the validation images at ``step`` (once per step)."""
    if s.main and s.cfg.validation_every and step not in s.eval_losses:
        s.eval_losses[step] = eval_loss(s.raw_unet, s.raw_text, s.noise_scheduler, s.inputs,
                                        s.device, s.dtype)
        made = validate(s.cfg, s.pipe, s.raw_unet, s.raw_text, s.inputs, step,
                        s.cfg.output_path, s.device, s.offload)
        s.validation.extend(made)
        if s.run is not None:
            s.run.log_metrics({"eval_loss": s.eval_losses[step]}, step=step)
            log_validation(s.run, made, s.cfg)
    s.accelerator.wait_for_everyone()


def _announce(s: _Session) -> None:
    """Log the settings and the dataset, draw step 0, and print what training will cost."""
    s.unet.train()
    if s.text_encoder is not None:
        s.text_encoder.train()
    step_seconds = plan.probe(s.unet, s.text_encoder, s.noise_scheduler, s.cfg, s.inputs,
                              s.params, s.device, s.dtype)
    if s.run is not None and s.main:
        s.run.log_params({**s.cfg.to_dict(), "trainable_parameters": s.trainable,
                          "unet_parameters": s.unet_total,
                          "num_processes": s.accelerator.num_processes,
                          "training_device": str(s.device), "instance_photos": len(s.photos)})
        s.run.log_dataset(s.photos.folder, "dreambooth-instance")
        if s.photos.skipped:
            s.run.log_other("skipped_files", s.photos.skipped)
    if s.start_step == 0:
        t0 = time.perf_counter()
        _evaluate(s, 0)
        s.validation_seconds = time.perf_counter() - t0 if s.cfg.validation_every else None
    if s.main:
        print(plan.describe(s.cfg, len(s.photos), len(s.class_paths), s.trainable,
                            s.unet_total, step_seconds, s.validation_seconds,
                            s.accelerator.num_processes, s.device, s.start_step))


def _steps(s: _Session) -> None:
    from helpers import runtime

    cfg = s.cfg
    bar = runtime.progress(total=cfg.max_steps, initial=s.start_step, desc="DreamBooth",
               disable=not s.main, unit="step")
    try:
        for step in range(s.start_step, cfg.max_steps):
            record = optimizer_step(s, step)
            s.history.append(record)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}")
            if s.run is not None and s.main:
                s.run.log_metrics({k: v for k, v in record.items() if k != "step"},
                                  step=step + 1)
            done = step + 1
            if (cfg.validation_every and done % cfg.validation_every == 0) \
                    or done == cfg.max_steps:
                _evaluate(s, done)
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
                checkpoints.save_checkpoint(s.accelerator, cfg.output_path, done, s.history,
                                            s.eval_losses, s.validation)
    finally:
        bar.close()


def optimizer_step(s: _Session, step: int) -> dict[str, float]:
    """One optimiser step (``gradient_accumulation`` micro-batches); returns its losses and
    learning rate, averaged over micro-batches and processes."""
    acc, cfg = s.accelerator, s.cfg
    parts = []
    for micro in range(cfg.gradient_accumulation):
        g = step_generator(cfg.seed, step, micro, acc.process_index)
        batch = sample_batch(cfg, s.inputs, g, s.noise_scheduler.config.num_train_timesteps)
        with acc.accumulate(*[m for m in (s.unet, s.text_encoder) if m is not None]):
            loss, part = batch_loss(s.unet, s.text_encoder, s.noise_scheduler, batch,
                                    s.inputs.klass is not None, cfg.prior_loss_weight,
                                    acc.device, s.dtype)
            acc.backward(loss)
            if acc.sync_gradients and cfg.max_grad_norm > 0:
                acc.clip_grad_norm_(s.params, cfg.max_grad_norm)
            s.optimizer.step()
            s.lr_scheduler.step()
            s.optimizer.zero_grad(set_to_none=True)
        parts.append(part)
    record = _mean_parts(parts, acc)
    record.update(step=step + 1, lr=float(s.lr_scheduler.get_last_lr()[0]))
    return record


def _mean_parts(parts: list[dict[str, float]], accelerator: Any) -> dict[str, float]:
    """The micro-batches' losses averaged, and averaged over processes."""
    import torch

    keys = list(parts[0])
    local = torch.tensor([sum(p[k] for p in parts) / len(parts) for k in keys],
                         device=accelerator.device)
    if accelerator.num_processes > 1:
        local = accelerator.reduce(local, reduction="mean")
    return {k: float(v) for k, v in zip(keys, local.tolist())}


# ---------------------------------------------------------------- 5. finish

def _finish(s: _Session, started: float) -> DreamBoothResult:
    cfg, out = s.cfg, s.cfg.output_path
    final_loss = s.history[-1]["loss"] if s.history else float("nan")
    if s.main:
        checkpoints.save_lora(out / "lora", s.raw_unet, s.raw_text)
        checkpoints.write_progress(out / "progress.json", cfg.max_steps, s.history,
                                   s.eval_losses, s.validation, out)
        info = {"base_model": cfg.base_model,
                "model": registry.resolve(cfg.base_model, family="sd").name,
                "identifier": cfg.identifier, "instance_prompt": cfg.instance_prompt,
                "class_prompt": cfg.class_prompt, "rank": cfg.rank, "steps": cfg.max_steps,
                "resolution": cfg.resolution, "final_loss": final_loss,
                "trainable_parameters": s.trainable, "unet_parameters": s.unet_total,
                "cross_attention_dim": s.raw_unet.config.cross_attention_dim,
                "skipped": s.photos.skipped}
        checkpoints.write_json(out / "lora" / checkpoints.INFO_FILE, info)
        print(f"LoRA saved to {out / 'lora'} (final loss {final_loss:.4f}).")
        if s.run is not None:
            s.run.log_metrics({"final_loss": final_loss}, step=cfg.max_steps)
    s.accelerator.wait_for_everyone()
    return DreamBoothResult(
        lora_dir=out / "lora", output_dir=out, final_loss=final_loss, history=s.history,
        eval_losses=s.eval_losses, validation=s.validation, steps=cfg.max_steps,
        seconds=time.perf_counter() - started, trainable_parameters=s.trainable,
        unet_parameters=s.unet_total, skipped=s.photos.skipped)
