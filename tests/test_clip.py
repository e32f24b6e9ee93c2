"""clip.Embedder on the tiny CLIP and ALIGN: shapes, unit vectors, zero-shot, prompt
templates and ensembles, accuracy per template set, and ranking."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import clip, images, registry, templates


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


# ---------------------------------------------------------------- templates and ensembles

@pytest.fixture(scope="module")
def aligner() -> clip.Embedder:
    """The tiny ALIGN, loaded through the real loader (built, saved, read back)."""
    return clip.Embedder.from_pretrained("tiny-align", device="cpu")


@pytest.fixture(params=["clip", "align"])
def both(request: pytest.FixtureRequest, embedder: clip.Embedder,
         aligner: clip.Embedder) -> clip.Embedder:
    return embedder if request.param == "clip" else aligner


LABELS = ["cat", "cup of coffee", "rocket"]


def test_ensemble_is_the_mean_of_unit_vectors_made_unit(both: clip.Embedder) -> None:
    got = both.embed_labels(LABELS, templates.ENSEMBLE)
    assert got.shape == (3, both.embed_texts("a cat").shape[1]) and got.dtype == np.float32
    for row, label in zip(got, LABELS):
        # each filled text on its own, in its own forward pass
        vecs = np.stack([both.embed_texts(t.replace("{}", label))[0] for t in templates.ENSEMBLE])
        vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        assert (vecs @ vecs.T).min() < 0.99  # the templates really differ: a real average
        mean = vecs.astype(np.float64).mean(axis=0)
        assert np.allclose(row, mean / np.linalg.norm(mean), atol=1e-6), label
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-6)


def test_one_template_is_the_filled_text(both: clip.Embedder) -> None:
    got = both.embed_labels(LABELS, ["a photo of a {}."])
    direct = both.embed_texts([f"a photo of a {label}." for label in LABELS])
    assert np.allclose(got, direct, atol=1e-6)
    assert np.allclose(both.embed_labels("cat", "a photo of a {}."), direct[:1], atol=1e-6)


def test_zero_shot_without_templates_is_unchanged(embedder: clip.Embedder) -> None:
    photo = images.sample("coffee")
    old = embedder.zero_shot(photo, LABELS)
    texts = embedder.embed_texts([f"a photo of {label}." for label in LABELS])
    logits = embedder.logit_scale * embedder.similarity(embedder.embed_images(photo), texts)[0]
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert np.allclose([old[label] for label in LABELS], expected, atol=1e-6)
    assert old == embedder.zero_shot(photo, LABELS, "a photo of {}.")
    assert old == embedder.zero_shot(photo, LABELS, templates=["a photo of {}."])


def test_zero_shot_with_an_ensemble_is_a_distribution(both: clip.Embedder) -> None:
    probs = both.zero_shot(images.sample("rocket"), LABELS, templates=templates.ENSEMBLE)
    values = list(probs.values())
    assert set(probs) == set(LABELS) and abs(sum(values) - 1) < 1e-6
    assert values == sorted(values, reverse=True) and all(v > 0 for v in values)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda e: e.embed_labels(LABELS, "a photo of"), ValueError,
     r"template 'a photo of' has no \{\}"),
    (lambda e: e.embed_labels(LABELS, ["{} and {}"]), ValueError,
     r"template '\{\} and \{\}' has 2 \{\}"),
    (lambda e: e.embed_labels(LABELS, []), ValueError, "templates is an empty list"),
    (lambda e: e.embed_labels(LABELS, ["a {}", 7]), TypeError, r"template 1 \(7\) is a int"),
    (lambda e: e.embed_labels(LABELS, None), TypeError, "templates None"),
    (lambda e: e.embed_labels([], ["a {}"]), ValueError, "at least one label"),
    (lambda e: e.zero_shot(images.sample("coffee"), LABELS, templates=["a photo"]), ValueError,
     r"template 'a photo' has no \{\}"),
    (lambda e: e.zero_shot(images.sample("coffee"), LABELS, "a {}", templates=["a {}"]),
     ValueError, "not both"),
    (lambda e: e.accuracy([]), ValueError, "non-empty list of"),
    (lambda e: e.accuracy([images.sample("coffee")]), ValueError, r"\(image, label\) tuples"),
    (lambda e: e.accuracy([(images.sample("coffee"), "cup")], labels=["cat"]), ValueError,
     r"labels \['cup'\] of the images are not among"),
    (lambda e: e.accuracy([(images.sample("coffee"), "cup")], {"x": ["cup"]}), ValueError,
     r"template 'cup' has no \{\}"),
])
def test_bad_templates_are_refused(embedder: clip.Embedder, call, error: type[Exception],  # type: ignore[no-untyped-def]
                                   message: str) -> None:
    with pytest.raises(error, match=message):
        call(embedder)


def test_accuracy_per_template_set(both: clip.Embedder) -> None:
    pairs = templates.labelled_set()[::3]
    table = both.accuracy(pairs)
    assert list(table) == list(templates.SETS)
    assert all(0 <= v <= 1 and (v * len(pairs)) == pytest.approx(round(v * len(pairs)))
               for v in table.values())
    labels = templates.labels_of(pairs)
    right = [max(both.zero_shot(img, labels, templates=templates.PHOTO).items(),
                 key=lambda kv: kv[1])[0] == label for img, label in pairs]
    custom = both.accuracy(pairs, {"photo": templates.PHOTO}, labels=[*labels, "dragon"])
    assert both.accuracy(pairs, {"photo": templates.PHOTO})["photo"] == np.mean(right)
    assert set(custom) == {"photo"}


# ---------------------------------------------------------------- ALIGN beside CLIP

def test_align_has_the_same_calls(aligner: clip.Embedder) -> None:
    assert aligner.family == "align" and aligner.name == "tiny-align"
    assert type(aligner.model).__name__ == "AlignModel"
    dim = aligner.model.config.projection_dim
    t = aligner.embed_texts(["a photo of a cat", "a rocket"])
    i = aligner.embed_images([images.sample("chelsea"), images.sample("rocket")])
    assert t.shape == (2, dim) and i.shape == (2, dim) and t.dtype == np.float32
    assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(i, axis=1), 1, atol=1e-5)
    assert aligner.similarity(t, t)[0, 1] < 0.99 and aligner.similarity(i, i)[0, 1] < 0.99
    assert aligner.logit_scale == pytest.approx(1 / aligner.model.temperature.item())
    assert aligner.max_text_tokens == 64
    probs = aligner.zero_shot(images.sample("coffee"), LABELS)
    assert abs(sum(probs.values()) - 1) < 1e-6
    assert aligner.rank(images.sample("coffee"), [images.sample("rocket"),
                                                  images.sample("coffee")])[0][0] == "1"


def test_align_long_text_warns(aligner: clip.Embedder) -> None:
    with pytest.warns(UserWarning, match="encoder reads 64"):
        aligner.embed_texts(" ".join(["cat"] * 80))


def test_align_names(tiny: None) -> None:
    spec = registry.REGISTRY["align-base"]
    assert (spec.family, spec.source, spec.aliases) == ("align", "kakaobrain/align-base",
                                                         ("align",))
    assert registry.resolve("align", clip.Embedder.families).name == "tiny-align"
    assert registry.resolve("tiny", clip.Embedder.families).name == "tiny-clip"
    assert clip.Embedder.from_pretrained("align-base", device="cpu").name == "tiny-align"
