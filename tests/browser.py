"""Real-browser tests of notebook widgets: JupyterLab 4 or Notebook 7 on loopback, driven
through chromium.

Debian's chromium is driven by Playwright (``playwright install`` is never used). A test
writes a notebook into a folder, serves it (``lab`` or ``notebook7``), opens it, runs every
cell, then acts on the rendered widgets (found by the CSS classes the notebook gave them
with ``add_class``, or that their JavaScript gave their elements)::

    from . import browser

    pytestmark = [pytest.mark.slow, browser.needs_browser]

    def test_click(tmp_path):
        browser.write_notebook(tmp_path / "demo.ipynb", "import ipywidgets ...")
        with browser.lab(tmp_path) as server, browser.open_notebook(server, "demo.ipynb") as nb:
            nb.click(".demo-image", 50, 30)          # element-relative CSS pixels
            nb.wait_for_text(".demo-label", r"clicked 50,30")

The same test runs against Notebook 7 with ``browser.notebook7(tmp_path)`` in place of
``browser.lab(tmp_path)``: Notebook 7 is built from JupyterLab's parts, so its DOM, its
``window.jupyterapp`` and its commands are JupyterLab's, and only the page differs
(``/notebooks/<path>`` opens one notebook, with no launcher or file browser).

Nothing may leave this machine. The server and its kernels run with a guard (a
``sitecustomize``) that refuses and records any connection outside loopback, as the
``no_network`` fixture does in the test process; chromium sends everything but loopback to a
recording "proxy" that refuses it, and the page's own requests outside loopback are aborted
and recorded. ``open_notebook`` asserts at exit that all three records are empty.

Waits poll the state of the page (kernel status, DOM text, pixels), never a fixed delay, and
fail fast when the page reports that a widget's JavaScript module is missing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
# The binary behind Debian's launcher script: the script adds flags of its own (remote
# extensions, API keys) that a hermetic test does not want, so the binary is used when present.
CHROMIUM_BINARY = "/usr/lib/chromium/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--force-color-profile=srgb",
    "--font-render-hinting=none",
    # Chromium's own services still call Google at start-up (sign-in's ListAccounts, the
    # on-device-model manifest, autofill): point them at a closed loopback port.
    "--gaia-url=http://127.0.0.1:9/",
    "--component-updater=url-source=http://127.0.0.1:9/",
    "--autofill-server-url=http://127.0.0.1:9/",
]
VIEWPORT = {"width": 1280, "height": 900}
MODULE_MISSING = re.compile(r"No version of module \S+ is registered|Could not create a model")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

SKIP_REASON = (
    "browser tests need Debian's chromium and playwright: run `make test` as root "
    "(it installs system-packages.txt and requirements-dev.txt), or "
    "`sudo apt-get install -y chromium` and `.venv/bin/pip install -r requirements-dev.txt`"
)


def chromium_path() -> str | None:
    """The chromium executable to drive, or None when Debian's chromium is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        return None
    return CHROMIUM_BINARY if os.access(CHROMIUM_BINARY, os.X_OK) else CHROMIUM


def skip_reason() -> str | None:
    """None when the browser tests can run, else why not and how to enable them."""
    import importlib.util

    if chromium_path() is None or importlib.util.find_spec("playwright") is None:
        return SKIP_REASON
    return None


needs_browser = pytest.mark.skipif(skip_reason() is not None, reason=SKIP_REASON)


class BrowserError(AssertionError):
    """The page, the notebook or the network did something a browser test does not allow."""


