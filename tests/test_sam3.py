"""sam3: a concept (text and/or example boxes) -> every instance's mask, at the photo's size.

The tiny SAM 3 is loaded through the real loader; its instances are checked against the same
work done directly with transformers (processor, model, post-processing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import images, models, registry, sam3, tiny
from helpers.detections import Detections


@pytest.fixture(scope="module")
def seg3() -> sam3.ConceptSegmenter:
    return sam3.ConceptSegmenter.from_pretrained("tiny", device="cpu")


@pytest.fixture(scope="module")
def direct() -> tuple[Any, Any]:
    """The tiny model and processor read from its folder by transformers alone."""
    from transformers import Sam3Model, Sam3Processor

    folder = tiny.ensure("sam3")
    return Sam3Model.from_pretrained(folder).eval(), Sam3Processor.from_pretrained(folder)


def landscape() -> Image.Image:
    return images.sample("chelsea")  # 451x300


def portrait() -> Image.Image:
    return images.sample("chelsea").transpose(Image.Transpose.ROTATE_90)  # 300x451


def expected(direct: tuple[Any, Any], photo: Image.Image, threshold: float,
             **prompt: Any) -> dict[str, Any]:
    """transformers' own path: processor, model, post-processing at the photo's size."""
    model, processor = direct
    inputs = processor(images=photo, return_tensors="pt", **prompt)
    inputs.pop("original_sizes")
    with torch.inference_mode():
        outputs = model(**inputs)
    [found] = processor.post_process_instance_segmentation(
        outputs, threshold=threshold, mask_threshold=0.5,
        target_sizes=[(photo.height, photo.width)])
    order = torch.argsort(-found["scores"], stable=True)
    return {k: v[order].numpy() for k, v in found.items()}


def test_the_tiny_model_loads_through_the_real_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELPERS_TINY_MODELS", "1")
    found = sam3.ConceptSegmenter.from_pretrained(device="cpu")  # "sam3", swapped
    assert found.name == "tiny-sam3" and found.spec.family == "sam3"
    assert Path(found.loaded.path) == tiny.folder_for("sam3")
    assert type(found.model).__name__ == "Sam3Model"


def test_the_registry_says_gated_and_heavy() -> None:
    spec = registry.REGISTRY[sam3.ConceptSegmenter.default]
    assert spec.source == "facebook/sam3" and spec.family == "sam3"
    assert "gated" in spec.licence and "gated" in spec.description
    assert (spec.size_bytes or 0) > 3 * registry.GB


@pytest.mark.parametrize("photo", [landscape, portrait])
def test_instances_equal_transformers_run_directly(seg3: sam3.ConceptSegmenter,
                                                   direct: tuple[Any, Any], photo: Any) -> None:
    img = photo()
    want = expected(direct, img, 0.0, text="a cat")
    got = seg3.segment(img, "a cat", threshold=0.0)
    assert got.masks is not None and got.masks.shape == (20, img.height, img.width)
    np.testing.assert_allclose(got.scores, want["scores"], atol=1e-6)
    boxes = Detections(want["boxes"]).clip(img.size).xyxy
    np.testing.assert_allclose(got.xyxy, boxes, atol=1e-3)
    same = (got.masks == want["masks"].astype(bool)).mean()
    assert same >= 0.999 and set(got.labels) == {"a cat"}


def test_example_boxes_equal_transformers_run_directly(seg3: sam3.ConceptSegmenter,
                                                       direct: tuple[Any, Any]) -> None:
    img = landscape()
    boxes, labels = [[50.0, 50.0, 200.0, 200.0], [300.0, 100.0, 400.0, 250.0]], [1, 0]
    for text in ("a cat", None):
        want = expected(direct, img, 0.0, text=text, input_boxes=[boxes],
                        input_boxes_labels=[labels])
        got = seg3.segment(img, text, boxes=boxes, box_labels=labels, threshold=0.0)
        np.testing.assert_allclose(got.scores, want["scores"], atol=1e-6)
        assert (got.masks == want["masks"].astype(bool)).mean() >= 0.999  # type: ignore[operator]
        assert set(got.labels) == {text or sam3.EXEMPLAR}


def test_thresholds_keep_all_some_or_none(seg3: sam3.ConceptSegmenter) -> None:
    img = landscape()
    every = seg3.segment(img, "a cat", threshold=0.0)
    some = seg3.segment(img, "a cat", threshold=float(np.median(every.scores)))
    none = seg3.segment(img, "a cat", threshold=1.0)
    assert len(every) == 20 and 0 < len(some) < 20 and (some.scores > np.median(every.scores)).all()
    assert none == Detections.empty(img.size)
    assert list(every.scores) == sorted(every.scores, reverse=True)


def test_several_texts_share_one_encoding(seg3: sam3.ConceptSegmenter) -> None:
    img = Image.new("RGB", (90, 70), (30, 90, 200))
    before = seg3.encoder_calls
    both = seg3.segment(img, ["a cat", "a dog"], threshold=0.0)
    seg3.segment(img, "a cup", threshold=0.0)
    assert seg3.encoder_calls == before + 1
    assert sorted(set(both.labels)) == ["a cat", "a dog"] and len(both) == 40


BAD = [
    (dict(), "give text='a cup', example boxes"),
    (dict(text=""), "text 0 '' must be a non-empty phrase"),
    (dict(text=[]), "text is an empty list"),
    (dict(text=["a cat", 3]), "text 1 3 must be a non-empty phrase"),
    (dict(text=5), "text 5 must be a short phrase"),
    (dict(text=" ".join(["cat"] * 40)), "SAM 3's text encoder reads 32"),
    (dict(text=["a cat", "a dog"], boxes=[[0, 0, 10, 10]]), "example boxes go with one text"),
    (dict(text="a cat", box_labels=[1]), "box_labels were given without boxes"),
    (dict(text="a cat", boxes=[[10, 10, 5, 20]]), "has x2 < x1"),
    (dict(text="a cat", boxes=[[500, 10, 600, 20]]), "has no area inside the 451x300 photo"),
    (dict(text="a cat", boxes=[]), "boxes is empty"),
    (dict(text="a cat", boxes=[[0, 0, 10, 10]], box_labels=[1, 0]), "box_labels has 2 values"),
    (dict(text="a cat", boxes=[[0, 0, 10, 10]], box_labels=[2]), r"box_labels\[0\] 2 must lie"),
    (dict(text="a cat", threshold=float("nan")), "threshold nan must be a finite number"),
    (dict(text="a cat", threshold=2), r"threshold 2 must lie in \[0, 1\]"),
    (dict(text="a cat", mask_threshold="high"), "mask_threshold 'high' must be a number"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD)
def test_bad_inputs_are_refused_before_the_model_runs(
        seg3: sam3.ConceptSegmenter, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any],
        message: str) -> None:
    def boom(*args: Any) -> Any:
        raise AssertionError("the model ran")

    monkeypatch.setattr(seg3, "_encode_image", boom)
    with pytest.raises(ValueError, match=message):
        seg3.segment(landscape(), **kwargs)


def test_a_model_of_another_family_is_refused() -> None:
    fake = models.Loaded(None, None, registry.REGISTRY["tiny-sam"], "x", "cpu", None)
    with pytest.raises(ValueError, match="is a sam model, but ConceptSegmenter takes a "
                                         "concept segmenter"):
        sam3.ConceptSegmenter(fake)


# ---------------------------------------------------------------- where SAM 3 cannot be had

@pytest.fixture
def real(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Tiny mode off, so "sam3" means facebook/sam3; the names ``models.load`` is asked for."""
    monkeypatch.delenv("HELPERS_TINY_MODELS", raising=False)
    asked: list[str] = []

    def load(name: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(name)
        raise models.WeightsUnavailableError(
            "'facebook/sam3' is gated: accept its licence on https://huggingface.co/facebook/"
            "sam3, log in with `hf auth login` (or set HF_TOKEN), then run the cell again.")

    monkeypatch.setattr(models, "load", load)
    return asked


def test_if_available_gives_the_tiny_model(capsys: pytest.CaptureFixture[str]) -> None:
    found = sam3.ConceptSegmenter.if_available("tiny", device="cpu", download=False)
    assert isinstance(found, sam3.ConceptSegmenter) and found.name == "tiny-sam3"
    assert capsys.readouterr().out == ""


def test_not_downloaded_is_one_line_and_loads_nothing(
        real: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import weights

    monkeypatch.setattr(weights, "is_cached", lambda spec: (False, None))
    assert sam3.ConceptSegmenter.if_available(device="cpu", download=False) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("SAM 3 is not used here: 'sam3' is not on")
    assert "python -m helpers.models fetch sam3" in out and "3.4 GB" in out
    assert real == []


def test_too_little_memory_is_said_before_loading(
        real: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import runtime, weights

    monkeypatch.setattr(weights, "is_cached", lambda spec: (True, "a" * 40))
    monkeypatch.setattr(runtime, "available_memory",
                        lambda device: (2_000_000_000, "the RAM available is"))
    assert sam3.ConceptSegmenter.if_available(device="cpu", download=False) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    need = registry.REGISTRY["sam3"].size_bytes * sam3.PEAK_FACTOR / 1e9  # type: ignore[operator]
    assert f"needs about {need:.1f} GB of memory on cpu and the RAM available is 2.0 GB" in out
    assert real == []


def test_no_access_is_one_line(real: list[str], monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import runtime

    monkeypatch.setattr(runtime, "available_memory", lambda device: (10**12, "lots"))
    assert sam3.ConceptSegmenter.if_available(device="cpu") is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "is gated: accept its licence" in out
    assert out.rstrip().endswith("then run this cell again.") and real == ["sam3"]


def test_running_out_of_memory_while_loading_is_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import runtime

    monkeypatch.delenv("HELPERS_TINY_MODELS", raising=False)
    monkeypatch.setattr(runtime, "available_memory", lambda device: (10**12, "lots"))

    def load(*args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(models, "load", load)
    assert sam3.ConceptSegmenter.if_available(device="cpu") is None
    assert capsys.readouterr().out == ("SAM 3 is not used here: loading it ran out of memory "
                                       "on cpu; free some, then run this cell again\n")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "sam-3"}, "sam-3"), ({"device": "gpu"}, "gpu"), ({"cache_size": 0}, "cache_size"),
    ({"download": "no"}, "download")])
def test_mistakes_are_errors_not_notices(real: list[str], kwargs: dict[str, Any],
                                         message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sam3.ConceptSegmenter.if_available(**kwargs)
    assert real == []
