"""models: the registry, load-once cache, checkpoint downloads and the errors that teach."""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from pathlib import Path

import pytest

from helpers import models


def test_registry_entries_are_complete() -> None:
    for name, spec in models.REGISTRY.items():
        assert spec.name == name and spec.family in models.FAMILIES
        if spec.is_tiny:
            continue
        if spec.is_url:
            assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256 or ""), name
            assert spec.size_bytes and spec.arch in ("vit_b", "vit_l", "vit_h")
        else:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+", spec.source), name
            assert spec.revision
    for family in models.FAMILIES:
        assert models.TINY[family].name in models.names(family)
        assert any(not models.REGISTRY[n].is_tiny for n in models.names(family))


def test_course_defaults_registered() -> None:
    for name in ("clip-b32", "sam-vit-b", "owlvit-b32", "owlv2-b16", "grounding-dino-tiny",
                 "sd2-inpaint", "sd15-inpaint", "sd15"):
        assert name in models.REGISTRY


@pytest.mark.parametrize(
    ("name", "family", "message"),
    [
        ("clip-b23", None, r"unknown model name 'clip-b23'.*Did you mean 'clip-b32'"),
        ("sam-vit-x", "sam", r"unknown model name 'sam-vit-x'.*sam-vit-b"),
        ("clip-b32", "sam", r"'clip-b32' is a clip model, not sam"),
        ("", None, "non-empty"),
        ("clip-b32", "yolo", "family 'yolo'"),
    ],
)
def test_resolve_errors(name: str, family: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        models.resolve(name, family)


def test_resolve_hub_id_and_tiny_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    own = models.resolve("someone/my-clip", family="clip")
    assert own.source == "someone/my-clip" and own.family == "clip"
    monkeypatch.setenv("HELPERS_TINY_MODELS", "1")
    assert models.resolve("clip-b32") == models.TINY["clip"]
    assert models.resolve("sd2-inpaint").source == "tiny"


def test_unknown_name_fails_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "fetch", lambda spec: pytest.fail("fetched"))
    with pytest.raises(ValueError, match="unknown model name"):
        models.load("owl-vit")


def test_cuda_without_cuda_fails_before_fetching(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setattr(models, "fetch", lambda spec: pytest.fail("fetched"))
    with pytest.raises(ValueError, match="CUDA is not available"):
        models.load("tiny-clip", device="cuda")


def test_load_once_per_name_device_dtype(tiny: None) -> None:
    import torch

    a = models.load("clip-b32", device="cpu")
    b = models.load("clip-b32", device="cpu")
    assert a is b and a.spec.is_tiny and a.processor is not None
    c = models.load("clip-b32", device="cpu", dtype=torch.float64)
    assert c is not a and next(c.model.parameters()).dtype == torch.float64


def test_offline_hub_model_says_what_to_do(no_network: list[object]) -> None:
    start = time.perf_counter()
    with pytest.raises(models.WeightsUnavailableError) as err:
        models.load("owlvit-b32", device="cpu")
    message = str(err.value)
    assert "google/owlvit-base-patch32" in message
    assert "HELPERS_TINY_MODELS=1" in message and "internet" in message
    assert time.perf_counter() - start < 30
    assert no_network == []  # offline mode made no attempt to reach the hub


def test_disk_space_checked_before_download(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(models.shutil, "disk_usage",
                        lambda path: usage._replace(free=10_000_000))
    monkeypatch.setattr(models, "download", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(models.WeightsUnavailableError, match=r"disk space.*sam-vit-h.*2\.6 GB"):
        models.fetch(models.REGISTRY["sam-vit-h"])


def _payload(root: Path) -> str:
    data = b"not really a checkpoint" * 1000
    (root / "ckpt.pth").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_download_checks_hash(serve: tuple[str, Path], tmp_path: Path) -> None:
    url, root = serve
    digest = _payload(root)
    dest = tmp_path / "out" / "ckpt.pth"
    got = models.download(f"{url}/ckpt.pth", dest, sha256=digest, progress=False)
    assert got == dest and models.sha256_file(dest) == digest
    (root / "ckpt.pth").unlink()  # a second call uses the verified copy, no request
    assert models.download(f"{url}/ckpt.pth", dest, sha256=digest, progress=False) == dest


def test_download_rejects_wrong_hash(serve: tuple[str, Path], tmp_path: Path) -> None:
    url, root = serve
    _payload(root)
    dest = tmp_path / "ckpt.pth"
    with pytest.raises(models.WeightsUnavailableError, match="SHA-256.*not the published"):
        models.download(f"{url}/ckpt.pth", dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not list(tmp_path.glob("*.part"))


def test_download_unreachable_server(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # find a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(models.WeightsUnavailableError, match="could not download.*TINY_MODELS"):
        models.download(f"http://127.0.0.1:{port}/x.pth", tmp_path / "x.pth", progress=False)


def test_download_missing_file(serve: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = serve
    with pytest.raises(models.WeightsUnavailableError, match="404|Not Found"):
        models.download(f"{url}/absent.pth", tmp_path / "absent.pth", progress=False)


def test_corrupt_cached_checkpoint_is_fetched_again(serve: tuple[str, Path],
                                                     tmp_path: Path) -> None:
    url, root = serve
    digest = _payload(root)
    dest = tmp_path / "ckpt.pth"
    dest.write_bytes(b"truncated")
    models.download(f"{url}/ckpt.pth", dest, sha256=digest, progress=False)
    assert models.sha256_file(dest) == digest


def test_uncached_load_is_a_private_copy(tiny: None) -> None:
    shared = models.load("tiny-sd", device="cpu")
    private = models.load("tiny-sd", device="cpu", cached=False)
    assert private.model is not shared.model
    assert models.load("tiny-sd", device="cpu") is shared
