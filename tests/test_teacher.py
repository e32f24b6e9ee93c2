"""The teacher's tool: the lessons' weights, fetching them ahead, and a machine check."""

from __future__ import annotations

import io
import json
import re
import shutil
import tokenize
from pathlib import Path
from typing import Any

import pytest

from helpers import lessons, models, registry, teacher

from .hub import lay_out_cache


def names_in(notebook: Path) -> set[str]:
    """The registry names a notebook's code names (as strings, comments left out)."""
    nb = json.loads(notebook.read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    table = registry.aliases()
    found = set()
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type == tokenize.STRING and token.string[0] in "\"'":
            text = token.string.strip("\"'")
            spec = registry.REGISTRY.get(text) or registry.REGISTRY.get(table.get(text, ""))
            if spec is not None and not spec.is_tiny:
                found.add(spec.name)
    return found


def test_the_lessons_table_matches_the_notebooks() -> None:
    for number, path in enumerate(lessons.notebooks(), start=1):
        assert set(teacher.LESSONS[number]) == names_in(path), path.name
    assert set(teacher.LESSONS) == set(range(1, len(lessons.notebooks()) + 1))


def test_lesson_names() -> None:
    assert teacher.lesson_names([4, 3], "gpu") == ["owlvit-b32", "sam-vit-b", "sd15-inpaint",
                                                   "owlv2-b16", "grounding-dino-tiny",
                                                   "clipseg-rd64"]
    assert teacher.lesson_names([4, 3], "cpu") == ["owlvit-b32", "slimsam-77",
                                                   "sd15-inpaint-lcm", "owlv2-b16",
                                                   "grounding-dino-tiny", "clipseg-rd64"]
    assert teacher.lesson_names([2]) == ["slimsam-77"]  # this machine: a CPU
    for bad in (9, 0, True, "1"):
        with pytest.raises(ValueError, match=f"there is no lesson {bad!r}"):
            teacher.lesson_names([bad])  # type: ignore[list-item]


@pytest.fixture
def no_load(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """models.load records what it was asked for instead of loading anything."""
    asked: list[str] = []

    def record(name: str, **kwargs: Any) -> Any:
        asked.append(name)
        return models.Loaded(None, None, registry.REGISTRY[name], name, "cpu", None, "c" * 40)

    monkeypatch.setattr(models, "load", record)
    return asked


def test_fetch_refuses_before_downloading(no_load: list[str], monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown model 'sd99'"):
        teacher.fetch(["sd15", "sd99"])
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(teacher.shutil, "disk_usage", lambda p: usage._replace(free=10**9))
    with pytest.raises(ValueError, match=r"not enough disk space: sd15, sd15-inpaint need about "
                                         r"8\.6 GB in .*, which has 1\.0 GB free"):
        teacher.fetch(teacher.lesson_names([5], "gpu"))
    with pytest.raises(ValueError, match=r"sd15, sd15-lcm, sd15-inpaint-lcm need about 8\.7 GB"):
        teacher.fetch(teacher.lesson_names([5], "cpu"))  # the LCM names share their bases' files
    monkeypatch.setenv("HELPERS_TINY_MODELS", "1")
    with pytest.raises(ValueError, match="tiny mode is on"):
        teacher.fetch(["clip-b32"])
    assert no_load == []
    assert teacher.main(["fetch", "--lesson", "9"]) == 2


def test_fetch_skips_what_is_here(no_load: list[str], tmp_path: Path) -> None:
    from huggingface_hub import constants

    from helpers import tiny

    repo = Path(constants.HF_HUB_CACHE) / "models--openai--clip-vit-base-patch32"
    commit = lay_out_cache(Path(constants.HF_HUB_CACHE), "openai/clip-vit-base-patch32",
                           tiny.ensure("clip"))
    said: list[str] = []
    try:
        assert teacher.fetch(["clip-b32", "owlvit-b32"], say=said.append) == ["owlvit-b32"]
        assert no_load == ["owlvit-b32"]
        assert said[0] == "clip-b32: already here" and said[-1].startswith("owlvit-b32: done")
        report = teacher.doctor()
        assert re.search(rf"lesson 1: to fetch: align-base \(0\.7 GB\)(, [^\[]+)?  "
                         rf"\[clip-b32@{commit[:7]}\]", report)  # CLIP is here, ALIGN is not
        assert ("lesson 3: to fetch: owlvit-b32, slimsam-77, owlv2-b16, grounding-dino-tiny"
                in report)
        row = next(r for r in teacher.rows() if r["name"] == "clip-b32")
        assert row["cached"] and row["commit"] == commit and row["lessons"] == [1]
        assert "clip-b32" in teacher.list_models()
    finally:
        shutil.rmtree(repo)


def test_doctor_names_the_machine_and_scales_the_minutes(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("the estimates are for CPUs")
    reference = teacher.REFERENCE
    assert reference is not None and set(reference["minutes"]) == set(teacher.LESSONS)
    monkeypatch.setattr(teacher, "probe_seconds", lambda: 2 * reference["probe_s"])
    assert teacher.estimates() == {n: 2 * m for n, m in reference["minutes"].items()}
    report = teacher.doctor()
    assert report.startswith("device: cpu") and "hub cache: " in report
    lines = [line for line in report.splitlines() if line.startswith("lesson")]
    assert [line.split(":")[0] for line in lines] == [f"lesson {n}" for n in teacher.LESSONS]
    assert f"about {2 * reference['minutes'][5]:.0f} min here" in lines[4]
    monkeypatch.setenv("HELPERS_TINY_MODELS", "1")
    assert "min here" not in teacher.doctor() and "tiny mode is on" in teacher.doctor()


def test_probe_is_short() -> None:
    import time

    start = time.perf_counter()
    assert 0 < teacher.probe_seconds() < 10
    assert time.perf_counter() - start < 30
