"""sam.Segmenter on the tiny SAM: coordinates, shapes, the embedding cache, bad prompts."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from helpers import images, models, sam
from helpers.detections import Detections


def photo(w: int, h: int) -> Image.Image:
    rng = np.random.default_rng(w * 1000 + h)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def captured(seg: sam.Segmenter, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the prompt encoder receives, in the model's input coordinates."""
    calls: list[dict[str, Any]] = []
    encoder = seg.model.prompt_encoder
    original = encoder.forward

    def spy(points: Any, boxes: Any, masks: Any) -> Any:
        calls.append({"points": None if points is None else points[0].clone().numpy(),
                      "labels": None if points is None else points[1].clone().numpy(),
                      "boxes": None if boxes is None else boxes.clone().numpy(),
                      "masks": None if masks is None else masks.clone().numpy()})
        return original(points, boxes, masks)

    monkeypatch.setattr(encoder, "forward", spy)
    return calls


@pytest.mark.parametrize("size", [(451, 300), (300, 451), (256, 256), (100, 37)])
def test_points_reach_the_model_scaled(seg: sam.Segmenter, captured: list[dict[str, Any]],
                                       size: tuple[int, int]) -> None:
    w, h = size
    seg.set_image(photo(w, h))
    scale = seg.model.image_encoder.img_size / max(w, h)
    pts = np.array([[0, 0], [w - 1, h - 1], [w / 2, h / 3]], np.float32)
    result = seg.predict(points=pts, labels=[1, 0, 1])
    got = captured[-1]["points"][0]
    # ResizeLongestSide rounds the resized size; coordinates scale by new/old per axis
    new_w, new_h = int(w * scale + 0.5), int(h * scale + 0.5)
    expected = pts * np.array([new_w / w, new_h / h], np.float32)
    assert np.allclose(got[:3], expected, atol=1e-3)
    assert captured[-1]["labels"][0][:3].tolist() == [1, 0, 1]
    assert result.masks.shape == (3, h, w) and result.masks.dtype == bool
    assert result.scores.shape == (3,)
    assert list(result.scores) == sorted(result.scores, reverse=True)
    assert result.logits.shape[0] == 3 and result.best.shape == (h, w)


@pytest.mark.parametrize("size", [(451, 300), (300, 451)])
def test_box_reaches_the_model_scaled(seg: sam.Segmenter, captured: list[dict[str, Any]],
                                      size: tuple[int, int]) -> None:
    w, h = size
    seg.set_image(photo(w, h))
    box = np.array([10, 20, w - 30, h - 5], np.float32)
    result = seg.predict(box=box, multimask=False)
    scale = seg.model.image_encoder.img_size / max(w, h)
    new_w, new_h = int(w * scale + 0.5), int(h * scale + 0.5)
    expected = box * np.array([new_w / w, new_h / h] * 2, np.float32)
    assert np.allclose(captured[-1]["boxes"].reshape(-1), expected, atol=1e-3)
    assert result.masks.shape == (1, h, w)


def test_refine_with_earlier_logits(seg: sam.Segmenter, captured: list[dict[str, Any]]) -> None:
    seg.set_image(photo(120, 80))
    first = seg.predict(points=[[60, 40]], labels=[1])
    assert captured[-1]["masks"] is None
    prompt = {"points": [[60, 40], [10, 10]], "labels": [1, 0]}
    plain = seg.predict(**prompt)
    refined = seg.predict(**prompt, mask=first.best_logits)
    # the logits reach the prompt encoder unchanged, and they change the answer
    assert np.array_equal(captured[-1]["masks"][0], first.best_logits)
    assert refined.masks.shape == (3, 80, 120)
    assert not np.allclose(refined.logits, plain.logits)


def test_a_prompt_object_is_the_same_prompt(seg: sam.Segmenter) -> None:
    seg.set_image(photo(120, 80))
    loose = seg.predict(points=[[60, 40]], labels=[1], box=[10, 10, 100, 70])
    checked = seg.prompt(points=[[60, 40]], labels=[1], box=[10, 10, 100, 70])
    assert np.array_equal(seg.predict(prompt=checked).logits, loose.logits)
    with pytest.raises(ValueError, match="either prompt= or"):
        seg.predict(points=[[1, 1]], labels=[1], prompt=checked)
    seg.set_image(photo(90, 80))
    with pytest.raises(ValueError, match="made for a 120x80 image, not this 90x80"):
        seg.predict(prompt=checked)


def test_embedding_cache(seg: sam.Segmenter) -> None:
    a, b = photo(64, 48), photo(48, 64)
    seg.set_image(a)
    calls = seg.encoder_calls
    seg.set_image(b)
    seg.set_image(a.copy())  # same content, another object: no encoder run
    assert seg.encoder_calls == calls + 1
    first = seg.predict(points=[[5, 5]], labels=[1])
    seg.set_image(b)
    seg.set_image(a)
    again = seg.predict(points=[[5, 5]], labels=[1])
    assert np.array_equal(first.masks, again.masks)


def test_cache_is_bounded() -> None:
    small = sam.Segmenter(models.load("tiny-sam", device="cpu"), cache_size=2)
    for i in range(4):
        small.set_image(photo(40 + i, 30))
    assert small.cached_images == 2 and small.encoder_calls == 4
    small.set_image(photo(40, 30))  # evicted: computed again
    assert small.encoder_calls == 5


