"""Where and how models run: device and dtype choice, seeding, tiny mode and threads.

The device order is cuda → mps → cpu. One dtype policy (``dtype``): the diffusion
pipelines run in half precision (float16) on CUDA, every other model (SAM, CLIP, the
detectors) runs in float32 everywhere: SAM's mask decoder is not reliable in half precision,
float16 is slow or unsupported on a CPU, and on Apple's MPS several course models give wrong
results in it. Tiny mode (``HELPERS_TINY_MODELS=1``) swaps every model for a tiny
random one built in code (see ``helpers.tiny``), so lessons run anywhere in seconds.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

TINY_ENV = "HELPERS_TINY_MODELS"
TEXT_PROGRESS_ENV = "HELPERS_TEXT_PROGRESS"
"""Set to 1 (``make lessons`` does) for progress bars as text lines instead of widgets."""
DEVICES = ("cuda", "mps", "cpu")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def tiny_mode() -> bool:
    """True when ``HELPERS_TINY_MODELS`` asks for tiny random models instead of real weights."""
    raw = os.environ.get(TINY_ENV, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(
        f"{TINY_ENV}={os.environ[TINY_ENV]!r} is not understood; set it to 1 for tiny models "
        "or 0 (or unset it) for the real ones"
    )


def set_tiny_mode(on: bool = True) -> None:
    """Switch tiny mode for this process (and the kernels or subprocesses it starts)."""
    os.environ[TINY_ENV] = "1" if on else "0"


def _mps_available(torch: Any) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def device(prefer: str | None = None) -> str:
    """The device to run on: ``prefer`` if given and usable, else the best one present.

    Args:
        prefer: None (choose: cuda, then mps, then cpu), or one of "cuda", "cuda:N",
            "mps", "cpu".

    Returns:
        A device string that ``torch.device`` accepts.

    Raises:
        ValueError: ``prefer`` is not a known device, or names one this machine lacks.
    """
    import torch

    if prefer is None or prefer == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if _mps_available(torch):
            return "mps"
        return "cpu"
    name = str(prefer).strip().lower()
    kind, _, index = name.partition(":")
    if kind == "cpu" and index.isdigit():  # torch names the CPU "cpu:0" (e.g. accelerate)
        return "cpu"
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(
            f"device {prefer!r} is not one of 'cuda', 'cuda:N', 'mps', 'cpu'; "
            "pass device=None to choose the best available one"
        )
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {prefer!r} was asked for, but CUDA is not available on this machine "
                "(torch.cuda.is_available() is False); pass device=None to use the best "
                "device present, or device='cpu'"
            )
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise ValueError(
                f"device {prefer!r} was asked for, but this machine has {count} CUDA "
                f"device(s): use 'cuda:0' to 'cuda:{count - 1}'"
            )
    if kind == "mps" and not _mps_available(torch):
        raise ValueError(
            "device 'mps' was asked for, but Apple's MPS backend is not available here; "
            "pass device=None or device='cpu'"
        )
    return name


def dtype(device_name: str | None = None, diffusion: bool = False) -> torch.dtype:
    """The floating dtype for a model on ``device_name`` (None: the best device present).

    Args:
        diffusion: True for a Stable Diffusion pipeline, which runs in float16 on CUDA;
            everything else runs in float32 on every device.
    """
    import torch

    name = device(device_name) if device_name is None else str(device_name)
    return torch.float16 if diffusion and name.startswith("cuda") else torch.float32


def seed_everything(seed: int) -> int:
    """Seed Python's, NumPy's and torch's generators (all devices) with ``seed``.

    Returns the seed, so a cell can log it: ``run.log_params({"seed": seed_everything(7)})``.
    """
    from helpers import checks

    seed = checks.integer("seed", seed, 0, 2**32 - 1, hint="NumPy's global generator takes "
                          "seeds below 2**32")
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (the legacy global generator is what old code uses)
    torch.manual_seed(seed)  # also seeds every CUDA and MPS device
    return seed


def generator(seed: int, device_name: str = "cpu") -> torch.Generator:
    """A torch generator on ``device_name`` seeded with ``seed`` (for diffusers' ``generator=``).

    The default, a CPU generator, draws the same numbers on every machine: a seed then means
    the same starting noise whatever device the model runs on.
    """
    import torch

    from helpers import checks

    seed = checks.seed(seed)
    gen = torch.Generator(device=device_name)
    gen.manual_seed(seed)
    return gen


def progress(iterable: Any = None, **kwargs: Any) -> Any:
    """A tqdm progress bar (arguments as ``tqdm``'s): a widget in a live notebook, a text
    line on stdout when ``HELPERS_TEXT_PROGRESS=1``. A pre-rendered page keeps a text bar's
    last state; a widget bar's saved output would still read 0 %."""
    import sys

    if os.environ.get(TEXT_PROGRESS_ENV, "").strip().lower() in _TRUE:
        from tqdm.std import tqdm

        kwargs.setdefault("file", sys.stdout)
        kwargs.setdefault("mininterval", 2.0)
        kwargs.setdefault("ascii", True)
        return tqdm(iterable, **kwargs)
    from tqdm.auto import tqdm as auto

    return auto(iterable, **kwargs)


def set_threads(n: int | None = None) -> int:
    """Limit torch's CPU threads to ``n`` (default: the machine's cores) and return the count.

    On small shared machines fewer threads is often faster: tiny models ran many times
    slower with two threads than with one on a busy two-core box.
    """
    import torch

    if n is None:
        n = os.cpu_count() or 1
    from helpers import checks

    n = checks.integer("thread count", n, 1, 4096)
    torch.set_num_threads(n)
    return n


def available_memory(device: str) -> tuple[int | None, str]:
    """(bytes free now, what was measured) on ``device``; None when it cannot be told.

    CUDA: the GPU's free memory (``torch.cuda.mem_get_info``); a CPU or Apple's MPS (which
    shares it): the RAM available (``/proc/meminfo``, else ``os.sysconf``; where neither
    tells, as on macOS, the machine's RAM in all, which errs high)."""
    if str(device).startswith("cuda"):
        import torch

        where = torch.device(device)
        free, _total = torch.cuda.mem_get_info(where)
        # memory PyTorch holds in its cache but does not use is free to this process too
        try:
            cached = torch.cuda.memory_reserved(where) - torch.cuda.memory_allocated(where)
        except (RuntimeError, AssertionError, ValueError):
            cached = 0
        return int(free) + max(0, int(cached)), f"{device} has"
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "the RAM available is"
    except (OSError, ValueError, IndexError):
        pass
    for name, where in (("SC_AVPHYS_PAGES", "the free RAM is"),
                        ("SC_PHYS_PAGES", "the machine's RAM in all is")):
        try:
            return os.sysconf(name) * os.sysconf("SC_PAGE_SIZE"), where
        except (ValueError, OSError, AttributeError):
            continue
    return None, "the memory free is unknown"


TINY_LINE = ("Tiny mode (HELPERS_TINY_MODELS=1): every model is a tiny random one, so the "
             "pictures are noise; every call is the real one.")
"""What ``describe`` prints first in tiny mode (each lesson's set-up cell calls it)."""


_announced = False


def describe(announce: bool = True) -> dict[str, Any]:
    """What this kernel runs on: device, the dtypes of ``dtype``'s policy (models, diffusion
    pipelines), tiny mode, torch version and threads. In tiny mode the first call that
    ``announce``s prints one line saying so (``TINY_LINE``), once per process, so a learner
    knows why the pictures are noise; records (``tracking``) call it with ``announce=False``."""
    global _announced
    import torch

    dev = device()
    info: dict[str, Any] = {
        "device": dev,
        "dtype": str(dtype(dev)).replace("torch.", ""),
        "diffusion_dtype": str(dtype(dev, diffusion=True)).replace("torch.", ""),
        "tiny_mode": tiny_mode(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if dev == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    if info["tiny_mode"] and announce and not _announced:
        print(TINY_LINE)
        _announced = True
    return info
