"""clipseg: text (or an example image) -> masks in one model, at the photo's size.

The tiny CLIPSeg is loaded through the real loader; its masks are checked against the same
work done directly with transformers (processor, model, sigmoid, bilinear resize back to the
photo, threshold), and the way a map is laid over the photo against a decoder stand-in
whose answer is known.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import clipseg, images, models, registry, tiny
from helpers.detections import Detections

QUERIES = ["a cat", "a dog", "a cup without a spoon"]


@pytest.fixture(scope="module")
def seg() -> clipseg.TextSegmenter:
    return clipseg.TextSegmenter.from_pretrained("tiny", device="cpu")


@pytest.fixture(scope="module")
def direct(seg: clipseg.TextSegmenter) -> tuple[Any, Any]:
    """The tiny model and processor read from its folder by transformers alone."""
    from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

    folder = tiny.folder_for("clipseg")
    return (CLIPSegForImageSegmentation.from_pretrained(folder).eval(),
            CLIPSegProcessor.from_pretrained(folder))


def landscape() -> Image.Image:
    return images.sample("chelsea")  # 451x300


def portrait() -> Image.Image:
    return images.sample("chelsea").transpose(Image.Transpose.ROTATE_90)  # 300x451


PHOTOS = {"landscape": landscape, "portrait": portrait}


def expected_probs(direct: tuple[Any, Any], photo: Image.Image, **prompt: Any) -> torch.Tensor:
    """(Q, H, W): the model run as transformers documents it (one copy of the photo per
    query), sigmoid, then bilinear back to the photo's size (the squash undone)."""
    import torch.nn.functional as F

    model, processor = direct
    n = len(prompt.get("text") or prompt["visual_prompt"])
    inputs = processor(images=[photo] * n, padding=True, return_tensors="pt", **prompt)
    with torch.inference_mode():
        logits = model(**inputs).logits.reshape(n, 1, *inputs["pixel_values"].shape[-2:])
    return F.interpolate(torch.sigmoid(logits), size=(photo.height, photo.width),
                         mode="bilinear", align_corners=False)[:, 0]


def by_label(found: Detections, labels: list[str]) -> np.ndarray:
    """The masks of ``found`` in the order of ``labels`` (one detection per label)."""
    assert sorted(found.labels) == sorted(labels)
    assert found.masks is not None
    return np.stack([found.masks[found.labels.index(lab)] for lab in labels])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


# ---------------------------------------------------------------- loading

@pytest.mark.usefixtures("tiny")
def test_the_tiny_model_loads_through_the_real_loader() -> None:
    found = clipseg.TextSegmenter.from_pretrained(device="cpu")  # "clipseg-rd64", swapped
    assert found.name == "tiny-clipseg" and found.spec.family == "clipseg"
    assert Path(found.loaded.path) == tiny.folder_for("clipseg")
    assert type(found.model).__name__ == "CLIPSegForImageSegmentation"
    assert type(found.processor).__name__ == "CLIPSegProcessor"
    assert models.load("clipseg", device="cpu", family="clipseg") is found.loaded  # the alias


def test_the_registry_knows_clipseg() -> None:
    spec = registry.REGISTRY[clipseg.TextSegmenter.default]
    assert spec.family == "clipseg" and spec.source == "CIDAS/clipseg-rd64-refined"
    assert registry.resolve("clipseg", "clipseg", tiny=False) is spec
    assert registry.resolve("tiny", "clipseg").name == "tiny-clipseg"
    with pytest.raises(ValueError, match="unknown text segmenter 'clipseg-b16'"):
        registry.resolve("clipseg-b16", "clipseg")


def test_a_model_of_another_family_is_refused() -> None:
    fake = models.Loaded(None, None, registry.REGISTRY["tiny-clip"], "x", "cpu", None)
    with pytest.raises(ValueError, match="'tiny-clip' is a clip model, but TextSegmenter "
                                         "takes a text segmenter"):
        clipseg.TextSegmenter(fake)


