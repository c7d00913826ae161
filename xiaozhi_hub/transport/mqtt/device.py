"""A device connected over MQTT: its control connection and one session per audio channel.

On WebSocket a connection is one conversation channel. Over MQTT the device stays connected while
idle and opens an audio channel per conversation (hello ... goodbye), so an :class:`MqttDevice` always
keeps one session registered for the device (docs/mqtt-udp.md, Sessions):

- from CONNECT until the first hello, and after each channel, a session *without a hello*: the device
  is online, MCP calls reach it (volume, brightness, status), announcements are queued for it;
- the device's hello makes that session the channel's (the hub hello carries the UDP address, key
  and nonce); the session then runs exactly as on WebSocket: turns, pacing, barge-in, idle close;
- when the channel ends (the device's ``goodbye``, the hub's idle close or "goodbye", another hello)
  a fresh session takes its place *before* the old one is closed, so the device never looks gone.

Inbound MQTT messages and UDP audio go through one queue per device and are handled in arrival order
by one task, as the WebSocket read loop does (control is never overtaken by a reordering here).
Audio beyond the queue's bound is dropped and counted; MQTT messages wait (TCP pushes back).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ...protocol import codec
from ...protocol.close import CloseCode
from ...protocol.messages import HubGoodbye
from ...session.handlers import handle_guarded
from ...session.session import Session
from ...session.state import SessionState
from ...vision import camera_call_timeout
from .channel import MqttUdpConnection

if TYPE_CHECKING:
    from .endpoint import MqttClient
    from .service import MqttUdpTransport

log = logging.getLogger(__name__)

AUDIO_QUEUE = 64             # ~4 s of 60 ms frames waiting to be handled; more are dropped
TEXT_QUEUE = 64              # room for MQTT messages; when the queue is full the MQTT reader waits
_STOP = ("stop", b"")


class MqttDevice:
    def __init__(self, transport: "MqttUdpTransport", client: "MqttClient") -> None:
        self.transport = transport
        self.ctx = transport.ctx
        self.client = client
        self.device_id = client.device_id
        self.session: Session | None = None
        self._inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(AUDIO_QUEUE + TEXT_QUEUE + 1)
        self._audio_waiting = 0

    # -- the connection's life -------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the device until its MQTT connection ends."""
        ctx = self.ctx
        log.info("%s connected over MQTT from %s", self.device_id, self.client.remote)
        self.new_session()
        seen = asyncio.create_task(ctx.devices.seen(self.device_id, self.client.identity.client_uuid))
        worker = asyncio.create_task(self._work(), name=f"mqtt-inbox:{self.device_id}")
        try:
            await self.client.serve(self)
        finally:
            with contextlib.suppress(asyncio.QueueFull):
                self._inbox.put_nowait(_STOP)        # what is queued is handled first (up to 2 s)
            await asyncio.wait({worker}, timeout=2.0)
            worker.cancel()
            await self._disconnected()
            await asyncio.wait({seen}, timeout=1.0)
            log.info("%s: MQTT connection ended (%s)", self.device_id, self.client.close_reason)

    async def _disconnected(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        conn = session.conn
        assert isinstance(conn, MqttUdpConnection)
        conn.closed = True
        self.transport.udp.close_channel(conn.channel)
        self.ctx.registry.remove(session)
        self.ctx.metrics.gauges["sessions"] = len(self.ctx.registry)
        await session.on_disconnect()

    # -- sessions ----------------------------------------------------------------------------------
    def new_session(self) -> Session:
        """A session without a hello becomes the device's registered one (replacing the current)."""
        ctx = self.ctx
        channel = self.transport.udp.open_channel(lambda payload: None)
        conn = MqttUdpConnection(self, channel)
        udp = {"server": self.transport.udp_host_for(self.client), "port": self.transport.udp_public_port(),
               **channel.keys.hello_fields(), "encryption": "aes-128-ctr"}
        session = Session(ctx, conn, self.device_id, self.client.identity.client_uuid, 3, transport="udp", udp=udp)
        conn.session = session
        channel.on_audio = lambda payload: self._audio_in(conn, payload)
        self.session = session
        previous = ctx.registry.add(session)
        ctx.live.connected(self.device_id, session.id, "mqtt")   # online while idle, not only in a conversation
        if previous is not None and previous.conn is not conn and not isinstance(previous.conn, MqttUdpConnection):
            # The device was on WebSocket until now (switched transports): that session is over.
            session.spawn(previous.close(CloseCode.REPLACED, "device moved to MQTT"), "replace-ws")
        ctx.metrics.gauges["sessions"] = len(ctx.registry)
        settings = ctx.settings.session
        if settings.mcp_enabled:
            # The device's MCP server answers whether or not an audio channel is open (as the hello would).
            mcp = session.link.open_mcp(settings.mcp_call_timeout, ctx.vision_capability(self.device_id),
                                        camera_call_timeout(ctx.settings))
            session.spawn(mcp.start(), "mcp-init")
        return session

    def after_channel(self, closed: Session) -> None:
        """A session closed its channel (hub side); give the device a fresh one if it is still here."""
        if self.session is not closed or self.client.closed.is_set() or self.transport.stopping:
            return
        current = self.ctx.registry.by_device(self.device_id)
        if current is not None and current is not closed:
            # Another connection of this device (its WebSocket) took over: this one is stale.
            self.session = None
            self.client.close("the device connected again over WebSocket")
            return
        self.new_session()

    async def _replace(self, old: Session, code: CloseCode, reason: str) -> Session:
        conn = old.conn
        assert isinstance(conn, MqttUdpConnection)
        conn.device_closed = True        # the device ended it (or moved on): no goodbye back
        new = self.new_session()
        await old.close(code, reason)
        return new

    # -- inbound -----------------------------------------------------------------------------------
    async def on_publish(self, payload: bytes) -> None:
        await self._inbox.put(("text", payload))     # waits while the queue is full

    def _audio_in(self, conn: MqttUdpConnection, payload: bytes) -> None:
        if self._audio_waiting >= AUDIO_QUEUE or self._inbox.full():
            self.ctx.metrics.inc("udp_dropped_backlog")
            return
        self._audio_waiting += 1
        self._inbox.put_nowait(("audio", conn.frame_uplink(payload)))

    async def _work(self) -> None:
        while True:
            kind, data = await self._inbox.get()
            if kind == "stop":
                return
            if kind == "audio":
                self._audio_waiting -= 1
            session = self.session
            if session is None or session.state is SessionState.CLOSED:
                continue           # the hub is going down, or another connection took the device over
            # A lost send ends nothing here: the MQTT connection's end stops this loop.
            work = session.handle_binary(data) if kind == "audio" else self._on_text(session, data)
            await handle_guarded(session, work)

    async def _on_text(self, session: Session, payload: bytes) -> None:
        try:
            text = payload.decode("utf-8")
            obj: Any = json.loads(text)
        except (UnicodeDecodeError, ValueError):
            obj, text = None, payload.decode("utf-8", "replace")
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "hello":
            if session.hello is not None:        # a new channel without goodbye (the device's 120 s rule)
                session = await self._replace(session, CloseCode.REPLACED, "the device opened a new audio channel")
            session.last_voice = time.monotonic()   # the channel's idle clock starts at its hello
            await session.handle_text(text)
            return
        if session.hello is None:
            await self._without_channel(session, kind, obj, text)
            return
        if kind == "goodbye":
            if obj.get("session_id") == session.id:
                await self._replace(session, CloseCode.NORMAL, "goodbye")
            else:
                log.info("%s: goodbye for another session ignored", session)
            return
        await session.handle_text(text)

    async def _without_channel(self, session: Session, kind: Any, obj: Any, text: str) -> None:
        """No audio channel is open: MCP replies still count; a device that thinks its channel is open
        (the hub restarted, or closed it) is told ``goodbye`` so it opens a new one at the next wake."""
        if kind == "mcp" and isinstance(obj.get("payload"), dict):
            session.link.on_mcp(obj["payload"])
        elif kind in ("listen", "abort"):
            stale = obj.get("session_id")
            if isinstance(stale, str) and stale:
                self.ctx.metrics.inc("mqtt_stale_channel")
                log.info("%s: %s for a channel the hub does not have; telling the device goodbye", session, kind)
                await session.conn.send_text(codec.encode(HubGoodbye(session_id=stale)))
        elif kind == "goodbye":
            pass
        elif session.state is not SessionState.CLOSED:
            await session.handle_text(text)      # answered with error hello_required (or bad JSON)
