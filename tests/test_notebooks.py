"""Every lesson notebook runs top to bottom in tiny mode, and is committed clean."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from helpers import lessons
from helpers.widgets import static

from . import browser
from .conftest import NOTEBOOK_TIMES, PAGES, all_text

NOTEBOOKS = lessons.notebooks()
FAKE_KEY = "FAKEnotebookKEY0123456789PLANTED"


def test_lessons_are_numbered_in_order_and_titled_so() -> None:
    on_disk = sorted(lessons.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert on_disk == NOTEBOOKS and len(NOTEBOOKS) >= 5
    for number, path in enumerate(NOTEBOOKS, start=1):
        assert path.name.startswith(f"{number:02d}_"), path.name
        title = "".join(json.loads(path.read_text())["cells"][0]["source"]).splitlines()[0]
        assert title.startswith(f"# Lesson {number} · "), (path.name, title)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} cell {i} has outputs"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has a count"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name} carries widget state"
    ids = [cell.get("id") for cell in nb["cells"]]
    missing = [i for i, cid in enumerate(ids) if not cid]
    assert not missing, f"{path.name}: cells {missing} have no id (nbformat 4.5 wants one)"
    assert len(set(ids)) == len(ids), f"{path.name}: two cells share an id"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_house_rules(path: Path) -> None:
    nb = json.loads(path.read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert not re.search(r"^\s*[!%]\s*(pip|wget|curl|conda)\b", code, re.M), "installs or downloads"
    assert not re.search(r"""["']cuda(:\d+)?["']""", code), "hard-coded cuda"
    absolute = r"""["'](/|[A-Za-z]:\\)(home|root|Users|tmp|work)\b"""
    assert not re.search(absolute, code), "absolute path"
    assert nb["cells"][0]["cell_type"] == "markdown"
    setup = next("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "runtime.describe()" in setup, "the set-up cell must announce tiny mode"
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "Try it yourself" in text and "Summary" in text


SCREEN = 5_000
"""About one screen of text: no cell of a lesson may print more."""


def _text(output: dict[str, Any]) -> str:
    """The text an output shows: a stream's, or a result's plain text (not images)."""
    if output.get("output_type") == "stream":
        return "".join(output.get("text", ""))
    return "".join(output.get("data", {}).get("text/plain", ""))


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_in_tiny_mode(path: Path, tmp_path: Path) -> None:
    with socket.socket() as s:  # a Comet "server" that never answers: the lesson goes offline
        s.bind(("127.0.0.1", 0))
        dead_server = f"http://127.0.0.1:{s.getsockname()[1]}/clientlib/"
    env = {"HELPERS_RUNS_DIR": str(tmp_path / "runs"), "COMET_API_KEY": FAKE_KEY,
           "COMET_URL_OVERRIDE": dead_server, "COMET_CONFIG": str(tmp_path / "none")}
    run = lessons.execute(path, mode="tiny", timeout=600, out_dir=tmp_path / "out", html=True,
                          env=env)
    NOTEBOOK_TIMES[path.name] = run.seconds
    text = run.executed.read_text()  # type: ignore[union-attr]
    assert FAKE_KEY not in text
    if "tracking.start(" in text:  # the key was there but the server was not: offline, quickly
        assert "did not answer" in text
    if (tmp_path / "runs").exists():
        assert FAKE_KEY not in all_text(tmp_path / "runs")
    executed = json.loads(text)
    errors = [o for c in executed["cells"] if c["cell_type"] == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    texts = {i: sum(len(_text(o)) for o in c.get("outputs", []))
             for i, c in enumerate(executed["cells"]) if c["cell_type"] == "code"}
    cell, largest = max(texts.items(), key=lambda kv: kv[1])
    assert largest <= SCREEN, f"cell {cell} prints {largest} characters (more than a screen)"
    shown = [o for c in executed["cells"] if c["cell_type"] == "code"
             for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert shown, "the lesson showed no pictures"
    assert run.html is not None and run.html.stat().st_size > 10_000
    views = _widget_views(executed)
    for i, output in views:  # every widget leaves a picture for pages without a kernel
        assert static.PICTURE_CLASS in "".join(output["data"].get("text/html", "")), (
            f"cell {i} shows a widget without a static picture")
    sizes = [len(json.dumps(o)) for c in executed["cells"] for o in c.get("outputs", [])]
    PAGES[path.name] = {"largest": max(sizes, default=0), "widgets": len(views)}
    if browser.skip_reason() is None:
        PAGES[path.name]["height"] = _check_offline_page(run.html, len(views))


def _widget_views(executed: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(cell index, output) of every output that shows a widget."""
    return [(i, o) for i, c in enumerate(executed["cells"]) if c["cell_type"] == "code"
            for o in c.get("outputs", []) if static.WIDGET_VIEW in o.get("data", {})]


_PICTURES = """sel => [...document.querySelectorAll(sel)].map(img => ({
    loaded: img.complete && img.naturalWidth > 0,
    height: img.getBoundingClientRect().height,
    cell: !!img.closest('.jp-Cell')}))"""


def _check_offline_page(page: Path, widgets: int) -> int:
    """Open the pre-rendered page with the network blocked: every widget's picture must show.

    Returns the page's height in CSS pixels."""
    outside: list[str] = []

    def only_files(route: Any) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:  # nbconvert's own MathJax and require.js come from a CDN: refused here
            outside.append(url)
            route.abort()

    with browser.chromium() as chrome:
        context = chrome.browser.new_context(viewport={"width": 1200, "height": 900})
        try:
            tab = context.new_page()
            tab.route("**/*", only_files)
            tab.goto(page.as_uri(), wait_until="load")
            pictures = tab.evaluate(_PICTURES, f"img.{static.PICTURE_CLASS}")
            height = int(tab.evaluate("() => document.documentElement.scrollHeight"))
        finally:
            context.close()
    assert len(pictures) == widgets, f"{widgets} widgets but {len(pictures)} pictures on the page"
    for n, seen in enumerate(pictures):
        assert seen["loaded"] and seen["height"] > 20 and seen["cell"], (n, seen)
    assert not [u for u in outside if "widget" in u], outside  # no widget manager from a CDN
    return height


def test_lessons_cli_rejects_unknown_notebook(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        lessons.main(["--mode", "tiny", "no-such-lesson"])
    assert "no notebook matches" in capsys.readouterr().err


def test_execute_rejects_bad_mode() -> None:
    with pytest.raises(ValueError, match="'fast'"):
        lessons.execute(NOTEBOOKS[0], mode="fast")


def test_scrub_writes_machine_paths_relative_and_leaves_pictures() -> None:
    import nbformat

    home = os.path.expanduser("~")
    runs = "/somewhere/build/tiny/runs"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stdout",
                               text=f"saving to {runs}/lesson-04/a; {lessons.ROOT}/data/x.png"),
        nbformat.v4.new_output("execute_result", data={
            "text/plain": f"'{home}/.cache/helpers'", "image/png": f"{home}-not-text"}),
        nbformat.v4.new_output("stream", name="stderr",
                               text="/tmp/ipykernel_22504/189506499.py:2: UserWarning: w"),
        nbformat.v4.new_output("stream", name="stdout",
                               text="steps:  0%| 0/2\rsteps: 50%| 1/2\rsteps: 100%| 2/2\ndone\r\n"),
        nbformat.v4.new_output("stream", name="stderr", text=(
            "C:\\Users\\ada\\AppData\\Local\\Temp\\ipykernel_812\\3301.py:4: UserWarning: w")),
    ])])
    lessons.scrub(nb, {runs: "runs", str(lessons.ROOT): ".", home: "~"})
    stream, result, warning, bar, windows = nb.cells[0].outputs
    assert warning["text"] == "<cell>:2: UserWarning: w"
    assert windows["text"] == "<cell>:4: UserWarning: w"
    assert bar["text"] == "steps: 100%| 2/2\ndone\r\n"  # a text bar's last state
    assert stream["text"] == "saving to runs/lesson-04/a; ./data/x.png"
    assert result["data"]["text/plain"] == "'~/.cache/helpers'"
    assert result["data"]["image/png"] == f"{home}-not-text"


def test_make_lessons_renders_from_a_fresh_runs_folder(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    seen: list[list[str]] = []

    def fake(path: Path, mode: str, timeout: int, out_dir: Path, html: bool,
             env: dict[str, str]) -> lessons.LessonRun:
        runs = Path(env["HELPERS_RUNS_DIR"])
        seen.append(sorted(p.name for p in runs.glob("*")) if runs.exists() else [])
        (runs / f"run-of-{len(seen)}").mkdir(parents=True)
        return lessons.LessonRun(path, 0.0, out_dir / path.name, out_dir / "x.html")

    monkeypatch.setattr(lessons, "execute", fake)
    for _ in range(2):
        assert lessons.main(["--mode", "tiny", "--out", str(tmp_path), "01_overview"]) == 0
    assert seen == [[], []]  # the second rendering did not see the first one's run
    assert f"The pages are in {(tmp_path / 'tiny').resolve()}" in capsys.readouterr().out
