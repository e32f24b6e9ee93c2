"""data/: the sample photos agree with their manifest (file, size, hash, licence)."""

from __future__ import annotations

import hashlib

import pytest
from PIL import Image

from helpers import images, video

MANIFEST = images.manifest()


def test_required_samples_present() -> None:
    assert {"astronaut", "chelsea", "coffee", "rocket", "motorcycle"} <= set(MANIFEST)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_sample_matches_manifest(name: str) -> None:
    entry = MANIFEST[name]
    path = images.data_dir() / entry["file"]
    data = path.read_bytes()
    assert len(data) == entry["bytes"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    with Image.open(path) as img:
        assert img.size == (entry["width"], entry["height"])
    for field in ("source", "licence", "description"):
        assert entry[field].strip(), f"{name} has no {field}"


def test_no_unlisted_images() -> None:
    listed = {entry["file"] for entry in MANIFEST.values()}
    on_disk = {p.name for p in images.data_dir().iterdir()
               if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp", ".tif"}}
    assert on_disk == listed


CLIPS = video.clip_manifest()


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_clip_matches_manifest(name: str) -> None:
    entry = CLIPS[name]
    path = images.data_dir() / "clips" / entry["file"]
    data = path.read_bytes()
    assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
    clip = video.sample_clip(name)
    assert len(clip) == entry["frames"] and clip.size == (entry["width"], entry["height"])
    assert clip.fps == pytest.approx(entry["fps"])
    x, y = entry["cup_point_frame0"]
    x1, y1, x2, y2 = entry["cup_box_frame0"]
    assert x1 < x < x2 and y1 < y < y2 and x1 >= 0 and x2 <= clip.size[0]
    # the point is on the cup's dark-red body (not the wooden table, not the coffee)
    assert entry["cup_points"][0] == [x, y] and len(entry["cup_points"]) == len(clip)
    hidden = range(entry["card_frames"][0], entry["card_frames"][1] + 1) \
        if "card_frames" in entry else range(0)
    for i, (px, py) in enumerate(entry["cup_points"]):
        if i in hidden:  # the card covers the cup there
            continue
        r, g, b = clip[i].getpixel((int(px), int(py)))  # type: ignore[misc]
        assert r < 120 and r > 3 * max(g, b), (i, r, g, b)
    for field in ("licence", "description", "made_from"):
        assert entry[field].strip()


def test_no_unlisted_clips() -> None:
    folder = images.data_dir() / "clips"
    assert {p.name for p in folder.glob("*.mp4")} == {c["file"] for c in CLIPS.values()}
