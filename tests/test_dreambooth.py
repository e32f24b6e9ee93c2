"""DreamBooth LoRA training in tiny mode: it learns, saves, loads, resumes and runs distributed."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import compat, dreambooth, generate, images, inpaint, lora, models, tracking, widgets
from helpers.dreambooth import cli
from helpers.dreambooth.config import IMAGE_SUFFIXES

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(resolution=64, num_class_images=2, sample_steps=2, learning_rate=3e-2)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tiny mode, runs and Comet kept in a temporary folder, for the whole module."""
    root = tmp_path_factory.mktemp("dreambooth")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HELPERS_TINY_MODELS", "1")
        mp.setenv("HELPERS_RUNS_DIR", str(root / "runs"))
        mp.setenv("COMET_CONFIG", str(root / "no-comet-config"))
        yield root


@pytest.fixture(scope="module")
def trained(env: Path) -> tuple[dreambooth.DreamBoothResult, dict[str, Any]]:
    """One tracked tiny run of 40 steps on the course's subject, shared by several tests."""
    run = tracking.start("test-dreambooth", online=False)
    config = dreambooth.DreamBoothConfig(**TINY, max_steps=40, validation_every=20,
                                         checkpoint_every=20, output_dir=str(env / "run"))
    result = dreambooth.train(config, run=run)
    run.end()
    return result, tracking.load_record(run.folder)


