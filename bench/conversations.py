"""50 simulated devices conversing at once with the fake providers (zero delay).

Each device is a full :class:`SimulatedDevice` (real Opus both ways, stock-firmware behaviour) in
push-to-talk mode, so the end of speech is exactly the moment of ``listen stop``. Reported:
``listen stop`` → first audio frame, downlink frame interval jitter after the pre-buffer, and
frames lost (expected frames not received, frames dropped outside speaking, frames that would
have overflowed the device's 40-packet queue, undecodable frames).
"""

from __future__ import annotations

import asyncio
import random

import aiohttp

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.simulator import SimulatedDevice

from .common import hub_process, pct

PREBUFFER = 5
FRAME_S = 0.060


async def _device(url: str, turns: int, speech: bytes, delay: float) -> list:
    await asyncio.sleep(delay)
    records = []
    async with SimulatedDevice(url, mcp=False) as dev:
        for _ in range(turns):
            records.append(await dev.run_turn(speech, mode="manual", timeout=60))
            await asyncio.sleep(random.uniform(0.1, 0.5))
    return records


CLIENT_LAG: list[float] = []


async def _client_lag(period: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(period)
        CLIENT_LAG.append(max(0.0, loop.time() - t - period))


async def _hub_quantile(port: int, name: str, q: str) -> float | None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
            text = await r.text()
    for line in text.splitlines():
        if line.startswith(f'xiaozhi_{name}_seconds{{quantile="{q}"}}'):
            return float(line.split()[-1])
    return None


async def run(devices: int = 50, turns: int = 3) -> list[tuple[str, str, str]]:
    config = {"asr": {"provider": "fake"}, "llm": {"provider": "fake"}, "tts": {"provider": "fake"},
              "fake": {"llm_chunk_delay_ms": 0}, "session": {"idle_timeout": 600, "mcp_enabled": False}}
    speech = pcmlib.voice_like(1000)
    with hub_process(config) as hub:
        random.seed(7)
        lag_task = asyncio.create_task(_client_lag())
        results = await asyncio.gather(*(_device(hub.ws_url, turns, speech, random.uniform(0, 1.0))
                                         for _ in range(devices)))
        lag_task.cancel()
        hub_lag = await _hub_quantile(hub.http_port, "loop_lag", "0.99")
    latencies: list[float] = []
    jitter: list[float] = []
    expected = received = lost = 0
    for records in results:
        for t in records:
            if t.first_audio_latency is not None:
                latencies.append(t.first_audio_latency)
            played = [a.t for a in t.played]
            for a, b in zip(played[PREBUFFER:], played[PREBUFFER + 1:]):
                jitter.append(abs((b - a) - FRAME_S))
            want = sum(len(s) for s in t.sentences)  # the fake TTS speaks 60 ms (one frame) per character
            expected += want
            got = sum(1 for a in t.played if a.samples)
            received += got
            lost += max(0, want - got) + t.dropped + t.overflow + t.decode_errors
    turns_done = sum(len(r) for r in results)
    return [
        ("devices x turns completed", f"{devices} x {turns} = {turns_done}", f"{devices * turns}"),
        ("listen stop -> first audio p50", f"{pct(latencies, 50)} ms", ""),
        ("listen stop -> first audio p99", f"{pct(latencies, 99)} ms", "<= 50 ms"),
        ("downlink interval jitter p50", f"{pct(jitter, 50)} ms", ""),
        ("downlink interval jitter p99", f"{pct(jitter, 99)} ms", "<= 20 ms"),
        ("frames expected / received", f"{expected} / {received}", ""),
        ("frames lost", f"{lost}", "0"),
        ("hub event-loop lag p99 (last 512 samples)", f"{(hub_lag or 0) * 1000:.1f} ms", ""),
        ("simulators' event-loop lag p99", f"{pct(CLIENT_LAG, 99)} ms", ""),
    ]
