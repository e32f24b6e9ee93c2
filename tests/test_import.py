"""Importing helpers is cheap: no deep-learning framework is imported until it is used."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import helpers

MODULES = sorted(m.name for m in pkgutil.walk_packages(helpers.__path__, "helpers.")
                 if not m.name.endswith("__main__"))  # running it would start a training
HEAVY = ("torch", "transformers", "diffusers", "comet_ml", "segment_anything", "matplotlib",
         "accelerate", "peft", "cv2", "ipywidgets")


def test_every_module_imports_without_heavy_libraries() -> None:
    code = (
        "import sys\n"
        f"import {', '.join(['helpers', *MODULES])}\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at module level: {out.stdout.strip()}"


def test_every_file_is_an_importable_module() -> None:
    root = Path(helpers.__file__).parent
    on_disk = set()
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        on_disk.add(".".join(parts))
    assert on_disk - {"helpers", "helpers.dreambooth.__main__"} == set(MODULES)


def test_make_lab_allows_root_only_as_root() -> None:
    """JupyterLab refuses to start as root without --allow-root (Docker, cloud machines)."""
    import os
    import shutil

    if shutil.which("make") is None:
        import pytest

        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parent.parent
    shown = subprocess.run(["make", "-n", "lab"], cwd=root, capture_output=True, text=True,
                           check=True).stdout
    command = next(line for line in shown.splitlines() if "jupyter lab" in line)
    assert ("--allow-root" in command) == (os.geteuid() == 0), command
