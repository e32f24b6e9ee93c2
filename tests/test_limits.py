"""Limits: pixel budgets, sizes against memory, and every setting checked before heavy work.

Each refusal is checked for its type and its words (the setting, the size), and for coming
before the work it guards: the model loader, the pipeline's call, accelerate and the
decoder are replaced by functions that fail the test when they are reached.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

from helpers import checks, diffusion, dreambooth, generate, images, inpaint, models, tracking

TINY = dict(resolution=64, num_class_images=2, sample_steps=2, learning_rate=3e-2)


def forbidden(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("heavy work started before the bad input was refused")


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but whose pixels are cut short:
    decoding it fails, so only a check of the header can refuse it cleanly."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)))


def photo(w: int, h: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(w + h).integers(0, 255, (h, w, 3), np.uint8))


def blob(w: int, h: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = True
    return mask


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch) -> int:
    """A pixel budget of 10,000 (ceiling 40,000) through the environment variable."""
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "10000")
    monkeypatch.setattr(images, "_budget", None)
    return 10_000


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile.ImageFile, "load", forbidden)


@pytest.fixture
def no_pipeline(painter: inpaint.Inpainter, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny inpainting pipeline may not run, nor any model load."""
    monkeypatch.setattr(type(painter.pipe), "__call__", forbidden)
    monkeypatch.setattr(models, "load", forbidden)


# ---------------------------------------------------------------- pixel budget

def test_the_budget_comes_from_the_environment_or_a_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "_budget", None)
    monkeypatch.delenv(images.MAX_PIXELS_ENV, raising=False)
    assert images.max_pixels() == images.DEFAULT_MAX_PIXELS == 40_000_000
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "25e6")
    assert images.max_pixels() == 25_000_000
    assert images.set_max_pixels(np.int64(1234)) == 1234 and type(images.max_pixels()) is int
    assert images.set_max_pixels(None) == 25_000_000
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match="HELPERS_MAX_PIXELS='lots' must be a whole number"):
        images.max_pixels()
    with pytest.raises(ValueError, match="max_pixels 0 must be >= 1"):
        images.set_max_pixels(0)


def test_check_pixels_names_the_picture_and_its_size(budget: int) -> None:
    images.check_pixels(100, 100, "the logged image")  # exactly the budget
    with pytest.raises(ValueError, match=r"the logged image is 101x100 pixels \(10,100 "
                                         r"pixels\), more than the limit of 10,000 pixels: "
                                         r"downscale it first"):
        images.check_pixels(101, 100, "the logged image")
    with pytest.raises(ValueError, match="width nan must be an integer"):
        images.check_pixels(float("nan"), 3)  # type: ignore[arg-type]


def test_a_huge_header_is_refused_before_decoding(tmp_path: Path, budget: int,
                                                  no_decoding: None) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(100_000, 100_000))  # PIL's decompression-bomb error
    with pytest.raises(ValueError, match=r"bomb\.png' is too large to open: 10,000\.0 "
                                         r"megapixels.*downscale it first"):
        images.load(bomb)
    large = tmp_path / "large.png"
    large.write_bytes(png_header(3000, 2000))  # under PIL's limits, over the ceiling
    with pytest.raises(ValueError, match=r"large\.png' is 3000x2000 pixels \(6\.0 megapixels"
                                         r"\).*more than 4 times the pixel budget.*Downscale "
                                         "it first"):
        images.load(large)


def test_a_cheap_file_of_a_huge_picture_is_refused_from_its_header(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_decoding: None) -> None:
    path = tmp_path / "palette.png"
    Image.new("P", (9000, 9000)).save(path)  # 81 megapixels in a few KB
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(images, "_budget", 10_000_000)  # ceiling 40 megapixels
    with pytest.raises(ValueError, match=r"9000x9000 pixels \(81\.0 megapixels\)"):
        images.load(path)