@pytest.mark.parametrize(("image_processor", "words"), [
    (SimpleNamespace(size={"shortest_edge": 352}, do_resize=True), "squashes every photo"),
    (SimpleNamespace(size={"height": 352, "width": 352}, do_resize=True,
                     do_center_crop=True), "to a square"),
    (SimpleNamespace(size={"height": 352, "width": 512}, do_resize=True), "square grid"),
])
def test_a_processor_that_does_not_squash_to_a_square_is_refused(
        seg: clipseg.TextSegmenter, image_processor: Any, words: str) -> None:
    processor = SimpleNamespace(image_processor=image_processor, tokenizer=seg.processor.tokenizer)
    fake = models.Loaded(seg.model, processor, seg.spec, "x", "cpu", torch.float32)
    with pytest.raises(ValueError, match=words):
        clipseg.TextSegmenter(fake)


# ---------------------------------------------------------------- masks in the photo's frame

@pytest.mark.parametrize("shape", list(PHOTOS))
def test_masks_come_back_at_the_photo_size(seg: clipseg.TextSegmenter, shape: str) -> None:
    photo = PHOTOS[shape]()
    found = seg.segment(photo, QUERIES, threshold=0.0)
    assert found.masks is not None and found.mask_scores is not None
    assert found.masks.shape == (3, photo.height, photo.width) and found.masks.dtype == bool
    assert seg.heatmap(photo, "a cat").shape == (photo.height, photo.width)
    pixels = seg.processor(images=photo, return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape[-2:]) == (seg.side, seg.side)  # squashed, not cropped


@pytest.mark.parametrize("shape", list(PHOTOS))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_masks_equal_transformers_run_directly(seg: clipseg.TextSegmenter,
                                               direct: tuple[Any, Any], shape: str,
                                               threshold: float) -> None:
    photo = PHOTOS[shape]()
    probs = expected_probs(direct, photo, text=QUERIES)
    want = (probs >= threshold).numpy()
    assert want.any(), "the tiny model should leave something at this threshold"
    found = seg.segment(photo, QUERIES, threshold=threshold)
    kept = [q for q, m in zip(QUERIES, want) if m.any()]
    got = by_label(found, kept)
    for g, w in zip(got, want[[QUERIES.index(q) for q in kept]]):
        assert iou(g, w) >= 0.999
    np.testing.assert_allclose(seg.heatmap(photo, "a dog"), probs[1].numpy(), atol=1e-5)


def test_an_example_image_as_the_query_equals_the_visual_prompt(
        seg: clipseg.TextSegmenter, direct: tuple[Any, Any]) -> None:
    photo, example = landscape(), images.sample("coffee").crop((100, 100, 300, 300))
    probs = expected_probs(direct, photo, visual_prompt=[example])
    np.testing.assert_allclose(seg.heatmap(photo, example), probs[0].numpy(), atol=1e-5)
    found = seg.segment(photo, np.asarray(example), threshold=0.5)
    assert found.labels == ["example 1"]
    assert iou(by_label(found, ["example 1"])[0], (probs[0] >= 0.5).numpy()) >= 0.999


def test_texts_and_examples_mix_in_one_call(seg: clipseg.TextSegmenter) -> None:
    photo, example = landscape(), images.sample("coffee")
    both = seg.segment(photo, ["a cat", example], threshold=0.5, labels=["cat", "cup"])
    alone = seg.segment(photo, "a cat", threshold=0.5)
    assert sorted(both.labels) == ["cat", "cup"] and both.masks is not None
    assert iou(both.masks[both.labels.index("cat")], alone.masks[0]) >= 0.999  # type: ignore[index]


