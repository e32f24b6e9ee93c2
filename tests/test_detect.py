"""detect: text -> boxes for OWL-ViT, OWLv2 and Grounding DINO; scaling, NMS, the whole chain."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import detect, images, sam, tracking, viz, widgets
from helpers.detections import Detections

# one box in the middle: centre (0.5, 0.5), half the width and height of its reference frame
MIDDLE = [0.5, 0.5, 0.5, 0.5]


def photo(w: int, h: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(w + h).integers(0, 255, (h, w, 3), np.uint8))




def fake_outputs(det: detect.Detector, boxes: list[list[float]], best: list[int],
                 n_queries: int) -> Any:
    """A model stand-in that returns chosen boxes, each scoring 0.9 for query ``best[i]``."""
    def forward(**inputs: Any) -> Any:
        n = len(boxes)
        pred = torch.tensor([boxes], dtype=torch.float32)
        if det.family == "grounding-dino":
            tokens = inputs["input_ids"].shape[1]
            spans = detect.query_token_spans(inputs["input_ids"][0].tolist(),
                                             det.processor.tokenizer, QUERIES[:n_queries])
            logits = torch.full((1, n, tokens), -9.0)
            for i, q in enumerate(best):
                a, b = spans[q]
                logits[0, i, a:b] = 2.2  # sigmoid(2.2) = 0.9
        else:
            logits = torch.full((1, n, n_queries), -9.0)
            for i, q in enumerate(best):
                logits[0, i, q] = 2.2
        return SimpleNamespace(logits=logits, pred_boxes=pred)

    return forward


QUERIES = ["a cat", "a red motorcycle"]


class _FakeModel:
    """Stands in for the network: the detector's own pre- and post-processing still run."""

    def __init__(self, forward: Any, dtype: Any) -> None:
        self.forward, self.dtype = forward, dtype

    def __call__(self, **inputs: Any) -> Any:
        return self.forward(**inputs)


@pytest.mark.parametrize("family", detect.FAMILIES)
@pytest.mark.parametrize("size", [(600, 400), (400, 600)])
def test_boxes_scale_to_original_pixels(detectors: dict[str, detect.Detector], family: str,
                                        size: tuple[int, int],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    det = detectors[family]
    w, h = size
    forward = fake_outputs(det, [MIDDLE, [0.25, 0.25, 0.1, 0.1]], best=[0, 1], n_queries=2)
    monkeypatch.setattr(det, "model", _FakeModel(forward, det.model.dtype))
    dets = det.detect(photo(w, h), QUERIES, threshold=0.5)
    assert len(dets) == 2 and dets.labels == ["a cat", "a red motorcycle"]
    assert np.allclose(dets.scores, 0.9, atol=1e-3)
    if family == "owlv2":  # fractions of the padded square: scale by the long side
        side = max(w, h)
        expected = [[side / 4, side / 4, min(3 * side / 4, w), min(3 * side / 4, h)],
                    [0.2 * side, 0.2 * side, 0.3 * side, 0.3 * side]]
    else:  # fractions of the photo's own width and height
        expected = [[w / 4, h / 4, 3 * w / 4, 3 * h / 4], [0.2 * w, 0.2 * h, 0.3 * w, 0.3 * h]]
    assert np.allclose(dets.xyxy, expected, atol=0.5), (dets.xyxy, expected)


def test_owlv2_boxes_in_the_padding_are_dropped() -> None:
    raw = detect.RawBoxes(np.array([[0.5, 0.9, 0.2, 0.1]]), np.array([0.8]), np.array([0]),
                          square=True)
    assert len(detect.to_detections(raw, (600, 400), ["x"])) == 0  # y from 510 to 570 > 400


def test_grounding_token_spans(detectors: dict[str, detect.Detector]) -> None:
    det = detectors["grounding-dino"]
    queries = ["a cat", "a red motorcycle", "sunglasses"]
    text = " ".join(f"{q}." for q in queries)
    ids = det.processor.tokenizer(text)["input_ids"]
    spans = detect.query_token_spans(ids, det.processor.tokenizer, queries)
    tok = det.processor.tokenizer
    for (a, b), q in zip(spans, queries):
        assert tok.decode(ids[a:b]) == q
        assert tok.convert_ids_to_tokens(ids[b]) == "."


def test_nms_per_label_and_across() -> None:
    boxes = np.array([MIDDLE, [0.51, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]])
    raw = detect.RawBoxes(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), square=False)
    per_label = detect.to_detections(raw, (100, 100), ["cat", "dog"], threshold=0.1)
    assert sorted(per_label.labels) == ["cat", "dog"]
    across = detect.to_detections(raw, (100, 100), ["cat", "dog"], cross_label_nms=True)
    assert across.labels == ["cat"]
    kept = detect.to_detections(raw, (100, 100), ["cat", "dog"], nms_iou=None)
    assert len(kept) == 3 and list(kept.scores) == sorted(kept.scores, reverse=True)
    assert len(detect.to_detections(raw, (100, 100), ["cat", "dog"], nms_iou=None, top_k=2)) == 2


