"""Fixtures for the model installer and provider tests: a local HTTP file server and paths."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

import pytest
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
INSTALLED = REPO / "models" / "installed"


@dataclass
class FileServer:
    """Serves ``files`` on 127.0.0.1 with Range support; ``cut_first`` drops the first response midway."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut_first: set[str] = field(default_factory=set)
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
        if name in self.cut_first:
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
