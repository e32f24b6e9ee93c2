"""models: loading once per kernel, the errors that teach, and the nouns' shared base."""

from __future__ import annotations

import time

import pytest

from helpers import models


def test_unknown_name_fails_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "fetch", lambda spec: pytest.fail("fetched"))
    with pytest.raises(ValueError, match="unknown model 'owl-vit'"):
        models.load("owl-vit")


def test_cuda_without_cuda_fails_before_fetching(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setattr(models, "fetch", lambda spec: pytest.fail("fetched"))
    with pytest.raises(ValueError, match="CUDA is not available"):
        models.load("tiny-clip", device="cuda")


def test_load_once_per_name_device_dtype(tiny: None) -> None:
    import torch

    a = models.load("clip-b32", device="cpu")
    b = models.load("clip-b32", device="cpu")
    assert a is b and a.spec.is_tiny and a.processor is not None
    c = models.load("clip-b32", device="cpu", dtype=torch.float64)
    assert c is not a and next(c.model.parameters()).dtype == torch.float64


def test_offline_hub_model_says_what_to_do(no_network: list[object]) -> None:
    start = time.perf_counter()
    with pytest.raises(models.WeightsUnavailableError) as err:
        models.load("owlvit-b32", device="cpu")
    message = str(err.value)
    assert "google/owlvit-base-patch32" in message
    assert "HELPERS_TINY_MODELS=1" in message and "internet" in message
    assert time.perf_counter() - start < 30
    assert no_network == []  # offline mode made no attempt to reach the hub


def test_uncached_load_is_a_private_copy(tiny: None) -> None:
    clip = models.load("clip-b32", device="cpu")
    shared = models.load("tiny-sd", device="cpu")
    assert models.load("tiny-sd", device="cpu") is shared
    private = models.load("tiny-sd", device="cpu", cached=False)
    assert private.model is not shared.model
    # on a CPU a private pipeline (training's) releases the cached ones: one SD at a time
    assert models.load("tiny-sd", device="cpu") is not shared
    assert models.load("clip-b32", device="cpu") is clip  # other models stay


def test_the_shared_base(tiny: None) -> None:
    from helpers import clip, sam

    seg = sam.Segmenter.from_pretrained("vit_b", device="cpu")
    assert (seg.name, seg.device, seg.spec.family) == ("tiny-sam", "cpu", "sam")
    assert repr(seg) == "Segmenter('tiny-sam', device='cpu')"
    again = sam.Segmenter.from_pretrained("tiny", "cpu", 2)  # the earlier positional order
    assert again.model is seg.model and again.cache_size == 2  # one model, two wrappers
    with pytest.raises(ValueError, match="'tiny-clip' is a clip model, but Segmenter takes a SAM"):
        sam.Segmenter(models.load("tiny-clip", device="cpu"))
    with pytest.raises(ValueError, match="'tiny-sam' is a sam model, but Embedder takes a CLIP"):
        clip.Embedder(models.load("tiny-sam", device="cpu"))
