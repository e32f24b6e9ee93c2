"""Importing helpers is cheap: no deep-learning framework is imported until it is used."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import helpers

MODULES = sorted(f"helpers.{m.name}" for m in pkgutil.iter_modules(helpers.__path__))
HEAVY = ("torch", "transformers", "diffusers", "comet_ml", "segment_anything", "matplotlib")


def test_every_module_imports_without_heavy_libraries() -> None:
    code = (
        "import sys\n"
        f"import {', '.join(['helpers', *MODULES])}\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at module level: {out.stdout.strip()}"


def test_modules_found() -> None:
    assert {"helpers.images", "helpers.runtime", "helpers.models", "helpers.tiny",
            "helpers.detections", "helpers.viz"} <= set(MODULES)
