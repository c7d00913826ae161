"""The simulated device's MQTT client, behaving like the firmware's (esp-mqtt through esp-ml307).

MQTT 3.1.1 with a clean session, the keep-alive from the OTA reply (PINGREQ every half of it, the
connection given up when no PINGRESP comes back), QoS 0 publishes to ``publish_topic``, and **no
SUBSCRIBE**: whatever the server publishes on the connection is delivered. The firmware uses TLS
exactly when the port is 8883; the simulator does too (with the SSL context the caller passes).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Awaitable, Callable

from ..transport.mqtt import packets as mp

CONNECT_TIMEOUT = 10.0
FIRMWARE_TLS_PORT = 8883
MAX_INCOMING = 1 << 20

OnMessage = Callable[[str, bytes], Awaitable[None]]


class ConnectRefused(ConnectionError):
    def __init__(self, code: int) -> None:
        super().__init__(f"CONNACK return code {code} ({_CODES.get(code, 'unknown')})")
        self.code = code


_CODES = {1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
          4: "bad user name or password", 5: "not authorized"}


class MqttLink:
    """One MQTT connection of the device; :meth:`connect` again after it dropped."""

    def __init__(self, on_message: OnMessage, on_lost: Callable[[], None],
                 tls: ssl.SSLContext | None = None) -> None:
        self.on_message = on_message
        self.on_lost = on_lost
        self.tls = tls
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pong = asyncio.Event()
        self.connected = False
        self.pings = 0

    async def connect(self, host: str, port: int, client_id: str, username: str, password: str,
                      keepalive: int) -> None:
        """TCP (TLS on 8883), CONNECT, CONNACK; raises :class:`ConnectRefused` or ``OSError``."""
        await self.drop()
        tls = (self.tls or ssl.create_default_context()) if port == FIRMWARE_TLS_PORT else None
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port, ssl=tls)
            writer.write(mp.connect(client_id, username, password, keepalive))
            try:
                packet = await mp.read_packet(reader, 64)
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                raise ConnectionResetError("the server closed the connection before CONNACK") from None
        if packet.type is not mp.PacketType.CONNACK:
            writer.close()
            raise ConnectionError(f"expected CONNACK, got {packet.type.name}")
        _, code = mp.parse_connack(packet.body)
        if code != 0:
            writer.close()
            raise ConnectRefused(code)
        self._reader, self._writer = reader, writer
        self.connected = True
        self._tasks = [asyncio.create_task(self._read_loop()), asyncio.create_task(self._ping_loop(keepalive))]

    async def publish(self, topic: str, payload: bytes) -> None:
        if not self.connected or self._writer is None:
            raise ConnectionResetError("MQTT is not connected")
        self._writer.write(mp.publish(topic, payload))
        await self._writer.drain()

    async def drop(self) -> None:
        """Close the TCP connection without DISCONNECT (power loss, reboot)."""
        self.connected = False
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self._tasks = []
        if self._writer is not None:
            self._writer.transport.abort()
            self._writer = None

    def _lost(self) -> None:
        if self.connected:
            self.connected = False
            if self._writer is not None:
                self._writer.transport.abort()
            self.on_lost()

    async def _read_loop(self) -> None:
        assert self._reader is not None and self._writer is not None
        try:
            while True:
                packet = await mp.read_packet(self._reader, MAX_INCOMING)
                if packet.type is mp.PacketType.PUBLISH:
                    msg = mp.parse_publish(packet.flags, packet.body)
                    if msg.qos == 1 and msg.packet_id is not None:
                        self._writer.write(mp.puback(msg.packet_id))
                    await self.on_message(msg.topic, msg.payload)
                elif packet.type is mp.PacketType.PINGRESP:
                    self._pong.set()
        except (asyncio.IncompleteReadError, ConnectionError, mp.MqttError):
            self._lost()

    async def _ping_loop(self, keepalive: int) -> None:
        if keepalive <= 0:
            return
        with contextlib.suppress(ConnectionError):
            while True:
                await asyncio.sleep(keepalive / 2)
                assert self._writer is not None
                self._pong.clear()
                self._writer.write(mp.PINGREQ)
                self.pings += 1
                try:
                    async with asyncio.timeout(keepalive / 2):
                        await self._pong.wait()
                except TimeoutError:          # esp-mqtt: "No PING_RESP, disconnected"
                    self._lost()
                    return