def test_the_map_is_laid_over_the_whole_photo_stretched(seg: clipseg.TextSegmenter) -> None:
    """A decoder stand-in says "yes" on the left half and top quarter of its square: the
    mask must be the left half and top quarter of the photo, whatever its aspect."""
    side = seg.side

    class Decoder(torch.nn.Module):
        def forward(self, taps: Any, conditions: Any) -> Any:
            logits = torch.full((len(conditions), side, side), -20.0)
            logits[:, : side // 4, : side // 2] = 20.0
            return SimpleNamespace(logits=logits)

    real = seg.model.decoder
    seg.model.decoder = Decoder()  # (monkeypatch cannot put a submodule back)
    try:
        for photo in (landscape(), portrait(), Image.new("RGB", (64, 640))):
            found = seg.segment(photo, "anything", threshold=0.5)
            want = np.zeros((photo.height, photo.width), bool)
            want[: photo.height // 4, : photo.width // 2] = True
            assert iou(found.masks[0], want) >= 0.98, photo.size  # type: ignore[index]
            np.testing.assert_allclose(found.xyxy[0], [0, 0, photo.width / 2,
                                                       photo.height / 4], atol=2)
    finally:
        seg.model.decoder = real


# ---------------------------------------------------------------- thresholds, boxes, scores

def test_threshold_zero_keeps_every_pixel_and_one_keeps_none(seg: clipseg.TextSegmenter) -> None:
    photo = landscape()
    full = seg.segment(photo, QUERIES, threshold=0.0)
    assert len(full) == 3 and full.masks is not None and full.masks.all()
    np.testing.assert_array_equal(full.xyxy, [[0, 0, 451, 300]] * 3)
    none = seg.segment(photo, QUERIES, threshold=1.0)
    assert none.is_empty() and none.masks is not None and none.masks.shape == (0, 300, 451)
    assert none == Detections.empty(photo.size)


def test_a_higher_threshold_gives_a_smaller_mask_inside_the_lower_one(
        seg: clipseg.TextSegmenter) -> None:
    photo = landscape()
    masks = [seg.segment(photo, "a cat", threshold=t).masks for t in (0.3, 0.5, 0.7)]
    low, mid, high = (m[0] for m in masks)  # type: ignore[index]
    assert high.sum() < mid.sum() < low.sum()
    assert not (high & ~mid).any() and not (mid & ~low).any()


def test_box_score_and_mask_score_follow_the_mask(seg: clipseg.TextSegmenter) -> None:
    photo = landscape()
    found = seg.segment(photo, QUERIES, threshold=0.6)
    assert len(found) >= 1 and list(found.scores) == sorted(found.scores, reverse=True)
    for det in found:
        mask, label = det.masks[0], det.labels[0]  # type: ignore[index]
        heat = seg.heatmap(photo, label)
        ys, xs = np.nonzero(mask)
        np.testing.assert_array_equal(det.xyxy[0], [xs.min(), ys.min(), xs.max() + 1,
                                                    ys.max() + 1])
        assert det.scores[0] == pytest.approx(heat[mask].max()) == pytest.approx(heat.max())
        assert det.mask_scores[0] == pytest.approx(heat[mask].mean(), rel=1e-5)  # type: ignore[index]


def test_split_gives_one_detection_per_connected_region(seg: clipseg.TextSegmenter) -> None:
    import cv2

    photo = landscape()
    whole = seg.segment(photo, "a cat", threshold=0.6)
    parts = seg.segment(photo, "a cat", threshold=0.6, split=True)
    count, _ = cv2.connectedComponents(whole.masks[0].astype(np.uint8), connectivity=8)  # type: ignore[index]
    assert len(parts) == count - 1 > 1 and set(parts.labels) == {"a cat"}
    assert parts.masks is not None and whole.masks is not None
    assert parts.masks.sum(axis=0).max() == 1  # disjoint
    np.testing.assert_array_equal(parts.masks.any(axis=0), whole.masks[0])
    big = seg.segment(photo, "a cat", threshold=0.6, split=True, min_area=500)
    assert 0 < len(big) < len(parts) and (big.masks.reshape(len(big), -1).sum(1) >= 500).all()  # type: ignore[union-attr]


def test_the_image_is_encoded_once(seg: clipseg.TextSegmenter) -> None:
    photo = Image.new("RGB", (80, 60), (10, 200, 30))
    before = seg.encoder_calls
    seg.heatmap(photo, "a cat")
    seg.segment(photo, QUERIES)
    seg.segment(photo.copy(), "a dog", split=True)
    assert seg.encoder_calls == before + 1
    seg.segment(Image.new("RGB", (80, 60), (200, 30, 10)), "a dog")
    assert seg.encoder_calls == before + 2


def test_a_long_query_is_cut_with_a_warning(seg: clipseg.TextSegmenter) -> None:
    with pytest.warns(UserWarning, match="the text encoder reads 77: the end is cut off"):
        found = seg.segment(landscape(), " ".join(["a cat"] * 60), threshold=0.0)
    assert len(found) == 1


# ---------------------------------------------------------------- bad inputs, before the model

BAD = [
    ("segment", dict(queries=None), "queries None: give a text such as 'a cup'"),
    ("segment", dict(queries=[]), "queries is empty"),
    ("segment", dict(queries="   "), r"query 0 '   ' is blank"),
    ("segment", dict(queries=["a cat", ""]), "query 1 '' is blank"),
    ("segment", dict(queries=["a cat", 3]), "query 1 3 must be a text such as 'a cup' or an "
                                            "example image"),
    ("segment", dict(queries=42), "queries 42 must be a text"),
    ("segment", dict(queries="a cat", threshold=float("nan")),
     "threshold nan must be a finite number"),
    ("segment", dict(queries="a cat", threshold=1.5), r"threshold 1.5 must lie in \[0, 1\]"),
    ("segment", dict(queries="a cat", threshold=-0.1), r"threshold -0.1 must lie in \[0, 1\]"),
    ("segment", dict(queries="a cat", threshold="0.4"), "threshold '0.4' must be a number"),
    ("segment", dict(queries="a cat", threshold=None), "threshold None must be a number"),
    ("segment", dict(queries="a cat", threshold=True), "threshold True must be a number"),
    ("segment", dict(queries=["a cat", "a dog"], labels=["cat"]),
     "must be one name per query \\(2 of them\\)"),
    ("segment", dict(queries="a cat", labels=[""]), "label '' must be a non-empty text"),
    ("segment", dict(queries="a cat", split="yes"), "split 'yes' must be True or False"),
    ("segment", dict(queries="a cat", min_area=0), "min_area 0 must be >= 1"),
    ("segment", dict(queries="a cat", min_area=2.5), "min_area 2.5 must be an integer"),
    ("heatmap", dict(query=["a cat", "a dog"]), "heatmap takes one query"),
    ("heatmap", dict(query=None), "query None: give a text such as 'a cup', an example image$"),
    ("heatmap", dict(query=""), "query 0 '' is blank"),
    ("segment", dict(queries=["a cat", np.zeros((4, 4, 7))]), r"got \(4, 4, 7\)"),
]


@pytest.mark.parametrize(("call", "kwargs", "message"), BAD)
def test_bad_inputs_are_refused_before_the_model_runs(
        seg: clipseg.TextSegmenter, monkeypatch: pytest.MonkeyPatch, call: str,
        kwargs: dict[str, Any], message: str) -> None:
    def boom(*args: Any) -> Any:
        raise AssertionError("the model ran")

    monkeypatch.setattr(seg, "_probabilities", boom)
    monkeypatch.setattr(seg, "_encode_image", boom)
    with pytest.raises(ValueError, match=message):
        getattr(seg, call)(landscape(), **kwargs)


@pytest.mark.parametrize("bad", [0, 1.5, "4", None])
def test_cache_size_is_checked_before_loading(bad: Any) -> None:
    with pytest.raises(ValueError, match=f"cache_size {bad!r}"):
        clipseg.TextSegmenter.from_pretrained("no-such-model", cache_size=bad)
