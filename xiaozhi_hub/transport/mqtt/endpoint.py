"""The device MQTT endpoint: a small MQTT 3.1.1 server that only stock devices talk to.

It is not a broker. A device publishes every message to its ``publish_topic`` and **never subscribes**
(docs/protocol.md, MQTT and UDP), so the hub reads what a connection publishes and writes its own
messages straight onto that connection. There is no topic routing at all: one device can never reach
another.

Admission (``CONNECT`` within ``device_mqtt.connect_timeout``): MQTT 3.1.1 (or 3.1) only, else CONNACK
1; the client id, user name and password minted in the OTA reply (:mod:`.credentials`), else CONNACK
2 (a client id the hub did not issue) or 4 (wrong, expired or revoked password); a blocked device gets
5. Refusals are logged with the reason, never with the password.

After CONNACK: ``PINGREQ`` is answered; ``PUBLISH`` QoS 0 and 1 (acknowledged) on the device's own
topic is handed to the device's handler in order, a publish elsewhere is dropped and counted; QoS 2
closes the connection. ``SUBSCRIBE``/``UNSUBSCRIBE`` (py-xiaozhi sends them) are acknowledged and change
nothing. Limits: a packet over ``device_mqtt.max_packet_bytes`` closes the connection before its body is
read; more than ``max_messages_per_second`` publishes are dropped, and closed after
``flood_grace_seconds``; no packet for 1.5 x the keep-alive the device asked for (the firmware asks for
240 s and pings every 120 s) closes it. Sends to a device wait at most 10 s, so a device that stops
reading holds nothing but its own connection. A second connection with the same client id replaces
the first (MQTT's rule).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import TYPE_CHECKING, Awaitable, Callable, Protocol

from ..ws_server import FloodGuard
from . import packets as mp
from .credentials import Identity, check_connect, publish_topic, subscribe_topic

if TYPE_CHECKING:
    from ...context import HubContext

log = logging.getLogger(__name__)

SEND_TIMEOUT = 10.0
KEEPALIVE_FACTOR = 1.5


class PublishHandler(Protocol):
    async def on_publish(self, payload: bytes) -> None: ...


class MqttClient:
    """One admitted device connection: reads its packets, writes the hub's publishes."""

    def __init__(self, ctx: "HubContext", reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 identity: Identity, keepalive: int, remote: str) -> None:
        self.ctx = ctx
        self.reader = reader
        self.writer = writer
        self.identity = identity
        self.remote = remote
        settings = ctx.settings.device_mqtt
        self.idle_limit = KEEPALIVE_FACTOR * (keepalive or settings.keepalive)
        self.guard = FloodGuard(settings.max_messages_per_second, settings.flood_grace_seconds)
        self.topic_in = publish_topic(identity.device_id)
        self.topic_out = subscribe_topic(identity.device_id)
        self.closed = asyncio.Event()
        self.close_reason = ""
        local = writer.get_extra_info("sockname")
        # The address the device reached the hub at: where its audio goes too (unless a public one is set).
        self.local_host: str | None = str(local[0]) if isinstance(local, tuple) and local[0] not in ("0.0.0.0", "::") else None

    @property
    def device_id(self) -> str:
        return self.identity.device_id

    async def publish(self, payload: bytes) -> None:
        """Send one message to the device (QoS 0, on its subscribe topic)."""
        if self.closed.is_set() or self.writer.is_closing():
            raise ConnectionResetError("MQTT connection closed")
        self.writer.write(mp.publish(self.topic_out, payload))
        async with asyncio.timeout(SEND_TIMEOUT):
            await self.writer.drain()

    def close(self, reason: str) -> None:
        """Drop the connection (the device reconnects by itself)."""
        if not self.closed.is_set():
            self.close_reason = reason
            self.closed.set()
        self.writer.close()

    async def serve(self, handler: PublishHandler) -> None:
        """The read loop; returns when the connection ends (for whatever reason)."""
        metrics = self.ctx.metrics
        limit = self.ctx.settings.device_mqtt.max_packet_bytes
        try:
            while not self.closed.is_set():
                async with asyncio.timeout(self.idle_limit):
                    packet = await mp.read_packet(self.reader, limit)
                if not await self._handle(packet, handler):
                    return
        except TimeoutError:
            metrics.inc("mqtt_keepalive_timeouts")
            log.info("%s: no MQTT packet for %.0f s (keep-alive), closing", self.device_id, self.idle_limit)
        except mp.MqttError as err:
            metrics.inc("mqtt_protocol_errors")
            log.info("%s: MQTT protocol error, closing: %s", self.device_id, err)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.close(self.close_reason or "connection ended")

    async def _handle(self, packet: mp.RawPacket, handler: PublishHandler) -> bool:
        kind = packet.type
        if kind is mp.PacketType.PUBLISH:
            return await self._on_publish(packet, handler)
        if kind is mp.PacketType.PINGREQ:
            self.writer.write(mp.PINGRESP)
        elif kind is mp.PacketType.SUBSCRIBE:
            packet_id, filters = mp.parse_subscribe(packet.body)
            self.writer.write(mp.suback(packet_id, [0] * len(filters)))   # granted QoS 0; routing unchanged
        elif kind is mp.PacketType.UNSUBSCRIBE:
            packet_id, _ = mp.parse_unsubscribe(packet.body)
            self.writer.write(mp.unsuback(packet_id))
        elif kind is mp.PacketType.DISCONNECT:
            self.close_reason = "DISCONNECT"
            return False
        elif kind is mp.PacketType.PUBACK:
            pass                          # the hub publishes QoS 0 only; a stray ack is harmless
        else:
            raise mp.MqttError(f"unexpected {kind.name} from a client")
        return True

    async def _on_publish(self, packet: mp.RawPacket, handler: PublishHandler) -> bool:
        msg = mp.parse_publish(packet.flags, packet.body)
        if msg.qos == 2:
            raise mp.MqttError("QoS 2 is not supported (devices publish with QoS 0)")
        if msg.qos == 1 and msg.packet_id is not None:
            self.writer.write(mp.puback(msg.packet_id))
        allowed = self.guard.allow()
        if allowed is None:
            self.ctx.metrics.inc("mqtt_floods")
            log.warning("%s: flooding (>%d messages/s), closing", self.device_id,
                        self.ctx.settings.device_mqtt.max_messages_per_second)
            self.close_reason = "flooding"
            return False
        if not allowed:
            self.ctx.metrics.inc("mqtt_messages_dropped")
            return True
        if msg.topic != self.topic_in:
            self.ctx.metrics.inc("mqtt_wrong_topic")
            log.info("%s: publish to %r ignored (its topic is %r)", self.device_id, msg.topic[:64], self.topic_in)
            return True
        self.ctx.metrics.inc("mqtt_messages_in")
        await handler.on_publish(msg.payload)
        return True