@pytest.mark.parametrize("family", detect.FAMILIES)
def test_tiny_models_detect(detectors: dict[str, detect.Detector], family: str) -> None:
    for name in ("astronaut", "chelsea"):
        dets = detectors[family].detect(images.sample(name), ["a face", "a cat"], threshold=0.0)
        assert len(dets) > 0 and set(dets.labels) <= {"a face", "a cat"}
        w, h = images.sample(name).size
        assert (dets.xyxy[:, [0, 2]] <= w).all() and (dets.xyxy[:, [1, 3]] <= h).all()


def test_text_boxes_masks_blur_with_tracking(detectors: dict[str, detect.Detector],
                                             seg: sam.Segmenter, offline_runs: Path,
                                             no_network: list[object]) -> None:
    img = images.sample("astronaut")
    dets = detectors["owlvit"].detect(img, "a human face", threshold=0.0, top_k=3)
    segmented = seg.segment(dets, image=img)
    region = segmented.to_mask(img.size, boxes_if_no_masks=True)  # what blur covers
    blurred = viz.blur(img, segmented, radius=6)
    before, after = np.asarray(img), np.asarray(blurred)
    assert (before[~region] == after[~region]).all()
    assert (before[region] != after[region]).any()
    run = tracking.start("lesson-03-test", online=False)
    record = run.log_image(blurred, "blurred faces", detections=segmented,
                           metadata={"query": "a human face"})
    run.end()
    assert {layer["name"] for layer in record["annotations"]} == {"boxes", "masks"}
    assert no_network == []


def test_zero_detections_flow_through(detectors: dict[str, detect.Detector],
                                      seg: sam.Segmenter, offline_runs: Path) -> None:
    img = images.sample("coffee")
    none = detectors["owlv2"].detect(img, "a giraffe", threshold=1.0)
    assert len(none) == 0
    segmented = seg.segment(none, image=img)
    assert segmented.masks is not None and segmented.masks.shape == (0, 400, 600)
    assert np.array_equal(np.asarray(viz.blur(img, segmented)), np.asarray(img))
    assert np.array_equal(np.asarray(viz.annotate(img, segmented)), np.asarray(img))
    run = tracking.start("empty", online=False)
    record = run.log_image(img, "nothing found", detections=segmented)
    run.end()
    assert record["annotations"] == []


@pytest.mark.parametrize(
    ("queries", "kwargs", "error", "message"),
    [
        ([], {}, ValueError, "queries is empty"),
        ("", {}, ValueError, "non-empty text"),
        (["a cat", "  "], {}, ValueError, "non-empty text"),
        ("a cat", {"threshold": 1.5}, ValueError, r"threshold 1\.5 must lie in \[0, 1\]"),
        ("a cat", {"threshold": -0.1}, ValueError, "threshold -0.1"),
        ("a cat", {"nms_iou": 0}, ValueError, r"nms_iou 0 must lie in \(0, 1\]"),
        ("a cat", {"nms_iou": 1.2}, ValueError, "nms_iou 1.2"),
        ("a cat", {"top_k": 0}, ValueError, "top_k 0"),
    ],
)
def test_bad_input(detectors: dict[str, detect.Detector], queries: Any, kwargs: dict[str, Any],
                   error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        detectors["owlvit"].detect(images.sample("coffee"), queries, **kwargs)


def test_not_an_image(detectors: dict[str, detect.Detector], tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_text("words")
    with pytest.raises(ValueError, match="not an image"):
        detectors["owlvit"].detect(tmp_path / "x.jpg", "a cat")


def test_unknown_detector() -> None:
    with pytest.raises(ValueError, match="unknown detector 'yolo'.*owlvit-b32"):
        detect.Detector.from_pretrained("yolo")


def test_threshold_slider_refilters_without_the_model() -> None:
    dets = Detections([[0, 0, 10, 10], [20, 20, 40, 40], [5, 5, 30, 30]], [0.9, 0.3, 0.05],
                      ["a", "b", "a"])
    slider = widgets.ThresholdSlider(photo(64, 48), dets, threshold=0.1)
    assert slider.detections.labels == ["a", "b"]
    view = slider.widget
    control, count, picture = view.children
    first = picture.value
    control.value = 0.5  # moving the slider
    assert slider.detections.labels == ["a"] and picture.value != first
    assert "1 of 3 boxes" in count.value
    with pytest.raises(ValueError, match="threshold 2"):
        slider.set_threshold(2)


def test_blur_and_pixelate_touch_only_the_mask() -> None:
    img = photo(60, 40)
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:50] = True
    for out in (viz.blur(img, mask, 3), viz.pixelate(img, mask, 5)):
        a, b = np.asarray(img), np.asarray(out)
        assert (a[~mask] == b[~mask]).all() and (a[mask] != b[mask]).any()
    boxes = Detections([[20, 10, 50, 30]])  # no masks: the boxes are the region
    assert np.array_equal(np.asarray(viz.blur(img, boxes, 3)), np.asarray(viz.blur(img, mask, 3)))
    with pytest.raises(ValueError, match=r"expected \(40, 60\)"):
        viz.blur(img, np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="radius 0"):
        viz.blur(img, mask, 0)
    with pytest.raises(ValueError, match="block 0"):
        viz.pixelate(img, mask, 0)
