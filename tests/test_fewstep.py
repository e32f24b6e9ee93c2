"""Few-step diffusion: the LCM names, schedulers by name, and a DreamBooth LoRA on top."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from helpers import generate, inpaint, lora, models, registry, schedulers, tracking
from helpers import tiny as tiny_models


def photo() -> Image.Image:
    return Image.fromarray(np.random.default_rng(3).integers(0, 255, (72, 96, 3), np.uint8))


def mask() -> np.ndarray:
    m = np.zeros((72, 96), bool)
    m[16:56, 24:72] = True
    return m


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).copy()


@pytest.fixture(scope="module")
def fast() -> inpaint.Inpainter:
    return inpaint.Inpainter.from_pretrained("tiny-sd-inpaint-lcm", device="cpu")


@pytest.fixture(scope="module")
def subject_lora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA folder for the tiny UNet with other weights than the tiny LCM-LoRA (as a
    DreamBooth LoRA would be)."""
    import torch

    folder = tmp_path_factory.mktemp("subject") / "lora"
    folder.mkdir()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        tiny_models._build_lcm_lora(folder)
    return folder


def test_the_lcm_names_and_their_tiny_stand_ins(tiny: None) -> None:
    for name, family, standin in (("sd15-inpaint-lcm", "sd-inpaint", "tiny-sd-inpaint-lcm"),
                                  ("sd15-lcm", "sd", "tiny-sd-lcm")):
        spec = registry.REGISTRY[name]
        assert (spec.scheduler, spec.adapter, spec.vae) == ("lcm", registry.LCM_LORA,
                                                            registry.TAESD)
        assert registry.aliases(family)["lcm"] == name
        swapped = registry.resolve(name, family)  # tiny mode: the same kind of model
        assert swapped.name == standin and (swapped.adapter, swapped.vae) == ("tiny", "tiny")
        assert swapped.scheduler == "lcm"
    assert registry.resolve("sd15-inpaint").name == "tiny-sd-inpaint"  # plain stays plain


def test_outside_tiny_mode_the_lcm_names_are_the_real_ones() -> None:
    spec = registry.resolve("lcm", "sd-inpaint")
    assert spec.name == "sd15-inpaint-lcm" and spec.source == registry.REGISTRY[
        "sd15-inpaint"].source


@pytest.mark.parametrize("name", ["sd2-inpaint-lcm", "sd2-lcm", "lcm-sd2"])
def test_an_lcm_name_for_sd2_is_explained(name: str) -> None:
    with pytest.raises(ValueError, match="no few-step \\(LCM\\) version of SD 2.*sd15-inpaint-lcm"):
        inpaint.Inpainter.from_pretrained(name)


def test_an_lcm_model_loads_its_lora_scheduler_and_vae(fast: inpaint.Inpainter) -> None:
    assert fast.name == "tiny-sd-inpaint-lcm"
    assert (fast.schedule.name, fast.steps, fast.guidance_scale) == ("lcm", 4, 1.0)
    assert type(fast.pipe.vae).__name__ == "AutoencoderTiny"
    assert lora.weights(fast) == {} and not lora.has_adapters(fast)  # fused into the UNet


def test_an_lcm_image_is_reproducible_and_its_recipe_says_what_made_it(
        fast: inpaint.Inpainter, offline_runs: Path) -> None:
    made = fast.inpaint(photo(), mask(), "a red apple", seed=5)[0]
    again = fast.inpaint(photo(), mask(), "a red apple", seed=5)[0]
    assert np.array_equal(pixels(made), pixels(again))
    recipe = tracking.recipes.of(made)
    assert recipe is not None
    assert recipe.args["scheduler"] == "lcm" and recipe.args["steps"] == 4
    assert recipe.context["scheduler"] == "LCMScheduler"
    assert recipe.context["adapter"] == {"source": "tiny", "fused_weight": 1.0}
    assert recipe.context["vae"] == "tiny"
    run = tracking.start("lcm", online=False)
    record = run.log_image(made, "apple")
    run.end()
    models.clear_cache()  # reproduce loads the model afresh from the recipe
    assert np.array_equal(pixels(tracking.reproduce(record)), pixels(made))


