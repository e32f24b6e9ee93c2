"""sam.Segmenter on a transformers SamModel (the SlimSAM backend), checked against
transformers' own full path: SamProcessor -> SamModel -> post_process_masks.

The tiny random SamModel stands in for SlimSAM: the same code, a 256-pixel input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from helpers import models, registry, sam, sam_hf
from helpers.detections import Detections

SIZES = [(451, 300), (300, 451)]  # (width, height): a landscape and a portrait photo


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    """A smooth random photo (blobs of colour, so the masks have some structure)."""
    rng = np.random.default_rng(seed * 7919 + w * 1000 + h)
    small = rng.integers(0, 255, (max(2, h // 30), max(2, w // 30), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR)


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    """The tiny random SamModel and its SamProcessor, built and read back from a folder."""
    import torch

    folder = tmp_path_factory.mktemp("tiny-slimsam")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sam_hf.build_tiny(folder)
    model, processor = sam_hf.load(str(folder), None, "cpu")
    return model, processor, folder


def wrap(tiny_hf: tuple[Any, Any, Path], name: str = "tiny-slimsam",
         cache_size: int = 8) -> sam.Segmenter:
    import torch

    model, processor, folder = tiny_hf
    spec = registry.ModelSpec(name, "sam", "tiny", arch="hf")
    return sam.Segmenter(models.Loaded(model, processor, spec, str(folder), "cpu",
                                       torch.float32), cache_size)


@pytest.fixture
def slim(tiny_hf: tuple[Any, Any, Path]) -> sam.Segmenter:
    """A fresh Segmenter (empty cache) on the tiny SamModel."""
    return wrap(tiny_hf)


def library(tiny_hf: tuple[Any, Any, Path], image: Image.Image, points: Any = None,
            labels: Any = None, boxes: Any = None, mask: Any = None,
            multimask: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """transformers' full path for one image: (P, K, H, W) masks, (P, K) scores and
    (P, K, h, w) logits for P prompts (one point set, or each box)."""
    import torch

    model, processor, _ = tiny_hf
    kwargs: dict[str, Any] = {}
    if points is not None:
        kwargs["input_points"] = [[np.asarray(points, float).tolist()]]
        kwargs["input_labels"] = [[list(labels)]]
    if boxes is not None:
        kwargs["input_boxes"] = [np.asarray(boxes, float).reshape(-1, 4).tolist()]
    inputs = processor(images=image, return_tensors="pt", **kwargs)
    if mask is not None:
        inputs["input_masks"] = torch.as_tensor(np.asarray(mask, np.float32))[None]
    with torch.no_grad():
        out = model(**inputs, multimask_output=multimask)
    masks = processor.image_processor.post_process_masks(
        out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"])[0]
    return masks.numpy(), out.iou_scores[0].numpy(), out.pred_masks[0].numpy()


def best_first(masks: np.ndarray, scores: np.ndarray,
               logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    return masks[order], scores[order], logits[order]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def assert_same(result: sam.SamResult, expected: tuple[np.ndarray, np.ndarray, np.ndarray]
                ) -> None:
    masks, scores, logits = expected
    assert result.masks.shape == masks.shape and result.masks.dtype == bool
    np.testing.assert_allclose(result.scores, scores, atol=1e-4)
    np.testing.assert_allclose(result.logits, logits, atol=1e-4)
    for got, want in zip(result.masks, masks):
        assert iou(got, want) >= 0.999
        assert 0 < want.sum() < want.size  # a real mask, not all or nothing


# ------------------------------------------------------------ the same masks as transformers

@pytest.mark.parametrize("size", SIZES)
def test_points_match_transformers(tiny_hf: tuple[Any, Any, Path], slim: sam.Segmenter,
                                   size: tuple[int, int]) -> None:
    w, h = size
    img = photo(w, h)
    points, labels = [[w * 0.3, h * 0.4], [w * 0.8, h * 0.7], [5, h - 3]], [1, 0, 1]
    result = slim.set_image(img).predict(points=points, labels=labels)
    masks, scores, logits = library(tiny_hf, img, points=points, labels=labels)
    assert result.masks.shape == (3, h, w) and result.logits.shape == (3, 64, 64)
    assert_same(result, best_first(masks[0], scores[0], logits[0]))


@pytest.mark.parametrize("size", SIZES)
def test_box_matches_transformers(tiny_hf: tuple[Any, Any, Path], slim: sam.Segmenter,
                                  size: tuple[int, int]) -> None:
    w, h = size
    img = photo(w, h)
    box = [10, 20, w - 30, h - 5]
    result = slim.set_image(img).predict(box=box, multimask=False)
    masks, scores, logits = library(tiny_hf, img, boxes=[box], multimask=False)
    assert result.masks.shape == (1, h, w)
    assert_same(result, (masks[0], scores[0], logits[0]))


@pytest.mark.parametrize("size", SIZES)
def test_points_and_box_match_transformers(tiny_hf: tuple[Any, Any, Path],
                                           slim: sam.Segmenter, size: tuple[int, int]) -> None:
    w, h = size
    img = photo(w, h)
    points, labels, box = [[w / 2, h / 2], [w / 4, h / 5]], [1, 0], [w / 8, h / 9, w - 2, h - 1]
    result = slim.set_image(img).predict(points=points, labels=labels, box=box)
    masks, scores, logits = library(tiny_hf, img, points=points, labels=labels, boxes=[box])
    assert_same(result, best_first(masks[0], scores[0], logits[0]))
    box_only = slim.predict(box=box)  # the points do change the answer
    assert not np.allclose(box_only.logits, result.logits, atol=1e-3)


@pytest.mark.parametrize("size", SIZES)
def test_refine_with_logits_matches_transformers(tiny_hf: tuple[Any, Any, Path],
                                                 slim: sam.Segmenter,
                                                 size: tuple[int, int]) -> None:
    w, h = size
    img = photo(w, h)
    first = slim.set_image(img).predict(points=[[w / 3, h / 3]], labels=[1])
    points, labels = [[w / 3, h / 3], [w * 0.9, h * 0.9]], [1, 0]
    plain = slim.predict(points=points, labels=labels)
    refined = slim.predict(points=points, labels=labels, mask=first.best_logits)
    masks, scores, logits = library(tiny_hf, img, points=points, labels=labels,
                                    mask=first.best_logits)
    assert_same(refined, best_first(masks[0], scores[0], logits[0]))
    assert not np.allclose(refined.logits, plain.logits, atol=1e-3)
    mask_only = slim.predict(mask=first.best_logits, multimask=False)
    assert_same(mask_only, tuple(v[0] for v in library(  # type: ignore[arg-type]
        tiny_hf, img, mask=first.best_logits, multimask=False)))


@pytest.mark.parametrize("size", SIZES)
def test_one_mask_matches_transformers(tiny_hf: tuple[Any, Any, Path], slim: sam.Segmenter,
                                       size: tuple[int, int]) -> None:
    w, h = size
    img = photo(w, h)
    result = slim.set_image(img).predict(points=[[w / 2, h / 3]], labels=[1], multimask=False)
    masks, scores, logits = library(tiny_hf, img, points=[[w / 2, h / 3]], labels=[1],
                                    multimask=False)
    assert len(result) == 1
    assert_same(result, (masks[0], scores[0], logits[0]))


@pytest.mark.parametrize("size", SIZES)
def test_segment_matches_transformers(tiny_hf: tuple[Any, Any, Path], slim: sam.Segmenter,
                                      size: tuple[int, int]) -> None:
    w, h = size
    img = photo(w, h)
    boxes = [[10, 10, w / 2, h / 2], [w / 3, h / 4, w - 1, h - 1], [20, h / 2, w / 3, h - 10]]
    dets = Detections(boxes, [0.9, 0.6, 0.3], ["a", "b", "c"])
    masks, scores, _ = library(tiny_hf, img, boxes=boxes, multimask=False)  # (3, 1, H, W)
    for batch in (1, 3):
        out = slim.segment(dets, image=img, batch_size=batch)
        assert out.masks is not None and out.mask_scores is not None
        assert out.masks.shape == (3, h, w) and out.labels == ["a", "b", "c"]
        np.testing.assert_allclose(out.mask_scores, scores[:, 0], atol=1e-4)
        for got, want in zip(out.masks, masks[:, 0]):
            assert iou(got, want) >= 0.999 and 0 < want.sum() < want.size
    assert slim.encoder_calls == 1  # the second call found the photo in the cache


# ------------------------------------------------------------ Segmenter's behaviour

def test_three_candidates_best_first(tiny_hf: tuple[Any, Any, Path],
                                     slim: sam.Segmenter) -> None:
    img = photo(451, 300)
    slim.set_image(img)
    orders = []
    for x, y in [(50, 50), (200, 150), (400, 250), (100, 280)]:
        result = slim.predict(points=[[x, y]], labels=[1])
        assert len(result) == 3 and result.best.shape == (300, 451)
        assert list(result.scores) == sorted(result.scores, reverse=True)
        masks, scores, logits = library(tiny_hf, img, points=[[x, y]], labels=[1])
        assert_same(result, best_first(masks[0], scores[0], logits[0]))
        orders.append(tuple(np.argsort(-scores[0], kind="stable")))
    assert set(orders) != {(0, 1, 2)}  # the decoder's own order was not already sorted


def test_embedding_cache(tiny_hf: tuple[Any, Any, Path], slim: sam.Segmenter,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_hf[0]
    runs: list[int] = []
    encode = model.get_image_embeddings
    monkeypatch.setattr(model, "get_image_embeddings",
                        lambda *a, **k: runs.append(1) or encode(*a, **k))
    a, b = photo(451, 300), photo(300, 451)
    slim.set_image(a)
    first = slim.predict(points=[[40, 30]], labels=[1])
    slim.set_image(b)
    other = slim.predict(points=[[40, 30]], labels=[1])
    slim.set_image(a.copy())  # the same content, another object: no encoder run
    again = slim.predict(points=[[40, 30]], labels=[1])
    assert len(runs) == 2 and slim.encoder_calls == 2 and slim.cached_images == 2
    assert slim.image_size == (451, 300)
    assert np.array_equal(first.masks, again.masks)
    assert np.array_equal(first.logits, again.logits)
    assert not np.allclose(first.logits, other.logits, atol=1e-3)  # the image matters


def test_cache_is_bounded(tiny_hf: tuple[Any, Any, Path]) -> None:
    small = wrap(tiny_hf, cache_size=2)
    for i in range(3):
        small.set_image(photo(40 + i, 30))
    assert small.cached_images == 2 and small.encoder_calls == 3
    small.set_image(photo(40, 30))  # evicted: computed again
    assert small.encoder_calls == 4


def test_save_and_load_embedding(tiny_hf: tuple[Any, Any, Path], slim: sam.Segmenter,
                                 tmp_path: Path) -> None:
    img = photo(300, 451)
    before = slim.set_image(img).predict(points=[[100, 200]], labels=[1], box=[20, 30, 250, 400])
    path = slim.save_embedding(tmp_path / "emb.pt")
    fresh = wrap(tiny_hf)
    fresh.load_embedding(path)  # the photo travels with the embedding
    assert fresh.encoder_calls == 0 and fresh.image_size == (300, 451)
    after = fresh.predict(points=[[100, 200]], labels=[1], box=[20, 30, 250, 400])
    assert np.array_equal(before.masks, after.masks)
    assert np.array_equal(before.scores, after.scores)
    fresh.load_embedding(path, img)  # the same photo passes the check
    with pytest.raises(ValueError, match="another image"):
        fresh.load_embedding(path, photo(301, 451))


def test_embedding_of_another_model_is_refused(tiny_hf: tuple[Any, Any, Path],
                                               slim: sam.Segmenter, seg: sam.Segmenter,
                                               tmp_path: Path) -> None:
    img = photo(120, 80)
    official = seg.set_image(img).save_embedding(tmp_path / "tiny-sam.pt")
    with pytest.raises(ValueError, match=r"from 'tiny-sam', but this segmenter is "
                                         r"'tiny-slimsam'; load the matching model"):
        slim.load_embedding(official)
    ours = slim.set_image(img).save_embedding(tmp_path / "tiny-slimsam.pt")
    renamed = wrap(tiny_hf, name="slimsam-77")  # the same network under another name
    with pytest.raises(ValueError, match=r"from 'tiny-slimsam', but this segmenter is "
                                         r"'slimsam-77'"):
        renamed.load_embedding(ours)
    assert renamed.cached_images == 0 and renamed.image is None


def test_prompts_are_checked_as_for_sam(slim: sam.Segmenter) -> None:
    with pytest.raises(RuntimeError, match=r"set_image\(image\)"):
        slim.predict(points=[[1, 1]], labels=[1])
    slim.set_image(photo(120, 80))
    assert slim.backend == "transformers" and slim.model is slim.predictor.model
    with pytest.raises(ValueError, match=r"logits of shape \(1, 64, 64\)"):
        slim.predict(mask=np.zeros((1, 256, 256), np.float32))
    with pytest.raises(ValueError, match=r"point \(900, 20\) is outside the 120x80 image"):
        slim.predict(points=[[900, 20]], labels=[1])
    with pytest.raises(ValueError, match="at least one prompt"):
        slim.predict()
    with pytest.raises(ValueError, match="has no area inside the 120x80 image"):
        slim.segment(Detections([[200, 10, 300, 40]], [0.5], ["x"]))
    empty = slim.segment(Detections.empty())
    assert empty.masks is not None and empty.masks.shape == (0, 80, 120)


def test_the_official_backend_still_reports_itself(seg: sam.Segmenter) -> None:
    assert seg.backend == "segment_anything"
    seg.set_image(photo(120, 80))
    with pytest.raises(ValueError, match=r"logits of shape \(1, 64, 64\)"):
        seg.predict(mask=np.zeros((1, 256, 256), np.float32))


# ------------------------------------------------------------ the predictor and the build

def test_predictor_refuses_a_processor_of_another_size(tiny_hf: tuple[Any, Any, Path]) -> None:
    model = tiny_hf[0]
    with pytest.raises(ValueError, match="resizes to 1024 and pads to 1024 pixels, but the "
                                         "model takes 256"):
        sam_hf.HFSamPredictor(model, sam_hf.processor_for(1024))
    with pytest.raises(TypeError, match="takes a transformers SamModel, not str"):
        sam_hf.HFSamPredictor("a model", tiny_hf[1])
    with pytest.raises(TypeError, match="needs the model's SamProcessor"):
        sam_hf.HFSamPredictor(model, object())
    with pytest.raises(ValueError, match="side 100 must be a multiple of 16"):
        sam_hf.processor_for(100)


def test_predictor_checks_its_input(tiny_hf: tuple[Any, Any, Path]) -> None:
    predictor = sam_hf.HFSamPredictor(tiny_hf[0], tiny_hf[1])
    with pytest.raises(RuntimeError, match=r"call set_image\(image\)"):
        predictor.predict_boxes(np.array([[1, 1, 5, 5]]))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 RGB array; got shape \(8, 8\)"):
        predictor.set_image(np.zeros((8, 8), np.uint8))
    predictor.set_image(np.asarray(photo(60, 40)))
    assert predictor.original_size == (40, 60) and predictor.input_size == (171, 256)
    with pytest.raises(ValueError, match=r"shape \(B, 4\).*got \(4,\)"):
        predictor.predict_boxes(np.array([1, 1, 5, 5]))
    with pytest.raises(ValueError, match="point_coords and point_labels go together"):
        predictor.predict(point_coords=np.array([[3.0, 4.0]]))


def test_tiny_build_is_tiny_and_deterministic(tmp_path: Path) -> None:
    import torch

    weights = []
    for name in ("a", "b"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            sam_hf.build_tiny(tmp_path / name)
        weights.append((tmp_path / name / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]
    model, processor = sam_hf.load(str(tmp_path / "a"), None, "cpu")
    assert 5_000 < sum(p.numel() for p in model.parameters()) < 150_000
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert processor.image_processor.size["longest_edge"] == 256
