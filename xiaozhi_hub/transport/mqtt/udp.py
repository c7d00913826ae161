"""The UDP audio socket: one socket for every device's audio channel (docs/mqtt-udp.md, UDP audio).

A channel is opened per hub hello with a fresh key and a random ssrc (:class:`.crypto.ChannelKeys`).
An incoming datagram is checked in this order, each failure dropped and counted in the metrics as
``udp_dropped_<kind>``: size (``oversized``, ``short``), type (``bad_type``), length field
(``bad_length``), ssrc (``unknown_ssrc``), sender (``wrong_address``: the first packet of a channel
binds it to the device's address and port), sequence (``replay``: not newer than the last accepted),
rate (``rate``: beyond ``udp.max_packets_per_second``). Only then is it decrypted and handed on.
Nothing a sender does reaches another device's channel, and nothing is answered, so the socket
cannot be used to reflect traffic.

Downlink audio waits (up to ``udp.first_packet_wait``) for the device's first packet, because only
that tells the hub where the device is; a channel that never hears from its device drops its audio
and counts ``udp_sent_without_peer``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Callable, cast

from ..ws_server import FloodGuard
from .crypto import DOWNLINK_FLAGS, ChannelKeys, PacketError, open_payload, peek, seal

if TYPE_CHECKING:
    from ...metrics import Metrics
    from ...settings import UdpSettings

log = logging.getLogger(__name__)

Address = tuple[str, int]
MAX_SEND_BUFFER = 256 * 1024      # bytes the kernel would not take yet; beyond it audio is dropped


class UdpChannel:
    """One audio channel: its keys, the device's address once known, and both sequence counters."""

    def __init__(self, keys: ChannelKeys, on_audio: Callable[[bytes], None], rate: int, frame_ms: int) -> None:
        self.keys = keys
        self.on_audio = on_audio
        self.peer: Address | None = None
        self.peer_known = asyncio.Event()
        self.gave_up = False            # waited once for the device's first packet in vain
        self.remote_sequence = 0        # the last accepted uplink sequence
        self.local_sequence = 0
        self.timestamp = 0              # downlink play position in ms (never 0 on the wire)
        self.frame_ms = frame_ms
        self.guard = FloodGuard(rate, grace=1e9)   # drop the excess, never "close" a datagram stream
        self.packets_in = 0
        self.packets_out = 0
        self.closed = False

    @property
    def ssrc(self) -> int:
        return self.keys.ssrc


class UdpAudioServer(asyncio.DatagramProtocol):
    def __init__(self, settings: "UdpSettings", metrics: "Metrics", frame_ms: int) -> None:
        self.settings = settings
        self.metrics = metrics
        self.frame_ms = frame_ms
        self.channels: dict[int, UdpChannel] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self, host: str) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, self.settings.port))
        self.transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self.port

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        for channel in self.channels.values():
            channel.closed = True
        self.channels.clear()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def error_received(self, exc: Exception) -> None:     # e.g. ICMP port unreachable after a device left
        self.metrics.inc("udp_errors")
        log.debug("udp socket error: %s", exc)

    # -- channels ------------------------------------------------------------------------------------
    def open_channel(self, on_audio: Callable[[bytes], None]) -> UdpChannel:
        while True:
            ssrc = int.from_bytes(os.urandom(4), "big")
            if ssrc and ssrc not in self.channels:
                break
        channel = UdpChannel(ChannelKeys.new(ssrc), on_audio, self.settings.max_packets_per_second, self.frame_ms)
        self.channels[ssrc] = channel
        return channel

    def close_channel(self, channel: UdpChannel) -> None:
        channel.closed = True
        if self.channels.get(channel.ssrc) is channel:
            del self.channels[channel.ssrc]

    # -- receiving -----------------------------------------------------------------------------------
    def _drop(self, kind: str) -> None:
        self.metrics.inc(f"udp_dropped_{kind}")

    def datagram_received(self, data: bytes, addr: Address) -> None:
        try:
            header = peek(data, self.settings.max_packet_bytes)
        except PacketError as err:
            self._drop(err.kind)
            return
        channel = self.channels.get(header.ssrc)
        if channel is None:
            self._drop("unknown_ssrc")
            return
        if channel.peer is None:
            channel.peer = (addr[0], addr[1])
            channel.peer_known.set()
        elif (addr[0], addr[1]) != channel.peer:
            self._drop("wrong_address")
            return
        if header.sequence <= channel.remote_sequence:
            self._drop("replay")
            return
        if channel.guard.allow() is not True:
            self._drop("rate")
            return
        channel.remote_sequence = header.sequence
        channel.packets_in += 1
        self.metrics.inc("udp_packets_in")
        channel.on_audio(open_payload(channel.keys.key, data))

    # -- sending -------------------------------------------------------------------------------------
    async def send(self, channel: UdpChannel, payload: bytes) -> None:
        """Encrypt and send one Opus packet to the channel's device (waiting for its address first)."""
        if channel.peer is None:
            if channel.gave_up:
                self.metrics.inc("udp_sent_without_peer")
                return
            try:
                async with asyncio.timeout(self.settings.first_packet_wait):
                    await channel.peer_known.wait()
            except TimeoutError:
                channel.gave_up = True          # later packets are dropped at once, not each after a wait
                self.metrics.inc("udp_sent_without_peer")
                return
        transport = self.transport
        if channel.closed or transport is None or channel.peer is None:
            raise ConnectionResetError("audio channel closed")
        # The selector's datagram transport buffers what the kernel refuses; its type does not say so.
        if cast(asyncio.WriteTransport, transport).get_write_buffer_size() > MAX_SEND_BUFFER:
            self.metrics.inc("udp_send_dropped")
            return
        channel.local_sequence += 1
        channel.timestamp = (channel.timestamp + channel.frame_ms) & 0xFFFFFFFF or channel.frame_ms
        datagram = seal(channel.keys.key, channel.ssrc, channel.local_sequence, payload,
                        timestamp=channel.timestamp, flags=DOWNLINK_FLAGS)
        transport.sendto(datagram, channel.peer)
        channel.packets_out += 1
        self.metrics.inc("udp_packets_out")
