"""registry: names, aliases within a family, tiny mode, and one error format everywhere."""

from __future__ import annotations

import re
from typing import Any

import pytest

from helpers import clip, detect, generate, inpaint, registry, sam

DETECTORS = ("owlvit", "owlv2", "grounding-dino")


def test_registry_entries_are_complete() -> None:
    for name, spec in registry.REGISTRY.items():
        assert spec.name == name and spec.family in registry.FAMILIES
        if spec.is_tiny:  # "tiny" is the family's plain tiny model; variants go by name
            assert spec.aliases == (("tiny",) if registry.TINY[spec.family] is spec else ())
            continue
        if spec.tiny:  # its stand-in in tiny mode is loaded the same way
            standin = registry.REGISTRY[spec.tiny]
            assert standin.is_tiny and standin.family == spec.family, name
            assert (standin.arch == "hf") == (spec.arch == "hf"), name
            assert bool(standin.adapter) == bool(spec.adapter), name
            assert bool(standin.vae) == bool(spec.vae), name
            assert standin.scheduler == spec.scheduler, name
        if spec.is_url:
            assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256 or ""), name
            assert spec.size_bytes and spec.arch in ("vit_b", "vit_l", "vit_h")
        else:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+", spec.source), name
            assert spec.revision
    for family in registry.FAMILIES:
        assert registry.TINY[family].name in registry.names(family)
        assert any(not registry.REGISTRY[n].is_tiny for n in registry.names(family))


def test_course_defaults_registered() -> None:
    for cls in (clip.Embedder, sam.Segmenter, detect.Detector, inpaint.Inpainter,
                generate.Generator):
        assert registry.REGISTRY[cls.default].family in cls.families


@pytest.mark.parametrize(
    ("name", "family", "expected"),
    [
        ("vit_b", "sam", "sam-vit-b"),
        ("vit_h", "sam", "sam-vit-h"),
        ("tiny", "sam", "tiny-sam"),
        ("tiny", DETECTORS, "tiny-owlvit"),  # the first family's, as the Detector's default
        ("tiny-owlv2", DETECTORS, "tiny-owlv2"),
        ("sd15", "sd", "sd15"),  # a name beats an alias
        ("sd15", "sd-inpaint", "sd15-inpaint"),  # the same word, the family asked for
        ("sd2", "sd-inpaint", "sd2-inpaint"),
        ("tiny", "sd-inpaint", "tiny-sd-inpaint"),
        ("clip-b32", None, "clip-b32"),
    ],
)
def test_names_and_aliases(name: str, family: Any, expected: str) -> None:
    assert registry.resolve(name, family).name == expected


@pytest.mark.parametrize(
    ("name", "family", "message"),
    [
        ("clip-b23", None, r"unknown model 'clip-b23'\. Did you mean 'clip-b32'"),
        ("sam-vit-x", "sam", r"unknown SAM model 'sam-vit-x'.*Known: sam-vit-b.*'vit_b'"),
        ("vit_b", None, r"unknown model 'vit_b'"),  # aliases live inside a family
        ("tiny", None, r"unknown model 'tiny'"),
        ("clip-b32", "sam", r"'clip-b32' is a clip model, not sam"),
        ("", None, "non-empty"),
        ("clip-b32", "yolo", "family 'yolo'"),
        ("someone/owl", DETECTORS, r"unknown detector 'someone/owl'"),
    ],
)
def test_resolve_errors(name: str, family: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        registry.resolve(name, family)


@pytest.mark.parametrize(
    ("cls", "bad", "noun"),
    [(sam.Segmenter, "vit_x", "SAM model"), (detect.Detector, "owl-vit", "detector"),
     (inpaint.Inpainter, "sd3", "inpainting model"), (clip.Embedder, "clip-b99", "CLIP model"),
     (generate.Generator, "sdxl", "text-to-image model")],
)
def test_every_noun_rejects_an_unknown_name_the_same_way(cls: Any, bad: str, noun: str) -> None:
    with pytest.raises(ValueError) as err:
        cls.from_pretrained(bad)
    message = str(err.value)
    assert message.startswith(f"unknown {noun} {bad!r}.")
    assert all(n in message for n in registry.names(cls.families))
    assert "'tiny'" in message


def test_a_hub_id_or_folder_needs_one_family_that_loads_them(tmp_path: Any) -> None:
    own = registry.resolve("someone/my-clip", family="clip")
    assert own.source == "someone/my-clip" and own.family == "clip"
    folder = registry.resolve(str(tmp_path), family="sd-inpaint")
    assert folder.source == str(tmp_path) and folder.family == "sd-inpaint"
    with pytest.raises(ValueError, match="unknown SAM model") as err:
        registry.resolve(str(tmp_path), family="sam")  # a checkpoint needs its architecture
    assert "hub id" not in str(err.value)
    with pytest.raises(ValueError, match="unknown detector 'org/owl'") as err:
        registry.resolve("org/owl", family=DETECTORS)  # which of three loaders?
    assert "hub id" not in str(err.value)


def test_tiny_mode_swaps_every_name(tiny: None) -> None:
    assert registry.resolve("clip-b32") == registry.TINY["clip"]
    assert registry.resolve("sd2-inpaint").source == "tiny"
    assert registry.resolve("vit_h", "sam").name == "tiny-sam"
    assert registry.resolve("owlv2-b16", DETECTORS).name == "tiny-owlv2"
