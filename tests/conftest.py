"""Test set-up shared by every test: offline, one thread, a private cache, no network.

The environment is fixed here, at import time, because torch reads OMP_NUM_THREADS and
huggingface_hub reads HF_HUB_OFFLINE and HF_HOME when they are first imported.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_SCRATCH = Path(tempfile.mkdtemp(prefix="helpers-tests-"))
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HOME"] = str(_SCRATCH / "hf")
os.environ["HELPERS_CACHE"] = str(_SCRATCH / "cache")
os.environ["MPLBACKEND"] = "Agg"
os.environ.pop("HELPERS_TINY_MODELS", None)

NOTEBOOK_TIMES: dict[str, float] = {}
PAGES: dict[str, dict[str, int]] = {}
"""Per lesson: its pre-rendered page's height (px), largest cell output (bytes), widgets."""


def all_text(folder: Path) -> str:
    """Every byte under ``folder`` as text, with the members of zip archives unpacked."""
    import zipfile

    chunks = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            chunks.append(path.read_bytes().decode("latin-1"))
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as z:
                    chunks += [z.read(n).decode("latin-1") for n in z.namelist()]
    return "\n".join(chunks)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A web server on loopback serving a fresh folder: yields (base URL, folder)."""
    import http.server
    import threading

    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, directory=str(root), **k)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkBlocked(OSError):
    """A test tried to reach an address outside this machine."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Refuse any connection or name lookup outside loopback; yields the attempts made."""
    attempts: list[object] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: object) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host.startswith("/"):
            return  # unix socket
        if not _is_loopback(host):
            attempts.append(address)
            raise NetworkBlocked(f"test tried to reach {address!r} (only loopback is allowed)")

    def connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address)
        return real_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address)
        return real_connect_ex(self, address)  # type: ignore[arg-type]

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host is not None:
            check((host,))
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the test in tiny mode."""
    monkeypatch.setenv("HELPERS_TINY_MODELS", "1")


# ---------------------------------------------------------------- tiny models, built once

@pytest.fixture(scope="session")
def seg() -> Any:
    """The tiny SAM, loaded through the real loader."""
    from helpers import sam

    return sam.Segmenter.from_pretrained("tiny", device="cpu")


@pytest.fixture(scope="session")
def painter() -> Any:
    """The tiny SD inpainting pipeline as an ``Inpainter``."""
    from helpers import inpaint

    return inpaint.Inpainter.from_pretrained("tiny", device="cpu")


@pytest.fixture(scope="session")
def detectors() -> dict[str, Any]:
    """One tiny detector per family: OWL-ViT, OWLv2, Grounding DINO."""
    from helpers import detect

    return {family: detect.Detector.from_pretrained(f"tiny-{family}", device="cpu")
            for family in detect.FAMILIES}


@pytest.fixture(scope="session")
def embedder() -> Any:
    """The tiny CLIP as an ``Embedder``."""
    from helpers import clip

    return clip.Embedder.from_pretrained("tiny", device="cpu")


@pytest.fixture
def offline_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Runs recorded under this test's folder, offline, with no Comet key or config of the
    machine's; yields the runs folder and ends every run the test left open."""
    from helpers import tracking

    runs = tmp_path / "runs"
    monkeypatch.setenv("HELPERS_RUNS_DIR", str(runs))
    monkeypatch.setenv("COMET_CONFIG", str(tmp_path / "no-such.config"))
    monkeypatch.delenv("COMET_API_KEY", raising=False)
    monkeypatch.delenv("COMET_URL_OVERRIDE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.comet.config of the machine's
    yield runs
    for run in tracking.active():
        run.end()


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    if NOTEBOOK_TIMES:
        terminalreporter.section("notebook run times (tiny mode)")
        for name, seconds in NOTEBOOK_TIMES.items():
            page = PAGES.get(name, {})
            shape = (f"  page {page['height']:6d} px, largest output {page['largest']:7d} B, "
                     f"{page['widgets']} widget pictures" if "height" in page else "")
            terminalreporter.write_line(f"{name:40s} {seconds:7.1f} s{shape}")


def pytest_unconfigure(config):  # type: ignore[no-untyped-def]
    shutil.rmtree(_SCRATCH, ignore_errors=True)
