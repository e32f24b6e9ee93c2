"""images: loading anything as upright 8-bit RGB, the samples, resizing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import images

RED = (200, 30, 40)


def _pil(mode: str) -> Image.Image:
    """A 6x4 image in ``mode`` whose left half is 'on' and right half 'off'."""
    if mode == "RGB":
        return Image.new("RGB", (6, 4), RED)
    if mode == "L":
        return Image.new("L", (6, 4), 128)
    if mode == "LA":
        return Image.new("LA", (6, 4), (128, 255))
    if mode == "RGBA":
        img = Image.new("RGBA", (6, 4), (*RED, 255))
        img.paste((0, 0, 0, 0), (3, 0, 6, 4))  # right half fully transparent
        return img
    if mode == "P":
        return Image.new("RGB", (6, 4), RED).convert("P", palette=Image.Palette.ADAPTIVE)
    if mode == "CMYK":
        return Image.new("CMYK", (6, 4), (0, 255, 255, 0))  # pure red in CMYK
    if mode == "I;16":
        return Image.fromarray(np.full((4, 6), 65535, dtype=np.uint16))
    if mode == "1":
        return Image.new("1", (6, 4), 1)
    raise AssertionError(mode)


@pytest.mark.parametrize(
    ("mode", "left", "right"),
    [
        ("RGB", RED, RED),
        ("L", (128, 128, 128), (128, 128, 128)),
        ("LA", (128, 128, 128), (128, 128, 128)),
        ("RGBA", RED, (255, 255, 255)),  # transparency is laid on white
        ("P", RED, RED),
        ("CMYK", (255, 0, 0), (255, 0, 0)),
        ("I;16", (255, 255, 255), (255, 255, 255)),  # 16-bit full scale -> 8-bit white
        ("1", (255, 255, 255), (255, 255, 255)),
    ],
)
def test_modes_become_rgb(mode: str, left: tuple[int, ...], right: tuple[int, ...]) -> None:
    out = images.load(_pil(mode))
    assert out.mode == "RGB" and out.size == (6, 4)
    assert out.getpixel((0, 0)) == left
    assert out.getpixel((5, 3)) == right


def test_palette_with_transparency_lays_on_white() -> None:
    img = Image.new("P", (4, 4), 0)
    img.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    img.info["transparency"] = 0
    assert images.load(img).getpixel((1, 1)) == (255, 255, 255)


def test_sixteen_bit_scales_not_clips() -> None:
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    out = np.asarray(images.load(Image.fromarray(arr)))[0, :, 0]
    assert out.tolist() == [0, 128, 255]


@pytest.mark.parametrize(
    ("array", "pixel"),
    [
        (np.full((4, 6), 7, np.uint8), (7, 7, 7)),
        (np.full((4, 6, 1), 9, np.uint8), (9, 9, 9)),
        (np.full((4, 6, 3), (1, 2, 3), np.uint8), (1, 2, 3)),
        (np.full((4, 6, 4), (1, 2, 3, 255), np.uint8), (1, 2, 3)),
        (np.full((4, 6), 65535, np.uint16), (255, 255, 255)),
        (np.full((4, 6, 3), 1.0, np.float64), (255, 255, 255)),
        (np.full((4, 6), 0.5, np.float32), (128, 128, 128)),
        (np.ones((4, 6), bool), (255, 255, 255)),
        (np.full((4, 6, 3), 200, np.int64), (200, 200, 200)),
    ],
)
def test_arrays(array: np.ndarray, pixel: tuple[int, int, int]) -> None:
    out = images.load(array)
    assert out.mode == "RGB" and out.size == (6, 4)
    assert out.getpixel((2, 1)) == pixel


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((3, 4, 6), np.uint8)[None], "shape"),
        (np.zeros((4, 6, 2), np.uint8), "shape"),
        (np.zeros((0, 6, 3), np.uint8), "empty"),
        (np.full((4, 6), 2.0), r"\[0, 1\]"),
        (np.full((4, 6), np.nan), "NaN"),
        (np.full((4, 6), -3, np.int32), "uint8"),
    ],
)
def test_bad_arrays(array: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        images.load(array)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (60, 40), RED)
    img.paste((0, 0, 255), (0, 0, 10, 10))  # blue patch top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=95)
    out = images.load(path)
    assert out.size == (40, 60)
    r, g, b = out.getpixel((35, 4))  # the patch is now at the top-right
    assert b > 150 and r < 100


@pytest.mark.parametrize("kind", ["str", "path", "png", "jpeg", "webp"])
def test_files(tmp_path: Path, kind: str) -> None:
    ext = {"str": "png", "path": "png"}.get(kind, kind)
    path = tmp_path / f"photo.{ext}"
    Image.new("RGB", (8, 5), RED).save(path)
    out = images.load(str(path) if kind == "str" else path)
    assert out.size == (8, 5) and out.mode == "RGB"


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match="nope.png"):
        images.load(missing)


def test_not_an_image_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("these are words, not pixels")
    with pytest.raises(ValueError, match=r"notes\.png.*not an image"):
        images.load(path)


def test_folder_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="folder"):
        images.load(tmp_path)


def test_unsupported_type() -> None:
    with pytest.raises(TypeError, match="dict"):
        images.load({"image": 1})


@pytest.fixture
def server(serve: tuple[str, Path]) -> str:
    url, root = serve
    Image.new("RGB", (7, 3), RED).save(root / "served.png")
    (root / "page.html").write_text("<html></html>")
    return url


def test_url(server: str) -> None:
    out = images.load(f"{server}/served.png")
    assert out.size == (7, 3) and out.getpixel((0, 0)) == RED


@pytest.mark.parametrize(("path", "message"), [("/page.html", "not an image"),
                                                ("/missing.png", "could not download")])
def test_bad_urls(server: str, path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        images.load(server + path)


def test_samples_listed_and_loaded() -> None:
    names = images.samples()
    assert {"astronaut", "chelsea", "coffee", "rocket", "motorcycle"} <= set(names)
    cat = images.sample("chelsea")
    assert cat.mode == "RGB" and cat.size == (451, 300)


def test_unknown_sample_suggests() -> None:
    with pytest.raises(ValueError, match=r"'chelsey'.*chelsea"):
        images.sample("chelsey")


@pytest.mark.parametrize(
    ("size", "n", "expected"),
    [
        ((451, 300), 200, (200, 133)),
        ((300, 451), 200, (133, 200)),
        ((512, 512), 64, (64, 64)),
        ((100, 10), 1000, (1000, 100)),
        ((1000, 1), 10, (10, 1)),  # never below one pixel
        ((64, 48), 64, (64, 48)),
    ],
)
def test_resize_long_side(size: tuple[int, int], n: int, expected: tuple[int, int]) -> None:
    assert images.resize_long_side(Image.new("RGB", size), n).size == expected


@pytest.mark.parametrize("n", [0, -5, 2.5, True, "64"])
def test_resize_rejects_bad_sizes(n: object) -> None:
    with pytest.raises(ValueError, match=repr(n).strip("'")):
        images.resize_long_side(Image.new("RGB", (4, 4)), n)  # type: ignore[arg-type]
