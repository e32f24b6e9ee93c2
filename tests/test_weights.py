"""weights: checkpoint downloads with hashes, disk checks, and errors that say what to do."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from helpers import registry, weights


def test_disk_space_checked_before_download(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(weights.shutil, "disk_usage",
                        lambda path: usage._replace(free=10_000_000))
    monkeypatch.setattr(weights, "download", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(weights.WeightsUnavailableError, match=r"disk space.*sam-vit-h.*2\.6 GB"):
        weights.fetch(registry.REGISTRY["sam-vit-h"])


def _payload(root: Path) -> str:
    data = b"not really a checkpoint" * 1000
    (root / "ckpt.pth").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_download_checks_hash(serve: tuple[str, Path], tmp_path: Path) -> None:
    url, root = serve
    digest = _payload(root)
    dest = tmp_path / "out" / "ckpt.pth"
    got = weights.download(f"{url}/ckpt.pth", dest, sha256=digest, progress=False)
    assert got == dest and weights.sha256_file(dest) == digest
    (root / "ckpt.pth").unlink()  # a second call uses the verified copy, no request
    assert weights.download(f"{url}/ckpt.pth", dest, sha256=digest, progress=False) == dest


def test_download_rejects_wrong_hash(serve: tuple[str, Path], tmp_path: Path) -> None:
    url, root = serve
    _payload(root)
    dest = tmp_path / "ckpt.pth"
    with pytest.raises(weights.WeightsUnavailableError, match="SHA-256.*not the published"):
        weights.download(f"{url}/ckpt.pth", dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not list(tmp_path.glob("*.part"))


def test_download_unreachable_server(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # find a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(weights.WeightsUnavailableError, match="could not download.*TINY_MODELS"):
        weights.download(f"http://127.0.0.1:{port}/x.pth", tmp_path / "x.pth", progress=False)


def test_download_missing_file(serve: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = serve
    with pytest.raises(weights.WeightsUnavailableError, match="404|Not Found"):
        weights.download(f"{url}/absent.pth", tmp_path / "absent.pth", progress=False)


def test_corrupt_cached_checkpoint_is_fetched_again(serve: tuple[str, Path],
                                                     tmp_path: Path) -> None:
    url, root = serve
    digest = _payload(root)
    dest = tmp_path / "ckpt.pth"
    dest.write_bytes(b"truncated")
    weights.download(f"{url}/ckpt.pth", dest, sha256=digest, progress=False)
    assert weights.sha256_file(dest) == digest
