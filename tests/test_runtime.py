"""runtime: device and dtype choice, seeding, tiny mode, threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import runtime

HAS_CUDA = torch.cuda.is_available()


def test_best_device_follows_what_torch_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    mps = torch.backends.mps.is_available()
    expected = "cuda" if HAS_CUDA else "mps" if mps else "cpu"
    assert runtime.device() == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runtime.device() == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runtime.device() == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.device() == "cuda"


def test_named_devices() -> None:
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


@pytest.mark.parametrize(
    ("name", "diffusion", "expected"),
    [("cpu", False, torch.float32), ("cpu", True, torch.float32), ("mps", True, torch.float32),
     ("cuda", False, torch.float32), ("cuda", True, torch.float16),
     ("cuda:1", True, torch.float16), ("cuda:1", False, torch.float32)],
)
def test_one_dtype_policy(name: str, diffusion: bool, expected: torch.dtype) -> None:
    assert runtime.dtype(name, diffusion=diffusion) == expected


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


def test_describe_reports_what_this_kernel_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import models

    before = torch.get_num_threads()
    try:
        runtime.set_threads(1)
        monkeypatch.setenv(runtime.TINY_ENV, "1")
        info = runtime.describe()
        assert info["threads"] == 1 and info["tiny_mode"] is True
        assert info["device"] == runtime.device() and info["torch"] == torch.__version__
        # the dtypes it reports are the ones the loader gives SAM and a diffusion pipeline
        assert info["dtype"] == str(models.default_dtype("sam", info["device"]))[6:]
        assert info["diffusion_dtype"] == str(models.default_dtype("sd", info["device"]))[6:]
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "Fake GPU")
        monkeypatch.setenv(runtime.TINY_ENV, "0")
        on_gpu = runtime.describe()
        assert on_gpu["device"] == "cuda" and on_gpu["gpu"] == "Fake GPU"
        assert (on_gpu["dtype"], on_gpu["diffusion_dtype"]) == ("float32", "float16")
        assert on_gpu["tiny_mode"] is False
    finally:
        torch.set_num_threads(before)


def test_describe_announces_tiny_mode(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HELPERS_TINY_MODELS", "1")
    monkeypatch.setattr(runtime, "_announced", False)
    assert runtime.describe(announce=False)["tiny_mode"] is True  # a record's call: quiet
    assert capsys.readouterr().out == ""
    assert runtime.describe()["tiny_mode"] is True
    assert capsys.readouterr().out.strip() == runtime.TINY_LINE
    runtime.describe()  # once per process: the set-up cell and a later tracking.start
    assert capsys.readouterr().out == ""
    monkeypatch.delenv("HELPERS_TINY_MODELS")
    assert runtime.describe()["tiny_mode"] is False
    assert capsys.readouterr().out == ""


def test_progress_is_text_for_pre_rendered_pages(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import tqdm.std

    monkeypatch.setenv(runtime.TEXT_PROGRESS_ENV, "1")
    bar = runtime.progress(range(3), desc="steps", mininterval=0)
    assert type(bar) is tqdm.std.tqdm  # not the notebook widget
    assert list(bar) == [0, 1, 2]
    out = capsys.readouterr().out
    assert "steps: 100%" in out and "3/3" in out.rsplit("\r", 1)[-1]
