"""Noise schedulers by short name: how a diffusion pipeline walks from noise to a picture.

A Stable Diffusion repository ships one scheduler (PNDM for SD 1.5), but the same trained
UNet can be sampled by others. The course uses three:

- ``"dpm++"`` (DPM-Solver++, the default for the many-step models): about 25 steps give
  what PNDM needs 50 for, so a picture costs half as much;
- ``"lcm"`` (the Latent Consistency scheduler): only with a model distilled for it, such as
  SD 1.5 with the LCM-LoRA (``"sd15-inpaint-lcm"``); 4 steps, guidance 1 to 2;
- ``"pndm"``: what the repositories ship (images made before the DPM default used it).

``make(name, config)`` builds one from a pipeline's scheduler config, ``using(pipe,
scheduler)`` lends it to a pipeline for one call, and ``advice(name, steps, guidance,
negative_prompt)`` says when settings do not suit the scheduler (many steps or strong
guidance with LCM). Importing this module is cheap: diffusers is imported when needed.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Schedule:
    """One scheduler choice: its diffusers class, settings and the defaults that suit it.

    Attributes:
        name: the short name (``"dpm++"``).
        cls: the diffusers class name.
        options: settings passed on top of the pipeline's scheduler config.
        steps, guidance: the default denoising steps and guidance scale with it.
        max_steps, max_guidance: beyond these the scheduler's pictures get no better (or
            worse): a call above them gets a warning. None: no such limit.
        note: one line for listings and warnings.
    """

    name: str
    cls: str
    options: dict[str, Any] = field(default_factory=dict)
    steps: int = 25
    guidance: float = 7.5
    max_steps: int | None = None
    max_guidance: float | None = None
    note: str = ""


SCHEDULES: dict[str, Schedule] = {s.name: s for s in [
    Schedule("dpm++", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"},
             steps=25, note="DPM-Solver++: 20-25 steps match PNDM at 50"),
    Schedule("unipc", "UniPCMultistepScheduler", steps=20, note="UniPC: about 20 steps"),
    Schedule("pndm", "PNDMScheduler", {"skip_prk_steps": True}, steps=50,
             note="PNDM, as the SD repositories ship it: about 50 steps"),
    Schedule("ddim", "DDIMScheduler", steps=50, note="DDIM: about 50 steps"),
    Schedule("lcm", "LCMScheduler", steps=4, guidance=1.0, max_steps=8, max_guidance=2.0,
             note="Latent Consistency: 2-8 steps, guidance 1-2, only with an LCM model"),
]}
"""The schedulers the course names, by short name."""


def get(name: str) -> Schedule:
    """The ``Schedule`` called ``name``.

    Raises:
        ValueError: an unknown name (the message lists close matches and the known ones).
    """
    if isinstance(name, str) and name in SCHEDULES:
        return SCHEDULES[name]
    close = difflib.get_close_matches(str(name), list(SCHEDULES), n=2, cutoff=0.4)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"unknown scheduler {name!r}.{hint} Known: {', '.join(SCHEDULES)}.")


def make(name: str, config: Any) -> Any:
    """A new scheduler ``name`` built from a pipeline's scheduler ``config`` (its noise
    schedule: betas, timesteps), with the schedule's own options on top."""
    import inspect

    import diffusers

    schedule = get(name)
    cls = getattr(diffusers, schedule.cls)
    takes = set(inspect.signature(cls.__init__).parameters)
    # only the settings this class has: not "skip_prk_steps was passed to LCMScheduler ..."
    shared = {k: v for k, v in dict(config).items() if k in takes}
    return cls.from_config(shared, **schedule.options)


def name_of(scheduler: Any) -> str | None:
    """The short name of a scheduler object or class name (``"PNDMScheduler"`` -> "pndm"),
    or None for one the course does not name."""
    cls = scheduler if isinstance(scheduler, str) else type(scheduler).__name__
    for schedule in SCHEDULES.values():
        if schedule.cls == cls and (isinstance(scheduler, str) or all(
                getattr(scheduler.config, k, v) == v for k, v in schedule.options.items())):
            return schedule.name
    return None


@contextlib.contextmanager
def using(pipe: Any, scheduler: Any) -> Iterator[Any]:
    """Lend ``scheduler`` to ``pipe`` for the calls inside the block, then put the
    pipeline's own back (pipelines are shared by the whole kernel)."""
    own = pipe.scheduler
    pipe.scheduler = scheduler
    try:
        yield pipe
    finally:
        pipe.scheduler = own


def advice(schedule: Schedule | str, steps: int, guidance_scale: float,
           negative_prompt: str | None = None) -> list[str]:
    """Why these settings will not give the picture the user expects with ``schedule`` (a
    ``Schedule`` or its name; empty when they suit it): too many steps or too strong
    guidance for LCM, a negative prompt that guidance <= 1 ignores."""
    if isinstance(schedule, str):
        schedule = get(schedule)
    name = schedule.name
    said = []
    if schedule.max_steps is not None and steps > schedule.max_steps:
        said.append(f"steps={steps} with the {name!r} scheduler: it is made for "
                    f"{schedule.steps}-{schedule.max_steps} steps, and more only cost time "
                    f"(the picture gets no better). Use steps={schedule.steps}.")
    if schedule.max_guidance is not None and guidance_scale > schedule.max_guidance:
        said.append(f"guidance_scale={guidance_scale:g} with the {name!r} scheduler: a "
                    f"few-step LCM model expects 1-{schedule.max_guidance:g}; stronger "
                    "guidance over-saturates and burns the picture. Use guidance_scale=1 "
                    "(or up to 2 for a negative prompt).")
    if negative_prompt and guidance_scale <= 1:
        said.append(f"negative_prompt {negative_prompt!r} has no effect at guidance_scale="
                    f"{guidance_scale:g}: it acts only through classifier-free guidance, "
                    "which runs above 1. Use guidance_scale=1.5 or more to apply it.")
    return said
