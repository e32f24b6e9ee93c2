"""The teacher's tool: which weights each lesson loads, fetching them ahead, checking a machine.

    python -m helpers.models list               # every model: size, cached or not, commit
    python -m helpers.models fetch --lesson 4   # what lesson 4 loads (or --all, or names)
    python -m helpers.models fetch --all --for gpu   # what the lessons load on a GPU
    python -m helpers.models doctor             # device, memory, disk, what is cached

The lessons choose lighter models on a CPU (a fast SAM, few-step Stable Diffusion) than on a
GPU; ``fetch`` takes this machine's choice unless told ``--for cpu`` or ``--for gpu``.
``make weights`` fetches everything the lessons use here. Fetching loads each model once on the
CPU, so exactly the files the lessons will read are downloaded (one bar per file), and a
second run skips what is already there. Bad input (an unknown name, ``--lesson 9``, too
little disk) is refused before anything is downloaded.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from helpers import models, registry, runtime, weights

_SAM_CPU, _SAM_GPU = "slimsam-77", "sam-vit-b"
PRESETS: dict[int, dict[str, tuple[str, ...]]] = {
    1: {"cpu": ("clip-b32", "align-base"), "gpu": ("clip-b32", "align-base")},
    2: {"cpu": (_SAM_CPU,), "gpu": (_SAM_GPU,)},
    3: {"cpu": ("owlvit-b32", _SAM_CPU, "owlv2-b16", "grounding-dino-tiny", "clipseg-rd64"),
        "gpu": ("owlvit-b32", _SAM_GPU, "owlv2-b16", "grounding-dino-tiny", "clipseg-rd64")},
    4: {"cpu": ("owlvit-b32", _SAM_CPU, "sd15-inpaint-lcm"),
        "gpu": ("owlvit-b32", _SAM_GPU, "sd15-inpaint")},
    5: {"cpu": ("sd15", "sd15-lcm", "sd15-inpaint-lcm"), "gpu": ("sd15", "sd15-inpaint")},
    6: {"cpu": ("sam2.1-tiny", "whisper-tiny", "owlvit-b32"),
        "gpu": ("sam2.1-tiny", "whisper-tiny", "owlvit-b32")},
}
"""The registry names each lesson loads in real mode, on a CPU and on a GPU (the lessons'
set-up cells choose by device; ``tests/test_teacher.py`` reads the notebooks to check it)."""
OPTIONAL: dict[int, tuple[str, ...]] = {3: ("sam3",)}
"""Names a lesson uses only where this machine can have them, falling back without them
(SAM 3: gated and 3.4 GB; on a CPU lesson 3 uses it only when it was fetched ahead).
``fetch --lesson`` leaves them out; fetch them by name (``fetch sam3``)."""
LESSONS: dict[int, tuple[str, ...]] = {
    number: tuple(dict.fromkeys(both["cpu"] + both["gpu"] + OPTIONAL.get(number, ())))
    for number, both in PRESETS.items()}
"""Every registry name each lesson may load (on a CPU or on a GPU, optional ones included)."""


def preset() -> str:
    """Which of the lessons' presets this machine gets: "gpu" with CUDA, else "cpu"."""
    return "gpu" if runtime.device().startswith("cuda") else "cpu"


REFERENCE: dict[str, Any] = {
    "probe_s": 0.138, "minutes": {1: 0.4, 2: 0.1, 3: 1.3, 4: 7.7, 5: 23.5, 6: 2.6}}
"""What ``benchmarks/lesson_cost.py`` measured on a reference CPU (2 cores, 2 threads): its
``probe_seconds`` and each lesson's minutes in real mode with the CPU presets (heavy calls
only). Run the benchmark again and paste its last line here when the presets change; when a
second run's probe differs from this one, scale each lesson's new minutes by the ratio of its
new and old counts measured in that run (lessons 4 and 5 were updated so: x1.145, x1.304;
lesson 1, which had no measurable time before ALIGN, by the ratio of the probes: 0.44 min
measured at probe 0.157 s; lesson 3 for its CLIPSeg, example and SAM 3 fallback sections:
x1.49, its old counts 0.94 min and its new ones 1.4 min at probe 0.162 s; lesson 6 from its
counts in a lesson_cost.py run of the new calls only (5.9 s a tracked frame, 30 of them,
Whisper tiny 0.7 s): 3.0 min at probe 0.162 s, scaled by the probes)."""