def fresh_pipe(family: str) -> Any:
    """A tiny pipeline loaded afresh (not the kernel-wide cached one)."""
    import diffusers

    cls = (diffusers.StableDiffusionInpaintPipeline if family == "sd-inpaint"
           else diffusers.StableDiffusionPipeline)
    folder = models.fetch(models.resolve(f"tiny-{family}", family=family))
    pipe = cls.from_pretrained(folder, safety_checker=None, feature_extractor=None,
                               requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def draw(pipe: Any, family: str) -> np.ndarray:
    kwargs: dict[str, Any] = dict(prompt="a photo of sks cat", num_inference_steps=2,
                                  height=64, width=64,
                                  generator=torch.Generator().manual_seed(0))
    if family == "sd-inpaint":
        kwargs.update(image=Image.new("RGB", (64, 64), (120, 90, 60)),
                      mask_image=Image.new("L", (64, 64), 255))
    return np.asarray(pipe(**kwargs).images[0]).astype(np.int16)


# ---------------------------------------------------------------- training works

def test_loss_on_fixed_batch_falls(trained: tuple[dreambooth.DreamBoothResult, Any]) -> None:
    result, _ = trained
    evals = result.eval_losses
    assert sorted(evals) == [0, 20, 40]
    assert evals[40] < evals[0] - 0.03, evals
    assert len(result.history) == 40 and result.final_loss == result.history[-1]["loss"]
    assert {"loss", "instance_loss", "prior_loss", "lr", "step"} <= set(result.history[0])
    assert 0 < result.trainable_parameters < 0.05 * result.unet_parameters


def test_run_folder_and_tracking(trained: tuple[dreambooth.DreamBoothResult, Any]) -> None:
    result, record = trained
    assert (result.lora_dir / dreambooth.LORA_FILE).is_file()
    info = json.loads((result.lora_dir / dreambooth.INFO_FILE).read_text())
    assert info["steps"] == 40 and info["identifier"] == "sks"
    assert [s for s, _ in dreambooth.saved_checkpoints(result.output_dir)] == [20, 40]
    # validation with and without the identifier at steps 0, 20 and 40
    assert result.validation_steps() == [0, 20, 40]
    assert {(v.prompt, v.with_identifier) for v in result.validation} == {
        ("a photo of sks cat", True), ("a photo of a cat", False)}
    assert all(v.path.is_file() and v.image.size == (64, 64) for v in result.validation)
    assert dreambooth.validation_grid(result).width > 3 * 64
    assert dreambooth.loss_curve(result).height > 100
    names = {m["name"] for m in record["metrics"]}
    assert {"loss", "prior_loss", "instance_loss", "lr", "eval_loss", "final_loss"} <= names
    steps = sorted({m["step"] for m in record["metrics"] if m["name"] == "loss"})
    assert steps == list(range(1, 41))
    logged = [i for i in record["images"] if i["name"].startswith("validation")]
    assert len(logged) == 6 and {i["step"] for i in logged} == {0, 20, 40}
    assert record["datasets"][0]["name"] == "dreambooth-instance"
    assert record["params"]["rank"] == 4 and record["params"]["trainable_parameters"] > 0


def test_plan_printed_before_training(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = dreambooth.DreamBoothConfig(**TINY, max_steps=2, validation_every=0,
                                         checkpoint_every=0, output_dir=str(env / "plan"))
    dreambooth.train(config)
    out = capsys.readouterr().out
    assert "trainable parameters (rank 4)" in out and "% of the UNet" in out
    assert "Estimate:" in out and "s per step x 2 steps" in out and "Memory:" in out
    assert out.index("Estimate:") < out.index("LoRA saved")


def test_class_images_cached(env: Path, trained: Any,
                             capsys: pytest.CaptureFixture[str]) -> None:
    config = dreambooth.DreamBoothConfig(**TINY)
    first = dreambooth.class_images(config)
    stamps = [p.stat().st_mtime_ns for p in first]
    assert len(first) == 2 and "Drawing" not in capsys.readouterr().out
    more = dreambooth.class_images(dreambooth.DreamBoothConfig(**{**TINY,
                                                                  "num_class_images": 3}))
    assert "Drawing 1 class image" in capsys.readouterr().out
    assert more[:2] == first and [p.stat().st_mtime_ns for p in first] == stamps


# ---------------------------------------------------------------- the LoRA

@pytest.mark.parametrize("family", ["sd", "sd-inpaint"])
def test_lora_changes_output_and_weight_zero_restores(
        family: str, trained: tuple[dreambooth.DreamBoothResult, Any]) -> None:
    result, _ = trained
    pipe = fresh_pipe(family)
    base = draw(pipe, family)
    dreambooth.load_lora(pipe, result.lora_dir)
    tuned = draw(pipe, family)
    assert np.abs(tuned - base).mean() > 1.0
    dreambooth.set_lora_weight(pipe, 0.0)
    assert np.array_equal(draw(pipe, family), base)
    dreambooth.load_lora(pipe, result.output_dir)  # again, by the run folder: replaces it
    assert np.array_equal(draw(pipe, family), tuned)
    dreambooth.unload_lora(pipe)
    assert np.array_equal(draw(pipe, family), base)


def test_load_lora_errors(tmp_path: Path, trained: tuple[dreambooth.DreamBoothResult, Any]
                          ) -> None:
    from types import SimpleNamespace

    with pytest.raises(FileNotFoundError, match="no LoRA in .*pytorch_lora_weights"):
        dreambooth.load_lora(fresh_pipe("sd"), tmp_path)
    other = SimpleNamespace(unet=SimpleNamespace(config=SimpleNamespace(cross_attention_dim=1024)),
                            load_lora_weights=None)
    with pytest.raises(ValueError, match="reads text embeddings of size 32, but this "
                                         "pipeline's UNet reads 1024"):
        dreambooth.load_lora(other, trained[0].lora_dir)
    with pytest.raises(ValueError, match="no LoRA named 'dreambooth'"):
        dreambooth.set_lora_weight(fresh_pipe("sd"), 0.5)
    with pytest.raises(TypeError, match="str is not a Stable Diffusion pipeline"):
        lora.load("sd15", trained[0].lora_dir)
    with pytest.raises(ValueError, match="weight 'strong' must be a number"):
        lora.load(fresh_pipe("sd"), trained[0].lora_dir, weight="strong")  # type: ignore[arg-type]


def test_lora_in_the_lesson_nouns(trained: tuple[dreambooth.DreamBoothResult, Any]) -> None:
    """lora.load takes an Inpainter or a Generator; with a LoRA their images have no recipe."""
    painter = inpaint.Inpainter(models.load("tiny-sd-inpaint", device="cpu", cached=False))
    photo = Image.new("RGB", (64, 64), (120, 90, 60))
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    base = painter.inpaint(photo, mask, "a photo of sks cat", steps=2)[0]
    assert tracking.RECIPE_KEY in base.info
    assert lora.load(painter, trained[0].lora_dir) is painter and lora.has_adapters(painter)
    tuned = painter.inpaint(photo, mask, "a photo of sks cat", steps=2)[0]
    assert tracking.RECIPE_KEY not in tuned.info
    assert not np.array_equal(np.asarray(tuned), np.asarray(base))
    lora.set_weight(painter, 0.0)
    assert np.array_equal(np.asarray(painter.inpaint(photo, mask, "a photo of sks cat",
                                                     steps=2)[0]), np.asarray(base))
    lora.unload(painter)
    assert not lora.has_adapters(painter)
    maker = generate.Generator(models.load("tiny-sd", device="cpu", cached=False))
    plain = maker.generate("a photo of sks cat", steps=2, height=64, width=64)
    lora.load(maker, trained[0].lora_dir)
    drawn = maker.generate("a photo of sks cat", steps=2, height=64, width=64)
    assert tracking.RECIPE_KEY in plain.info and tracking.RECIPE_KEY not in drawn.info
    assert not np.array_equal(np.asarray(plain), np.asarray(drawn))


# ---------------------------------------------------------------- few-step pictures

@pytest.mark.slow
def test_lcm_draws_class_and_validation_images_and_leaves_training_alone(env: Path) -> None:
    """With sample_model 'sd15-lcm' the class and validation images come from the LCM-LoRA
    acting beside the trained one; the LoRA learned is exactly the one learned without."""
    from safetensors.torch import load_file

    settings = dict(**{**TINY, "sample_steps": 4, "guidance_scale": 1.0}, max_steps=4,
                    validation_every=2, checkpoint_every=0, class_dir=str(env / "shared"))
    plain = dreambooth.train(dreambooth.DreamBoothConfig(**settings,
                                                         output_dir=str(env / "plain")))
    fast = dreambooth.train(dreambooth.DreamBoothConfig(  # the same class images
        **settings, sample_model="sd15-lcm", output_dir=str(env / "fast")))
    a = load_file(plain.lora_dir / dreambooth.LORA_FILE)
    b = load_file(fast.lora_dir / dreambooth.LORA_FILE)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not any("lcm" in k for k in b)  # the LCM-LoRA is not part of what was learned
    assert fast.losses == plain.losses
    assert [v.step for v in fast.validation] == [v.step for v in plain.validation]
    for x, y in zip(fast.validation, plain.validation):
        assert not np.array_equal(np.asarray(x.image), np.asarray(y.image))
    keyed = {k: v for k, v in settings.items() if k != "class_dir"}
    fast_config = dreambooth.DreamBoothConfig(**keyed, sample_model="sd15-lcm")
    folder = dreambooth.class_dir(fast_config)
    assert folder != dreambooth.class_dir(dreambooth.DreamBoothConfig(**keyed))  # by model
    drawn = dreambooth.class_images(fast_config)
    assert len(drawn) == TINY["num_class_images"] and drawn[0].parent == folder
    info = json.loads((folder / "class_images.json").read_text())
    assert info["sample_model"] == "sd15-lcm"
    shared = sorted((env / "shared").glob("class-*.png"))
    assert not np.array_equal(np.asarray(images.load(drawn[0])),
                              np.asarray(images.load(shared[0])))  # LCM drew these


def test_a_sample_model_of_other_weights_is_refused(env: Path) -> None:
    with pytest.raises(ValueError, match="sample_model 'someone/another-sd' has other weights"):
        dreambooth.DreamBoothConfig(**TINY, sample_model="someone/another-sd").checked()
    with pytest.warns(UserWarning, match="sample_model 'sd15-lcm': sample_steps=25 with"):
        dreambooth.DreamBoothConfig(**{**TINY, "sample_steps": 25},
                                    sample_model="sd15-lcm").checked()


# ---------------------------------------------------------------- resume

@pytest.mark.slow
def test_resumed_run_ends_with_the_same_weights(env: Path) -> None:
    from safetensors.torch import load_file

    settings = dict(**TINY, max_steps=6, checkpoint_every=3, validation_every=0)
    whole = dreambooth.train(dreambooth.DreamBoothConfig(**settings,
                                                         output_dir=str(env / "whole")))
    config = dreambooth.DreamBoothConfig(**settings, output_dir=str(env / "cut"))
    run = tracking.start("test-dreambooth-resume", online=False)
    log_metrics = run.log_metrics

    def interrupt(metrics: Any, step: int | None = None) -> None:
        if step == 5:
            raise KeyboardInterrupt  # as if the learner stopped the cell during step 5
        log_metrics(metrics, step=step)

    run.log_metrics = interrupt  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        dreambooth.train(config, run=run)
    run.end()
    with pytest.raises(ValueError, match="already holds a DreamBooth run .checkpoints at "
                                         "step 3.. Pass resume='latest'"):
        dreambooth.train(config)
    resumed = dreambooth.train(config, resume="latest")
    a = load_file(whole.lora_dir / dreambooth.LORA_FILE)
    b = load_file(resumed.lora_dir / dreambooth.LORA_FILE)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.losses == whole.losses
    again = dreambooth.train(config, resume="latest")  # finished: returned, not retrained
    assert again.final_loss == resumed.final_loss and again.seconds == 0.0
    with pytest.raises(ValueError, match=r"other settings \(rank: 4 -> 8\)"):
        dreambooth.train(dreambooth.DreamBoothConfig(**{**settings, "rank": 8},
                                                     output_dir=str(env / "cut")),
                         resume="latest")


@pytest.mark.slow
@pytest.mark.parametrize("options", [
    {"gradient_checkpointing": True, "gradient_accumulation": 2},
    {"with_prior_preservation": False, "lr_scheduler": "cosine", "lr_warmup_steps": 1,
     "random_flip": False, "batch_size": 2},
    {"train_text_encoder": True},
], ids=["checkpointing+accumulation", "no-prior+cosine+batch", "text-encoder"])
def test_training_options(env: Path, options: dict[str, Any]) -> None:
    name = "-".join(sorted(options))[:40]
    config = dreambooth.DreamBoothConfig(**{**TINY, "max_steps": 2, "validation_every": 2,
                                            "checkpoint_every": 0, **options},
                                         output_dir=str(env / name))
    problem = compat.text_encoder_lora_problem()
    if options.get("train_text_encoder") and problem:
        with pytest.raises(ValueError, match="train_text_encoder=True cannot work here: "
                                             "transformers .* needs peft >="):
            dreambooth.train(config)
        pytest.skip(problem)  # the clear error is what this stack can do
    result = dreambooth.train(config)
    assert len(result.history) == 2 and np.isfinite(result.final_loss)
    pipe = fresh_pipe("sd")
    base = draw(pipe, "sd")
    dreambooth.load_lora(pipe, result.lora_dir)
    assert not np.array_equal(draw(pipe, "sd"), base)
    if options.get("train_text_encoder"):
        from safetensors import safe_open

        with safe_open(str(result.lora_dir / dreambooth.LORA_FILE), "pt") as fh:
            assert any(k.startswith("text_encoder.") for k in fh.keys())  # noqa: SIM118


# ---------------------------------------------------------------- several processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_accelerate_launch_two_processes(env: Path) -> None:
    config = dreambooth.DreamBoothConfig(**TINY, max_steps=4, validation_every=2,
                                         checkpoint_every=2, device="cpu",
                                         output_dir=str(env / "launched"))
    path = config.to_json(env / "launched.json")
    child = {**os.environ, "HELPERS_TINY_MODELS": "1", "OMP_NUM_THREADS": "1",
             "HF_HUB_OFFLINE": "1", "HELPERS_RUNS_DIR": str(env / "runs"),
             "COMET_CONFIG": str(env / "no-comet-config"), "PYTHONPATH": str(ROOT)}
    # `--cpu --num_processes 2` would start one process (several CPU processes need MPI);
    # the torchrun launcher behind --multi_gpu starts two, and device="cpu" keeps them on
    # the CPU with the gloo backend.
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               "-m", "helpers.dreambooth", "--config", str(path)]
    done = subprocess.run(command, env=child, cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "on 2 process(es)" in done.stdout
    out = env / "launched"
    assert (out / "lora" / dreambooth.LORA_FILE).is_file()
    assert {p.name for p in (out / "checkpoints" / "step-000004").iterdir()} >= {
        "random_states_0.pkl", "random_states_1.pkl", dreambooth.LORA_FILE, "progress.json"}


def test_command_line_writes_and_checks_config(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cfg.json"
    assert cli.main(["--write-config", str(path)]) == 0
    assert dreambooth.DreamBoothConfig.from_json(path) == dreambooth.DreamBoothConfig()
    with pytest.raises(SystemExit):
        cli.main(["--config", str(path), "--set", "rank"])
    assert "KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown DreamBooth setting 'rnak' .did you mean "
                                         "'rank'"):
        cli.main(["--config", str(path), "--set", "rnak=8"])


# ---------------------------------------------------------------- bad input

def heavy_work_forbidden(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the model was loaded before the bad setting was reported")


@pytest.mark.parametrize("overrides, error", [
    ({"instance_prompt": "a photo of a cat"},
     "instance_prompt 'a photo of a cat' does not contain the identifier 'sks'"),
    ({"class_prompt": "a photo of sks cat"}, "class_prompt .* contains the identifier"),
    ({"class_prompt": ""}, "with_prior_preservation needs a class_prompt"),
    ({"identifier": "two words", "instance_prompt": "two words cat"},
     "identifier 'two words' must be one word"),
    ({"resolution": 100}, "resolution 100 must be a multiple of 8"),
    ({"rank": 0}, "rank 0 must be an integer >= 1"),
    ({"max_steps": 2.5}, "max_steps 2.5 must be an integer"),
    ({"seed": 2**32}, "seed 4294967296 must be below 2..32"),
    ({"learning_rate": 5}, "learning_rate 5 must lie in"),
    ({"lr_scheduler": "warm"}, "lr_scheduler 'warm' is not one of constant"),
    ({"mixed_precision": "fp8"}, "mixed_precision 'fp8' is not one of"),
    ({"mixed_precision": "fp16"}, "mixed_precision='fp16' needs a CUDA GPU"),
    ({"use_8bit_adam": True}, "use_8bit_adam=True needs a CUDA GPU"),
    ({"validation_prompts": "a cat"}, "validation_prompts 'a cat' must be a list"),
    ({"base_model": "sd99"}, "unknown text-to-image model 'sd99'"),
    ({"sample_model": "sd2-lcm"}, "no few-step \\(LCM\\) version of SD 2"),
    ({"device": "tpu"}, "device 'tpu' is not one of"),
    ({"instance_dir": "no/such/folder"}, "instance_dir 'no/such/folder' does not exist"),
])
def test_bad_settings_fail_before_loading(env: Path, monkeypatch: pytest.MonkeyPatch,
                                          overrides: dict[str, Any], error: str) -> None:
    monkeypatch.setattr(models, "load", heavy_work_forbidden)
    if "cuda" in error.lower() and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = dreambooth.DreamBoothConfig(**{**TINY, **overrides},
                                         output_dir=str(env / "never"))
    with pytest.raises(ValueError, match=error):
        dreambooth.train(config)
    assert not (env / "never").exists()


def test_bad_files_skipped_and_named(tmp_path: Path) -> None:
    good = images.load(dreambooth.default_subject() / "01-face.jpg")
    good.save(tmp_path / "a.png")
    good.save(tmp_path / "b.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "README.md").write_text("my cat")
    with pytest.warns(UserWarning, match=r"skipped 2 file.*broken\.jpg \(not readable as an "
                                         r"image\); notes\.pdf \(not an image file\)") as caught:
        photos = dreambooth.instance_photos(tmp_path)
    assert [p.name for p in photos.paths] == ["a.png", "b.jpg"]
    assert "README" not in str(caught[0].message)
    assert set(photos.skipped) == {"broken.jpg", "notes.pdf"}


def test_folder_without_photos_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no readable image .0 other"):
        dreambooth.instance_photos(tmp_path)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.warns(UserWarning, match="x.txt"), \
            pytest.raises(ValueError, match="holds no readable image .1 other"):
        dreambooth.instance_photos(tmp_path)


def test_collect_photos(tmp_path: Path) -> None:
    cat = images.sample("chelsea")
    with pytest.warns(UserWarning, match="missing.png"):
        folder = dreambooth.collect_photos([cat, tmp_path / "missing.png"], tmp_path / "mine")
    assert len(dreambooth.instance_photos(folder)) == 1
    with pytest.raises(ValueError, match="none of the sources"), pytest.warns(UserWarning):
        dreambooth.collect_photos(["nope.jpg"], tmp_path / "none")


# ---------------------------------------------------------------- the subject folder

def test_default_subject_matches_its_manifest() -> None:
    folder = dreambooth.default_subject()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "CC0" in manifest["licence"] and (folder / "README.md").is_file()
    listed = {e["file"] for e in manifest["images"]}
    on_disk = {p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    assert listed == on_disk and 4 <= len(listed) <= 8
    source = images.sample("chelsea")
    for entry in manifest["images"]:
        data = (folder / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
        crop = source
        if entry["rotate_degrees"]:
            x1, y1, x2, y2 = entry["box"]
            crop = crop.rotate(entry["rotate_degrees"], resample=Image.Resampling.BICUBIC,
                               center=((x1 + x2) / 2, (y1 + y2) / 2))
        crop = crop.crop(tuple(entry["box"]))
        if entry["rotate_degrees"]:
            m = round(crop.width * 0.08)
            crop = crop.crop((m, m, crop.width - m, crop.height - m))
        if entry["mirror"]:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        saved = np.asarray(images.load(folder / entry["file"]), dtype=np.int16)
        assert saved.shape == np.asarray(crop).shape
        assert np.abs(saved - np.asarray(crop, dtype=np.int16)).mean() < 3  # JPEG only


def test_photo_upload_saves_photos(tmp_path: Path) -> None:
    import datetime
    import io

    data = io.BytesIO()
    images.sample("chelsea").save(data, "PNG")
    upload = widgets.PhotoUpload(tmp_path / "mine")
    button, status = upload.widget.children
    button.value = ({"name": "../cat.png", "type": "image/png", "size": len(data.getvalue()),
                     "content": memoryview(data.getvalue()),
                     "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["cat.png"]  # no "../"
    assert "Saved 1 photo" in status.value and upload.saved == [tmp_path / "mine" / "cat.png"]
    assert len(dreambooth.instance_photos(tmp_path / "mine")) == 1
    with pytest.raises(ValueError, match="cannot save an upload named '.hidden'"):
        upload.save([{"name": ".hidden", "content": b"x"}])
