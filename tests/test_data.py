"""data/: the sample photos agree with their manifest (file, size, hash, licence)."""

from __future__ import annotations

import hashlib

import pytest
from PIL import Image

from helpers import images

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
