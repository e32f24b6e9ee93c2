"""Prompt templates: a label written into sentences, and a small labelled set to test them on.

A text prompt for CLIP, ALIGN or a detector is rarely the bare label: "a photo of a cat." is
closer to the captions these models were trained on than "cat". A *template* is such a
sentence with ``{}`` where the label goes; ``fill(template, labels)`` writes each label into
it. An *ensemble* is several templates whose text embeddings are averaged per label
(``clip.Embedder.embed_labels``), the prompt ensembling of the CLIP paper (Radford et al.,
2021, section 3.1.4).

``labelled_set()`` loads 26 crops of the course's sample photos with their labels
(``data/labelled/``, made by ``data/make_labelled.py``), so a lesson can measure how much a
template changes zero-shot accuracy (``clip.Embedder.accuracy``). Importing this module is
cheap: it needs only PIL and the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from helpers import checks, images

SLOT = "{}"
"""Where the label goes in a template."""

PLAIN: tuple[str, ...] = ("{}",)
"""The label alone, with no sentence around it."""
PHOTO: tuple[str, ...] = ("a photo of a {}.",)
"""The single template most CLIP write-ups use."""
DRAWING: tuple[str, ...] = ("a pencil drawing of a {}.",)
"""A template that describes the wrong kind of picture for photos (to see what that costs)."""
ENSEMBLE: tuple[str, ...] = (
    "a photo of a {}.",
    "a close-up shot of the {}.",
    "a cropped snapshot showing a {}.",
    "a slightly blurred picture of the {}.",
    "a well-lit photograph of a {}.",
    "a dim, low-light photo of the {}.",
    "a small, low-resolution image of a {}.",
    "there is a {} in this picture.",
)
"""Eight photo templates, averaged per label: each says something different about how the
picture was taken, so what they share is the label."""
SETS: dict[str, tuple[str, ...]] = {
    "label alone": PLAIN,
    "a photo of a": PHOTO,
    "a drawing of a": DRAWING,
    f"ensemble of {len(ENSEMBLE)}": ENSEMBLE,
}
"""The named template sets lesson 1 compares (``clip.Embedder.accuracy``'s default)."""

LABELLED = "labelled"
"""The folder of ``images.data_dir()`` that holds the labelled crops and their manifest."""


# ---------------------------------------------------------------- checking and filling

def check_texts(texts: Any, what: str = "texts") -> list[str]:
    """``texts`` (one text or a list of them) as a list of non-empty strings.

    Raises:
        checks.WrongType: None, or an item that is not a string (also a TypeError).
        ValueError: no text at all, or an empty one; the message names it.
    """
    if texts is None:
        raise checks.WrongType(f"{what} None must be a text such as 'a photo of a cat', or a "
                               "list of texts")
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        texts = [texts]
    items = list(texts)
    if not items:
        raise ValueError(f"give at least one {what.rstrip('s')}")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise checks.WrongType(f"{what}[{i}] {item!r} is a {type(item).__name__}, not a "
                                   "text; give strings such as 'a photo of a cat'")
    if any(not t.strip() for t in items):
        raise ValueError(f"{what} must not be empty strings; got {items!r}")
    return items


def check(templates: Any) -> tuple[str, ...]:
    """``templates`` (one template or a list of them) as a tuple, each checked.

    A template is a string with exactly one ``{}`` where the label goes
    (``"a photo of a {}."``); other braces are kept as they are.

    Raises:
        checks.WrongType: None, or an item that is not a string (also a TypeError).
        ValueError: an empty list, or a template without ``{}`` or with more than one;
            the message names the template.
    """
    if templates is None:
        raise checks.WrongType("templates None must be a template such as 'a photo of a {}.' "
                               "or a list of them (templates.ENSEMBLE)")
    if isinstance(templates, (str, bytes)) or not isinstance(templates, Sequence):
        templates = [templates]
    items = list(templates)
    if not items:
        raise ValueError("templates is an empty list; give at least one template such as "
                         "'a photo of a {}.'")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise checks.WrongType(f"template {i} ({item!r}) is a {type(item).__name__}, not a "
                                   "string; write templates such as 'a photo of a {}.'")
        count = item.count(SLOT)
        if count != 1:
            found = "no {}" if count == 0 else f"{count} {{}}"
            raise ValueError(f"template {item!r} has {found}: a template needs exactly one {{}} "
                             "where the label goes, e.g. 'a photo of a {}.'")
    return tuple(items)


def fill(template: str, labels: str | Sequence[str]) -> list[str]:
    """Each label written into ``template``: one text per label, in the order given.

    ``fill("a photo of a {}.", ["cat", "rocket"])`` is
    ``["a photo of a cat.", "a photo of a rocket."]``: texts for ``clip.Embedder`` or queries
    for ``detect.Detector`` (whose boxes are then labelled with the filled text;
    ``dict(zip(queries, labels))`` maps them back).

    Raises:
        ValueError, checks.WrongType: a template that ``check`` refuses, or labels that are
            not non-empty strings.
    """
    if not isinstance(template, str):
        raise checks.WrongType(f"fill takes one template (a string such as 'a photo of a {{}}.'"
                               f"), not a {type(template).__name__}; for several, call it per "
                               "template")
    [checked] = check(template)
    return [checked.replace(SLOT, label, 1) for label in check_texts(labels, "labels")]


def check_sets(template_sets: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """Named template sets (``{name: templates}``; None: ``SETS``), each checked."""
    if template_sets is None:
        return dict(SETS)
    if not isinstance(template_sets, Mapping) or not template_sets:
        raise ValueError(f"template_sets {template_sets!r:.60} must be a non-empty dict of "
                         "name -> templates, e.g. {'photo': templates.PHOTO}")
    return {str(name): check(temps) for name, temps in template_sets.items()}


# ---------------------------------------------------------------- the labelled set

def labelled_dir() -> Path:
    """The folder of the labelled crops (``data/labelled`` beside the sample photos)."""
    return images.data_dir() / LABELLED


def labelled_manifest() -> list[dict[str, Any]]:
    """The labelled crops' records: file, label, source photo, box, licence, size, SHA-256."""
    path = labelled_dir() / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"no labelled set at {path}; run `python data/make_labelled.py`"
                                " to make it from the sample photos")
    records: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["images"]
    return records


def labelled_set() -> list[tuple[Any, str]]:
    """The labelled crops as (image, label) pairs: RGB ``PIL.Image`` s (longer side 160 px)
    and their labels ("cat", "rocket", ...), in the manifest's order."""
    folder = labelled_dir()
    return [(images.load(folder / r["file"]), str(r["label"])) for r in labelled_manifest()]


def labels_of(pairs: Sequence[tuple[Any, str]]) -> list[str]:
    """The distinct labels of (image, label) pairs, in the order they first appear."""
    return list(dict.fromkeys(label for _, label in pairs))
