"""The read loop ends only once a session that closed meanwhile has sent its own close code: if the
handler returned first, aiohttp would close the socket itself, with 1000 (seen under load at shutdown,
when a device frame was being handled as the hub closed the session with 1001)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiohttp import WSMessage, WSMsgType

from xiaozhi_hub.metrics import Metrics
from xiaozhi_hub.protocol.close import CloseCode
from xiaozhi_hub.session.state import SessionState
from xiaozhi_hub.settings import Settings
from xiaozhi_hub.transport.ws_server import WebSocketServer


class OneFrame:
    """A socket that delivers one text frame, then nothing until it is closed."""

    def __init__(self) -> None:
        self.frames = [WSMessage(WSMsgType.TEXT, '{"type":"ping"}', None)]
        self.closed = asyncio.Event()

    async def receive(self, timeout: float | None = None) -> WSMessage:
        if self.frames:
            return self.frames.pop(0)
        await self.closed.wait()
        return WSMessage(WSMsgType.CLOSED, None, None)

    def exception(self) -> None:
        return None


class ClosedWhileHandlingAFrame:
    """Stands in for a Session that starts closing (code 1001) while it handles a frame: its state is
    CLOSED at once, its close frame goes out a few loop iterations later, as Session.close does."""

    def __init__(self) -> None:
        self.hello = object()
        self.state = SessionState.IDLE
        self.closed = asyncio.Event()
        self.close_sent: int | None = None

    async def handle_text(self, text: str) -> None:
        asyncio.ensure_future(self.close(CloseCode.GOING_AWAY))
        await asyncio.sleep(0)            # the close has begun: CLOSED, nothing sent yet

    async def close(self, code: int, reason: str = "") -> None:
        self.state = SessionState.CLOSED
        for _ in range(3):                # the cleanup before the frame is out
            await asyncio.sleep(0)
        self.close_sent = code
        self.closed.set()


async def test_the_read_loop_waits_for_the_sessions_own_close_code():
    ctx: Any = SimpleNamespace(settings=Settings(), metrics=Metrics())
    server = WebSocketServer(ctx)
    session = ClosedWhileHandlingAFrame()
    async with asyncio.timeout(10):
        await server._read_loop(session, OneFrame())   # type: ignore[arg-type]
    assert session.close_sent == CloseCode.GOING_AWAY
