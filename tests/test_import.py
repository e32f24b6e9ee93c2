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


def test_colab_zip_unpacks_where_the_readme_installs_it(tmp_path: Path) -> None:
    """The README's Colab cell unzips ``prompting-vision.zip`` into ``course`` and installs
    ``course``: the archive ``make colab`` writes must hold the package at its top level."""
    import shutil
    import zipfile

    import pytest

    root = Path(__file__).resolve().parent.parent
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.skip("make or git is not installed")
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True).returncode:
        pytest.skip("not a git checkout with a commit")
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "unzip -q -o prompting-vision.zip -d course && pip install -q -e course" in readme
    shown = subprocess.run(["make", "-n", "colab"], cwd=root, capture_output=True, text=True,
                           check=True).stdout
    command = next(line for line in shown.splitlines() if "git archive" in line)
    out = tmp_path / "prompting-vision.zip"
    subprocess.run(command.replace("build/prompting-vision.zip", str(out)), shell=True,
                   cwd=root, check=True)
    names = set(zipfile.ZipFile(out).namelist())
    assert {"pyproject.toml", "helpers/__init__.py", "notebooks/01_overview.ipynb",
            "data/manifest.json"} <= names


OPTIONAL = {"bitsandbytes": "8-bit Adam on CUDA only, asked for by a setting and said so",
            "sentry_sdk": "comet_ml's own error tracker, closed if it is there"}
"""Third-party modules helpers imports without declaring them, and why."""


def test_every_imported_package_is_a_declared_dependency() -> None:
    """``pip install`` of the package alone (Colab) must bring everything it imports."""
    import ast
    import importlib.metadata as metadata
    import re

    import tomllib

    root = Path(__file__).resolve().parent.parent
    imported: set[str] = set()
    for path in (root / "helpers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    imported -= set(sys.stdlib_module_names) | {"helpers", "__future__"} | set(OPTIONAL)
    declared = {re.split(r"[<>=!~\[ ;]", d)[0].lower().replace("_", "-") for d in
                tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]}
    owners = metadata.packages_distributions()
    missing = {m: owners.get(m) for m in imported
               if not {d.lower().replace("_", "-") for d in owners.get(m, [m])} & declared}
    assert not missing, f"imported but not in pyproject.toml's dependencies: {missing}"
