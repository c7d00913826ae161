"""Fixtures for the model installer and provider tests: a local HTTP file server, fake registry
packages and paths."""

from __future__ import annotations

import hashlib
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
INSTALLED = REPO / "models" / "installed"


@dataclass
class FileServer:
    """Serves ``files`` on 127.0.0.1 with Range support; ``cut_first`` drops the first response midway,
    ``cut_always`` every response."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut_first: set[str] = field(default_factory=set)
    cut_always: set[str] = field(default_factory=set)
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)   # (path, Range header)
    base: str = ""

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        rng = request.headers.get("Range")
        self.requests.append((name, rng))
        if name not in self.files:
            raise web.HTTPNotFound()
        data = self.files[name]
        start = 0
        if rng and not self.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                raise web.HTTPRequestRangeNotSatisfiable()
        body = data[start:]
        resp = web.StreamResponse(status=206 if start else 200)
        resp.content_length = len(body)
        if start:
            resp.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        await resp.prepare(request)
        if name in self.cut_first or name in self.cut_always:
            self.cut_first.discard(name)
            await resp.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()          # the connection drops mid-body
            return resp
        await resp.write(body)
        await resp.write_eof()
        return resp


@pytest.fixture
async def file_server() -> AsyncIterator[FileServer]:
    server = FileServer()
    app = web.Application()
    app.router.add_get("/{name}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.base = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_package(site: Path, dist: str, version: str, files: dict[str, bytes]) -> None:
    """What pip would leave behind: an importable package plus its dist-info."""
    pkg = dist.replace("-", "_")
    for rel, data in files.items():
        path = site / pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (site / pkg / "__init__.py").write_text("")
    info = site / f"{pkg}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path for fake registry packages (named xzt_*), removed after the test."""
    site = tmp_path / "site"
    site.mkdir()
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))
    for name in [m for m in sys.modules if m.startswith("xzt_")]:
        del sys.modules[name]


@pytest.fixture
def blackhole() -> Iterator[str]:
    """``host:port`` of a listener whose accept queue is full: connecting hangs (the SYN is dropped),
    like a firewall that drops packets to the internet."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    yield f"127.0.0.1:{port}"
    for c in fillers:
        c.close()
    srv.close()
