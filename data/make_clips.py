"""Make the course's video clips from its own coffee photo, and write data/clips/manifest.json.

Run by a maintainer (``python data/make_clips.py``); the clips and the manifest are committed,
and ``tests/test_data.py`` checks that they still agree. Each clip is a slow pan and zoom
across ``data/coffee.png`` (CC0), so what it shows and its licence are known:

- ``coffee-pan.mp4``: the camera moves in on the cup;
- ``coffee-occluded.mp4``: the same, with a grey card sliding in front of the cup for a few
  frames (lesson 6's failure case: an object hidden for a while can be lost).

The manifest also records where the cup is (a point on it in every frame, and its box in the
first), worked out from the crops, so the lesson clicks on the cup whatever the clip's size.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
OUT = HERE / "clips"
SIZE = (320, 224)  # even sides: H.264 in yuv420p wants them
FRAMES, FPS = 16, 8
CUP_BOX = (172.0, 20.0, 420.0, 310.0)  # the cup in coffee.png's pixels (lesson 3's example)
CUP_POINT = (300.0, 245.0)  # a point on the cup's dark-red body, in coffee.png's pixels
START = (0.0, 0.0, 560.0, 392.0)  # crop windows in coffee.png's pixels (10:7, as SIZE)
END = (110.0, 30.0, 470.0, 282.0)
CARD = (5, 11)  # the frames over which the card crosses the cup (occluded clip)


def window(t: float) -> tuple[float, float, float, float]:
    """The crop of coffee.png shown at time ``t`` in [0, 1] (eased, so the move starts and
    ends gently)."""
    e = 0.5 - 0.5 * np.cos(np.pi * t)
    return tuple(a + (b - a) * e for a, b in zip(START, END))  # type: ignore[return-value]


def to_frame(xy: tuple[float, float], crop: tuple[float, float, float, float]
             ) -> tuple[float, float]:
    """A point of coffee.png in the pixels of a frame showing ``crop``."""
    x1, y1, x2, y2 = crop
    return ((xy[0] - x1) * SIZE[0] / (x2 - x1), (xy[1] - y1) * SIZE[1] / (y2 - y1))


def frames(occluded: bool) -> list[Image.Image]:
    photo = Image.open(HERE / "coffee.png").convert("RGB")
    out = []
    for i in range(FRAMES):
        crop = window(i / (FRAMES - 1))
        frame = photo.resize(SIZE, Image.Resampling.LANCZOS, box=crop)
        if occluded and CARD[0] <= i <= CARD[1]:
            # a grey card, wider than the cup, sliding left to right across it
            cx1, cx2 = to_frame(CUP_BOX[:2], crop)[0], to_frame(CUP_BOX[2:], crop)[0]
            width = (cx2 - cx1) * 1.15
            centre = (cx1 + cx2) / 2
            t = (i - CARD[0]) / (CARD[1] - CARD[0])
            left = centre - width / 2 + (t - 0.5) * 1.2 * width
            draw = ImageDraw.Draw(frame)
            draw.rounded_rectangle([left, -10, left + width, SIZE[1] + 10], radius=12,
                                   fill=(190, 190, 185), outline=(120, 120, 115), width=3)
        out.append(frame)
    return out


def write(path: Path, pictures: list[Image.Image]) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": "20"})
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for picture in pictures:
            for packet in stream.encode(av.VideoFrame.from_image(picture)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    first = window(0.0)
    cup = [round(v, 1) for v in (*to_frame(CUP_BOX[:2], first), *to_frame(CUP_BOX[2:], first))]
    point = [round(v, 1) for v in to_frame(CUP_POINT, first)]
    records = []
    for name, occluded, what in (
            ("coffee-pan", False, "a slow pan and zoom in on the cup of the coffee photo"),
            ("coffee-occluded", True, "the same pan, with a grey card sliding in front of the "
                                      f"cup in frames {CARD[0]}-{CARD[1]}")):
        path = OUT / f"{name}.mp4"
        write(path, frames(occluded))
        data = path.read_bytes()
        records.append({
            "name": name, "file": path.name, "description": what,
            "made_from": "data/coffee.png, by data/make_clips.py",
            "licence": "CC0 1.0 (made from Rachel Michetti's CC0 photo)",
            "width": SIZE[0], "height": SIZE[1], "frames": FRAMES, "fps": FPS,
            "codec": "H.264 (libx264, yuv420p)", "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "cup_point_frame0": point, "cup_box_frame0": cup,
            "cup_points": [[round(v, 1) for v in to_frame(CUP_POINT, window(i / (FRAMES - 1)))]
                           for i in range(FRAMES)],
            **({"card_frames": list(CARD)} if occluded else {}),
        })
        print(f"{path.relative_to(HERE.parent)}: {FRAMES} frames, {len(data) / 1e3:.0f} kB")
    (OUT / "manifest.json").write_text(json.dumps({"clips": records}, indent=2) + "\n")


if __name__ == "__main__":
    main()
