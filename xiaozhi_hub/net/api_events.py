"""``GET /api/events``: the event stream for Home Assistant (and any client holding the admin token).

The hub first sends a ``hello`` with the hub id, version and a snapshot of every device (the same
Device objects as ``GET /api/devices``), then every event as it happens (docs/api.md). The
subscription is made before the snapshot is read, so no event between the two is lost (one may be
reflected in both; applying it twice is harmless). After a reconnect the new hello resynchronises
the client, so the stream needs no replay.

The stream is bounded: a client that stops reading falls behind, its queue overflows, the bus drops
it and the hub closes the socket with 1013 ("try again later"), or cuts the connection if even the
close frame cannot be sent. Other clients are not affected.

The same socket carries the component's messages to the hub (register, home_entities, results;
:mod:`xiaozhi_hub.services.component`); a bad one is answered with ``{"type": "error"}`` and the
connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

from aiohttp import WSMsgType, web

from .. import __version__
from ..services.component import ComponentConn, ComponentMessageError
from ..services.events import Subscription, SubscriberDropped

if TYPE_CHECKING:
    from ..context import HubContext

log = logging.getLogger(__name__)

EVENT_QUEUE = 256             # events a client may be behind before it is dropped
SEND_TIMEOUT = 10.0           # one message that cannot be written for this long: the client is gone
MAX_MESSAGE = 1024 * 1024     # the largest message a component may send (a long home_entities list)
CLOSE_TOO_SLOW = 1013


async def hello(ctx: "HubContext") -> dict[str, Any]:
    devices = [ctx.live.view(d.to_json()) for d in await ctx.devices.list_all()]
    return {"type": "hello", "hub_id": ctx.hub_id, "version": __version__, "seq": ctx.events.last_seq,
            "mqtt_discovery": ctx.component.mqtt_discovery, "devices": devices}


class EventStream:
    """One client connection: the pump (events out), the reader (component messages in)."""

    def __init__(self, ctx: "HubContext", request: web.Request, ws: web.WebSocketResponse, name: str) -> None:
        self.ctx = ctx
        self.request = request
        self.ws = ws
        self.name = name
        self._lock = asyncio.Lock()
        self.sub: Subscription = ctx.events.subscribe(EVENT_QUEUE, name=name)
        self.conn: ComponentConn = ctx.component.attach(self.send, name)

    async def send(self, obj: Mapping[str, Any]) -> None:
        if self.ws.closed:
            raise ConnectionResetError("event stream closed")
        async with self._lock, asyncio.timeout(SEND_TIMEOUT):
            await self.ws.send_str(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))

    async def pump(self) -> None:
        async for event in self.sub:
            await self.send(event.to_json())

    async def read(self) -> None:
        async for msg in self.ws:
            if msg.type is not WSMsgType.TEXT:
                if msg.type is WSMsgType.ERROR:
                    return
                await self._error("send JSON text messages")
                continue
            try:
                data = json.loads(msg.data)
                if not isinstance(data, dict):
                    raise ComponentMessageError("a message must be a JSON object with a type")
                self.ctx.component.handle(self.conn, data)
            except (ValueError, RecursionError) as err:   # ComponentMessageError is a ValueError
                await self._error(str(err) if isinstance(err, ComponentMessageError) else "not valid JSON")

    async def _error(self, reason: str) -> None:
        log.info("%s: bad message: %s", self.name, reason)
        with contextlib.suppress(Exception):
            await self.send({"type": "error", "error": reason})

    async def run(self) -> None:
        await self.send(await hello(self.ctx))
        tasks = {asyncio.ensure_future(self.pump()), asyncio.ensure_future(self.read()),
                 asyncio.ensure_future(self.sub.wait_dropped())}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks, timeout=1.0)
        if self.sub.dropped or any(not t.cancelled() and isinstance(t.exception(), (SubscriberDropped, TimeoutError))
                                   for t in done):
            self.ctx.metrics.inc("event_streams_dropped")
            log.warning("%s: too slow, closing the event stream", self.name)
            await self.hang_up(CLOSE_TOO_SLOW, "too slow: events were dropped; reconnect")

    async def hang_up(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(2.0):
                await self.ws.close(code=code, message=reason.encode())
        except (TimeoutError, ConnectionError):
            pass
        transport = self.request.transport
        if transport is not None and not transport.is_closing():
            transport.abort()              # the client reads nothing: even the close frame is stuck

    def close(self) -> None:
        self.sub.close()
        self.ctx.component.detach(self.conn)


def events_handler(ctx: "HubContext") -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_MESSAGE, timeout=2.0)
        if not ws.can_prepare(request).ok:
            return web.json_response({"error": "this is a WebSocket endpoint (GET with Upgrade: websocket)"},
                                     status=400)
        await ws.prepare(request)
        stream = EventStream(ctx, request, ws, f"events:{request.remote}")
        ctx.metrics.gauges["event_streams"] = ctx.component.connected
        try:
            await stream.run()
        except (ConnectionError, TimeoutError):
            pass
        finally:
            stream.close()
            ctx.metrics.gauges["event_streams"] = ctx.component.connected
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    return handle