def probe_seconds() -> float:
    """Seconds for a small fixed CPU workload (matrix products and a convolution, about a
    second): how this machine compares with the one ``REFERENCE`` was measured on."""
    import time

    import torch

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
    x, w = torch.randn(1, 64, 128, 128, generator=g), torch.randn(64, 64, 3, 3, generator=g)
    best = float("inf")
    with torch.inference_mode():
        a @ b  # warm-up
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(4):
                a @ b
                torch.conv2d(x, w, padding=1)
            best = min(best, time.perf_counter() - start)
    return best


def estimates() -> dict[int, float]:
    """Minutes per lesson on this CPU in real mode (CPU presets), scaled from ``REFERENCE``
    by ``probe_seconds``."""
    scale = probe_seconds() / float(REFERENCE["probe_s"])
    return {int(n): float(m) * scale for n, m in REFERENCE["minutes"].items()}


def lesson_names(lessons: Sequence[int], where: str | None = None) -> list[str]:
    """The registry names that ``lessons`` load on this machine (``where``: "cpu" or "gpu",
    None for this machine's ``preset()``), each once, in lesson order.

    Raises:
        ValueError: a lesson number that does not exist.
    """
    names: list[str] = []
    for number in lessons:
        if isinstance(number, bool) or number not in LESSONS:
            raise ValueError(f"there is no lesson {number!r}; the lessons are "
                             f"{', '.join(map(str, LESSONS))}")
    where = where or (preset() if lessons else "cpu")
    for number in lessons:
        names += [n for n in PRESETS[number][where] if n not in names]
    return names


def _hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def rows() -> list[dict[str, Any]]:
    """One row per real registry model: name, size, cached, commit, lessons, licence."""
    found = []
    for name, spec in registry.REGISTRY.items():
        if spec.is_tiny:
            continue
        here, commit = weights.is_cached(spec)
        found.append({"name": name, "description": spec.description,
                      "gb": sum(p.size_bytes or 0 for p in (spec, *weights.parts(spec)))
                      / registry.GB, "cached": here,
                      "commit": commit, "licence": spec.licence,
                      "lessons": [n for n, used in LESSONS.items() if name in used]})
    return found


def list_models() -> str:
    """The registry as a table (what ``list`` prints)."""
    lines = [f"{'name':21} {'GB':>5}  {'here':4}  {'commit':12}  {'lessons':8}  description"]
    for r in rows():
        lessons = ",".join(map(str, r["lessons"])) or "-"
        lines.append(f"{r['name']:21} {r['gb']:5.1f}  {'yes' if r['cached'] else 'no':4}  "
                     f"{(r['commit'] or '-')[:12]:12}  {lessons:8}  {r['description']}")
    return "\n".join(lines)


def _check_room(specs: Sequence[registry.ModelSpec]) -> None:
    """Refuse, before any download, when a cache's disk cannot take what is missing."""
    need: dict[Path, list[registry.ModelSpec]] = {}
    for spec in specs:
        folder = weights.checkpoint_path(spec).parent if spec.is_url else _hub_cache()
        need.setdefault(folder, []).append(spec)
    for folder, group in need.items():
        size = weights.missing_bytes(group)
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
        if free < size * 1.1:
            raise ValueError(
                f"not enough disk space: {', '.join(s.name for s in group)} need about "
                f"{size / registry.GB:.1f} GB in {folder}, which has {free / registry.GB:.1f} "
                f"GB free. Free some space, or point HF_HOME (hub models) or "
                f"{registry.CACHE_ENV} (checkpoints) at a larger disk.")


def fetch(names: Sequence[str], say: Any = print) -> list[str]:
    """Download the weights of ``names`` that are not here yet; returns the ones fetched.

    Raises:
        ValueError: an unknown name or too little disk, before anything is downloaded.
        WeightsUnavailableError: a download failed; the message says what to do.
    """
    specs = [registry.resolve(n) for n in names]
    if any(s.is_tiny for s in specs):
        raise ValueError("tiny mode is on (HELPERS_TINY_MODELS=1): there are no real weights "
                         "to fetch; unset it first")
    missing = [s for s in specs if not weights.is_cached(s)[0]]
    for spec in specs:
        if spec not in missing:
            say(f"{spec.name}: already here")
    _check_room(missing)
    done = []
    for spec in missing:
        size = weights.missing_bytes([spec]) / registry.GB
        say(f"{spec.name}: fetching about {size:.1f} GB from {spec.source}")
        loaded = models.load(spec.name, device="cpu", cached=False)
        say(f"{spec.name}: done" + (f" (commit {loaded.commit})" if loaded.commit else ""))
        del loaded
        gc.collect()
        done.append(spec.name)
    return done