def test_the_lcm_lora_is_fused_into_the_unet(fast: inpaint.Inpainter,
                                             painter: inpaint.Inpainter) -> None:
    """The attention weights the LoRA targets differ from the plain tiny model's by exactly
    the LoRA's product; the layers it leaves alone are the plain model's."""
    import torch
    from safetensors.torch import load_file

    from helpers import tiny as builds

    mine = dict(fast.pipe.unet.named_parameters())
    plain = dict(painter.pipe.unet.named_parameters())
    assert torch.equal(mine["conv_out.weight"], plain["conv_out.weight"])
    lora_file = builds.ensure("lcm-lora") / lora.LORA_FILE
    state = load_file(str(lora_file))
    target = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
    down = next(v for k, v in state.items() if target in k and ("lora_A" in k or "down" in k))
    up = next(v for k, v in state.items() if target in k and ("lora_B" in k or "up" in k))
    delta = mine[target + ".weight"] - plain[target + ".weight"]
    assert torch.allclose(delta, up @ down, atol=1e-6) and delta.abs().max() > 0


def test_a_dreambooth_lora_stacks_on_the_lcm_lora(fast: inpaint.Inpainter,
                                                  subject_lora: Path) -> None:
    alone = fast.inpaint(photo(), mask(), "a photo of sks dog", seed=1)[0]
    lora.load(fast, subject_lora)
    try:
        assert lora.weights(fast) == {"dreambooth": 1.0}  # on top of the fused LCM-LoRA
        assert lora.has_adapters(fast)
        both = fast.inpaint(photo(), mask(), "a photo of sks dog", seed=1)[0]
        assert tracking.recipes.of(both) is None  # a name cannot rebuild this pipeline
        assert not np.array_equal(pixels(both), pixels(alone))
        again = fast.inpaint(photo(), mask(), "a photo of sks dog", seed=1)[0]
        assert np.array_equal(pixels(both), pixels(again))  # reproducible
        lora.set_weight(fast, 0.0)  # the DreamBooth LoRA off: the LCM-only picture back
        assert lora.weights(fast) == {"dreambooth": 0.0}
        off = fast.inpaint(photo(), mask(), "a photo of sks dog", seed=1)[0]
        assert np.array_equal(pixels(off), pixels(alone))
        lora.set_weight(fast, 0.5)
        half = fast.inpaint(photo(), mask(), "a photo of sks dog", seed=1)[0]
        assert not np.array_equal(pixels(half), pixels(alone))
        assert not np.array_equal(pixels(half), pixels(both))
    finally:
        lora.unload(fast)
    assert lora.weights(fast) == {}
    after = fast.inpaint(photo(), mask(), "a photo of sks dog", seed=1)[0]
    assert np.array_equal(pixels(after), pixels(alone))


def test_two_loras_on_a_few_step_model_keep_their_own_weights(fast: inpaint.Inpainter,
                                                                 subject_lora: Path) -> None:
    lora.load(fast, subject_lora, adapter_name="one")
    lora.load(fast, subject_lora, weight=0.5, adapter_name="two")
    try:
        assert lora.weights(fast) == {"one": 1.0, "two": 0.5}
        lora.set_weight(fast, 0.25, "one")
        assert lora.weights(fast) == {"one": 0.25, "two": 0.5}
        with pytest.raises(ValueError, match="no LoRA named 'other'.*holds 'one', 'two'"):
            lora.set_weight(fast, 0.5, "other")
    finally:
        lora.unload(fast, "one")
        lora.unload(fast, "two")
    assert lora.weights(fast) == {}


@pytest.mark.parametrize(("kwargs", "said"), [
    ({"steps": 50}, "steps=50 with the 'lcm' scheduler: it is made for 4-8 steps"),
    ({"guidance_scale": 7.5}, "guidance_scale=7.5 with the 'lcm' scheduler"),
    ({"negative_prompt": "blurry"}, "negative_prompt 'blurry' has no effect at guidance_scale=1"),
])
def test_settings_that_do_not_suit_lcm_are_said(fast: inpaint.Inpainter, kwargs: dict[str, Any],
                                                said: str) -> None:
    with pytest.warns(UserWarning, match=said.replace("(", "\\(")):
        fast.inpaint(photo(), mask(), "an apple", steps=kwargs.get("steps", 2),
                     **{k: v for k, v in kwargs.items() if k != "steps"})