def test_save_and_load_embedding(seg: sam.Segmenter, tmp_path: Path) -> None:
    img = photo(70, 50)
    seg.set_image(img)
    before = seg.predict(points=[[30, 20]], labels=[1])
    path = seg.save_embedding(tmp_path / "emb.pt")
    fresh = sam.Segmenter(models.load("tiny-sam", device="cpu"))
    fresh.load_embedding(path)  # the photo travels with the embedding
    assert fresh.encoder_calls == 0 and fresh.image_size == (70, 50)
    after = fresh.predict(points=[[30, 20]], labels=[1])
    assert np.array_equal(before.masks, after.masks)
    fresh.load_embedding(path, img)  # the same photo passes the check
    with pytest.raises(ValueError, match="another image"):
        fresh.load_embedding(path, photo(71, 50))


def test_segment_adds_masks(seg: sam.Segmenter) -> None:
    img = images.sample("chelsea")
    dets = Detections([[100, 50, 300, 200], [20, 20, 60, 90], [400, 200, 470, 320]],
                      [0.9, 0.5, 0.3], ["cat", "ear", "paw"])
    out = seg.segment(dets, image=img)
    assert out.masks is not None and out.masks.shape == (3, 300, 451)
    assert out.mask_scores is not None and out.mask_scores.shape == (3,)
    assert out.labels == dets.labels and np.array_equal(out.xyxy, dets.xyxy)
    one_by_one = seg.segment(dets, batch_size=1)
    batched = seg.segment(dets, batch_size=3)
    assert np.array_equal(one_by_one.masks, batched.masks)
    empty = seg.segment(Detections.empty())
    assert empty.masks is not None and empty.masks.shape == (0, 300, 451)
    assert not empty.union_mask().any()
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=f"batch_size {bad!r} must be (an integer )?>= 1"):
            seg.segment(dets, batch_size=bad)  # type: ignore[arg-type]
    numpy_size = seg.segment(dets, batch_size=np.int64(3))  # a NumPy count is a count
    assert np.array_equal(numpy_size.masks, batched.masks)


def test_result_to_detections(seg: sam.Segmenter) -> None:
    seg.set_image(photo(90, 60))
    dets = seg.predict(points=[[45, 30]], labels=[1]).to_detections("thing")
    assert len(dets) == 3 and dets.labels == ["thing"] * 3 and dets.masks is not None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"points": [[900, 20]], "labels": [1]}, ValueError,
         r"point \(900, 20\) is outside the 120x80 image"),
        ({"points": [[10, 10]], "labels": [2]}, ValueError, "1 \\(include\\) or 0"),
        ({"points": [[10, 10], [20, 20]], "labels": [1]}, ValueError, "2 points but 1 labels"),
        ({"points": [[10, 10]]}, ValueError, "no labels"),
        ({"labels": [1]}, ValueError, "without points"),
        ({"box": [50, 10, 20, 40]}, ValueError, "x2 > x1"),
        ({"box": [10, 10, 10, 40]}, ValueError, "x2 > x1"),
        ({"box": [10, 10, 200, 40]}, ValueError, "outside the 120x80 image"),
        ({"box": [1, 2, 3]}, ValueError, r"\[x1, y1, x2, y2\]"),
        ({}, ValueError, "at least one prompt"),
        ({"mask": np.zeros((32, 32))}, ValueError, "low-resolution logits"),
    ],
)
def test_bad_prompts(seg: sam.Segmenter, kwargs: dict[str, Any], error: type,
                     message: str) -> None:
    seg.set_image(photo(120, 80))
    with pytest.raises(error, match=message):
        seg.predict(**kwargs)


def test_predict_before_set_image() -> None:
    fresh = sam.Segmenter(models.load("tiny-sam", device="cpu"))
    with pytest.raises(RuntimeError, match=r"set_image\(image\)"):
        fresh.predict(points=[[1, 1]], labels=[1])


def test_unknown_model_name() -> None:
    with pytest.raises(ValueError, match=r"unknown SAM model 'vit_x'\. Did you mean .*'vit_b'"):
        sam.Segmenter.from_pretrained("vit_x")


def test_tiny_mode_swaps_the_real_name(tiny: None) -> None:
    assert sam.Segmenter.from_pretrained("vit_h", device="cpu").name == "tiny-sam"


def test_corrupt_checkpoint_is_deleted_and_never_loaded(
        serve: tuple[str, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url, root = serve
    (root / "sam_vit_b_01ec64.pth").write_bytes(b"an impostor")
    spec = models.REGISTRY["sam-vit-b"]
    fake = dataclasses.replace(spec, source=f"{url}/sam_vit_b_01ec64.pth", size_bytes=10)
    monkeypatch.setitem(models.REGISTRY, "sam-vit-b", fake)
    cached = models.cache_dir() / "checkpoints" / "sam_vit_b_01ec64.pth"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"half a download")
    import torch

    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a bad checkpoint was read"))
    with pytest.raises(models.WeightsUnavailableError, match="not the published"):
        sam.Segmenter.from_pretrained("vit_b", device="cpu")
    assert not cached.exists()  # the half download was deleted, and so was the impostor
    assert not list(cached.parent.glob("*.part"))
    assert "did not match its published SHA-256" in capsys.readouterr().err
