"""Helpers for the hub API tests: an in-process hub with the fake providers on 127.0.0.1 (the
``start_hub`` fixture of tests/conftest.py), an HTTP client carrying the admin token, and an event
stream client."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest

from xiaozhi_hub.app import Hub
from xiaozhi_hub.simulator import SimulatedDevice

from ..conftest import ws_url


@dataclass
class Api:
    hub: Hub
    session: aiohttp.ClientSession

    @property
    def base(self) -> str:
        assert self.hub.ctx is not None
        return f"http://127.0.0.1:{self.hub.ctx.http_port}"

    @property
    def token(self) -> str:
        assert self.hub.ctx is not None
        token = self.hub.ctx.admin.current()
        assert token
        return token

    def headers(self, token: str | None = "") -> dict[str, str]:
        token = self.token if token == "" else token
        return {"Authorization": f"Bearer {token}"} if token is not None else {}

    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = "",
                   raw: bytes | None = None) -> tuple[int, Any]:
        """``token=""``: the hub's admin token; None: no Authorization header; else that token."""
        kw: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
        async with self.session.request(method, f"{self.base}{path}", headers=self.headers(token), **kw) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text

    async def events(self, token: str | None = "") -> "Events":
        ws = await self.session.ws_connect(f"{self.base.replace('http', 'ws')}/api/events",
                                           headers=self.headers(token))
        return Events(ws)

    def device(self, **kw: Any) -> SimulatedDevice:
        return SimulatedDevice(ws_url(self.hub), **kw)


class Events:
    """A client of /api/events that records every message."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"event stream ended: {msg.type} {self.ws.close_code}")
        data = json.loads(msg.data)
        self.messages.append(data)
        return data

    async def until(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                data = await self.next(timeout)
                if pred(data):
                    return data

    async def send(self, obj: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(obj))

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture
async def api(start_hub) -> AsyncIterator[Callable[..., Any]]:
    """``a = await api(section={...})``: a started hub and a client for its API."""
    sessions: list[aiohttp.ClientSession] = []

    async def make(**sections: Any) -> Api:
        hub = await start_hub(**sections)
        session = aiohttp.ClientSession()
        sessions.append(session)
        return Api(hub, session)

    yield make
    for s in sessions:
        await s.close()
