"""A Hugging Face hub on this machine, for testing the real loading path without the internet.

- ``lay_out_cache`` puts a saved model into a Hugging Face cache under a real repo id, as a
  download would have left it (``models--ORG--NAME/refs/main`` + ``snapshots/<commit>/``);
  with ``HF_HUB_OFFLINE=1`` the libraries' ``from_pretrained("ORG/NAME")`` then loads it.
- ``HubStub`` is a loopback HTTP server to set as ``HF_ENDPOINT``: it serves some repos'
  files (with the headers huggingface_hub's client reads), answers 404 "RepoNotFound" for
  repos that are gone and 401 "GatedRepo" for gated ones, so downloads and each error go
  through the real client.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import threading
from pathlib import Path
from typing import Any


def commit_for(repo_id: str) -> str:
    """A made-up 40-hex commit, the same for a repo id every time."""
    return hashlib.sha1(repo_id.encode()).hexdigest()


def lay_out_cache(hub_cache: Path, repo_id: str, folder: Path, commit: str | None = None) -> str:
    """Copy the files of ``folder`` into ``hub_cache`` as the snapshot of ``repo_id`` at
    ``commit`` (made up from the id by default), with ``refs/main`` pointing at it."""
    commit = commit or commit_for(repo_id)
    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(folder, snapshot, ignore=shutil.ignore_patterns(".*"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return commit


class HubStub:
    """A loopback stand-in for the hub: ``served`` repo id -> local folder (at "main" and
    its one commit; another revision answers 404 RevisionNotFound); ``gone`` and ``gated``
    repo ids answer 404 RepoNotFound and 401 GatedRepo. ``requests`` lists the paths asked
    for."""

    def __init__(self, served: dict[str, Path] | None = None, gone: tuple[str, ...] = (),
                 gated: tuple[str, ...] = ()) -> None:
        self.served = {repo: Path(f) for repo, f in (served or {}).items()}
        self.gone, self.gated = set(gone), set(gated)
        self.requests: list[str] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802
                stub._answer(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                stub._answer(self, body=True)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HubStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------ answers
    def _answer(self, h: http.server.BaseHTTPRequestHandler, body: bool) -> None:
        path = h.path.split("?")[0]
        self.requests.append(f"{h.command} {path}")
        repo, kind, rest, revision = self._parse(path)
        if repo is None:
            return self._send(h, 404, {"X-Error-Code": "RepoNotFound"}, b"{}", body)
        if repo in self.gated:
            return self._send(h, 401, {"X-Error-Code": "GatedRepo",
                                       "X-Error-Message": "Access to model is restricted"},
                              b'{"error": "gated"}', body)
        if repo in self.gone or repo not in self.served:
            return self._send(h, 404, {"X-Error-Code": "RepoNotFound",
                                       "X-Error-Message": "Repository not found"},
                              b'{"error": "Repository not found"}', body)
        folder, commit = self.served[repo], commit_for(repo)
        if revision not in ("main", commit):
            return self._send(h, 404, {"X-Error-Code": "RevisionNotFound",
                                       "X-Error-Message": "Invalid rev id"}, b"{}", body)
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                       if p.is_file() and not p.name.startswith("."))
        if kind in ("info", "tree"):
            if kind == "info":
                answer: Any = {"id": repo, "modelId": repo, "sha": commit, "private": False,
                               "siblings": [{"rfilename": f} for f in files], "tags": []}
            else:
                answer = [{"type": "file", "path": f, "size": (folder / f).stat().st_size,
                           "oid": _blob_id((folder / f).read_bytes())} for f in files]
            return self._send(h, 200, {"Content-Type": "application/json"},
                              json.dumps(answer).encode(), body)
        file = folder / rest
        if rest not in files:
            return self._send(h, 404, {"X-Error-Code": "EntryNotFound"}, b"{}", body)
        data = file.read_bytes()
        headers = {"X-Repo-Commit": commit, "ETag": f'"{_blob_id(data)}"',
                   "Content-Type": "application/octet-stream"}
        return self._send(h, 200, headers, data, body)

    def _parse(self, path: str) -> tuple[str | None, str, str, str]:
        """(repo id, "info", "tree" or "file", file path, revision) of a request path."""
        from urllib.parse import unquote

        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            kind = "tree" if len(parts) > 4 and parts[4] == "tree" else "info"
            revision = parts[5] if len(parts) > 5 else "main"
            return f"{parts[2]}/{parts[3]}", kind, "", revision
        if len(parts) >= 5 and parts[2] == "resolve":
            return f"{parts[0]}/{parts[1]}", "file", "/".join(parts[4:]), parts[3]
        return None, "", "", ""

    @staticmethod
    def _send(h: http.server.BaseHTTPRequestHandler, status: int, headers: dict[str, str],
              data: bytes, body: bool) -> None:
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)


def _blob_id(data: bytes) -> str:
    """The id git gives a file's content (what the hub reports for files kept in git)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def child_env(base: dict[str, str], **extra: Any) -> dict[str, str]:
    """The environment for a child process that talks to a ``HubStub`` (online, tiny off)."""
    env = {k: v for k, v in base.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                                     "HELPERS_TINY_MODELS")}
    env.update({"HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
                "HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "10"})
    env.update({k: str(v) for k, v in extra.items()})
    return env
