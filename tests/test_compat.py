"""compat: every library internal helpers relies on is still where it was."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from helpers import compat


@pytest.mark.parametrize(("dist", "module", "path"), compat.PRIVATE_NAMES,
                         ids=[f"{m}.{p}" for _, m, p in compat.PRIVATE_NAMES])
def test_private_names_still_exist(dist: str, module: str, path: str) -> None:
    try:
        compat.lookup(module, path)
    except AttributeError as err:
        pytest.fail(f"{dist} {version(dist)} no longer has {module}.{path} ({err}); "
                    "update helpers/compat.py for this version")


def test_reset_forgets_an_earlier_single_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    Accelerator(cpu=True, mixed_precision="no")
    assert PartialState._shared_state
    compat.reset_accelerate_state()
    assert not PartialState._shared_state and not AcceleratorState._shared_state
    again = Accelerator(cpu=True, mixed_precision="bf16")  # not pinned to the first settings
    assert again.mixed_precision == "bf16"
    compat.reset_accelerate_state()


def test_text_encoder_lora_problem_names_the_versions() -> None:
    from packaging.version import Version
    from transformers.integrations.peft import MIN_PEFT_VERSION

    problem = compat.text_encoder_lora_problem()
    if Version(version("peft")) >= Version(MIN_PEFT_VERSION):
        assert problem is None
    else:
        assert problem is not None and version("peft") in problem and MIN_PEFT_VERSION in problem
