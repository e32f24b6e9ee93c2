"""helpers.templates: checking and filling prompt templates, and the labelled set on disk."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pytest
from PIL import Image

from helpers import checks, images, templates

RECORDS = templates.labelled_manifest()


# ---------------------------------------------------------------- templates

@pytest.mark.parametrize(("given", "expected"), [
    ("a photo of a {}.", ("a photo of a {}.",)),
    (["{}", "a {} in {braces}"], ("{}", "a {} in {braces}")),
    (("a photo of a {}.", "a drawing of a {}."), ("a photo of a {}.", "a drawing of a {}.")),
    (templates.ENSEMBLE, templates.ENSEMBLE),
])
def test_good_templates(given: Any, expected: tuple[str, ...]) -> None:
    assert templates.check(given) == expected


@pytest.mark.parametrize(("given", "error", "message"), [
    ("a photo of a cat", ValueError, r"template 'a photo of a cat' has no \{\}"),
    (["a photo of a {}.", "a {} and a {}"], ValueError, r"template 'a \{\} and a \{\}' has 2 \{\}"),
    ([], ValueError, "templates is an empty list"),
    ((), ValueError, "templates is an empty list"),
    ([3], checks.WrongType, r"template 0 \(3\) is a int, not a string"),
    (["a {}", None], checks.WrongType, r"template 1 \(None\) is a NoneType"),
    (b"a {}", checks.WrongType, "is a bytes"),
    (None, checks.WrongType, "templates None"),
])
def test_bad_templates(given: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        templates.check(given)


def test_fill_writes_each_label_into_the_template() -> None:
    assert templates.fill("a photo of a {}.", ["cat", "cup of coffee"]) == [
        "a photo of a cat.", "a photo of a cup of coffee."]
    assert templates.fill("{}", "rocket") == ["rocket"]
    assert templates.fill("a {} in {braces}", ["cat"]) == ["a cat in {braces}"]
    assert templates.fill("a {}", ["{}"]) == ["a {}"]  # a label is written in, never parsed


@pytest.mark.parametrize(("template", "labels", "message"), [
    ("a photo", ["cat"], r"template 'a photo' has no \{\}"),
    ("a {}", [], "at least one label"),
    ("a {}", ["cat", " "], "empty strings"),
    ("a {}", [3], r"labels\[0\] 3 is a int"),
    (["a {}", "the {}"], ["cat"], "fill takes one template"),
])
def test_fill_refuses(template: Any, labels: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        templates.fill(template, labels)


def test_named_sets() -> None:
    assert 5 <= len(templates.ENSEMBLE) <= 8
    assert len(set(templates.ENSEMBLE)) == len(templates.ENSEMBLE)
    assert templates.check_sets(None) == templates.SETS
    for name, chosen in templates.SETS.items():
        assert templates.check(chosen) == chosen, name
    with pytest.raises(ValueError, match="non-empty dict"):
        templates.check_sets({})
    with pytest.raises(ValueError, match="non-empty dict"):
        templates.check_sets(["a {}"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"template 'photo' has no \{\}"):
        templates.check_sets({"bad": ["photo"]})


# ---------------------------------------------------------------- the labelled set

def test_labelled_set_shape() -> None:
    pairs = templates.labelled_set()
    assert 12 <= len(pairs) <= 30 and len(pairs) == len(RECORDS)
    for (picture, label), record in zip(pairs, RECORDS):
        assert isinstance(picture, Image.Image) and picture.mode == "RGB"
        assert max(picture.size) == 160 and label == record["label"]
    labels = templates.labels_of(pairs)
    counts = {label: sum(1 for _, seen in pairs if seen == label) for label in labels}
    assert len(labels) >= 5 and min(counts.values()) >= 2, counts
    assert labels[0] == pairs[0][1]  # in order of first appearance


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r["file"])
def test_crop_matches_its_manifest(record: dict[str, Any]) -> None:
    path = templates.labelled_dir() / record["file"]
    data = path.read_bytes()
    assert len(data) == record["bytes"]
    assert hashlib.sha256(data).hexdigest() == record["sha256"]
    with Image.open(path) as img:
        assert img.size == (record["width"], record["height"])
    source = images.manifest()[record["source"]]
    assert record["source_file"] == source["file"]
    assert record["licence"] == source["licence"]  # a crop keeps its photo's licence
    x1, y1, x2, y2 = record["box"]
    assert 0 <= x1 < x2 <= source["width"] and 0 <= y1 < y2 <= source["height"]
    assert record["label"].strip()


@pytest.mark.parametrize("record", RECORDS[::5], ids=lambda r: r["file"])
def test_crop_is_its_box_of_the_photo(record: dict[str, Any]) -> None:
    """The file is the box of the source photo, resized (up to JPEG's rounding)."""
    photo = images.sample(record["source"]).crop(tuple(record["box"]))
    expected = np.asarray(photo.resize((record["width"], record["height"]),
                                       Image.Resampling.LANCZOS), dtype=np.float64)
    found = np.asarray(images.load(templates.labelled_dir() / record["file"]), dtype=np.float64)
    assert np.abs(found - expected).mean() < 4.0


def test_no_unlisted_crops() -> None:
    listed = {r["file"] for r in RECORDS}
    on_disk = {p.name for p in templates.labelled_dir().iterdir() if p.suffix != ".json"}
    assert on_disk == listed and len(listed) == len(RECORDS)


def test_a_missing_set_says_how_to_make_it(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Any) -> None:
    monkeypatch.setenv(images.DATA_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make_labelled.py"):
        templates.labelled_set()
    (tmp_path / templates.LABELLED).mkdir()
    (tmp_path / templates.LABELLED / "manifest.json").write_text(json.dumps({"images": []}))
    assert templates.labelled_set() == []
