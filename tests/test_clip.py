"""clip.Embedder on the tiny CLIP: shapes, unit vectors, zero-shot and ranking."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import clip, images


def test_text_and_image_vectors(embedder: clip.Embedder) -> None:
    t = embedder.embed_texts(["a photo of a cat", "a rocket"])
    i = embedder.embed_images([images.sample("chelsea"), images.sample("rocket")])
    assert t.shape[0] == 2 and i.shape == (2, t.shape[1]) and t.dtype == np.float32
    assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(i, axis=1), 1, atol=1e-5)
    sims = embedder.similarity(i, t)
    assert sims.shape == (2, 2) and np.all(np.abs(sims) <= 1.0001)
    assert np.allclose(np.diag(embedder.similarity(i, i)), 1, atol=1e-5)


def test_same_input_same_vector(embedder: clip.Embedder) -> None:
    a = embedder.embed_texts("a cat")
    b = embedder.embed_texts(["a cat", "a dog"])[:1]
    assert np.allclose(a, b, atol=1e-5)


def test_zero_shot_is_a_distribution(embedder: clip.Embedder) -> None:
    probs = embedder.zero_shot(images.sample("coffee"), ["cat", "cup of coffee", "rocket"])
    assert set(probs) == {"cat", "cup of coffee", "rocket"}
    values = list(probs.values())
    assert abs(sum(values) - 1) < 1e-5 and values == sorted(values, reverse=True)


def test_rank_orders_by_similarity(embedder: clip.Embedder) -> None:
    photos = [images.sample(n) for n in ("chelsea", "coffee", "rocket")]
    ranking = embedder.rank(photos[1], photos, names=["chelsea", "coffee", "rocket"])
    assert ranking[0][0] == "coffee"  # an image is most similar to itself
    sims = [s for _, s in ranking]
    assert sims == sorted(sims, reverse=True)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: e.embed_texts([]), "at least one text"),
        (lambda e: e.embed_texts(["ok", " "]), "empty strings"),
        (lambda e: e.zero_shot(images.sample("coffee"), ["a"], template="a photo"), "{}"),
        (lambda e: e.rank("a cat", [images.sample("coffee")], names=["a", "b"]), "names"),
        (lambda e: e.similarity(np.ones((1, 3)), np.ones((1, 4))), "different sizes"),
    ],
)
def test_bad_input(embedder: clip.Embedder, call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call(embedder)


def test_wrong_family_rejected() -> None:
    with pytest.raises(ValueError, match="not clip"):
        clip.Embedder.from_pretrained("sam-vit-b")