def test_a_photo_above_the_budget_is_downscaled_with_a_warning(tmp_path: Path,
                                                               budget: int) -> None:
    path = tmp_path / "lines.png"
    Image.new("1", (300, 120), 1).save(path)
    with pytest.warns(UserWarning, match=r"lines\.png' is 300x120 pixels.*more than the pixel "
                                         r"budget of 10,000 pixels: it was downscaled to "
                                         r"158x63"):
        out = images.load(path)
    assert out.mode == "RGB" and out.size == (158, 63) and budget >= 158 * 63
    assert out.getpixel((80, 30)) == (255, 255, 255)


def test_a_large_jpeg_decodes_at_a_reduced_scale_and_stays_upright(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import JpegImagePlugin

    img = Image.new("RGB", (800, 600), (200, 30, 30))
    img.paste((0, 0, 255), (0, 0, 100, 100))  # a blue patch top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "big.jpg"
    img.save(path, exif=exif, quality=95)
    drafts: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def recording(self: Any, mode: Any, size: Any) -> Any:
        out = original(self, mode, size)
        drafts.append(self.size)
        return out

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", recording)
    monkeypatch.setattr(images, "_budget", 120_000)  # 480,000 pixels is the ceiling
    with pytest.warns(UserWarning, match="800x600 pixels.*downscaled to 300x400"):
        out = images.load(path)
    assert drafts == [(400, 300)]  # decoded at half scale, never at full size
    assert out.size == (300, 400)
    r, g, b = out.getpixel((285, 10))  # the patch is at the top-right once upright
    assert b > 150 and r < 100


def test_arrays_and_pil_images_have_the_same_limits(budget: int) -> None:
    with pytest.raises(ValueError, match=r"the image array is 300x200 pixels \(60,000 pixels"
                                         r"\).*4 times the pixel budget"):
        images.load(np.zeros((200, 300, 3), np.float64))
    with pytest.raises(ValueError, match="the image array is 300x200"):  # NaN or not
        images.from_array(np.full((200, 300), np.nan))
    with pytest.warns(UserWarning, match="the image array is 150x100 pixels.*downscaled to "
                                         "122x81"):
        assert images.load(np.zeros((100, 150), np.uint8)).size == (122, 81)
    with pytest.warns(UserWarning, match="the image is 150x100 pixels.*downscaled"):
        assert images.load(Image.new("RGB", (150, 100))).size == (122, 81)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert images.load(Image.new("RGB", (100, 100))).size == (100, 100)


def test_resize_long_side_refuses_a_result_above_the_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "_budget", None)
    monkeypatch.delenv(images.MAX_PIXELS_ENV, raising=False)
    monkeypatch.setattr(Image.Image, "resize", forbidden)
    img = Image.new("RGB", (600, 400))
    with pytest.raises(ValueError, match=r"resize_long_side\(img, 100000\) would make a picture"
                                         r" that is 100000x66667 pixels.*more than the limit of "
                                         r"40\.0 megapixels: choose a smaller long side \(at "
                                         r"most about 7745 px"):
        images.resize_long_side(img, 100000)
    with pytest.raises(checks.WrongType, match="long side 2.5 must be a positive integer"):
        images.resize_long_side(img, 2.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------- sizes against memory

def test_a_text_to_image_size_is_refused_before_loading(tiny: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "load", forbidden)
    with pytest.raises(ValueError, match=r"height=4096, width=4096: .*4096x4096 pixels need "
                                         r"about [\d,.]+ GB of memory.*the largest of this "
                                         r"shape that fits is \d+x\d+"):
        generate.text_to_image("a cat", height=4096, width=4096, device="cpu")
    monkeypatch.setattr(diffusion, "available_memory", lambda device: (10**12, "lots"))
    with pytest.raises(ValueError, match="height=2560, width=1024: 2560 px is more than 2048 "
                                         "px a side.*fits is 816x2048"):
        generate.text_to_image("a cat", height=2560, width=1024, device="cpu")


def test_the_estimate_and_the_largest_size_that_fits(tiny: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "load", forbidden)
    free = 300_000_000
    monkeypatch.setattr(diffusion, "available_memory",
                        lambda device: (free, "the RAM available is"))
    need = diffusion.activation_bytes(1024, 768, element_bytes=4, batch=2)
    assert need == 6 * 128 * 1024 * 768 * 4  # the VAE's, more than attention's 1.2 GB
    assert diffusion.activation_bytes(2048, 2048) == 2 * (256 * 256) ** 2 * 4  # attention's
    assert diffusion.activation_bytes(64, 64, training=True, batch=1) == 6 * 128 * 64 * 64 * 4
    with pytest.raises(ValueError, match=r"768x1024 pixels need about 2\.4 GB of memory on "
                                         r"cpu.*the RAM available is 0\.3 GB free; the largest "
                                         r"of this shape that fits is 264x360"):
        generate.text_to_image("a cat", height=1024, width=768, device="cpu")
    assert diffusion.activation_bytes(360, 264) <= free < diffusion.activation_bytes(368, 272)
    assert diffusion.check_size("fine", height=256, width=256, device="cpu") > 0


def test_free_memory_on_cuda_comes_from_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    asked: list[Any] = []

    def mem_get_info(device: Any) -> tuple[int, int]:
        asked.append(device)
        return 6_000_000_000, 80_000_000_000

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    assert diffusion.available_memory("cuda:0") == (6_000_000_000, "cuda:0 has")
    assert asked == [torch.device("cuda:0")]
    with pytest.raises(ValueError, match=r"resolution 2048: 2048x2048 pixels need about 17\.2 "
                                         r"GB of memory on cuda:0.*cuda:0 has 6\.0 GB free; the "
                                         r"largest of this shape that fits is 1568x1568"):
        diffusion.check_size("resolution 2048", height=2048, width=2048, device="cuda:0",
                             element_bytes=2)
    free, where = diffusion.available_memory("cpu")
    assert free is None or free > 0, where


def test_a_loaded_generator_checks_its_size_before_drawing(
        tiny: None, monkeypatch: pytest.MonkeyPatch) -> None:
    maker = generate.Generator.from_pretrained("tiny", device="cpu")
    monkeypatch.setattr(type(maker.pipe), "__call__", forbidden)
    monkeypatch.setattr(diffusion, "available_memory", lambda device: (50_000_000, "RAM is"))
    with pytest.raises(ValueError, match=r"height=1024, width=1024: 1024x1024 pixels need "
                                         r"about [\d.]+ GB.*RAM is 50 MB free"):
        maker.generate("a cat", height=1024, width=1024, steps=2)
    with pytest.raises(ValueError, match=r"guidance_scale 1000000000\.0 must lie in \[0, 50\]"):
        maker.generate("a cat", guidance_scale=1e9, steps=2)


def test_an_inpainting_resolution_is_refused_before_the_pipeline(
        painter: inpaint.Inpainter, no_pipeline: None) -> None:
    with pytest.raises(ValueError, match=r"resolution 4096: 4096x4096 pixels need about "
                                         r"[\d,.]+ GB"):
        painter.inpaint(photo(90, 60), blob(90, 60), "a dog", steps=2, resolution=4096)
    with pytest.raises(ValueError, match="resolution 100 must be a multiple of 8 pixels"):
        painter.inpaint(photo(90, 60), blob(90, 60), "a dog", steps=2, resolution=100)


def test_a_dreambooth_resolution_is_refused_in_the_config_check(
        tiny: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import accelerate

    monkeypatch.setattr(models, "load", forbidden)
    monkeypatch.setattr(accelerate, "Accelerator", forbidden)
    config = dreambooth.DreamBoothConfig(**{**TINY, "resolution": 8192},
                                         output_dir=str(tmp_path / "never"))
    with pytest.raises(ValueError, match=r"DreamBooth training at resolution 8192: 8192x8192 "
                                         r"pixels need about [\d,.]+ GB of memory.*largest of "
                                         r"this shape that fits is (\d+)x\1"):
        dreambooth.train(config)
    assert not (tmp_path / "never").exists()


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"guidance_scale": float("nan")}, "guidance_scale nan must be a finite number"),
    ({"guidance_scale": 1e9}, r"guidance_scale 1000000000.0 must lie in \[0, 50\]"),
    ({"seed": 2**70}, r"seed 1180591620717411303424 must lie in \[0, 2\*\*63\)"),
    ({"seed": 2**63 - 1, "num_images": 2}, "image i uses seed \\+ i, which must stay below"),
    ({"margin": float("nan")}, "margin nan must be a finite number"),
    ({"strength": np.float32("nan")}, r"strength np.float32\(nan\) must be a finite number"),
    ({"steps": True}, "steps True must be an integer"),
    ({"steps": 4.0}, "steps 4.0 must be an integer"),
    ({"grow": 10**6}, r"grow 1000000 must be an integer <= 512"),
    ({"crop": "no"}, "crop 'no' must be True or False"),
    ({"negative_prompt": 3}, "negative_prompt 3 must be a text or None"),
])
def test_bad_numbers_are_refused_by_name(painter: inpaint.Inpainter, no_pipeline: None,
                                         kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        painter.inpaint(photo(90, 60), blob(90, 60), "a dog", **{"steps": 2, **kwargs})


def test_a_mask_with_nan_is_refused_by_name(painter: inpaint.Inpainter,
                                            no_pipeline: None) -> None:
    mask = blob(90, 60).astype(np.float32)
    mask[0, :3] = np.nan
    with pytest.raises(ValueError, match="the mask holds 3 NaN and 0 infinite values"):
        painter.inpaint(photo(90, 60), mask, "a dog", steps=2)
    with pytest.raises(ValueError, match="the mask must be an array of bools or numbers"):
        inpaint.as_mask(np.array([["a"]]), (1, 1))


def test_numpy_numbers_are_taken_and_recorded_as_plain_ones(painter: inpaint.Inpainter) -> None:
    (out,) = painter.inpaint(photo(90, 60), blob(90, 60), "a dog", seed=np.int64(3),
                             steps=np.int64(2), strength=np.float32(0.5),
                             guidance_scale=np.float32(4.5), grow=np.int32(4),
                             feather=np.uint8(2), margin=np.float64(0.3),
                             num_images=np.int64(1))
    recipe = tracking.recipes.of(out)
    assert recipe is not None
    args = recipe.args
    assert args["strength"] == 0.5 and args["guidance_scale"] == 4.5 and args["seed"] == 3
    assert {k: type(v) for k, v in args.items() if k in ("seed", "steps", "grow", "feather")} \
        == dict.fromkeys(("seed", "steps", "grow", "feather"), int)
    assert type(args["strength"]) is float and type(args["margin"]) is float
    json.dumps(args)


def test_generate_numbers_are_checked_before_loading(tiny: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "load", forbidden)
    for kwargs, message in [({"guidance_scale": float("nan")}, "guidance_scale nan"),
                            ({"seed": 2**70}, "seed 1180591620717411303424 must lie in"),
                            ({"steps": np.int64(0)}, r"steps np.int64\(0\) must be an integer"),
                            ({"height": 100}, "height 100 must be a multiple of 8")]:
        with pytest.raises(ValueError, match=message):
            generate.text_to_image("a cat", device="cpu", **kwargs)


# ---------------------------------------------------------------- every check first

@pytest.mark.parametrize(("param", "values", "message"), [
    ("steps", [2, 0], "steps 0 must be an integer >= 1"),
    ("seed", [1, -1], "seed -1 must lie in"),
    ("guidance_scale", [3.0, float("nan")], "guidance_scale nan must be a finite number"),
    ("strength", [1.0, 0.0], r"strength 0.0 must lie in \(0, 1\]"),
    ("negative_prompt", [None, 5], "negative_prompt 5 must be a text or None"),
    ("prompt", ["a cat", " "], "must be a non-empty text"),
    ("grow", [4, -1], "grow -1 must be an integer >= 0"),
    ("feather", [4, np.int64(-1)], r"feather np.int64\(-1\) must be an integer >= 0"),
    ("resolution", [64, 100], "resolution 100 must be a multiple of 8"),
])
def test_a_sweep_checks_every_value_before_the_first_image(
        painter: inpaint.Inpainter, no_pipeline: None, offline_runs: Path, param: str,
        values: list[Any], message: str) -> None:
    assert param in inpaint.SWEEPABLE
    run = tracking.start("sweep-limits", online=False)
    with pytest.raises(ValueError, match=message):
        painter.sweep(photo(90, 60), blob(90, 60), "a dog", param, values, run=run,
                      **({} if param == "steps" else {"steps": 2}))
    run.end()
    assert tracking.load_record(run.folder)["images"] == []


def test_a_sweep_checks_its_mask_and_settings_first(painter: inpaint.Inpainter,
                                                    no_pipeline: None) -> None:
    with pytest.raises(ValueError, match="the mask is empty"):
        painter.sweep(photo(90, 60), np.zeros((60, 90), bool), "a dog", "seed", [1, 2])
    with pytest.raises(TypeError, match="sweep got unknown setting.*'colour'"):
        painter.sweep(photo(90, 60), blob(90, 60), "a dog", "seed", [1], colour=3)


def test_a_sweep_logs_plain_numbers(painter: inpaint.Inpainter, offline_runs: Path) -> None:
    run = tracking.start("sweep-plain", online=False)
    outs, _ = painter.sweep(photo(90, 60), blob(90, 60), "a dog", "strength",
                            [np.float32(0.5), np.float32(1.0)], run=run, steps=np.int64(2))
    run.end()
    logged = tracking.load_record(run.folder)["images"]
    assert len(outs) == 2 and [i["metadata"]["strength"] for i in logged] == [0.5, 1.0]
    assert [i["metadata"]["steps"] for i in logged] == [2, 2]


def test_dreambooth_numbers_are_plain_and_checked(tiny: None, tmp_path: Path) -> None:
    config = dreambooth.DreamBoothConfig(**{**TINY, "learning_rate": np.float32(1e-4)},
                                         seed=np.int64(7), max_steps=np.int64(3),
                                         guidance_scale=np.float32(2.5),
                                         random_flip=np.bool_(False),
                                         output_dir=str(tmp_path / "out")).checked()
    assert (config.seed, config.max_steps, config.learning_rate) == (7, 3, 1e-4)
    assert type(config.seed) is int and type(config.learning_rate) is float
    assert config.random_flip is False and config.guidance_scale == 2.5
    json.dumps(config.to_dict())
    for overrides, message in [({"guidance_scale": float("nan")}, "guidance_scale nan"),
                               ({"guidance_scale": 1e9}, r"guidance_scale 1000000000.0 must "
                                                         r"lie in \[0, 50\]"),
                               ({"random_flip": "no"}, "random_flip 'no' must be True or"),
                               ({"max_grad_norm": float("inf")}, "max_grad_norm inf must be"),
                               ({"seed": np.int64(-1)}, r"seed np.int64\(-1\) must be an "
                                                        "integer >= 0")]:
        with pytest.raises(ValueError, match=message):
            dreambooth.DreamBoothConfig(**{**TINY, **overrides}).checked()


def test_a_file_as_output_dir_is_refused_before_accelerate(
        tiny: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import accelerate

    monkeypatch.setattr(models, "load", forbidden)
    monkeypatch.setattr(accelerate, "Accelerator", forbidden)
    taken = tmp_path / "notes.txt"
    taken.write_text("keep me")
    for out, message in [(taken, "notes.txt' is a file, not a folder"),
                         (taken / "run", "lies under .*notes.txt', which is a file")]:
        config = dreambooth.DreamBoothConfig(**TINY, max_steps=2, output_dir=str(out))
        with pytest.raises(ValueError, match=message):
            dreambooth.train(config)
    assert taken.read_text() == "keep me"


def test_bytes_of_a_bomb_are_refused_from_memory_too(budget: int, no_decoding: None) -> None:
    """A URL's bytes take the same path as a file's (here straight through the opener)."""
    with pytest.raises(ValueError, match="'served' is too large to open"):
        images._open_bytes(io.BytesIO(png_header(100_000, 100_000)).getvalue(), "'served'")
