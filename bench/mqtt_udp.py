"""MQTT+UDP beside WebSocket (fake providers, zero delay): idle devices held, and devices conversing.

Idle: ``IDLE`` simulated devices boot and stay connected with nothing to say (MQTT: OTA check, MQTT
connection, the hub's MCP exchange, no audio channel; WebSocket: connection and hello, MCP exchange).
Reported: hub RSS per device, and the hub's CPU over ``IDLE_WINDOW`` seconds of that idleness.

Conversing: ``TALKERS`` devices hold ``TURNS`` push-to-talk turns each at once (MQTT: each turn on an
audio channel opened by its hello, encrypted UDP both ways). Reported: ``listen stop`` -> first audio
frame p50/p99, downlink interval jitter after the pre-buffer, frames lost (expected frames not
received, dropped outside speaking, queue overflow, undecodable; for UDP also packets the device's
checks dropped). Each transport gets a fresh hub process for each half.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from pathlib import Path
from typing import Any, Callable

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.simulator import SimulatedDevice
from xiaozhi_hub.simulator.mqtt_device import MqttSimulatedDevice

from .common import HubProcess, hub_process, pct

IDLE = 200
IDLE_WINDOW = 10.0
TALKERS = 20
TURNS = 3
BATCH = 20
PREBUFFER = 5
FRAME_S = 0.060
TICKS = os.sysconf("SC_CLK_TCK")


def _config(transport: str) -> dict[str, Any]:
    return {"asr": {"provider": "fake"}, "llm": {"provider": "fake"}, "tts": {"provider": "fake"},
            "fake": {"llm_chunk_delay_ms": 0}, "session": {"idle_timeout": 3600},
            "devices": {"transport": transport}, "device_mqtt": {"port": 0}, "udp": {"port": 0},
            "ota": {"rate_limit_per_minute": 100000}}   # 200 devices boot from one address


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS          # utime + stime


def _mac(i: int) -> str:
    return f"02:10:00:00:{i >> 8 & 255:02x}:{i & 255:02x}"


def _factory(hub: HubProcess, transport: str) -> Callable[[int], SimulatedDevice]:
    ota = f"http://127.0.0.1:{hub.http_port}/xiaozhi/ota/"
    if transport == "mqtt":
        return lambda i: MqttSimulatedDevice(ota, device_id=_mac(i))
    return lambda i: SimulatedDevice(hub.ws_url, device_id=_mac(i))


async def _idle(transport: str) -> dict[str, float]:
    with hub_process(_config(transport)) as hub:
        make = _factory(hub, transport)
        await asyncio.sleep(1.0)
        rss0 = hub.rss_kb()
        devices = [make(i) for i in range(IDLE)]
        try:
            for start in range(0, IDLE, BATCH):
                await asyncio.gather(*(d.connect() for d in devices[start:start + BATCH]))
            await asyncio.sleep(3.0)                              # MCP initialize + tools/list settle
            rss1 = hub.rss_kb()
            cpu0 = _cpu_seconds(hub.proc.pid)
            await asyncio.sleep(IDLE_WINDOW)
            cpu = (_cpu_seconds(hub.proc.pid) - cpu0) / IDLE_WINDOW
            held = sum(1 for d in devices if not d.closed)
        finally:
            await asyncio.gather(*(d.close() for d in devices), return_exceptions=True)
    return {"held": held, "rss0": rss0, "rss1": rss1, "per_device_kb": (rss1 - rss0) / IDLE, "cpu": cpu}


async def _talker(make: Callable[[int], SimulatedDevice], i: int, speech: bytes) -> list[Any]:
    await asyncio.sleep(random.uniform(0, 1.0))
    records = []
    async with make(1000 + i) as dev:
        for _ in range(TURNS):
            records.append(await dev.run_turn(speech, mode="manual", timeout=60))
            await asyncio.sleep(random.uniform(0.1, 0.5))
        if isinstance(dev, MqttSimulatedDevice):
            records.append(dev.udp_dropped)
    return records


async def _conversing(transport: str) -> dict[str, Any]:
    speech = pcmlib.voice_like(1000)
    random.seed(11)
    with hub_process(_config(transport)) as hub:
        make = _factory(hub, transport)
        results = await asyncio.gather(*(_talker(make, i, speech) for i in range(TALKERS)))
    latencies: list[float] = []
    jitter: list[float] = []
    expected = received = lost = turns = 0
    for records in results:
        for t in records:
            if isinstance(t, int):                                   # UDP packets the device dropped
                lost += t
                continue
            turns += 1
            if t.first_audio_latency is not None:
                latencies.append(t.first_audio_latency)
            played = [a.t for a in t.played]
            jitter += [abs((b - a) - FRAME_S) for a, b in zip(played[PREBUFFER:], played[PREBUFFER + 1:])]
            want = sum(len(s) for s in t.sentences)   # the fake TTS speaks one 60 ms frame per character
            got = sum(1 for a in t.played if a.samples)
            expected += want
            received += got
            lost += max(0, want - got) + t.dropped + t.overflow + t.decode_errors
    return {"turns": turns, "latencies": latencies, "jitter": jitter, "expected": expected, "received": received,
            "lost": lost}


def row(name: str, fmt: Callable[[dict[str, Any]], str], mqtt: dict[str, Any], ws: dict[str, Any],
        target: str = "") -> tuple[str, str, str]:
    return f"{name} (MQTT+UDP / WebSocket)", f"{fmt(mqtt)} / {fmt(ws)}", target


async def run() -> list[tuple[str, str, str]]:
    idle = {t: await _idle(t) for t in ("mqtt", "websocket")}
    talk = {t: await _conversing(t) for t in ("mqtt", "websocket")}
    m, w = idle["mqtt"], idle["websocket"]
    tm, tw = talk["mqtt"], talk["websocket"]
    return [
        row(f"idle devices held of {IDLE}", lambda d: f"{d['held']}", m, w, f"{IDLE}"),
        row("hub RSS before / with them", lambda d: f"{d['rss0'] / 1024:.1f} -> {d['rss1'] / 1024:.1f} MB", m, w),
        row("hub RSS per idle device", lambda d: f"{d['per_device_kb']:.1f} KB", m, w),
        row(f"hub CPU while idle ({IDLE_WINDOW:.0f} s)", lambda d: f"{d['cpu'] * 100:.2f} %", m, w),
        row(f"turns completed of {TALKERS} x {TURNS}", lambda d: f"{d['turns']}", tm, tw, f"{TALKERS * TURNS}"),
        row("listen stop -> first audio p50", lambda d: f"{pct(d['latencies'], 50)} ms", tm, tw),
        row("listen stop -> first audio p99", lambda d: f"{pct(d['latencies'], 99)} ms", tm, tw),
        row("downlink interval jitter p50", lambda d: f"{pct(d['jitter'], 50)} ms", tm, tw),
        row("downlink interval jitter p99", lambda d: f"{pct(d['jitter'], 99)} ms", tm, tw, "<= 20 ms"),
        row("frames expected / received", lambda d: f"{d['expected']} / {d['received']}", tm, tw),
        row("frames lost", lambda d: f"{d['lost']}", tm, tw, "0"),
    ]


if __name__ == "__main__":                      # python -m bench.mqtt_udp
    from .common import print_table

    with contextlib.suppress(KeyboardInterrupt):
        print_table("MQTT+UDP beside WebSocket", asyncio.run(run()))