def write_notebook(path: Path, *cells: str, kernel: str = "python3") -> Path:
    """Write a notebook of code cells (markdown cells start with ``#md``) for ``kernel``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for source in cells:
        if source.startswith("#md\n"):
            nb.cells.append(nbformat.v4.new_markdown_cell(source[4:]))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source))
    path.write_text(nbformat.writes(nb))
    return path


# -- JupyterLab and Notebook 7 -----------------------------------------------------------

# Runs first in the server and in every kernel it starts (PYTHONPATH): refuse and record any
# connection or name lookup outside loopback, then hand over to any other sitecustomize.
_GUARD = '''\
import ipaddress
import os
import socket
import sys

_LOG = os.environ["HELPERS_NET_GUARD_LOG"]


def _loopback(host):
    if host is None or host in ("", "localhost", "ip6-localhost"):
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(address):
    host = address[0] if isinstance(address, tuple) else address
    if not _loopback(host):
        with open(_LOG, "a") as log:
            log.write(f"{os.getpid()} {sys.argv[:3]!r} {address!r}\\n")
        raise OSError(f"tests/browser.py: {address!r} is outside loopback")


_connect, _connect_ex, _getaddrinfo = (
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address)
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    _check((host,))
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = (
    connect, connect_ex, getaddrinfo)

_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
del sys.modules["sitecustomize"]
try:
    import sitecustomize  # noqa: F401  (the one this guard shadows, if any)
except ImportError:
    pass
'''

# Quiet, deterministic front end: no news or update checks, every cell attached to the DOM.
_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}


FRONTS = {"lab": "JupyterLab", "notebook": "Notebook 7"}
"""The front ends a server can serve: ``Lab.front`` -> its name in messages."""


@dataclass
class Lab:
    """A running Jupyter server (see :func:`lab` and :func:`notebook7`): ``front`` is "lab"
    (JupyterLab, pages under /lab) or "notebook" (Notebook 7, pages under /notebooks)."""

    root: Path
    port: int
    token: str
    process: subprocess.Popen[bytes]
    scratch: Path
    front: str = "lab"

    @property
    def name(self) -> str:
        """The front end's name, for messages: "JupyterLab" or "Notebook 7"."""
        return FRONTS[self.front]

    def url(self, path: str = "lab", **query: str) -> str:
        """The URL of ``path`` on this server, with the token."""
        query = {**query, "token": self.token}
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}?{urllib.parse.urlencode(query)}"

    def api(self, method: str, path: str, body: object = None, timeout: float = 10) -> Any:
        """Call the server's REST API (``path`` under /api/) and return the decoded JSON."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            text = reply.read()
        return json.loads(text) if text.strip() else None

    def outside_connections(self) -> list[str]:
        """Connections or lookups outside loopback that the server or a kernel attempted."""
        log = self.scratch / "outside.log"
        return log.read_text().splitlines() if log.exists() else []

    def log(self) -> str:
        """What the server has written so far."""
        return (self.scratch / "server.log").read_text(errors="replace")


@contextlib.contextmanager
def lab(folder: Path, env: dict[str, str] | None = None, timeout: float = 60,
        front: str = "lab") -> Iterator[Lab]:
    """Serve ``folder`` with JupyterLab on a free loopback port; stop it and clean up at exit.

    The server and its kernels inherit the test's environment (offline, one thread) with
    ``HELPERS_TINY_MODELS=1``, private Jupyter and IPython directories, the network guard
    and then ``env``. Kernels are this interpreter (the ``python3`` kernel). ``front`` is
    "lab" or "notebook" (the same as :func:`notebook7`).
    """
    if front not in FRONTS:
        raise ValueError(f"front {front!r} is not one of {', '.join(map(repr, FRONTS))}")
    scratch = Path(tempfile.mkdtemp(prefix=f"helpers-{front}-"))
    try:
        with _serve(Path(folder), scratch, env or {}, timeout, front) as server:
            yield server
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def notebook7(folder: Path, env: dict[str, str] | None = None,
              timeout: float = 60) -> Iterator[Lab]:
    """Serve ``folder`` with Notebook 7 (``jupyter notebook``) on a free loopback port, as
    :func:`lab` serves JupyterLab: the same environment, guard and settings."""
    with lab(folder, env, timeout, front="notebook") as server:
        yield server


def _command(front: str, folder: Path, scratch: Path, token: str) -> list[str]:
    """The server's command line: ``python -m jupyterlab`` or ``python -m notebook``."""
    command = [
        *(sys.executable, "-m", "jupyterlab" if front == "lab" else "notebook"),
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={folder}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.terminals_enabled=False",
        # JupyterLab's server extension runs in both servers: quiet it in both
        f"--LabApp.user_settings_dir={scratch / 'settings'}",
        f"--LabApp.workspaces_dir={scratch / 'workspaces'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: commands, kernel state
    ]
    if front == "notebook":
        command += [
            f"--JupyterNotebookApp.user_settings_dir={scratch / 'settings'}",
            f"--JupyterNotebookApp.workspaces_dir={scratch / 'workspaces'}",
            "--JupyterNotebookApp.expose_app_in_browser=True",
        ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


@contextlib.contextmanager
def _serve(folder: Path, scratch: Path, env: dict[str, str], timeout: float,
           front: str = "lab") -> Iterator[Lab]:
    for name, value in _SETTINGS.items():
        target = scratch / "settings" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value))
    guard = scratch / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(_GUARD)
    for sub in ("runtime", "config", "data", "ipython", "workspaces"):
        (scratch / sub).mkdir()
    token = secrets.token_hex(16)
    full_env = {
        **os.environ,
        "HELPERS_TINY_MODELS": "1",
        "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),
        "JUPYTER_CONFIG_DIR": str(scratch / "config"),
        "JUPYTER_DATA_DIR": str(scratch / "data"),
        "JUPYTER_PLATFORM_DIRS": "0",
        "IPYTHONDIR": str(scratch / "ipython"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "HELPERS_NET_GUARD_LOG": str(scratch / "outside.log"),
        "PYTHONPATH": os.pathsep.join(
            [str(guard), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        **env,
    }
    command = _command(front, folder, scratch, token)
    with open(scratch / "server.log", "wb") as log:
        process = subprocess.Popen(
            command, cwd=folder, env=full_env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = Lab(folder, 0, token, process, scratch, front)
    try:
        server.port = _wait_for_server(server, timeout)
        yield server
    finally:
        _stop(server)


def _wait_for_server(server: Lab, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    info = server.scratch / "runtime" / f"jpserver-{server.process.pid}.json"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BrowserError(f"{server.name} exited ({server.process.returncode}):\n"
                               f"{server.log()}")
        if info.exists():
            with contextlib.suppress(ValueError, OSError):
                server.port = int(json.loads(info.read_text())["port"])
                server.api("GET", "status", timeout=2)
                return server.port
        time.sleep(0.1)  # polling the server's start, not waiting on a guess
    raise BrowserError(f"{server.name} did not start within {timeout:.0f} s:\n{server.log()}")


def _stop(server: Lab) -> None:
    process = server.process
    if process.poll() is None:
        with contextlib.suppress(OSError, ValueError, urllib.error.URLError):
            if server.port:
                server.api("POST", "shutdown", timeout=5)  # also shuts down the kernels
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _kill_tree(process.pid)
            process.wait(timeout=10)


def _kill_tree(pid: int) -> None:
    """Kill the server and whatever it started (kernels run in sessions of their own)."""
    try:
        import psutil

        children = psutil.Process(pid).children(recursive=True)
    except Exception:
        children = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for child in children:
        with contextlib.suppress(Exception):
            child.kill()


# -- chromium -----------------------------------------------------------------------------


def _is_loopback_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome", "devtools"):
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Sink(socketserver.ThreadingTCPServer):
    """Chromium's proxy: whatever would leave loopback arrives here, is recorded and refused."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[str] = []

        class Handler(socketserver.BaseRequestHandler):
            def handle(handler) -> None:  # noqa: N805
                handler.request.settimeout(2)
                with contextlib.suppress(OSError):
                    first = handler.request.recv(4096).split(b"\r\n", 1)[0]
                    self.seen.append(first.decode("latin-1"))
                    handler.request.sendall(
                        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )

        super().__init__(("127.0.0.1", 0), Handler)


@dataclass
class Chromium:
    """A headless chromium (see :func:`chromium`) and what it tried to reach outside loopback."""

    browser: Any  # playwright.sync_api.Browser
    sink: _Sink
    outside: list[str] = field(default_factory=list)

    def outside_requests(self) -> list[str]:
        """Requests outside loopback: aborted page requests and any that reached the proxy."""
        return [*self.outside, *(f"proxy: {line}" for line in self.sink.seen)]


@contextlib.contextmanager
def chromium() -> Iterator[Chromium]:
    """Start headless chromium with a fresh profile; every request outside loopback fails."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    sink = _Sink()
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    args = [
        *CHROMIUM_ARGS,
        # Chrome never proxies loopback, so only traffic leaving the machine meets the sink.
        f"--proxy-server=http://127.0.0.1:{sink.server_address[1]}",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium_path(), headless=True, args=args
            )
            try:
                yield Chromium(browser, sink)
            finally:
                browser.close()
    finally:
        sink.shutdown()
        sink.server_close()


# -- notebooks ----------------------------------------------------------------------------

_OPEN = """async ({path, kernel}) => {
  const app = window.jupyterapp;
  await app.started;
  await app.restored;
  const args = {path, factory: 'Notebook'};
  if (kernel) args.kernel = {name: kernel};
  const panel = await app.commands.execute('docmanager:open', args);
  window.__harnessNotebook = panel;
  await panel.context.ready;
  await panel.sessionContext.ready;
  app.shell.activateById(panel.id);
  return panel.id;
}"""

# Notebook 7's page opens its one notebook itself: wait for it to be the shell's widget.
_OPEN_NOTEBOOK7 = """async ({kernel, timeout}) => {
  const app = window.jupyterapp;
  await app.started;
  await app.restored;
  const deadline = Date.now() + timeout;
  let panel = app.shell.currentWidget;
  while (!(panel && panel.context && panel.sessionContext && panel.content)) {
    if (Date.now() > deadline) throw new Error('Notebook 7 opened no notebook');
    await new Promise(resolve => setTimeout(resolve, 50));  // the poll interval
    panel = app.shell.currentWidget;
  }
  window.__harnessNotebook = panel;
  await panel.context.ready;
  await panel.sessionContext.ready;
  if (kernel && panel.sessionContext.session?.kernel?.name !== kernel) {
    await panel.sessionContext.changeKernel({name: kernel});
  }
  app.shell.activateById(panel.id);
  return panel.id;
}"""

_KERNEL = """() => {
  const kernel = window.__harnessNotebook.sessionContext.session?.kernel;
  return kernel ? kernel.status + ' ' + kernel.connectionStatus : 'none';
}"""

_RUN_ALL = """async () => {
  const app = window.jupyterapp;
  const panel = window.__harnessNotebook;
  app.shell.activateById(panel.id);
  await app.commands.execute('notebook:run-all-cells');
}"""

_CELLS = """() => window.__harnessNotebook.content.widgets
  .filter(cell => cell.model.type === 'code')
  .map(cell => ({
    count: cell.model.executionCount,
    state: cell.model.executionState,
    errors: cell.model.outputs.toJSON().filter(o => o.output_type === 'error'),
  }))"""

_SHUTDOWN = """async () => {
  const panel = window.__harnessNotebook;
  if (panel) await panel.sessionContext.shutdown();
}"""

# An <img>, or a <canvas> drawn in "natural" pixels: its data-natural-width/-height (else
# its backing-store size) at its CSS content size.
_IMAGE_GEOMETRY = """el => {
  const style = getComputedStyle(el);
  const px = name => parseFloat(style[name]) || 0;
  const left = px('borderLeftWidth') + px('paddingLeft');
  const top = px('borderTopWidth') + px('paddingTop');
  if (el.tagName === 'CANVAS') {
    return {
      left, top,
      width: el.clientWidth - px('paddingLeft') - px('paddingRight'),
      height: el.clientHeight - px('paddingTop') - px('paddingBottom'),
      naturalWidth: Number(el.dataset.naturalWidth || el.width),
      naturalHeight: Number(el.dataset.naturalHeight || el.height),
    };
  }
  return {left, top, width: el.width, height: el.height,
          naturalWidth: el.naturalWidth, naturalHeight: el.naturalHeight};
}"""

# Rendered: attached and laid out; an <img> loaded; an element with data-ready says "1".
_READY = """el => el.isConnected && el.getClientRects().length > 0
  && (el.tagName !== 'IMG' || (el.complete && el.naturalWidth > 0))
  && (el.dataset.ready === undefined || el.dataset.ready === '1')"""


class Notebook:
    """An open notebook in chromium (see :func:`open_notebook`)."""

    def __init__(self, page: Any, server: Lab, browser: Chromium, timeout: float) -> None:
        self.page = page  # playwright.sync_api.Page
        self.server = server
        self.browser = browser
        self.timeout = timeout
        self.console: list[str] = []
        # what was already on record (a browser or a server shared with earlier notebooks)
        self._marks = (len(browser.outside_requests()), len(server.outside_connections()))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        page.on("websocket", self._websocket)

    def _websocket(self, socket: Any) -> None:
        if not _is_loopback_url(socket.url):
            self.browser.outside.append(f"websocket: {socket.url}")

    # waiting

    def check(self) -> None:
        """Raise if the page reported a widget module it cannot load."""
        for line in self.console:
            if MODULE_MISSING.search(line):
                raise BrowserError(f"a widget's front-end module is missing: {line}\n"
                                   + self._console_tail())

    def _console_tail(self, n: int = 20) -> str:
        return "browser console (last lines):\n" + "\n".join(self.console[-n:])

    def wait_until(self, predicate: Callable[[], T | None], what: str,
                   timeout: float | None = None) -> T:
        """Poll ``predicate`` until it returns something true, and return that."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        last: Any = None
        while True:
            self.check()
            last = predicate()
            if last:
                return last
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {what} (last: {last!r})\n"
                                   + self._console_tail())
            self.page.wait_for_timeout(50)  # the poll interval; lets page events arrive

    def wait_for_kernel(self, timeout: float | None = None) -> None:
        """Wait until the notebook's kernel is idle and its connection is up."""
        self.wait_until(lambda: self.page.evaluate(_KERNEL) == "idle connected",
                        "the kernel to be idle and connected", timeout)

    def run_all(self, timeout: float | None = None) -> None:
        """Run every cell, wait for the kernel to finish; raise on the first cell error."""
        self.wait_for_kernel(timeout)
        self.page.evaluate(_RUN_ALL)  # resolves when every cell has its execute reply
        self.wait_for_kernel(timeout)

        def finished() -> tuple[list[dict[str, Any]]] | None:  # a tuple: true when no cells
            cells: list[dict[str, Any]] = self.page.evaluate(_CELLS)
            return (cells,) if all(cell["state"] != "running" for cell in cells) else None

        (cells,) = self.wait_until(finished, "every cell to finish", timeout)
        for i, cell in enumerate(cells):
            for error in cell["errors"]:
                trace = ANSI.sub("", "\n".join(error.get("traceback", [])))
                raise BrowserError(f"code cell {i} raised {error['ename']}: {error['evalue']}\n"
                                   f"{trace}")
            if cell["count"] is None:
                raise BrowserError(f"code cell {i} did not run")
        self.check()

    # finding and reading

    def element(self, css: str, timeout: float | None = None) -> Any:
        """The one element matching ``css``, once rendered (images: loaded; an element with
        a ``data-ready`` attribute: once it is "1"), in view."""
        locator = self.page.locator(css)
        self.wait_until(lambda: locator.count() == 1 and locator.evaluate(_READY),
                        f"exactly one rendered element {css!r}", timeout)
        locator.scroll_into_view_if_needed()
        return locator

    def text(self, css: str) -> str:
        """The rendered text of the element matching ``css``."""
        return str(self.element(css).inner_text())

    def wait_for_text(self, css: str, pattern: str, timeout: float | None = None) -> str:
        """Wait until the text of ``css`` matches the regular expression; return the text."""
        locator = self.element(css, timeout)

        def matching() -> str:
            text = str(locator.inner_text())
            return text if re.search(pattern, text) else ""

        return self.wait_until(matching, f"the text of {css!r} to match {pattern!r}", timeout)

    def screenshot(self, css: str) -> bytes:
        """A PNG of the element matching ``css`` (CSS pixels at device scale 1)."""
        return bytes(self.element(css).screenshot(animations="disabled", caret="hide"))

    def wait_for_new_screenshot(self, css: str, before: bytes,
                                timeout: float | None = None) -> bytes:
        """Wait until the element looks different from the PNG ``before``; return the new PNG."""

        def changed() -> bytes:
            png = self.screenshot(css)
            return png if png != before else b""

        return self.wait_until(changed, f"{css!r} to change on screen", timeout)

    def image_geometry(self, css: str) -> dict[str, float]:
        """An <img>'s or <canvas>'s border+padding offset, displayed size (CSS pixels) and
        natural size (an <img>'s pixels; a canvas's ``data-natural-width``/``-height``, the
        pixels it is drawn in, else its backing-store size)."""
        return dict(self.element(css).evaluate(_IMAGE_GEOMETRY))

    def image_offset(self, css: str, x: float, y: float) -> tuple[float, float]:
        """The element offset of image pixel (x, y) of an <img> or <canvas>, for
        :meth:`click`/:meth:`drag`; aims at the pixel's centre.

        The inverse of a view's ``(clientX - left) * natural / shown`` mapping.
        """
        g = self.image_geometry(css)
        return (g["left"] + (x + 0.5) * g["width"] / g["naturalWidth"],
                g["top"] + (y + 0.5) * g["height"] / g["naturalHeight"])

    # acting

    def click(self, css: str, x: float, y: float, modifiers: list[str] | None = None) -> None:
        """Click the element at CSS pixel offset (x, y) from its top-left corner, holding
        ``modifiers`` (e.g. ``["Shift"]``)."""
        self.element(css).click(position={"x": x, "y": y}, modifiers=modifiers or [])
        self.check()

    def press(self, css: str, x: float, y: float) -> None:
        """Move the mouse to element offset (x, y) and press the button (no release)."""
        self.move(css, x, y)
        self.page.mouse.down()
        self.check()

    def move(self, css: str, x: float, y: float, steps: int = 1) -> None:
        """Move the mouse to element offset (x, y) in ``steps`` moves."""
        box = self.element(css).bounding_box()
        self.page.mouse.move(box["x"] + x, box["y"] + y, steps=steps)

    def release(self) -> None:
        """Release the mouse button where the mouse is."""
        self.page.mouse.up()
        self.check()

    def drag(self, css: str, start: tuple[float, float], end: tuple[float, float],
             steps: int = 8) -> None:
        """Press the mouse at element offset ``start``, move to ``end`` and release it."""
        self.press(css, *start)
        self.move(css, *end, steps=steps)
        self.release()

    # the network

    def outside_requests(self) -> list[str]:
        """What the browser, the server or a kernel tried to reach outside loopback since
        this notebook was opened."""
        return [*self.browser.outside_requests()[self._marks[0]:],
                *(f"server: {line}" for line in self.server.outside_connections()[self._marks[1]:])]

    def assert_loopback_only(self) -> None:
        """Raise, listing them, if :meth:`outside_requests` is not empty."""
        outside = self.outside_requests()
        if outside:
            raise BrowserError("requests left loopback:\n" + "\n".join(outside))


@contextlib.contextmanager
def open_notebook(server: Lab, path: str, browser: Chromium | None = None, run: bool = True,
                  kernel: str | None = "python3", timeout: float = 60) -> Iterator[Notebook]:
    """Open notebook ``path`` (relative to the served folder) in chromium: in JupyterLab's
    page (``/lab``) or, for a :func:`notebook7` server, Notebook 7's (``/notebooks/path``).

    Waits for the kernel to be idle and connected, then (``run``) runs every cell and waits
    for the kernel again. ``kernel`` overrides the notebook's kernelspec (None: keep it).
    At exit the kernel is shut down and, unless the test already failed, the harness asserts
    that nothing left loopback. Pass ``browser`` (from :func:`chromium`) to reuse one.
    """
    with contextlib.ExitStack() as stack:
        if browser is None:
            browser = stack.enter_context(chromium())
        context = browser.browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        stack.callback(context.close)
        context.set_default_timeout(timeout * 1000)

        def outside(route: Any) -> None:
            browser.outside.append(f"page: {route.request.method} {route.request.url}")
            route.abort("blockedbyclient")

        context.route(lambda url: not _is_loopback_url(url), outside)
        page = context.new_page()
        notebook = Notebook(page, server, browser, timeout)
        if server.front == "notebook":
            page.goto(server.url(f"notebooks/{urllib.parse.quote(path)}"),
                      wait_until="domcontentloaded")
        else:
            page.goto(server.url("lab", reset=""), wait_until="domcontentloaded")
        notebook.wait_until(lambda: page.evaluate("() => !!window.jupyterapp"),
                            f"{server.name} to load")
        if server.front == "notebook":
            page.evaluate(_OPEN_NOTEBOOK7, {"kernel": kernel, "timeout": timeout * 1000})
        else:
            page.evaluate(_OPEN, {"path": path, "kernel": kernel})
        stack.callback(lambda: _quietly(lambda: page.evaluate(_SHUTDOWN)))
        notebook.wait_for_kernel()
        if run:
            notebook.run_all()
        yield notebook
        notebook.assert_loopback_only()


def _quietly(action: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        action()
