"""The package's layers: every import of a helpers module goes downward, and none is a cycle.

Every import statement counts, the ones inside functions (lazy) and under TYPE_CHECKING
included. A new module must be given a layer here; a module that imports one of a higher
(or the same) layer fails the test, naming both.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "helpers"

LAYERS: dict[str, float] = {
    # 0: no helpers module below them, nothing heavy at import time
    "helpers": -0.1,
    "helpers.runtime": 0.1,
    "helpers.compat": 0.0,
    "helpers.checks": 0.0,
    "helpers.images": 0.2,
    "helpers.prompts": 0.2,
    "helpers.registry": 0.2,
    "helpers.vocab": 0.2,
    "helpers.detections": 0.3,
    "helpers.encodings": 0.3,
    "helpers.templates": 0.3,
    "helpers.examples": 0.35,
    "helpers.clips": 0.35,
    "helpers.palette": 0.1,
    "helpers.charts": 0.38,
    "helpers.viz": 0.4,
    "helpers.schedulers": 0.5,
    # 1: models, built and fetched
    "helpers.sam_hf": 0.9,
    "helpers.sam_files": 0.9,
    "helpers.tiny_hf": 0.95,
    "helpers.tiny_speech": 0.95,
    "helpers.tiny": 1.0,
    "helpers.weights": 1.1,
    "helpers.models": 1.2,
    # 2: tracking (never a view)
    "helpers.tracking.annotations": 2.0,
    "helpers.tracking.comet": 2.0,
    "helpers.tracking.record": 2.1,
    "helpers.tracking.recipes": 2.12,
    "helpers.tracking.picks": 2.15,
    "helpers.tracking.sounds": 2.15,
    "helpers.tracking.crashes": 2.15,
    "helpers.tracking.run": 2.2,
    "helpers.tracking.choosing": 2.25,
    "helpers.tracking": 2.3,
    # 3: one model noun each, and using a LoRA
    "helpers.lora": 3.0,
    "helpers.diffusion": 3.05,
    "helpers.clip": 3.1,
    "helpers.clipseg": 3.1,
    "helpers.video": 3.05,
    "helpers.sam": 3.1,
    "helpers.sam3": 3.1,
    "helpers.speech": 3.1,
    "helpers.detect": 3.1,
    "helpers.generate": 3.1,
    "helpers.inpaint": 3.1,
    # the teacher's tool (python -m helpers.models)
    "helpers.teacher": 3.5,
    # 4: training
    "helpers.dreambooth.config": 4.0,
    "helpers.dreambooth.data": 4.1,
    "helpers.dreambooth.inputs": 4.2,
    "helpers.dreambooth.validation": 4.3,
    "helpers.dreambooth.plan": 4.3,
    "helpers.dreambooth.report": 4.4,
    "helpers.dreambooth.checkpoints": 4.5,
    "helpers.dreambooth.loop": 4.6,
    "helpers.dreambooth.cli": 4.7,
    "helpers.dreambooth": 4.8,
    "helpers.dreambooth.__main__": 4.9,
    # 5: views (their static pictures first)
    "helpers.widgets.static": 4.95,
    "helpers.widgets.prompt_state": 4.95,
    "helpers.widgets.picker_view": 4.96,
    "helpers.widgets.picker": 5.0,
    "helpers.widgets.slider": 5.0,
    "helpers.widgets.gallery": 5.0,
    "helpers.widgets.upload": 5.0,
    "helpers.widgets": 5.1,
    # running the notebooks: imports no helpers module at all
    "helpers.lessons": 6.0,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _script_only(tree: ast.Module) -> set[int]:
    """ids of the nodes under ``if __name__ == "__main__":``: a module's command line may
    use what stands above it, since running it as a script is no import of the module."""
    inside: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
                "__name__ == '__main__'", '__name__ == "__main__"'):
            inside |= {id(n) for n in ast.walk(node)}
    return inside


def imports_of(path: Path) -> set[str]:
    """The helpers modules ``path`` imports anywhere in its code (but its script part)."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _script_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("helpers")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("helpers"):
            for alias in node.names:  # `from helpers import sam` imports the module sam
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: use absolute imports (from helpers...)")
    return found


GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    assert set(MODULES) == set(LAYERS), (
        f"modules without a layer: {sorted(set(MODULES) - set(LAYERS))}; "
        f"layers without a module: {sorted(set(LAYERS) - set(MODULES))}")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_downward(module: str) -> None:
    upward = [f"{target} (layer {LAYERS[target]})" for target in sorted(GRAPH[module])
              if LAYERS[target] >= LAYERS[module]]
    assert not upward, f"{module} (layer {LAYERS[module]}) imports {', '.join(upward)}"


def test_no_import_cycle() -> None:
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(GRAPH[node]):
            if state.get(target) == "open":
                cycle = trail[trail.index(target):] + [target] if target in trail else [target]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_the_checker_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from helpers.sam import Segmenter\n"
        "def f():\n    from helpers import tracking, widgets\n    import helpers.viz\n"
        "if __name__ == '__main__':\n    from helpers import dreambooth\n")
    assert imports_of(sample) == {"helpers.sam", "helpers.tracking", "helpers.widgets",
                                  "helpers.viz"}


def test_lessons_layer_is_a_leaf() -> None:
    assert GRAPH["helpers.lessons"] == set()
    assert not any(t.startswith("helpers.widgets") for t in GRAPH["helpers.tracking.run"])


@pytest.mark.parametrize(("module", "name", "where"), [
    ("tracking", "gallery", "widgets.gallery"),
    ("dreambooth", "upload_widget", "widgets.PhotoUpload"),
    ("dreambooth", "main", "helpers.dreambooth.cli.main"),
    ("models", "has_adapters", "lora.has_adapters"),
    ("sam", "NAMES", r"registry.aliases\('sam'\)"),
    ("sam", "image_key", "images.digest"),
    ("inpaint", "NAMES", r"registry.aliases\('sd-inpaint'\)"),
    ("detect", "NAMES", r"registry.aliases\(detect.FAMILIES\)"),
    ("detections", "check_points", r"prompts.Prompt\(size, points, labels\)"),
])
def test_moved_names_say_where_they_went(module: str, name: str, where: str) -> None:
    import importlib

    with pytest.raises(AttributeError, match=f"{module}.{name} has moved: use {where}"):
        getattr(importlib.import_module(f"helpers.{module}"), name)
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        importlib.import_module(f"helpers.{module}").nothing_here  # noqa: B018


def test_run_panel_says_where_it_went(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import tracking

    monkeypatch.setenv("COMET_CONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("COMET_API_KEY", raising=False)
    run = tracking.start("moved", online=False, directory=tmp_path)
    try:
        with pytest.raises(AttributeError, match=r"Run.panel has moved: use widgets.panel\(run\)"):
            run.panel()
        with pytest.raises(AttributeError, match="no attribute 'nothing'"):
            run.nothing  # noqa: B018
    finally:
        run.end()