Admitted = Callable[[MqttClient], Awaitable[None]]


class DeviceMqttEndpoint:
    """The TCP (optionally TLS) listener; hands each admitted connection to ``admitted``."""

    def __init__(self, ctx: "HubContext", admitted: Admitted) -> None:
        self.ctx = ctx
        self.admitted = admitted
        self.server: asyncio.Server | None = None
        self.clients: dict[str, MqttClient] = {}       # client id -> connection
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, host: str) -> int:
        settings = self.ctx.settings.device_mqtt
        tls: ssl.SSLContext | None = None
        if settings.tls_cert and settings.tls_key:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(settings.tls_cert, settings.tls_key)
        self.server = await asyncio.start_server(self._connected, host, settings.port, ssl=tls,
                                                 limit=max(1 << 16, settings.max_packet_bytes + 16), backlog=1024)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for client in list(self.clients.values()):
            client.close("hub shutting down")
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=3.0)
        if self.server is not None:
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
            self.server = None

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        peer = writer.get_extra_info("peername")
        remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"
        try:
            await self._admit(reader, writer, remote)
        except Exception:
            log.exception("device MQTT connection from %s failed", remote)
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_connect(self, reader: asyncio.StreamReader, remote: str) -> mp.Connect | None:
        settings = self.ctx.settings.device_mqtt
        try:
            async with asyncio.timeout(settings.connect_timeout):
                packet = await mp.read_packet(reader, settings.max_packet_bytes)
            if packet.type is not mp.PacketType.CONNECT:
                raise mp.MqttError(f"first packet is {packet.type.name}, not CONNECT")
            return mp.parse_connect(packet.body)
        except TimeoutError:
            log.info("device MQTT connection from %s sent no CONNECT in %.0f s", remote, settings.connect_timeout)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        return None

    async def _admit(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, remote: str) -> None:
        metrics = self.ctx.metrics
        metrics.inc("mqtt_connections")
        if len(self.clients) >= self.ctx.settings.device_mqtt.max_connections:
            metrics.inc("mqtt_refused")
            log.warning("device MQTT connection from %s refused: %d connections already", remote, len(self.clients))
            return
        try:
            connect = await self._read_connect(reader, remote)
        except mp.UnsupportedProtocol as err:
            self._refuse(writer, mp.ConnackCode.BAD_PROTOCOL, remote, "?", str(err))
            return
        except mp.MqttError as err:
            metrics.inc("mqtt_refused")
            log.info("device MQTT connection from %s refused: %s", remote, err)
            return
        if connect is None:
            return
        identity, why = check_connect(self.ctx.auth, connect.client_id, connect.username, connect.password)
        if identity is None:
            code = mp.ConnackCode.ID_REJECTED if why.startswith("client id") else mp.ConnackCode.BAD_CREDENTIALS
            self._refuse(writer, code, remote, connect.username or "?", why)
            return
        if self.ctx.devices.is_blocked(identity.device_id):
            self._refuse(writer, mp.ConnackCode.NOT_AUTHORIZED, remote, identity.device_id, "device is blocked")
            return
        writer.write(mp.connack(mp.ConnackCode.ACCEPTED))
        client = MqttClient(self.ctx, reader, writer, identity, connect.keepalive, remote)
        previous = self.clients.get(identity.client_id)
        if previous is not None:
            log.info("%s: new MQTT connection replaces the one from %s", identity.device_id, previous.remote)
            previous.close("replaced by a new connection")
        self.clients[identity.client_id] = client
        try:
            await self.admitted(client)
        finally:
            if self.clients.get(identity.client_id) is client:
                del self.clients[identity.client_id]

    def _refuse(self, writer: asyncio.StreamWriter, code: mp.ConnackCode, remote: str, who: str, why: str) -> None:
        self.ctx.metrics.inc("mqtt_refused")
        log.info("refused device MQTT connection %s from %s: %s", who[:64], remote, why)
        with contextlib.suppress(Exception):
            writer.write(mp.connack(code))
