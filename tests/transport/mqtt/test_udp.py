"""The UDP audio socket on 127.0.0.1: binding a channel to its device's address, what the hub's own
packets look like (sequence, flag bit, distinct timestamps), and audio for a device that never sent
a packet (one bounded wait, then dropped at once)."""

from __future__ import annotations

import asyncio
import socket
import time

from xiaozhi_hub.metrics import Metrics
from xiaozhi_hub.settings import UdpSettings
from xiaozhi_hub.transport.mqtt import crypto
from xiaozhi_hub.transport.mqtt.udp import UdpAudioServer


async def server(**over) -> UdpAudioServer:
    udp = UdpAudioServer(UdpSettings(port=0, **over), Metrics(), frame_ms=60)
    await udp.start("127.0.0.1")
    return udp


async def test_channel_binds_to_the_first_sender_and_the_hub_answers_there() -> None:
    udp = await server()
    heard: list[bytes] = []
    channel = udp.open_channel(heard.append)
    device = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    device.bind(("127.0.0.1", 0))
    device.setblocking(False)
    try:
        key, ssrc = channel.keys.key, channel.ssrc
        device.sendto(crypto.seal(key, ssrc, 1, b"first"), ("127.0.0.1", udp.port))
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(3):
            await channel.peer_known.wait()
        assert channel.peer == device.getsockname() and heard == [b"first"]
        for i in range(3):
            await udp.send(channel, f"frame{i}".encode())
        headers = []
        for i in range(3):
            data = await asyncio.wait_for(loop.sock_recv(device, 2048), 3)
            header = crypto.peek(data, 4096)
            headers.append(header)
            assert crypto.open_payload(key, data) == f"frame{i}".encode()
        assert [h.sequence for h in headers] == [1, 2, 3]
        assert all(h.flags == crypto.DOWNLINK_FLAGS and h.ssrc == ssrc for h in headers)
        assert [h.timestamp for h in headers] == [60, 120, 180]
        udp.close_channel(channel)
        device.sendto(crypto.seal(key, ssrc, 2, b"late"), ("127.0.0.1", udp.port))
        await asyncio.sleep(0.2)
        assert heard == [b"first"] and udp.metrics.counters["udp_dropped_unknown_ssrc"] == 1
    finally:
        device.close()
        udp.close()


async def test_audio_for_a_silent_device_waits_once_then_is_dropped() -> None:
    udp = await server(first_packet_wait=0.3)
    channel = udp.open_channel(lambda _: None)
    try:
        t0 = time.monotonic()
        await udp.send(channel, b"one")
        assert 0.25 < time.monotonic() - t0 < 2.0
        t1 = time.monotonic()
        for _ in range(10):
            await udp.send(channel, b"more")
        assert time.monotonic() - t1 < 0.2                 # no wait per frame after the first
        assert udp.metrics.counters["udp_sent_without_peer"] == 11 and channel.local_sequence == 0
    finally:
        udp.close()
