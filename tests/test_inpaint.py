"""inpaint: exact compositing, work regions, same noise in sweeps, reproducible pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from helpers import images, inpaint, lora, registry, tracking, widgets
from helpers.detections import Detections


def photo(w: int, h: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(w * 7 + h).integers(0, 255, (h, w, 3),
                                                                      np.uint8))


def blob(w: int, h: int, box: tuple[float, float, float, float]) -> np.ndarray:
    """An elliptic mask inside the fractional box (x1, y1, x2, y2)."""
    yy, xx = np.mgrid[:h, :w]
    cx, cy = (box[0] + box[2]) / 2 * w, (box[1] + box[3]) / 2 * h
    rx, ry = (box[2] - box[0]) / 2 * w, (box[3] - box[1]) / 2 * h
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1


@pytest.mark.parametrize(
    ("size", "box", "grow", "feather"),
    [
        ((451, 300), (0.3, 0.3, 0.7, 0.7), 8, 8),
        ((300, 451), (0.1, 0.5, 0.5, 0.95), 4, 12),
        ((333, 217), (0.0, 0.0, 0.3, 0.3), 8, 8),  # not multiples of 8, mask at the corner
        ((64, 64), (0.2, 0.2, 0.8, 0.8), 0, 0),
        ((1000, 90), (0.45, 0.2, 0.55, 0.8), 8, 4),  # a long thin photo
    ],
)
def test_outside_the_grown_mask_is_identical(painter: inpaint.Inpainter, size: tuple[int, int],
                                             box: tuple[float, ...], grow: int,
                                             feather: int) -> None:
    w, h = size
    img, mask = photo(w, h), blob(w, h, box)  # type: ignore[arg-type]
    (out,) = painter.inpaint(img, mask, "a green dragon", steps=2, grow=grow, feather=feather)
    assert out.size == img.size and out.mode == "RGB"
    grown = inpaint.grow_mask(mask, grow)
    before, after = np.asarray(img), np.asarray(out)
    assert np.array_equal(before[~grown], after[~grown])
    assert (before[mask] != after[mask]).any()


def test_same_seed_same_pixels(painter: inpaint.Inpainter) -> None:
    img, mask = photo(120, 90), blob(120, 90, (0.2, 0.2, 0.6, 0.7))
    a = painter.inpaint(img, mask, "a cat", seed=3, steps=2)[0]
    b = painter.inpaint(img, mask, "a cat", seed=3, steps=2)[0]
    c = painter.inpaint(img, mask, "a cat", seed=4, steps=2)[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    two = painter.inpaint(img, mask, "a cat", seed=3, steps=2, num_images=2)
    assert np.array_equal(np.asarray(two[0]), np.asarray(a))  # image i uses seed + i
    assert np.array_equal(np.asarray(two[1]), np.asarray(c))


def test_sweep_uses_the_same_noise(painter: inpaint.Inpainter, offline_runs: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_inpaint as module

    drawn: list[Any] = []
    original = module.randn_tensor

    def recording(*args: Any, **kwargs: Any) -> Any:
        noise = original(*args, **kwargs)
        drawn.append(noise.clone())
        return noise

    monkeypatch.setattr(module, "randn_tensor", recording)
    run = tracking.start("sweep-test", online=False)
    img, mask = photo(100, 80), blob(100, 80, (0.3, 0.3, 0.7, 0.7))
    outs, sheet = painter.sweep(img, mask, "a dragon", "guidance_scale", [1.0, 5.0, 9.0],
                                seed=11, run=run, steps=2)
    run.end()
    assert len(outs) == 3 and len(drawn) == 3 and isinstance(sheet, Image.Image)
    assert all(np.array_equal(drawn[0].numpy(), d.numpy()) for d in drawn[1:])
    assert not np.array_equal(np.asarray(outs[0]), np.asarray(outs[2]))
    logged = tracking.load_record(run.folder)["images"]
    assert [i["metadata"]["guidance_scale"] for i in logged] == [1.0, 5.0, 9.0]
    assert all(i["metadata"]["seed"] == 11 for i in logged)
    gallery = widgets.gallery(runs=[run.folder], by="guidance_scale")
    assert [v for v, _ in gallery.groups()] == [1.0, 5.0, 9.0]


def test_reproduce_returns_identical_pixels(painter: inpaint.Inpainter,
                                            offline_runs: Path) -> None:
    run = tracking.start("reproduce-test", online=False)
    img = images.sample("chelsea")
    out = painter.inpaint(img, blob(451, 300, (0.3, 0.2, 0.7, 0.8)), "a dragon", seed=5,
                          steps=3, guidance_scale=4.0, strength=0.8,
                          negative_prompt="cartoon")[0]
    record = run.log_image(out, "dragon")
    run.end()
    stored = tracking.load_record(run.folder)["images"][0]
    again = tracking.reproduce(stored)
    assert tracking.same_pixels(stored, again)
    assert tracking.same_pixels(record, again)
    assert record["recipe"]["kind"] == "helpers.inpaint:Inpainter.inpaint"


def test_a_copied_run_folder_reproduces(painter: inpaint.Inpainter, tmp_path: Path,
                                        offline_runs: Path) -> None:
    import shutil

    run = tracking.start("copy-test", online=False)
    img, mask = photo(90, 60), blob(90, 60, (0.2, 0.2, 0.6, 0.6))
    for seed in (1, 2):  # two images, one photo and one mask: each input stored once
        run.log_image(painter.inpaint(img, mask, "a dog", seed=seed, steps=2)[0], f"s{seed}")
    run.end()
    inputs = sorted(p.name for p in (run.folder / "inputs").iterdir())
    assert len(inputs) == 2
    refs = tracking.load_record(run.folder)["images"][0]["recipe"]["inputs"]
    assert sorted(r["file"] for r in refs.values()) == [f"inputs/{n}" for n in inputs]
    assert not (registry.cache_dir() / "inputs").exists()  # nothing kept outside the run
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(run.folder, copy)
    shutil.rmtree(offline_runs)
    for stored in tracking.load_record(copy)["images"]:
        assert stored["folder"] == str(copy.resolve())
        assert tracking.same_pixels(stored, tracking.reproduce(stored))
    (copy / refs["mask"]["file"]).unlink()
    with pytest.raises(FileNotFoundError, match="missing from the run folder"):
        tracking.reproduce(tracking.load_record(copy)["images"][0])


def test_work_region_keeps_aspect_and_resolution() -> None:
    mask = np.zeros((1536, 2048), bool)
    mask[600:900, 900:1250] = True  # about 3% of the photo
    region = inpaint.work_region(mask, native=512)
    (x1, y1, x2, y2), (tw, th) = region.box, region.size
    assert max(tw, th) in (512, 520) and tw % 8 == 0 and th % 8 == 0
    assert abs((x2 - x1) / (y2 - y1) - tw / th) < 0.01  # scaled uniformly: not squashed
    assert x1 <= 900 and y1 <= 600 and x2 >= 1250 and y2 >= 900  # the mask is inside
    whole = inpaint.work_region(mask, native=512, crop=False)
    assert whole.box == (0, 0, 2048, 1536) and whole.size == (512, 384)
    assert region.scale > 3 * whole.scale  # the crop keeps ~4x the pixels of a squashed photo


def test_mask_preparation() -> None:
    mask = blob(80, 60, (0.3, 0.3, 0.7, 0.7))
    grown = inpaint.grow_mask(mask, 5)
    assert grown[mask].all() and grown.sum() > mask.sum()
    weights = inpaint.feather_mask(grown, 4)
    assert (weights[~grown] == 0).all() and weights.max() == 1.0
    assert 0 < weights[grown].min() < 1  # a soft edge inside the grown mask


def test_detections_are_inpainted_by_their_masks_not_their_boxes(
        painter: inpaint.Inpainter) -> None:
    mask = blob(90, 60, (0.2, 0.2, 0.6, 0.6))
    dets = Detections([[0, 0, 90, 60]], [0.9], ["cat"], mask[None], [0.8])
    img = photo(90, 60)
    out = np.asarray(painter.inpaint(img, dets, "a dog", steps=2, grow=0, feather=0)[0])
    same = np.asarray(painter.inpaint(img, mask, "a dog", steps=2, grow=0, feather=0)[0])
    assert np.array_equal(out, same)  # exactly what the mask itself gives
    assert np.array_equal(out[~mask], np.asarray(img)[~mask])  # the box around it is kept
    with pytest.raises(ValueError, match=r"no masks yet.*detections.to_mask\(photo.size, "
                                         r"boxes_if_no_masks=True\)"):
        painter.inpaint(img, Detections([[10, 10, 60, 40]]), "a dog", steps=2)


@pytest.mark.parametrize(
    ("mask", "kwargs", "message"),
    [
        (np.zeros((60, 90), bool), {}, "the mask is empty"),
        (np.ones((30, 30), bool), {}, "the mask is 30x30 but the photo is 90x60"),
        (None, {"steps": 0}, "steps 0 must be an integer >= 1"),
        (None, {"strength": 0.0}, r"strength 0.0 must lie in \(0, 1\]"),
        (None, {"strength": 1.5}, r"strength 1.5 must lie in \(0, 1\]"),
        (None, {"guidance_scale": -1.0}, r"guidance_scale -1.0 must lie in \[0, 50\]"),
        (None, {"prompt": " "}, "must be a non-empty text"),
        (None, {"grow": -2}, "grow -2"),
        (None, {"strength": 0.3, "steps": 2}, "fewer than one; use at least 4 steps"),
    ],
)
def test_bad_input(painter: inpaint.Inpainter, mask: Any, kwargs: dict[str, Any],
                   message: str) -> None:
    mask = blob(90, 60, (0.2, 0.2, 0.6, 0.6)) if mask is None else mask
    settings = {"prompt": "a dog", "steps": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        painter.inpaint(photo(90, 60), mask, **settings)


def test_soft_mask_is_thresholded_and_said(painter: inpaint.Inpainter) -> None:
    soft = (blob(90, 60, (0.2, 0.2, 0.6, 0.6)) * 200).astype(np.uint8)
    soft[0, 0] = 90
    with pytest.warns(UserWarning, match="not binary.*thresholded at 127.5"):
        painter.inpaint(photo(90, 60), soft, "a dog", steps=2)


def test_long_prompt_is_cut_and_said(painter: inpaint.Inpainter) -> None:
    long = " ".join(["a very detailed realistic green dragon"] * 30)
    with pytest.warns(UserWarning, match="tokens long and the text encoder reads 77"):
        painter.inpaint(photo(90, 60), blob(90, 60, (0.2, 0.2, 0.6, 0.6)), long, steps=2)


def test_unknown_model_and_sweep_errors(painter: inpaint.Inpainter) -> None:
    with pytest.raises(ValueError, match=r"unknown inpainting model 'sd3'\..*'sd15'"):
        inpaint.Inpainter.from_pretrained("sd3")
    img, mask = photo(90, 60), blob(90, 60, (0.2, 0.2, 0.6, 0.6))
    with pytest.raises(ValueError, match="cannot sweep 'colour'"):
        painter.sweep(img, mask, "a dog", "colour", [1, 2])
    with pytest.raises(ValueError, match="values is empty"):
        painter.sweep(img, mask, "a dog", "steps", [])


def test_a_pipeline_with_a_lora_gives_no_recipe(painter: inpaint.Inpainter,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    img, mask = photo(90, 60), blob(90, 60, (0.2, 0.2, 0.6, 0.6))
    plain = painter.inpaint(img, mask, "a dog", steps=2)[0]
    assert tracking.RECIPE_KEY in plain.info
    assert not lora.has_adapters(object()) and not lora.has_adapters(painter)
    monkeypatch.setattr(lora, "has_adapters", lambda pipe: True)
    adapted = painter.inpaint(img, mask, "a dog", steps=2)[0]
    assert tracking.RECIPE_KEY not in adapted.info  # "sd2-inpaint" alone would not rebuild it


def test_a_record_of_the_earlier_helpers_still_reproduces(painter: inpaint.Inpainter,
                                                          tmp_path: Path) -> None:
    """Records written before recipes moved their inputs into the run folder name the kind
    "inpaint.inpaint" and keep absolute input paths among the settings."""
    img, mask = photo(90, 60), blob(90, 60, (0.2, 0.2, 0.6, 0.6))
    made = painter.inpaint(img, mask, "a dog", seed=4, steps=2)[0]
    recipe = made.info[tracking.RECIPE_KEY]
    refs = {}
    for name, picture in recipe.inputs.items():
        path = tmp_path / f"{name}.png"
        picture.save(path)
        refs[name] = {"file": str(path), "sha256": images.digest(picture)}
    old = {"name": "dragon", "recipe": {"kind": "inpaint.inpaint",
                                        "args": {**recipe.args, **refs}}}
    assert np.array_equal(np.asarray(tracking.reproduce(old)), np.asarray(made))


def test_recipe_inputs_must_be_images(offline_runs: Path) -> None:
    run = tracking.start("bad-input", online=False)
    bad = tracking.Recipe("helpers.inpaint:Inpainter.inpaint", {}, {"mask": np.ones((4, 4))})
    with pytest.raises(ValueError, match="recipe input 'mask' is a ndarray; inputs are PIL"):
        run.log_image(photo(8, 8), "x", recipe=bad)
