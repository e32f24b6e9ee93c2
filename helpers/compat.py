"""The few places where helpers relies on a library's internals, in one module.

Everything else uses public APIs. What is here has no public equivalent in the pinned
versions; ``PRIVATE_NAMES`` lists each internal name, and ``tests/test_compat.py`` fails,
naming the installed version, as soon as a library moves one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

PRIVATE_NAMES = (
    # A notebook kernel keeps accelerate's process-wide state from one training run to the
    # next, pinning its first settings (mixed precision, CPU); there is no public reset.
    ("accelerate", "accelerate.state", "AcceleratorState._reset_state"),
    ("accelerate", "accelerate.state", "GradientState._reset_state"),
    ("accelerate", "accelerate.state", "PartialState._shared_state"),
)
"""(distribution, module, attribute path) of every internal name used here."""


def moved(module: str, names: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that says where a name of an earlier helpers went.

    ``names`` maps each old name to what to use now; any other missing name raises the
    usual AttributeError.
    """
    def __getattr__(name: str) -> object:
        if name in names:
            raise AttributeError(f"{module.removeprefix('helpers.')}.{name} has moved: use "
                                 f"{names[name]}")
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


def lookup(module: str, path: str) -> object:
    """The object at ``module`` + ``path`` (dotted attributes); AttributeError if gone."""
    obj: object = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def reset_accelerate_state() -> None:
    """Forget accelerate's single-process state from an earlier run in this process.

    A distributed state (``WORLD_SIZE`` set by ``accelerate launch``) is left alone.
    """
    import os

    from accelerate.state import AcceleratorState, GradientState, PartialState

    if PartialState._shared_state and not os.environ.get("WORLD_SIZE"):
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


def text_encoder_lora_problem() -> str | None:
    """Why a LoRA on the text encoder cannot be trained or loaded here, or None.

    transformers puts LoRA into its models (and diffusers loads a text-encoder LoRA) through
    its own peft integration, which asks for a minimum peft version.
    """
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    try:
        from transformers.integrations.peft import MIN_PEFT_VERSION
    except ImportError:
        return None
    try:
        installed = version("peft")
    except PackageNotFoundError:
        return "peft is not installed"
    if Version(installed) < Version(MIN_PEFT_VERSION):
        return (f"transformers {version('transformers')} needs peft >= {MIN_PEFT_VERSION} for "
                f"a text-encoder LoRA, and peft {installed} is installed")
    return None


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn from the first caller outside the helpers package (the learner's cell), so the
    warning names their line, not one deep inside a sweep or a training loop."""
    import os
    import sys
    import warnings

    root = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(root):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    warnings.warn(message, category, stacklevel=level)
