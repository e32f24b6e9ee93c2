"""detect with an example image as the query: OWL-ViT and OWLv2 image-guided detection.

The boxes and scores are checked against transformers' own path (processor ->
``model.image_guided_detection`` -> ``post_process_image_guided_detection``), on a landscape
and a portrait photo, so a wrong scale (OWLv2's padded square) or a wrong score shows.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import detect, examples, images
from helpers.detections import Detections

OWL = ("owlvit", "owlv2")
CAT_FACE = (120, 40, 260, 180)  # a box in chelsea's pixels (451 x 300)
CUP = (180, 60, 420, 330)  # a box in coffee's pixels (600 x 400)


def landscape() -> Image.Image:
    return images.sample("chelsea")  # 451 x 300


def portrait() -> Image.Image:
    return images.sample("chelsea").transpose(Image.Transpose.TRANSPOSE)  # 300 x 451


PHOTOS = {"landscape": landscape, "portrait": portrait}


def no_model(det: detect.Detector, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any forward pass of ``det`` fail the test."""
    def fail(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("the model ran")

    monkeypatch.setattr(det, "_forward", fail)
    monkeypatch.setattr(det, "_forward_example", fail)
    monkeypatch.setattr(det.model, "forward", fail)
    if hasattr(det.model, "image_guided_detection"):
        monkeypatch.setattr(det.model, "image_guided_detection", fail)


def transformers_boxes(det: detect.Detector, target: Image.Image,
                       query: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """transformers' own answer: (N, 4) xyxy pixel boxes and (N,) sigmoid scores, with no
    NMS, clipped to the photo as ``Detections`` are (boxes wholly in OWLv2's padding
    dropped)."""
    inputs = det.processor(images=target, query_images=query, return_tensors="pt")
    with torch.inference_mode():
        outputs = det.model.image_guided_detection(**inputs)
    w, h = target.size
    # OWLv2's boxes are fractions of the padded square: its post-processing scales by the
    # square's side, whatever the (height, width) given; OWL-ViT's by height and width
    side = max(w, h)
    sizes = torch.tensor([[side, side]] if det.family == "owlv2" else [[h, w]])
    [result] = det.processor.post_process_image_guided_detection(
        outputs, threshold=0.0, nms_threshold=1.0, target_sizes=sizes)
    # transformers rescales each score to an "alpha", (s - m/10) / (9m/10) with m the best
    # score (+1e-6), and keeps alpha > 0; undo that to compare sigmoid scores
    best = torch.sigmoid(outputs.logits[0].max(dim=-1).values).max() + 1e-6
    scores = (result["scores"] * 0.9 * best + 0.1 * best).numpy()
    boxes = result["boxes"].numpy().copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[area > 0], scores[area > 0]


def assert_same_boxes(ours: Detections, boxes: np.ndarray, scores: np.ndarray) -> None:
    """The same (box, score) pairs, boxes within 1e-3 px and scores within 1e-4, in any
    order: the tiny models' scores tie at 1.0 and many boxes clip to the same corners."""
    assert len(ours) == len(boxes) > 0, (len(ours), len(boxes))
    box_gap = np.abs(ours.xyxy[:, None, :] - boxes[None, :, :]).max(axis=-1)  # (N, N)
    score_gap = np.abs(ours.scores[:, None] - scores[None, :])
    free = np.ones(len(ours), bool)
    for j in range(len(boxes)):
        cost = np.where(free, box_gap[:, j] / 1e-3 + score_gap[:, j] / 1e-4, np.inf)
        i = int(cost.argmin())
        assert box_gap[i, j] < 1e-3 and score_gap[i, j] < 1e-4, \
            (boxes[j], scores[j], ours.xyxy[i], ours.scores[i])
        free[i] = False


# ---------------------------------------------------------------- against transformers

@pytest.mark.parametrize("family", OWL)
@pytest.mark.parametrize("shape", PHOTOS)
def test_example_boxes_match_transformers(detectors: dict[str, detect.Detector], family: str,
                                          shape: str) -> None:
    det, target = detectors[family], PHOTOS[shape]()
    coffee = images.sample("coffee")
    query = coffee.crop(CUP)
    boxes, scores = transformers_boxes(det, target, query)
    ours = det.detect(target, detect.Example(coffee, box=CUP), threshold=0.0, nms_iou=None)
    assert set(ours.labels) == {"example 1"}
    w, h = target.size
    assert (ours.xyxy[:, [0, 2]] <= w).all() and (ours.xyxy[:, [1, 3]] <= h).all()
    # transformers drops the boxes scoring at most a tenth of the best; with threshold 0,
    # we keep them
    best = float(ours.scores.max()) + 1e-6
    kept = ours[ours.scores > 0.1 * best]
    assert_same_boxes(kept, boxes, scores)


# ---------------------------------------------------------------- what an example may be

@pytest.mark.parametrize("family", OWL)
def test_a_crop_example_is_the_cropped_picture(detectors: dict[str, detect.Detector],
                                               family: str, tmp_path: Path) -> None:
    det, photo = detectors[family], landscape()
    crop = photo.crop(CAT_FACE)
    crop.save(tmp_path / "face.png")
    as_crop = det.detect(photo, detect.Example(photo, box=CAT_FACE), threshold=0.0)
    assert len(as_crop) > 0
    for same in (crop, np.asarray(crop), tmp_path / "face.png",
                 detect.Example(str(tmp_path / "face.png")),
                 detect.Example(photo, box=np.array([CAT_FACE], dtype=np.float32)),
                 detect.Example(photo, box=[120.2, 39.8, 259.6, 180.4])):  # rounds to pixels
        assert det.detect(photo, same, threshold=0.0) == as_crop, same
    other = det.detect(photo, detect.Example(photo, box=[0, 0, 60, 300]), threshold=0.0)
    assert other != as_crop  # the box is used


def test_a_text_is_never_a_path(detectors: dict[str, detect.Detector], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    landscape().save("cat.png")
    dets = detectors["owlvit"].detect(landscape(), "cat.png", threshold=0.0)
    assert set(dets.labels) == {"cat.png"}


# ---------------------------------------------------------------- labels, NMS, top_k, mixing

@pytest.mark.parametrize("family", OWL)
def test_labels(detectors: dict[str, detect.Detector], family: str) -> None:
    det, photo = detectors[family], landscape()
    face, corner = detect.Example(photo, box=CAT_FACE), photo.crop((0, 0, 80, 80))
    named = detect.Example(photo, box=CAT_FACE, label="  cat face ")
    dets = det.detect(photo, [face, corner], threshold=0.0, nms_iou=None)
    assert set(dets.labels) <= {"example 1", "example 2"} and len(dets) > 0
    assert set(det.detect(photo, [named], threshold=0.0).labels) == {"cat face"}
    # numbered among the examples only, in the order given
    mixed = det.detect(photo, ["a cat", corner, "a dog", face], threshold=0.0, nms_iou=None)
    assert set(mixed.labels) <= {"a cat", "a dog", "example 1", "example 2"}
    swapped = det.detect(photo, [corner, face], threshold=0.0, nms_iou=None)
    flip = {"example 1": "example 2", "example 2": "example 1"}
    assert np.array_equal(swapped.xyxy, dets.xyxy)
    assert np.array_equal(swapped.scores, dets.scores)
    unsure = dets.scores == 1.0  # a tie in float32: the first of the two examples wins it
    assert not unsure.all()
    assert [lab for lab, tie in zip(swapped.labels, unsure) if not tie] == \
        [flip[lab] for lab, tie in zip(dets.labels, unsure) if not tie]
    alone = det.detect(photo, corner, threshold=0.0, nms_iou=None)
    # each box once among the examples: the example that scored it highest labels it
    assert len(dets) == len(alone)
    # two examples of one label: one label, each box scored by the better of the two
    both = det.detect(photo, [detect.Example(photo, box=CAT_FACE, label="cat"),
                              detect.Example(corner, label="cat")], threshold=0.0,
                      nms_iou=None)
    assert set(both.labels) == {"cat"}
    assert np.array_equal(np.sort(both.scores), np.sort(dets.scores))


def by_label(dets: Detections, label: str) -> Detections:
    return dets[np.array(dets.labels) == label]


@pytest.mark.parametrize("family", OWL)
@pytest.mark.parametrize("shape", PHOTOS)
def test_texts_and_examples_mix(detectors: dict[str, detect.Detector], family: str,
                                shape: str) -> None:
    det, photo = detectors[family], PHOTOS[shape]()
    cup = detect.Example(images.sample("coffee"), box=CUP, label="cup")
    texts = det.detect(photo, ["a cat", "a dog"], threshold=0.0, nms_iou=None)
    shown = det.detect(photo, cup, threshold=0.0, nms_iou=None)
    for order in (["a cat", cup, "a dog"], [cup, "a cat", "a dog"]):
        mixed = det.detect(photo, order, threshold=0.0, nms_iou=None)
        assert len(mixed) == len(texts) + len(shown)
        # adding an example does not change what the texts find, nor the other way round
        assert by_label(mixed, "cup") == shown
        for label in ("a cat", "a dog"):
            assert by_label(mixed, label) == by_label(texts, label)
        assert list(mixed.scores) == sorted(mixed.scores, reverse=True)
    across = det.detect(photo, ["a cat", cup], threshold=0.0, nms_iou=0.5, cross_label_nms=True)
    iou = across.iou(across)
    np.fill_diagonal(iou, 0)
    assert (iou <= 0.5 + 1e-6).all()


@pytest.mark.parametrize("family", OWL)
def test_threshold_nms_and_top_k_as_for_texts(detectors: dict[str, detect.Detector],
                                              family: str) -> None:
    det, photo = detectors[family], landscape()
    face = detect.Example(photo, box=CAT_FACE, label="face")
    raw, size = det.raw(photo, face)
    assert size == photo.size and raw.boxes.shape == (len(raw.scores), 4)
    assert raw.query.tolist() == [0] * len(raw.scores)
    every = det.detect(photo, face, threshold=0.0, nms_iou=None)
    assert every == detect.to_detections(raw, size, ["face"], 0.0, None)
    for iou in (0.3, 0.7):
        kept = det.detect(photo, face, threshold=0.0, nms_iou=iou)
        assert kept == every.nms(iou) and 0 < len(kept) <= len(every)
        overlap = kept.iou(kept)
        np.fill_diagonal(overlap, 0)
        assert (overlap <= iou + 1e-6).all()
    assert det.detect(photo, face, threshold=0.0, nms_iou=None, top_k=2) == every[:2]
    cut = float(np.median(every.scores))
    assert det.detect(photo, face, threshold=cut, nms_iou=None) == every[every.scores >= cut]
    assert len(det.detect(photo, face, threshold=1.0, nms_iou=None)) == \
        int((every.scores >= 1.0).sum())


def test_no_box_in_the_example_is_a_clear_error(detectors: dict[str, detect.Detector],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """OWL-ViT returns zeros for every query dimension when no box lies in the example."""
    det = detectors["owlvit"]
    patches = 16
    monkeypatch.setattr(det, "_forward_example", lambda inputs: SimpleNamespace(
        logits=torch.zeros(1, patches, 32), target_pred_boxes=torch.full((1, patches, 4), 0.5)))
    with pytest.raises(ValueError, match="found no object in the example 'example 1'.*closer"):
        det.detect(landscape(), landscape().crop((0, 0, 50, 50)))


# ---------------------------------------------------------------- refused before the model

def tiny_array() -> np.ndarray:
    return np.zeros((1, 1, 3), np.uint8)


# the wrong types on purpose: what a learner may type
BAD = [
    (lambda p: detect.Example(p, box=[10, 10, 10, 50]), ValueError, r"box \[10, 10, 10, 50\] "
     r"has x2 <= x1"),
    (lambda p: detect.Example(p, box=[10, 60, 50, 20]), ValueError, "has y2 <= y1"),
    (lambda p: detect.Example(p, box=[10, 10, 11, 11]), ValueError,
     r"example crop \[10, 10, 11, 11\] is 1x1 pixels, too small to match: an example must be "
     "at least 8 pixels on each side"),
    (lambda p: detect.Example(p, box=[0, 0, 5, 200]), ValueError, "is 5x200 pixels, too small"),
    (lambda p: tiny_array(), ValueError, "example image is 1x1 pixels, too small.*at least 8"),
    (lambda p: detect.Example(Image.new("RGB", (7, 40))), ValueError, "7x40 pixels"),
    (lambda p: detect.Example(p, box=[400, 10, 500, 100]), ValueError,
     r"box \[400, 10, 500, 100\] reaches outside the example photo, which is 451x300 pixels"),
    (lambda p: detect.Example(p, box=[-5, 0, 50, 50]), ValueError, "reaches outside"),
    (lambda p: detect.Example(p, box=[1, 2, 3]), ValueError,
     r"box \[1, 2, 3\] must be 4 numbers \[x1, y1, x2, y2\]"),
    (lambda p: detect.Example(p, box="0 0 50 50"),  # type: ignore[arg-type]
     ValueError, "must be 4 numbers"),
    (lambda p: detect.Example(p, box=[0, 0, 50, "x"]),  # type: ignore[list-item]
     ValueError, "must be 4 numbers"),
    (lambda p: detect.Example(p, box=[[0, 0], [50, 50]]),  # type: ignore[list-item]
     ValueError, "must be 4 numbers"),
    (lambda p: detect.Example(p, box=[0, 0, float("nan"), 50]), ValueError, "finite numbers"),
    (lambda p: detect.Example(42), ValueError, "Example image 42 is a int, not an image"),
    (lambda p: detect.Example([p]), ValueError, "is a list, not an image"),
    (lambda p: detect.Example(p, label=""), ValueError, "label '' must be a non-empty text"),
    (lambda p: detect.Example(p, label=3),  # type: ignore[arg-type]
     ValueError, "label 3 must be a non-empty text"),
    (lambda p: [p, 42], ValueError, "query 42 is a int; a query is a text such as 'a cat', an "
     "example image"),
    (lambda p: ["a cat", None], ValueError, "query None is a NoneType"),
    (lambda p: detect.Example(Path("no/such/picture.png")), FileNotFoundError, "does not exist"),
]


@pytest.mark.parametrize(("make", "error", "message"), BAD)
def test_bad_examples_are_refused_before_the_model(
        detectors: dict[str, detect.Detector], monkeypatch: pytest.MonkeyPatch,
        make: Any, error: type, message: str) -> None:
    det = detectors["owlv2"]
    no_model(det, monkeypatch)
    with pytest.raises(error, match=message):
        det.detect(landscape(), make(landscape()))


def test_a_file_that_is_no_picture(detectors: dict[str, detect.Detector],
                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_text("words")
    det = detectors["owlvit"]
    no_model(det, monkeypatch)
    with pytest.raises(ValueError, match="not an image"):
        det.detect(landscape(), tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="not an image"):
        det.detect(landscape(), ["a cat", detect.Example(tmp_path / "x.jpg", box=[0, 0, 9, 9])])


@pytest.mark.parametrize("queries", [
    lambda p: p,
    lambda p: detect.Example(p, box=CAT_FACE),
    lambda p: ["a cat", p.crop((0, 0, 50, 50))],
])
def test_grounding_dino_refuses_an_example_before_any_work(
        detectors: dict[str, detect.Detector], monkeypatch: pytest.MonkeyPatch,
        queries: Any) -> None:
    det = detectors["grounding-dino"]
    no_model(det, monkeypatch)
    message = (r"Grounding DINO takes text queries only; use OWL-ViT or OWLv2 "
               r"\('owlvit-b32', 'owlv2-b16'\) for an example image")
    with pytest.raises(ValueError, match=message):
        det.detect(landscape(), queries(landscape()))
    with pytest.raises(ValueError, match=message):  # before the photo is even read
        det.detect("no/such/photo.png", queries(landscape()))


def test_example_repr_is_short() -> None:
    photo = landscape()
    assert repr(detect.Example(photo, box=CAT_FACE, label="face")) == \
        "Example(<451x300 image>, box=(120.0, 40.0, 260.0, 180.0), label='face')"
    assert "array (300, 451, 3)" in repr(detect.Example(np.asarray(photo)))
    assert examples.labels(["a", detect.Example(photo), "b", detect.Example(photo, label="z"),
                            detect.Example(photo)]) == ["a", "example 1", "b", "z", "example 3"]
