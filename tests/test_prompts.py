"""Prompt: one check for points, labels, box and mask; one explicit clip for interfaces."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from helpers.prompts import Prompt


def test_values_are_normalised() -> None:
    p = Prompt((100, 50), [[10, 20], [30, 40]], [1, 0], [5, 5, 60, 45])
    assert p.points.dtype == np.float32 and p.points.shape == (2, 2)  # type: ignore[union-attr]
    assert p.labels.tolist() == [1, 0] and p.labels.dtype == np.int32  # type: ignore[union-attr]
    assert p.box.tolist() == [5, 5, 60, 45] and len(p) == 2  # type: ignore[union-attr]
    assert Prompt((100, 50), [3, 4], [1]).points.shape == (1, 2)  # type: ignore[union-attr]
    assert Prompt((100, 50), mask=np.zeros((8, 8))).mask.shape == (1, 8, 8)  # type: ignore[union-attr]
    assert Prompt((100, 50)).is_empty() and not p.is_empty()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"points": [[100, 10]], "labels": [1]}, r"point \(100, 10\) is outside the 100x50"),
        ({"points": [[-1, 10]], "labels": [1]}, "outside"),
        ({"points": [[1, 1]], "labels": [2]}, r"1 \(include\) or 0 \(exclude\); got \[2\]"),
        ({"points": [[1, 1], [2, 2]], "labels": [1]}, "2 points but 1 labels"),
        ({"points": [[1, 1]]}, "no labels"),
        ({"labels": [1]}, "labels were given without points"),
        ({"points": []}, "points is empty"),
        ({"points": [[1, 2, 3]], "labels": [1]}, r"shape \(N, 2\)"),
        ({"points": [[np.nan, 2]], "labels": [1]}, "finite"),
        ({"box": [50, 10, 20, 40]}, "x2 > x1"),
        ({"box": [10, 10, 10, 40]}, "x2 > x1"),
        ({"box": [10, 10, 200, 40]}, "reaches outside the 100x50 image"),
        ({"box": [1, 2, 3]}, r"\[x1, y1, x2, y2\]"),
        ({"box": "abc"}, r"\[x1, y1, x2, y2\]"),
        ({"mask": np.zeros((2, 8, 8))}, r"\(1, h, w\)"),
        ({"points": "ab", "labels": [1]}, r"points must be \(N, 2\) numbers"),
    ],
)
def test_one_check(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Prompt((100, 50), **kwargs)


@pytest.mark.parametrize("size", [("a", 1), (0, 5), None])
def test_bad_sizes(size: Any) -> None:
    with pytest.raises(ValueError, match="image size"):
        Prompt(size)


def test_default_label_and_clipping() -> None:
    assert Prompt.of((100, 50), [[1, 1], [2, 2]], default_label=1).labels.tolist() == [1, 1]  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="no labels"):
        Prompt.of((100, 50), [[1, 1]])
    clipped = Prompt.clipped((100, 50), [[150, -3]], [0], box=[120, 60, -5, 10])
    assert clipped.points.tolist() == [[99, 0]]  # type: ignore[union-attr]
    assert clipped.box.tolist() == [0, 10, 100, 50]  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="no area inside the 100x50 image"):
        Prompt.clipped((100, 50), box=[120, 10, 130, 20])


def test_edits_equality_and_json() -> None:
    p = Prompt((100, 50)).with_point(10, 20).with_point(30, 40, 0).with_box([1, 2, 50, 40])
    assert p.labels.tolist() == [1, 0] and p.box.tolist() == [1, 2, 50, 40]  # type: ignore[union-attr]
    assert p.with_box(None).box is None and p.with_box(None) != p
    again = Prompt.from_json(p.to_json(), size=(100, 50))
    assert again == p and again is not p
    with pytest.raises(ValueError, match="saved for a 100x50 image, not 60x40"):
        Prompt.from_json(p.to_json(), size=(60, 40))
    with pytest.raises(ValueError, match="outside"):
        p.with_point(100, 0)


@pytest.mark.parametrize(("text", "message"), [
    ("{oops", r"^these prompts are not JSON"),
    ('[1, 2]', r"^these prompts are a JSON list, not saved prompts"),
    ('{"size": [10, 10], "points": [["a", 1]], "labels": [1], "box": null}',
     r"points \[\['a', 1\]\] must be a list of \[x, y\] pixels"),
    ('{"size": [10, 0], "points": [], "labels": [], "box": null}', r"size \[10, 0\] must be"),
    ('{"size": [10, 10], "points": [[1, 2]], "labels": [true], "box": null}',
     r"labels \[True\] must be a list of 1 \(include\) and 0"),
    ('{"size": [10, 10], "points": [[20, 2]], "labels": [1], "box": null}', r"outside"),
])
def test_from_json_is_strict(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Prompt.from_json(text)
