"""viz: drawings land where the coordinates say, inputs are never changed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers import viz
from helpers.detections import Detections

GREY = (90, 90, 90)


def canvas(w: int = 160, h: int = 100) -> Image.Image:
    return Image.new("RGB", (w, h), GREY)


def test_points_include_green_exclude_red() -> None:
    base = canvas()
    out = viz.draw_points(base, [[40, 30], [120, 70]], [1, 0], size=6)
    assert base.getpixel((40, 30)) == GREY  # input untouched
    # just off the white cross, inside the disc
    assert out.getpixel((38, 28)) == viz.POSITIVE
    assert out.getpixel((118, 68)) == viz.NEGATIVE
    assert out.getpixel((5, 5)) == GREY


def test_points_labels_must_match() -> None:
    with pytest.raises(ValueError, match="2 points but 1 labels"):
        viz.draw_points(canvas(), [[1, 1], [2, 2]], [1])


def test_boxes_drawn_on_their_edges() -> None:
    d = Detections([[20, 30, 80, 90]], [0.87], ["cat"])
    out = viz.draw_boxes(canvas(), d, width=2)
    assert out.getpixel((50, 89)) == viz.color(0)  # bottom edge
    assert out.getpixel((79, 60)) == viz.color(0)  # right edge
    assert out.getpixel((50, 60)) == GREY  # inside untouched


def test_box_colours_follow_labels() -> None:
    d = Detections([[10, 10, 30, 30], [50, 10, 70, 30], [90, 10, 110, 30]], labels=["a", "b", "a"])
    out = viz.draw_boxes(canvas(), d, width=1)
    assert out.getpixel((20, 30)) == out.getpixel((100, 30)) == viz.color(0)
    assert out.getpixel((60, 30)) == viz.color(1)


def test_mask_overlay_only_inside() -> None:
    mask = np.zeros((100, 160), bool)
    mask[20:60, 30:90] = True
    base = canvas()
    out = np.asarray(viz.overlay_masks(base, mask, alpha=0.5))
    outside = ~mask
    assert (out[outside] == GREY).all()
    assert (out[40, 60] != GREY).any()  # inside is tinted
    assert tuple(out[20, 60]) == viz.color(0)  # outline


def test_mask_shape_must_match() -> None:
    with pytest.raises(ValueError, match=r"expected \(N, 100, 160\)"):
        viz.overlay_masks(canvas(), np.zeros((50, 50), bool))


def test_annotate_combines() -> None:
    mask = np.zeros((1, 100, 160), bool)
    mask[0, 10:20, 10:20] = True
    d = Detections([[5, 5, 40, 40]], [0.5], ["x"], mask, [0.9])
    out = viz.annotate(canvas(), d, points=[[100, 50]], labels=[1], box=[60, 60, 150, 95])
    arr = np.asarray(out)
    assert (arr[15, 15] != GREY).any()
    assert tuple(arr[95, 100]) == viz.PROMPT_BOX or tuple(arr[94, 100]) == viz.PROMPT_BOX


def test_grid_layout_and_captions() -> None:
    imgs = [canvas(40, 20), canvas(20, 40), canvas(30, 30)]
    g = viz.grid(imgs, ["a", "b\nc", "d"], cols=2, cell=50, pad=5)
    assert g.width == 2 * 55 + 5
    assert g.height > 2 * 55  # caption space added
    with pytest.raises(ValueError, match="3 images but 2 captions"):
        viz.grid(imgs, ["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        viz.grid([])


def test_side_by_side_is_one_row() -> None:
    out = viz.side_by_side([canvas(), canvas()], cell=64)
    assert out.width > 2 * 64 and out.height < 2 * 64


def test_heatmap_and_bars_return_images() -> None:
    hm = viz.heatmap(np.eye(3), ["a", "b", "c"], ["x", "y", "z"], title="t")
    assert isinstance(hm, Image.Image) and hm.width > 100
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        viz.heatmap(np.eye(3), ["a", "b"], ["x", "y", "z"])
    bars = viz.bars([0.2, 0.8], ["cat", "dog"])
    assert isinstance(bars, Image.Image)


def test_palette_is_fixed() -> None:
    assert viz.color(0) == viz.color(len(viz.PALETTE))
    assert len(set(viz.PALETTE)) == len(viz.PALETTE)


def test_weights_map_shows_both_ends_on_white_and_black() -> None:
    values = np.zeros((4, 6))
    values[:, 3:] = 1.0
    picture = np.asarray(viz.weights(values)).astype(int)
    low, high = picture[0, 0], picture[0, 5]
    for background in (0, 255):  # neither end disappears into the page
        assert np.abs(low - background).max() > 40 and np.abs(high - background).max() > 40
    assert np.abs(low - high).max() > 100
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        viz.weights(values * 255)
    with pytest.raises(ValueError, match="2-D"):
        viz.weights(np.zeros((2, 2, 3)))


def test_side_by_side_rows_are_as_high_as_the_tallest_image() -> None:
    wide, tall = Image.new("RGB", (300, 100), "red"), Image.new("RGB", (100, 200), "blue")
    row = viz.side_by_side([wide, wide], cell=150)
    assert row.height == 6 + 50 + 6  # pad, the 150x50 thumbnails, pad: no band around them
    assert np.asarray(row)[6:56, 6:156].tolist() == np.asarray(wide.resize((150, 50))).tolist()
    mixed = viz.side_by_side([wide, tall], cell=150)
    assert mixed.height == 6 + 150 + 6  # the portrait photo sets the row's height


def test_animate_plays_every_frame_in_a_loop() -> None:
    import base64
    import io

    frames = [Image.new("RGB", (40, 30), (i * 60, 0, 0)) for i in range(4)]
    anim = viz.animate(frames, fps=5)
    with Image.open(io.BytesIO(anim.gif)) as gif:
        assert gif.n_frames == 4 and gif.size == (40, 30)
        assert gif.info["duration"] == 200 and gif.info["loop"] == 0
        gif.seek(3)
        assert gif.convert("RGB").getpixel((5, 5))[0] == pytest.approx(180, abs=8)
    html = anim._repr_html_()
    assert html.startswith('<img src="data:image/gif;base64,') and 'width="40"' in html
    assert base64.b64decode(html.split("base64,")[1].split('"')[0]) == anim.gif
    with pytest.raises(ValueError, match="differ in size"):
        viz.animate([frames[0], Image.new("RGB", (10, 10))])
    with pytest.raises(ValueError, match="at least one"):
        viz.animate([])
    with pytest.raises(ValueError, match="fps"):
        viz.animate(frames, fps=0)
