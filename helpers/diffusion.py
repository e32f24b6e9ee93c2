"""What the Stable Diffusion nouns share: a scheduler of their own, the model's defaults,
warnings for settings that do not suit it, and what a recipe says about the pipeline.

``Inpainter`` and ``Generator`` wrap a kernel-wide pipeline. Each holds its own scheduler
(``schedulers.make``) and lends it to the pipeline for every call, so two wrappers of one
pipeline can sample differently without changing what other cells draw.
"""

from __future__ import annotations

from typing import Any

from helpers import compat, lora, models, schedulers


class Diffusion(models.Pretrained):
    """A Stable Diffusion pipeline with its scheduler and default settings.

    Attributes:
        pipe: the diffusers pipeline (shared by the kernel).
        schedule: the ``schedulers.Schedule`` it samples with.
    """

    def __init__(self, loaded: models.Loaded, scheduler: str | None = None) -> None:
        super().__init__(loaded)
        self.pipe = loaded.model
        if scheduler is None and not self.spec.scheduler:  # a pipeline from elsewhere
            self._scheduler = self.pipe.scheduler
            known = schedulers.name_of(self._scheduler)
            cls = type(self._scheduler).__name__
            self.schedule = schedulers.get(known) if known else schedulers.Schedule(cls, cls)
        else:
            self.schedule = self._choose(scheduler)
            self._scheduler = schedulers.make(self.schedule.name, self.pipe.scheduler.config)

    def _choose(self, asked: str | None) -> schedulers.Schedule:
        """The scheduler asked for, else the model's; LCM is meant only for a model
        distilled for it (a warning says so)."""
        spec = self.spec
        name = asked or spec.scheduler or "pndm"
        chosen = schedulers.get(name)
        if name == "lcm" and not spec.adapter:
            compat.warn(f"the 'lcm' scheduler with {spec.name!r}: it needs a model distilled "
                        "for few steps (e.g. 'sd15-inpaint-lcm'); this one will give noisy "
                        "pictures")
        return chosen

    @staticmethod
    def _check_scheduler(scheduler: str | None) -> None:
        if scheduler is not None:
            schedulers.get(scheduler)  # an unknown name fails before any download

    @property
    def steps(self) -> int:
        """The default number of denoising steps (25 with DPM-Solver++, 4 with LCM)."""
        return self.schedule.steps

    @property
    def guidance_scale(self) -> float:
        """The default guidance scale (7.5; 1 for a few-step LCM model)."""
        return self.schedule.guidance

    def _defaults(self, steps: int | None,
                  guidance_scale: float | None) -> tuple[Any, Any]:
        """(steps, guidance) with the model's defaults for the ones left None."""
        return (self.steps if steps is None else steps,
                self.guidance_scale if guidance_scale is None else guidance_scale)

    def _advise(self, steps: int, guidance_scale: float, negative_prompt: str | None) -> None:
        """Warn, naming the learner's line, when checked settings do not suit the scheduler
        (50 steps or guidance 7.5 with LCM, a negative prompt at guidance <= 1)."""
        for said in schedulers.advice(self.schedule, steps, guidance_scale, negative_prompt):
            compat.warn(said)

    def sampling(self) -> Any:
        """A context in which the pipeline samples with this wrapper's scheduler."""
        return schedulers.using(self.pipe, self._scheduler)

    def has_lora(self) -> bool:
        """True when a LoRA was loaded on top of the model: a name cannot rebuild it, so
        its images carry no recipe."""
        return lora.has_adapters(self)

    def context(self) -> dict[str, Any]:
        """What a recipe says about the pipeline: source, dtype, scheduler class, and the
        LoRA (fused into the UNet at weight 1) and VAE that a few-step model adds."""
        spec = self.spec
        context: dict[str, Any] = {"source": spec.source,
                                   "dtype": str(self.pipe.dtype).replace("torch.", ""),
                                   "scheduler": type(self._scheduler).__name__}
        if spec.adapter:
            context["adapter"] = {"source": spec.adapter, "fused_weight": 1.0}
        if spec.vae:
            context["vae"] = spec.vae
        return context