def _memory_gb() -> tuple[float, float] | None:
    """(total, available) RAM in GB from /proc/meminfo, or None where there is none."""
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    values = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()
              if line.split()[1:2] and line.split()[1].isdigit()}
    if "MemTotal" not in values:
        return None
    return values["MemTotal"] / 1e6, values.get("MemAvailable", values["MemTotal"]) / 1e6


def doctor() -> str:
    """What this machine offers the course: device, memory, disk, and each lesson's weights."""
    info = runtime.describe()
    lines = [f"device: {info['device']}" + (f" ({info['gpu']})" if "gpu" in info else "")
             + f", torch {info['torch']}, {info['threads']} threads, {os.cpu_count()} cores"]
    memory = _memory_gb()
    if memory:
        lines.append(f"memory: {memory[0]:.1f} GB, {memory[1]:.1f} GB available"
                     + ("  (lessons 4-5 on a CPU want about 7 GB free)" if memory[1] < 7 else ""))
    for label, folder in (("hub cache", _hub_cache()), ("helpers cache", registry.cache_dir())):
        probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
        lines.append(f"{label}: {folder} ({shutil.disk_usage(probe).free / registry.GB:.1f} "
                     "GB free)")
    if info["tiny_mode"]:
        lines.append("tiny mode is on: the lessons use tiny random models and need no weights")
    by_name = {r["name"]: r for r in rows()}
    minutes = estimates() if info["device"] == "cpu" and not info["tiny_mode"] else None
    here = preset()
    for number in LESSONS:
        names = PRESETS[number][here]
        missing = [n for n in names if not by_name[n]["cached"]]
        size = weights.missing_bytes([registry.REGISTRY[n] for n in missing]) / registry.GB
        state = "ready" if not missing else f"to fetch: {', '.join(missing)} ({size:.1f} GB)"
        commits = ", ".join(f"{n}@{by_name[n]['commit'][:7]}" for n in names
                            if by_name[n]["commit"])
        cost = ""
        if minutes and number in minutes:
            m = minutes[number]
            cost = ", under a minute here" if m < 1 else f", about {m:.0f} min here"
        optional = "".join(f"; optional {n}: " + ("here" if by_name[n]["cached"] else
                                                   f"not here (fetch {n} to use it)")
                           for n in OPTIONAL.get(number, ()))
        lines.append(f"lesson {number}: {state}{optional}{cost}"
                     + (f"  [{commits}]" if commits else ""))
    if minutes:
        lines.append("(minutes: the lessons' heavy calls in their CPU presets, measured by "
                     "benchmarks/lesson_cost.py and scaled to this machine; no downloads)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.models list | fetch [--lesson N ... | --all | NAME ...] | doctor``."""
    parser = argparse.ArgumentParser(prog="python -m helpers.models",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every model: size, cached or not, commit, lessons")
    get = commands.add_parser("fetch", help="download weights ahead of a lesson")
    get.add_argument("names", nargs="*", help="registry names (see `list`)")
    get.add_argument("--lesson", type=int, action="append", default=[], metavar="N")
    get.add_argument("--all", action="store_true", help="everything the lessons use")
    get.add_argument("--for", dest="where", choices=("cpu", "gpu"), default=None,
                     help="the lessons' models on a CPU or a GPU (default: this machine)")
    commands.add_parser("doctor", help="check this machine for the course")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            print(list_models())
        elif args.command == "doctor":
            print(doctor())
        else:
            names = lesson_names(list(LESSONS) if args.all else args.lesson,
                                 args.where) + args.names
            if not names:
                parser.error("say what to fetch: --lesson N, --all, or registry names")
            fetch(list(dict.fromkeys(names)))
    except (ValueError, models.WeightsUnavailableError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
