"""Run the lesson notebooks headlessly: for tests, and to pre-render a workshop.

``python -m helpers.lessons --mode tiny --out build`` executes every notebook in
``notebooks/`` and writes, for each, the executed notebook (outputs and widget state kept)
and an HTML page, then prints how long each took. ``--mode real`` uses the real weights.
Each call records the lessons' runs in a fresh folder of its own (``build/<mode>/runs``), so
runs from earlier tries never show up in a pre-rendered gallery, and the machine's paths in
the outputs are written relative to the course (``~`` for the home folder).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


@dataclass
class LessonRun:
    """One executed notebook: where it came from and went, and how long it took."""

    notebook: Path
    seconds: float
    executed: Path | None = None
    html: Path | None = None


def notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """The lesson notebooks in order (``NN_name.ipynb``)."""
    return sorted(p for p in Path(folder).glob("*.ipynb") if not p.name.startswith("."))


def execute(path: Path, mode: str = "tiny", timeout: int = 1800,
            out_dir: Path | None = None, html: bool = False,
            env: dict[str, str] | None = None) -> LessonRun:
    """Execute one notebook top to bottom in a fresh kernel, in its own folder.

    Args:
        mode: "tiny" (tiny random models) or "real" (real weights).
        timeout: seconds allowed for any one cell.
        out_dir: where to write the executed notebook (and HTML, if ``html``); None keeps
            nothing on disk.
        env: extra environment variables for the kernel.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell failed; the message shows the cell
            and its traceback.
    """
    import nbformat
    from nbclient import NotebookClient

    if mode not in ("tiny", "real"):
        raise ValueError(f"mode {mode!r} must be 'tiny' or 'real'")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"notebook {str(path)!r} does not exist")
    nb = nbformat.read(path, as_version=4)
    saved = {k: os.environ.get(k)
             for k in ("HELPERS_TINY_MODELS", "HELPERS_TEXT_PROGRESS", *(env or {}))}
    os.environ["HELPERS_TINY_MODELS"] = "1" if mode == "tiny" else "0"
    os.environ["HELPERS_TEXT_PROGRESS"] = "1"  # bars as text: the page keeps their last state
    os.environ.update(env or {})
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}},
                                store_widget_state=True,
                                coalesce_streams=True)  # text bars keep their last state
        start = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - start
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    run = LessonRun(path, seconds)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        runs = (env or {}).get("HELPERS_RUNS_DIR")
        scrub(nb, {**({str(Path(runs).resolve()): "runs"} if runs else {}), str(ROOT): ".",
                   os.path.expanduser("~"): "~"})
        run.executed = out_dir / path.name
        nbformat.write(nb, run.executed)
        if html:
            run.html = run.executed.with_suffix(".html")
            run.html.write_text(html_page(nb), encoding="utf-8")
    return run


def html_page(nb: Any) -> str:
    """An executed notebook as one HTML page that needs no network.

    Each widget's output carries a static picture (``helpers.widgets.static``) beside its
    live view; without a kernel the live view could only be drawn by the widget manager's
    JavaScript from a CDN. The page therefore leaves the saved widget state out, so that
    nbconvert shows each widget's picture and loads no widget manager. (nbconvert's page
    still asks a CDN for MathJax and require.js; offline, only formulas go unrendered.)
    """
    import copy

    from nbconvert import HTMLExporter

    page = copy.deepcopy(nb)
    page.metadata.pop("widgets", None)
    body, _ = HTMLExporter().from_notebook_node(page)
    return str(body)


TEXT_TYPES = ("text/plain", "text/html", "text/markdown")
CELL_FILE = re.compile(r"(?:\b[A-Za-z]:)?[^\s:'\"]{0,200}ipykernel_\d+[/\\]\d+\.py")
"""The temporary file ipykernel names a cell's code by, in warnings and tracebacks."""
OVERWRITTEN = re.compile(r"[^\n]*\r(?=[^\n])")
"""Text a carriage return tells the terminal to write over (a progress bar's updates)."""


def scrub(nb: object, paths: dict[str, str]) -> None:
    """Replace each machine path of ``paths`` (longest first) by its stand-in in the text
    outputs of ``nb`` (streams, plain text, HTML), and keep of each streamed line only what
    a terminal would show after its carriage returns; pictures are left alone."""
    order = sorted((p for p in paths if p and p != os.sep), key=len, reverse=True)

    def clean(text: str) -> str:
        if "ipykernel_" in text:  # where a warning names the cell's code
            text = CELL_FILE.sub("<cell>", text)
        for found in order:
            text = text.replace(found, paths[found])
        return text

    for cell in getattr(nb, "cells", []):
        for output in cell.get("outputs", []):
            if "text" in output:  # a stream: a text progress bar keeps only its last state
                output["text"] = OVERWRITTEN.sub("", clean("".join(output["text"])))
            for key in TEXT_TYPES:
                if key in output.get("data", {}):
                    output["data"][key] = clean("".join(output["data"][key]))
            if "traceback" in output:
                output["traceback"] = [clean(line) for line in output["traceback"]]


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.lessons [--mode tiny|real] [--out DIR] [names...]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("tiny", "real"), default="tiny")
    parser.add_argument("--out", type=Path, default=ROOT / "build")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("only", nargs="*", help="notebook names to run (default: all)")
    args = parser.parse_args(argv)
    chosen = notebooks()
    if args.only:
        chosen = [p for p in chosen if any(key in p.name for key in args.only)]
        if not chosen:
            parser.error(f"no notebook matches {args.only}; have {[p.name for p in notebooks()]}")
    out = args.out / args.mode
    runs = out / "runs"
    shutil.rmtree(runs, ignore_errors=True)  # a fresh runs folder: no earlier runs leak in
    for path in chosen:
        print(f"running {path.name} ({args.mode}) ...", flush=True)
        run = execute(path, args.mode, args.timeout, out, html=True,
                      env={"HELPERS_RUNS_DIR": str(runs.resolve())})
        print(f"  {run.seconds:7.1f} s -> {run.executed} and {run.html}", flush=True)
    print(f"The pages are in {out.resolve()} (open the .html files in a browser); the runs "
          f"they logged are in {runs.resolve()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
