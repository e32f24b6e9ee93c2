"""Cut the labelled crops of data/labelled/ out of the sample photos and write its manifest.

A small labelled set for measuring zero-shot accuracy (lesson 1, prompt templates): each crop
is a box of one of the course's sample photos, labelled with what it shows, and carries the
licence of the photo it was cut from. Run ``python data/make_labelled.py`` after changing
``CROPS``; the crops and ``data/labelled/manifest.json`` are committed, and
``tests/test_templates.py`` checks that the files, their hashes and their pixels still agree.
Only Pillow is needed; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
OUT = HERE / "labelled"
LONG_SIDE = 160
"""Each crop is resized so its longer side is this many pixels (Lanczos), then saved as JPEG."""
QUALITY = 90

# (sample photo, [x1, y1, x2, y2] in its pixels, label): 26 crops, 10 labels, 2-4 per label
CROPS: list[tuple[str, list[int], str]] = [
    ("chelsea", [40, 0, 400, 300], "cat"),
    ("chelsea", [110, 40, 360, 280], "cat"),
    ("chelsea", [0, 0, 260, 300], "cat"),
    ("chelsea", [180, 120, 420, 300], "cat"),
    ("astronaut", [90, 0, 410, 320], "astronaut"),
    ("astronaut", [0, 0, 512, 512], "astronaut"),
    ("astronaut", [140, 10, 310, 190], "astronaut"),
    ("astronaut", [0, 0, 90, 250], "flag"),
    ("astronaut", [0, 0, 80, 170], "flag"),
    ("astronaut", [275, 335, 512, 512], "helmet"),
    ("astronaut", [300, 350, 500, 512], "helmet"),
    ("astronaut", [345, 0, 475, 285], "space shuttle"),
    ("astronaut", [355, 60, 470, 280], "space shuttle"),
    ("coffee", [170, 15, 410, 310], "cup of coffee"),
    ("coffee", [75, 10, 485, 395], "cup of coffee"),
    ("coffee", [190, 20, 400, 210], "cup of coffee"),
    ("coffee", [300, 190, 430, 340], "spoon"),
    ("coffee", [322, 225, 410, 328], "spoon"),
    ("rocket", [270, 115, 375, 415], "rocket"),
    ("rocket", [290, 120, 350, 270], "rocket"),
    ("rocket", [170, 100, 480, 427], "rocket"),
    ("motorcycle", [85, 55, 695, 455], "motorcycle"),
    ("motorcycle", [90, 140, 480, 430], "motorcycle"),
    ("motorcycle", [320, 70, 700, 460], "motorcycle"),
    ("motorcycle", [112, 245, 290, 410], "wheel"),
    ("motorcycle", [500, 285, 690, 460], "wheel"),
]


def crop(photo: Image.Image, box: list[int]) -> Image.Image:
    """``box`` of ``photo`` as RGB, its longer side resized to ``LONG_SIDE`` pixels."""
    part = photo.convert("RGB").crop(tuple(box))
    scale = LONG_SIDE / max(part.size)
    size = (max(1, round(part.width * scale)), max(1, round(part.height * scale)))
    return part.resize(size, Image.Resampling.LANCZOS)


def main() -> None:
    samples = {e["name"]: e for e in json.loads((HERE / "manifest.json").read_text())["images"]}
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.jpg"):
        old.unlink()
    records = []
    for number, (name, box, label) in enumerate(CROPS, start=1):
        source = samples[name]
        with Image.open(HERE / source["file"]) as photo:
            if not (0 <= box[0] < box[2] <= photo.width and 0 <= box[1] < box[3] <= photo.height):
                raise ValueError(f"crop {number}: box {box} is not inside {source['file']} "
                                 f"({photo.width}x{photo.height})")
            picture = crop(photo, box)
        dest = OUT / f"{number:02d}-{label.replace(' ', '-')}.jpg"
        picture.save(dest, quality=QUALITY, subsampling=0)
        records.append({
            "file": dest.name, "label": label, "source": name, "source_file": source["file"],
            "box": box, "licence": source["licence"], "width": picture.width,
            "height": picture.height, "bytes": dest.stat().st_size,
            "sha256": hashlib.sha256(dest.read_bytes()).hexdigest(),
        })
    manifest = {
        "description": "Crops of the course's sample photos, each labelled with what it shows, "
                       "for measuring zero-shot accuracy (helpers.templates.labelled_set).",
        "recipe": f"crop `box` ([x1, y1, x2, y2] pixels of `source_file`), resize the longer "
                  f"side to {LONG_SIDE} px (Lanczos), save as JPEG quality {QUALITY} without "
                  "chroma subsampling (Pillow); made by data/make_labelled.py",
        "images": records,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(records)} crops and labelled/manifest.json")


if __name__ == "__main__":
    main()
