"""One MQTT+UDP audio channel as the session's :class:`~xiaozhi_hub.session.session.Connection`.

Text goes out as an MQTT publish on the device's connection; audio as encrypted UDP packets on the
channel's keys. The session frames audio by its protocol version (3 for MQTT hellos), so
:meth:`send_bytes` takes the binary frame apart again and sends the bare Opus packet; uplink audio is
framed the same way before it reaches the session (:meth:`frame_uplink`), so the session handles both
transports with one code path.

Closing a channel is a ``goodbye`` on MQTT, not the end of the device's connection: the device stays
reachable (:mod:`.device` gives it a fresh session at once). Only a shut-out device (blocked, tokens
revoked) also loses its MQTT connection.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...protocol import binary, codec
from ...protocol.close import CloseCode
from ...protocol.messages import HubGoodbye, ProtocolError

if TYPE_CHECKING:
    from ...session.session import Session
    from .device import MqttDevice
    from .udp import UdpChannel

log = logging.getLogger(__name__)

# Codes that end the device's MQTT connection too (the endpoint then refuses it at CONNECT).
SHUT_OUT = frozenset({CloseCode.AUTH, CloseCode.BLOCKED})


class MqttUdpConnection:
    """The transport side of one session of an MQTT device (one audio channel, hello to goodbye)."""

    def __init__(self, device: "MqttDevice", channel: "UdpChannel") -> None:
        self.device = device
        self.channel = channel
        self.remote = device.client.remote
        self.session: "Session | None" = None
        self.device_closed = False        # the device said goodbye (or opened another channel)
        self.closed = False

    async def send_text(self, text: str) -> None:
        await self.device.client.publish(text.encode("utf-8"))

    async def send_bytes(self, data: bytes) -> None:
        if self.closed or self.channel.closed:
            raise ConnectionResetError("audio channel closed")
        version = self.session.protocol_version if self.session is not None else 3
        try:
            frame = binary.decode_audio(data, version)
        except ProtocolError as err:          # the session framed it itself: a bug, not bad input
            raise ValueError(f"cannot unframe the session's own audio: {err}") from err
        await self.device.transport.udp.send(self.channel, frame.payload)

    def frame_uplink(self, payload: bytes) -> bytes:
        """A decrypted uplink Opus packet, framed as the session expects it."""
        version = self.session.protocol_version if self.session is not None else 3
        return binary.encode_audio(payload, version)

    async def close(self, code: int, reason: str) -> None:
        """The session ends this channel: ``goodbye`` to the device (unless it left first), free the
        UDP channel, and keep the device reachable with a new session, or drop it when shut out."""
        if self.closed:
            return
        self.closed = True
        self.device.transport.udp.close_channel(self.channel)
        session = self.session
        client = self.device.client
        says_goodbye = (session is not None and session.hello is not None and not self.device_closed
                        and code != CloseCode.REPLACED and not client.closed.is_set())
        if says_goodbye and session is not None:
            try:
                await client.publish(codec.encode(HubGoodbye(session_id=session.id)).encode("utf-8"))
            except (ConnectionError, TimeoutError):
                pass
        if code in SHUT_OUT:
            log.info("%s: %s, dropping its MQTT connection", self.device.device_id, reason or "shut out")
            client.close(reason or "shut out")
        elif session is not None:
            self.device.after_channel(session)
