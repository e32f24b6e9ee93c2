"""runtime: device and dtype choice, seeding, tiny mode, threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import runtime

HAS_CUDA = torch.cuda.is_available()


def test_best_device_is_known() -> None:
    assert runtime.device() in ("cuda", "mps", "cpu")
    assert runtime.device("cpu") == "cpu"
    assert runtime.device("CPU") == "cpu"
    assert runtime.device("cpu:0") == "cpu"  # as torch and accelerate name it


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_a_clear_error(name: str) -> None:
    with pytest.raises(ValueError, match=rf"'{name}'.*CUDA is not available.*device=None"):
        runtime.device(name)


@pytest.mark.parametrize("name", ["tpu", "gpu", "cpu:x", "cuda:x", ""])
def test_unknown_device(name: str) -> None:
    with pytest.raises(ValueError, match="is not one of"):
        runtime.device(name)


@pytest.mark.parametrize(("name", "expected"), [("cpu", torch.float32), ("mps", torch.float32),
                                                ("cuda", torch.float16), ("cuda:1", torch.float16)])
def test_dtype(name: str, expected: torch.dtype) -> None:
    assert runtime.dtype(name) == expected


def test_seed_everything_repeats() -> None:
    runtime.seed_everything(7)
    a = (torch.rand(3), np.random.rand(3))
    runtime.seed_everything(7)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    runtime.seed_everything(8)
    assert not torch.equal(a[0], torch.rand(3))


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "7", True])
def test_bad_seed(seed: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        runtime.seed_everything(seed)  # type: ignore[arg-type]


def test_generator_is_seeded() -> None:
    a = torch.rand(2, generator=runtime.generator(3))
    b = torch.rand(2, generator=runtime.generator(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("", False), ("0", False), ("false", False), ("1", True), ("true", True),
     ("YES", True), ("on", True)],
)
def test_tiny_mode_switch(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv(runtime.TINY_ENV, raising=False)
    else:
        monkeypatch.setenv(runtime.TINY_ENV, value)
    assert runtime.tiny_mode() is expected


def test_tiny_mode_rejects_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.TINY_ENV, "maybe")
    with pytest.raises(ValueError, match="'maybe'"):
        runtime.tiny_mode()


def test_set_tiny_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runtime.TINY_ENV, raising=False)
    runtime.set_tiny_mode(True)
    assert runtime.tiny_mode()
    runtime.set_tiny_mode(False)
    assert not runtime.tiny_mode()


def test_threads() -> None:
    before = torch.get_num_threads()
    try:
        assert runtime.set_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="0"):
            runtime.set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_describe() -> None:
    info = runtime.describe()
    assert info["device"] in ("cuda", "mps", "cpu") and info["torch"] == torch.__version__
    assert isinstance(info["tiny_mode"], bool)
