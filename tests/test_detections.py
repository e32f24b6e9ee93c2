"""Detections: validation, indexing, filtering, NMS, masks and box formats."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.detections import Detections


def dets(n: int = 3, masks: bool = False) -> Detections:
    boxes = np.array([[0, 0, 10, 10], [20, 20, 40, 30], [5, 5, 6, 9]], np.float32)[:n]
    m = None
    if masks:
        m = np.zeros((n, 32, 48), bool)
        for i in range(n):
            x1, y1, x2, y2 = boxes[i].astype(int)
            m[i, y1:y2, x1:x2] = True
    return Detections(boxes, [0.9, 0.4, 0.6][:n], ["cat", "dog", "cat"][:n], m,
                      None if m is None else np.array([0.8, 0.7, 0.6][:n]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"xyxy": [[0, 0, 1, 1]], "scores": [0.1, 0.2]}, r"same length; got xyxy=1, scores=2"),
        ({"xyxy": [[0, 0, 1, 1]], "labels": ["a", "b"]}, "labels=2"),
        ({"xyxy": [[5, 0, 1, 1]]}, r"box 0 .* x2 < x1"),
        ({"xyxy": [[0, 0, 1, 1], [0, 5, 1, 2]]}, r"box 1 .*y2 < y1"),
        ({"xyxy": [[0, 0, 1]]}, r"shape \(N, 4\)"),
        ({"xyxy": [[0, 0, np.nan, 1]]}, "non-finite"),
        ({"xyxy": [[0, 0, 1, 1]], "masks": np.zeros((2, 4, 4), bool)}, "masks=2"),
        ({"xyxy": [[0, 0, 1, 1]], "masks": np.zeros((4,), bool)}, r"\(N, H, W\)"),
        ({"xyxy": [[0, 0, 1, 1]], "mask_scores": [0.5]}, "without masks"),
    ],
)
def test_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Detections(**kwargs)


def test_defaults_and_dtypes() -> None:
    d = Detections([[1, 2, 3, 4]])
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (1, 4)
    assert d.scores.tolist() == [1.0] and d.labels == [""]
    assert Detections([[1, 2, 3, 4], [0, 0, 1, 1]], labels="face").labels == ["face", "face"]
    assert Detections([1, 2, 3, 4]).xyxy.shape == (1, 4)


def test_masks_are_bool() -> None:
    d = Detections([[0, 0, 2, 2]], masks=np.array([[[0.2, 0.9], [0.7, 0.1]]]))
    assert d.masks is not None and d.masks.dtype == bool
    assert d.masks[0].tolist() == [[False, True], [True, False]]


def test_empty() -> None:
    e = Detections.empty()
    assert len(e) == 0 and e.xyxy.shape == (0, 4) and e.labels == []
    assert len(e.filter(0.5)) == 0 and len(e.nms(0.5)) == 0
    sized = Detections.empty(image_size=(48, 32))
    assert sized.union_mask().shape == (32, 48) and not sized.union_mask().any()


@pytest.mark.parametrize(
    ("index", "labels"),
    [
        (0, ["cat"]),
        (-1, ["cat"]),
        (slice(1, None), ["dog", "cat"]),
        (np.array([2, 0]), ["cat", "cat"]),
        (np.array([True, False, True]), ["cat", "cat"]),
        ([], []),
    ],
)
def test_indexing(index: object, labels: list[str]) -> None:
    d = dets(masks=True)
    sub = d[index]
    assert sub.labels == labels
    assert sub.masks is not None and len(sub.masks) == len(labels)
    assert sub.mask_scores is not None and len(sub.mask_scores) == len(labels)


def test_boolean_filter_like_numpy() -> None:
    d = dets()
    assert d[d.scores > 0.5].labels == ["cat", "cat"]


@pytest.mark.parametrize("index", [3, -4, np.array([True]), np.array([0.5])])
def test_bad_indexing(index: object) -> None:
    with pytest.raises(IndexError):
        dets()[index]


def test_filter_and_sorted() -> None:
    d = dets()
    assert d.filter(0.5).scores.tolist() == pytest.approx([0.9, 0.6])
    assert d.sorted().scores.tolist() == pytest.approx([0.9, 0.6, 0.4])
    with pytest.raises(ValueError, match="1.5"):
        d.filter(1.5)


def test_nms_per_label_and_across() -> None:
    boxes = [[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]]
    d = Detections(boxes, [0.9, 0.8, 0.7, 0.5], ["cat", "cat", "dog", "cat"])
    per_label = d.nms(0.5)
    assert sorted(zip(per_label.labels, [round(float(x), 2) for x in per_label.scores])) == [
        ("cat", 0.5), ("cat", 0.9), ("dog", 0.7)]
    across = d.nms(0.5, per_label=False)
    assert [round(float(x), 2) for x in across.scores] == [0.9, 0.5]
    assert len(d.nms(1.0)) == 4  # nothing overlaps by more than 100%


@pytest.mark.parametrize("iou", [0, -0.1, 1.01])
def test_nms_rejects_bad_iou(iou: float) -> None:
    with pytest.raises(ValueError, match=str(iou)):
        dets().nms(iou)


def test_union_mask() -> None:
    d = dets(masks=True)
    union = d.union_mask()
    assert union.shape == (32, 48)
    assert union.sum() == d.masks.any(axis=0).sum() and union[25, 30] and not union[31, 47]
    with pytest.raises(ValueError, match="Segmenter.segment"):
        dets().union_mask()


def test_box_formats() -> None:
    xywh = Detections.from_xywh([[10, 20, 30, 40]], [0.5], ["a"])
    assert xywh.xyxy.tolist() == [[10, 20, 40, 60]]
    assert xywh.xywh.tolist() == [[10, 20, 30, 40]]
    cx = Detections.from_cxcywh([[25, 40, 30, 40]])
    assert cx.xyxy.tolist() == [[10, 20, 40, 60]]
    norm = Detections.from_cxcywh([[0.5, 0.5, 0.5, 0.25]], normalized=True, image_size=(200, 100))
    assert norm.xyxy.tolist() == [[50, 37.5, 150, 62.5]]
    with pytest.raises(ValueError, match="image_size"):
        Detections.from_cxcywh([[0.5, 0.5, 0.1, 0.1]], normalized=True)
    with pytest.raises(ValueError, match=">= 0"):
        Detections.from_xywh([[0, 0, -1, 1]])


def test_concat_area_clip_records() -> None:
    d = dets()
    joined = Detections.concat([d[:1], Detections.empty(), d[1:]])
    assert joined.labels == d.labels and len(joined) == 3
    assert d.area.tolist() == [100, 200, 4]
    clipped = Detections([[-5, -5, 100, 10]]).clip((50, 40))
    assert clipped.xyxy.tolist() == [[0, 0, 50, 10]]
    rec = d.to_records()[1]
    assert rec == {"label": "dog", "score": pytest.approx(0.4), "xyxy": [20.0, 20.0, 40.0, 30.0]}
    assert isinstance(rec["xyxy"][0], float)
    with pytest.raises(ValueError, match="with and without masks"):
        Detections.concat([dets(1, masks=True), dets(1)])


def test_iteration_and_repr() -> None:
    d = dets()
    assert [x.labels[0] for x in d] == ["cat", "dog", "cat"]
    assert "n=3" in repr(d)


def test_iou() -> None:
    a = Detections([[0, 0, 10, 10], [0, 0, 5, 10]])
    b = Detections([[0, 0, 10, 10], [20, 20, 30, 30]])
    assert np.allclose(a.iou(b), [[1.0, 0.0], [0.5, 0.0]])
    assert a.iou(Detections.empty()).shape == (2, 0)


def test_box_masks() -> None:
    m = Detections([[1, 2, 4, 3], [0, 0, 10, 10]]).box_masks((6, 5))
    assert m.shape == (2, 5, 6) and m[0].sum() == 3 and m[0, 2, 1:4].all() and m[1].all()


def test_equality_and_is_empty() -> None:
    a, b = dets(masks=True), dets(masks=True)
    assert a == b and a is not b
    assert a != dets()  # masks on one side only
    assert a != a[[0, 1]] and a[[0, 1]] == b[[0, 1]]
    moved = Detections(a.xyxy + 1, a.scores, a.labels, a.masks, a.mask_scores)
    relabelled = Detections(a.xyxy, a.scores, ["x", "y", "z"], a.masks, a.mask_scores)
    assert a != moved and a != relabelled
    assert (a == "not detections") is False
    assert Detections.empty().is_empty() and not a.is_empty() and a[a.scores > 1].is_empty()
    with pytest.raises(TypeError):
        hash(a)


def test_to_mask_uses_masks_and_boxes_only_when_asked() -> None:
    segmented = dets(masks=True)
    union = segmented.to_mask((48, 32))
    assert union.shape == (32, 48) and union.sum() == 100 + 200  # box 2 lies inside box 0
    assert np.array_equal(union, segmented.masks.any(axis=0))  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="no masks yet.*boxes_if_no_masks=True"):
        dets().to_mask((48, 32))
    boxes = dets().to_mask((48, 32), boxes_if_no_masks=True)
    assert np.array_equal(boxes, union)  # these masks are exactly their boxes
    with pytest.raises(ValueError, match="masks are 48x32 but the image is 40x32"):
        segmented.to_mask((40, 32))


def test_to_mask_fills_the_box_of_an_empty_mask_when_asked() -> None:
    segmented = dets(masks=True)
    segmented.masks[1] = False  # type: ignore[index]  # SAM found nothing in box 1
    strict = segmented.to_mask((48, 32))
    assert not strict[20:30, 20:40].any()
    lenient = segmented.to_mask((48, 32), boxes_if_no_masks=True)
    assert lenient[20:30, 20:40].all() and lenient.sum() == strict.sum() + 200
    assert not Detections.empty((48, 32)).to_mask((48, 32)).any()
    outside = Detections([[100, 100, 120, 120]]).to_mask((48, 32), boxes_if_no_masks=True)
    assert not outside.any()  # clipped to the image first: nothing inside