def test_the_defaults_suit_the_model_without_a_warning(fast: inpaint.Inpainter) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast.inpaint(photo(), mask(), "an apple", guidance_scale=1.5, negative_prompt="blur")
        fast.inpaint(photo(), mask(), "an apple")


def test_the_many_step_default_is_dpm_solver(painter: inpaint.Inpainter) -> None:
    assert painter.schedule.name == "dpm++" and painter.steps == 25
    assert type(painter._scheduler).__name__ == "DPMSolverMultistepScheduler"
    made = painter.inpaint(photo(), mask(), "an apple", steps=3)[0]
    assert tracking.recipes.of(made).args["scheduler"] == "dpm++"  # type: ignore[union-attr]
    # the kernel-wide pipeline keeps its own scheduler: the wrapper only lends its own
    assert type(painter.pipe.scheduler).__name__ == "PNDMScheduler"


def test_a_scheduler_by_name() -> None:
    painter = inpaint.Inpainter.from_pretrained("tiny", device="cpu")
    pndm = inpaint.Inpainter.from_pretrained("tiny", device="cpu", scheduler="pndm")
    assert pndm.pipe is painter.pipe  # the same pipeline, sampled differently
    a = pndm.inpaint(photo(), mask(), "an apple", steps=3)[0]
    b = painter.inpaint(photo(), mask(), "an apple", steps=3)[0]
    assert not np.array_equal(pixels(a), pixels(b))
    with pytest.raises(ValueError, match="unknown scheduler 'dpm'. Did you mean 'dpm\\+\\+'"):
        inpaint.Inpainter.from_pretrained("tiny", scheduler="dpm")
    with pytest.warns(UserWarning, match="'lcm' scheduler with 'tiny-sd-inpaint'"):
        inpaint.Inpainter.from_pretrained("tiny", scheduler="lcm")


def test_a_recipe_from_before_the_dpm_default_samples_as_it_did(
        painter: inpaint.Inpainter) -> None:
    pndm = inpaint.Inpainter.from_pretrained("tiny", device="cpu", scheduler="pndm")
    made = pndm.inpaint(photo(), mask(), "a pear", steps=3, seed=9)[0]
    recipe = tracking.recipes.of(made)
    assert recipe is not None
    args = {k: v for k, v in recipe.args.items() if k != "scheduler"}  # as recorded then
    old = {"kind": recipe.kind, "args": args, "context": {"scheduler": "PNDMScheduler"}}
    upgraded = tracking.recipes._upgraded(old)
    assert upgraded["args"]["scheduler"] == "pndm"
    again = inpaint._remake(**upgraded["args"], **recipe.inputs)
    assert np.array_equal(pixels(again), pixels(made))


def test_the_lcm_generator_and_its_recipe(offline_runs: Path, tiny: None) -> None:
    gen = generate.Generator.from_pretrained("lcm", device="cpu")
    assert gen.name == "tiny-sd-lcm" and gen.steps == 4
    image = gen.generate("a cat", seed=3, height=64, width=64)
    run = tracking.start("lcm-gen", online=False)
    record = run.log_image(image, "cat")
    run.end()
    assert record["recipe"]["args"]["scheduler"] == "lcm"
    assert np.array_equal(pixels(tracking.reproduce(record)), pixels(image))


def test_schedulers_by_name() -> None:
    assert schedulers.name_of("PNDMScheduler") == "pndm"
    assert schedulers.name_of("SomethingElse") is None
    assert schedulers.advice("dpm++", 50, 7.5) == []
    assert schedulers.advice("lcm", 4, 1.0) == []
    assert len(schedulers.advice("lcm", 20, 8.0, "blurry")) == 2  # guidance > 1: negative acts


def test_a_warning_names_the_learners_line_not_the_library(fast: inpaint.Inpainter) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast.sweep(photo(), mask(), "an apple", "guidance_scale", [7.5])  # sweep -> inpaint
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]
