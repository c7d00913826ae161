"""The WebSocket server devices connect to (docs/protocol.md, Connection and headers; Hello).

Any path is accepted (``/xiaozhi/v1/`` is what the hub advertises). A plain HTTP GET answers 200.
Library keep-alive pings are off and compression is never negotiated (stock devices were dropped by
library pings; they send no extensions). Frames above ``max_frame_bytes`` close the socket with
1009; a device sending far more frames than real-time audio is throttled, then closed with 1008.

Documented behaviour for bad input (each has a test):
- non-JSON text, unknown ``type``, bad fields → JSON ``{"type":"error","code":...}``, connection kept;
- binary frames before the hello → ignored, one JSON error;
- no hello within ``session.hello_timeout`` → close 4000;
- missing/wrong token (auth on) → JSON error ``auth_failed``, close 4001; a valid token of a device that
  waits for activation → ``activation_pending``, 4001; blocked device → 4003;
- frame over the size limit → close 1009; flood → close 1008;
- abrupt TCP close → the session is cleaned up, its turn cancelled; other devices are untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Callable

from aiohttp import WSMsgType, web

from ..protocol import codec
from ..protocol.messages import Error
from ..protocol.close import CloseCode
from ..session.handlers import handle_guarded
from ..session.session import Session
from ..session.state import SessionState

if TYPE_CHECKING:
    from ..context import HubContext

log = logging.getLogger(__name__)

SEND_TIMEOUT = 10.0
SESSION_CLOSE_WAIT = 2.0       # a closing session's cleanup takes at most ~1 s


class WsConnection:
    """Adapter from aiohttp's WebSocketResponse to the session's Connection protocol."""

    __slots__ = ("ws", "remote")

    def __init__(self, ws: web.WebSocketResponse, remote: str) -> None:
        self.ws = ws
        self.remote = remote

    # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation (abort, barge-in)
    # that arrives just as the send completes, and the turn would keep talking.
    async def send_text(self, text: str) -> None:
        if self.ws.closed:
            raise ConnectionResetError("socket closed")
        async with asyncio.timeout(SEND_TIMEOUT):
            await self.ws.send_str(text)

    async def send_bytes(self, data: bytes) -> None:
        if self.ws.closed:
            raise ConnectionResetError("socket closed")
        async with asyncio.timeout(SEND_TIMEOUT):
            await self.ws.send_bytes(data)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode()[:120])


class FloodGuard:
    """Token bucket on inbound frames; sustained excess beyond ``grace`` seconds means close."""

    __slots__ = ("rate", "tokens", "last", "grace", "over_since", "clock")

    def __init__(self, rate: int, grace: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.tokens = float(rate)
        self.clock = clock
        self.last = clock()
        self.grace = grace
        self.over_since: float | None = None

    def allow(self) -> bool | None:
        """True: process; False: drop this frame; None: the sender has flooded too long.

        A sender is "over" from the first dropped frame until its bucket refills to half: a flood at
        5x the rate still gets every fifth frame through, but it stays over and is closed after the grace.
        """
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= self.rate / 2:
            self.over_since = None
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        if self.over_since is None:
            self.over_since = now
        return None if now - self.over_since > self.grace else False


def _header_or_query(request: web.Request, name: str, use_query: bool) -> str | None:
    value = request.headers.get(name)
    if value is None and use_query:
        value = request.query.get(name.lower())
    return value.strip() if value else None


class WebSocketServer:
    def __init__(self, ctx: "HubContext") -> None:
        self.ctx = ctx
        self.app = web.Application()
        self.app.router.add_route("GET", "/{tail:.*}", self.handle)
        self._sweeper: asyncio.Task[None] | None = None
        self.connections: set[web.WebSocketResponse] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(text="Server is running\n")
        ctx = self.ctx
        settings = ctx.settings
        # Browsers and test tools cannot set headers: accept query parameters when Device-Id is absent.
        use_query = "Device-Id" not in request.headers
        device_id = (_header_or_query(request, "Device-Id", use_query) or "").lower()
        client_id = _header_or_query(request, "Client-Id", use_query) or ""
        authorization = _header_or_query(request, "Authorization", use_query)
        try:
            version = int(_header_or_query(request, "Protocol-Version", use_query) or 1)
        except ValueError:
            version = 1

        ws = web.WebSocketResponse(heartbeat=None, autoping=True, compress=False,
                                   max_msg_size=settings.server.max_frame_bytes, timeout=5.0)
        await ws.prepare(request)
        remote = request.remote or "?"
        metrics = ctx.metrics
        metrics.inc("connections")

        refusal = self._refuse(device_id, client_id, authorization)
        if refusal is not None:
            code, kind, why = refusal
            metrics.inc("connections_refused")
            log.info("refused %s from %s: %s", device_id or "(no device id)", remote, why)
            with contextlib.suppress(Exception):
                await ws.send_str(codec.encode(Error(kind, why)))
                await ws.close(code=code, message=why.encode()[:120])
            return ws

        session = Session(ctx, WsConnection(ws, remote), device_id, client_id, version)
        previous = ctx.registry.add(session)
        if previous is not None:
            log.info("%s replaces %s", session, previous)
            await previous.close(CloseCode.REPLACED, "replaced by a new connection")
        self.connections.add(ws)
        metrics.gauges["sessions"] = len(ctx.registry)
        try:
            # Recorded before its hello is answered: the API knows a device as soon as it is online
            # (and a device that drops at once is recorded too). Never raises.
            await ctx.devices.seen(device_id, client_id)
            await self._read_loop(session, ws)
        finally:
            self.connections.discard(ws)
            ctx.registry.remove(session)
            metrics.gauges["sessions"] = len(ctx.registry)
            await session.on_disconnect()
        return ws

    def _refuse(self, device_id: str, client_id: str, authorization: str | None) -> tuple[int, str, str] | None:
        if not device_id:
            return CloseCode.AUTH, "missing_device_id", "Device-Id header (or device-id query parameter) is required"
        if self.ctx.devices.is_blocked(device_id):
            return CloseCode.BLOCKED, "blocked", "this device is blocked on the hub"
        result = self.ctx.auth.check(device_id, client_id, authorization)
        if not result.ok:
            return CloseCode.AUTH, result.code, f"authentication failed: {result.reason}"
        return None

    async def _read_loop(self, session: Session, ws: web.WebSocketResponse) -> None:
        settings = self.ctx.settings
        guard = FloodGuard(settings.server.max_frames_per_second, settings.server.flood_grace_seconds)
        hello_deadline = time.monotonic() + settings.session.hello_timeout
        metrics = self.ctx.metrics
        while True:
            timeout = None
            if session.hello is None:
                timeout = hello_deadline - time.monotonic()
                if timeout <= 0:
                    await session.close(CloseCode.NO_HELLO, "no hello received")
                    return
            try:
                msg = await ws.receive(timeout=timeout)
            except TimeoutError:
                continue  # the deadline check above closes it
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if msg.type is WSMsgType.ERROR:
                # aiohttp reports oversized frames (it has already sent close 1009) and protocol errors here.
                log.info("%s: socket error: %s", session, ws.exception())
                metrics.inc("socket_errors")
                return
            allowed = guard.allow()
            if allowed is None:
                metrics.inc("floods")
                log.warning("%s: flooding (>%d frames/s), closing", session, settings.server.max_frames_per_second)
                await session.close(CloseCode.POLICY, "too many frames")
                return
            if not allowed:
                metrics.inc("frames_dropped")
                continue
            work = (session.handle_text(msg.data) if msg.type is WSMsgType.TEXT
                    else session.handle_binary(msg.data) if msg.type is WSMsgType.BINARY else None)
            if work is not None and not await handle_guarded(session, work):
                return
            if session.state is SessionState.CLOSED:
                await self._closed(session)
                return

    @staticmethod
    async def _closed(session: Session) -> None:
        """The session closed while a frame was handled (the frame itself, shutdown, the idle close):
        wait until its close with its own code has gone out, or the handler's return would let aiohttp
        close the socket first, with 1000."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SESSION_CLOSE_WAIT):
                await session.closed.wait()

    # -- idle sweeper: one task for all sessions --------------------------------------------------
    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="idle-sweeper")

    async def _sweep(self) -> None:
        idle = self.ctx.settings.session.idle_timeout
        period = min(5.0, max(0.2, idle / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for session in self.ctx.registry:
                if session.hello is not None and not session.busy and now - session.last_voice > idle:
                    log.info("%s: idle for %.0fs, closing", session, now - session.last_voice)
                    self.ctx.metrics.inc("idle_closes")
                    session.close_idle()

    async def shutdown(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        sessions = list(self.ctx.registry)
        await asyncio.gather(*(s.close(CloseCode.GOING_AWAY, "hub shutting down") for s in sessions), return_exceptions=True)
