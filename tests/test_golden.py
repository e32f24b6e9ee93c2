"""Golden values: a few output numbers per tiny model family, so a silent numerical change fails.

Tiny models are built from a fixed seed, so with the pinned libraries their outputs are the
same on every run. When a pinned version changes and one of these moves, find out why before
writing the new numbers here (as diffusers' tests do with ``expected_slice``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from helpers import generate, images

FEATURES = 1e-4  # float outputs
PIXELS = 2  # uint8 outputs: a rounding may flip on another CPU's instruction set


@pytest.fixture(scope="module")
def cat() -> Any:
    return images.sample("chelsea")


def test_clip(embedder: Any, cat: Any) -> None:
    text = embedder.embed_texts(["a photo of a cat"])[0, :4]
    image = embedder.embed_images(cat)[0, :4]
    assert np.allclose(text, [-0.134722, 0.072487, 0.072629, -0.114548], atol=FEATURES), text
    assert np.allclose(image, [0.253041, -0.087075, 0.051158, -0.217086], atol=FEATURES), image


def test_sam(seg: Any, cat: Any) -> None:
    result = seg.set_image(cat).predict(points=[[200, 150]], labels=[1])
    assert np.allclose(result.scores, [0.269684, -0.012662, -0.519211], atol=FEATURES)
    assert np.allclose(result.logits[0, 32, 30:34], [-0.010546, -0.020197, -0.024113, -0.028797],
                       atol=FEATURES), result.logits[0, 32, 30:34]


@pytest.mark.parametrize(("family", "mean_score", "mean_box", "per_query"), [
    ("owlvit", 0.533720, [0.375467, 0.562663, 0.937493, 0.991852], [4, 12]),
    ("owlv2", 0.518577, [0.0, 1.0, 0.332635, 0.569964], [9, 7]),
    ("grounding-dino", 0.662154, [0.591667, 0.478125, 0.06, 0.06], [12, 8]),
])
def test_detectors(detectors: dict[str, Any], cat: Any, family: str, mean_score: float,
                   mean_box: list[float], per_query: list[int]) -> None:
    raw, size = detectors[family].raw(cat, ["a cat", "a dog"])
    assert size == (451, 300)
    assert abs(float(raw.scores.mean()) - mean_score) < FEATURES, raw.scores.mean()
    assert np.allclose(raw.boxes.mean(axis=0), mean_box, atol=FEATURES), raw.boxes.mean(axis=0)
    assert np.bincount(raw.query, minlength=2).tolist() == per_query


def test_inpainting(painter: Any) -> None:
    """Recorded with PNDM, the scheduler SD ships with (the default before DPM-Solver++)."""
    from helpers import inpaint

    pndm = inpaint.Inpainter(painter.loaded, scheduler="pndm")
    photo = images.sample("coffee").resize((96, 64))
    mask = np.zeros((64, 96), bool)
    mask[16:48, 24:72] = True
    out = np.asarray(pndm.inpaint(photo, mask, "a cat", seed=0, steps=2, grow=0,
                                  feather=0)[0]).astype(int)
    expected = [[98, 164, 57], [119, 164, 42], [146, 190, 125], [216, 140, 143]]
    assert np.abs(out[32, 40:44] - expected).max() <= PIXELS, out[32, 40:44].tolist()
    assert np.abs(out[20, 60] - [138, 44, 106]).max() <= PIXELS, out[20, 60].tolist()


def test_text_to_image() -> None:
    maker = generate.Generator.from_pretrained("tiny", device="cpu", scheduler="pndm")
    out = np.asarray(maker.generate("a cat", seed=0, steps=2, height=64, width=64)).astype(int)
    expected = [[119, 105, 106], [72, 62, 126], [80, 70, 151], [75, 54, 130]]
    assert np.abs(out[32, 30:34] - expected).max() <= PIXELS, out[32, 30:34].tolist()
    assert np.abs(out[5, 5] - [149, 102, 146]).max() <= PIXELS, out[5, 5].tolist()


@pytest.mark.parametrize(("name", "steps", "expected", "point"), [
    ("tiny-sd-inpaint", 3, [[96, 184, 78], [125, 180, 62], [144, 188, 146], [202, 124, 157]],
     [97, 75, 109]),  # DPM-Solver++, the many-step default
    ("tiny-sd-inpaint-lcm", 4, [[59, 11, 0], [58, 12, 0], [58, 8, 0], [57, 1, 0]],
     [53, 0, 0]),  # the fused tiny LCM-LoRA, the LCM scheduler and the tiny TAESD
])
def test_inpainting_with_the_new_samplers(name: str, steps: int, expected: list[list[int]],
                                          point: list[int]) -> None:
    from helpers import inpaint

    painter = inpaint.Inpainter.from_pretrained(name, device="cpu")
    photo = images.sample("coffee").resize((96, 64))
    mask = np.zeros((64, 96), bool)
    mask[16:48, 24:72] = True
    out = np.asarray(painter.inpaint(photo, mask, "a cat", seed=0, steps=steps, grow=0,
                                     feather=0)[0]).astype(int)
    assert np.abs(out[32, 40:44] - expected).max() <= PIXELS, out[32, 40:44].tolist()
    assert np.abs(out[20, 60] - point).max() <= PIXELS, out[20, 60].tolist()
