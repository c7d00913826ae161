"""Wyoming next to the devices' path, with the default offline models (one hub, in-process).

The spoken command "Set the volume to thirty." (the hub's own Piper voice, 16 kHz, silence around
it) is sent both ways, streamed at real time as a microphone would:

* device (simulator, manual mode): STT = ``listen stop`` → ASR final (the hub's turn stamps);
  TTS = first reply sentence ready → its first Opus frame on the wire;
* Wyoming (the wyoming package's client, 100 ms chunks as Home Assistant sends): STT = ``audio-stop``
  sent → ``transcript`` received; TTS = ``synthesize`` (the device's first reply sentence) sent →
  first ``audio-chunk`` received. Also ``describe`` → ``info``.

Each path is warmed once (not measured), then ``ROUNDS`` rounds alternate the two.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from typing import Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe
from wyoming.tts import Synthesize

from xiaozhi_hub.app import Hub
from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.settings import from_mapping
from xiaozhi_hub.simulator import SimulatedDevice

from .common import ROOT, pct

INSTALLED = ROOT / "models" / "installed"
COMMAND = "Set the volume to thirty."
ROUNDS = 5
CHUNK_MS = 100


def _config(data_dir: str) -> dict[str, Any]:
    return {"server": {"host": "127.0.0.1", "ws_port": 0, "http_port": 0}, "mdns": {"enabled": False},
            "data_dir": data_dir, "models_dir": str(INSTALLED), "log_level": "warning",
            "llm": {"max_tokens": 64}, "session": {"idle_timeout": 600}, "wyoming": {"port": 0}}


async def _read_until(client: AsyncTcpClient, event_type: str) -> float:
    async with asyncio.timeout(120):
        while True:
            event = await client.read_event()
            if event is None:
                raise RuntimeError(f"the hub closed the Wyoming connection before {event_type}")
            if event.type == "error":
                raise RuntimeError(f"Wyoming error: {event.data}")
            if event.type == event_type:
                return time.monotonic()


async def wyoming_stt(port: int, speech: bytes) -> tuple[float, str]:
    """Seconds from audio-stop to transcript, and the transcript."""
    step = pcmlib.bytes_for(CHUNK_MS, 16000)
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        t_next = time.monotonic()
        for i in range(0, len(speech), step):
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=speech[i:i + step]).event())
            t_next += CHUNK_MS / 1000
            await asyncio.sleep(max(0.0, t_next - time.monotonic()))
        stopped = time.monotonic()
        await client.write_event(AudioStop().event())
        async with asyncio.timeout(120):
            while True:
                event = await client.read_event()
                if event is None or event.type == "error":
                    raise RuntimeError(f"no transcript: {event.data if event else 'closed'}")
                if Transcript.is_type(event.type):
                    return time.monotonic() - stopped, Transcript.from_event(event).text


async def wyoming_tts(port: int, text: str) -> tuple[float, float]:
    """Seconds to the first audio-chunk and to audio-stop."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        t0 = time.monotonic()
        await client.write_event(Synthesize(text=text).event())
        first = await _read_until(client, "audio-chunk") - t0
        return first, await _read_until(client, "audio-stop") - t0


async def wyoming_describe(port: int) -> float:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        t0 = time.monotonic()
        await client.write_event(Describe().event())
        return await _read_until(client, "info") - t0


def _words(text: str | None) -> str:
    return re.sub(r"[^a-z0-9 ]", "", (text or "").lower()).strip()


async def _device_turn(dev: SimulatedDevice, session: Any, speech: bytes) -> tuple[float | None, float | None, str, str]:
    """(STT after listen stop, first sentence → first audio, transcript, first sentence)."""
    n = len(session.turn_log)
    turn = await dev.run_turn(speech, mode="manual", timeout=120)
    stamps = session.turn_log[-1] if len(session.turn_log) > n else {}
    stt = stamps["asr_final"] - stamps["end_of_speech"] if {"asr_final", "end_of_speech"} <= stamps.keys() else None
    tts = stamps["first_audio"] - stamps["first_sentence"] if {"first_audio", "first_sentence"} <= stamps.keys() \
        else None
    return stt, tts, turn.stt_text or "", (turn.sentences or [""])[0]


async def run() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(from_mapping(_config(tmp)))
        ctx = await hub.start()
        assert ctx.wyoming is not None
        port = ctx.wyoming.port
        try:
            tts = ctx.providers.tts
            pcm = b"".join([c async for c in tts.synthesize(COMMAND)])
            pad = pcmlib.silence(300, 16000)
            speech = pad + pcmlib.resample(pcm, tts.sample_rate, 16000) + pad
            dev_stt: list[float] = []
            dev_tts: list[float] = []
            wy_stt: list[float] = []
            wy_tts: list[float] = []
            wy_total: list[float] = []
            describe: list[float] = []
            heard: list[str] = []
            async with SimulatedDevice(f"ws://127.0.0.1:{ctx.ws_port}/xiaozhi/v1/") as dev:
                session = ctx.registry.by_device(dev.device_id)
                _, _, _, sentence = await _device_turn(dev, session, speech)          # warm-up, both paths
                await wyoming_stt(port, speech)
                await wyoming_tts(port, sentence or "Volume set to 30.")
                for _ in range(ROUNDS):
                    stt, first_audio, text, sentence = await _device_turn(dev, session, speech)
                    if stt is not None:
                        dev_stt.append(stt)
                    if first_audio is not None:
                        dev_tts.append(first_audio)
                    heard.append(text)
                    await asyncio.sleep(0.3)
                    seconds, text = await wyoming_stt(port, speech)
                    wy_stt.append(seconds)
                    heard.append(text)
                    first, total = await wyoming_tts(port, sentence or "Volume set to 30.")
                    wy_tts.append(first)
                    wy_total.append(total)
                    describe.append(await wyoming_describe(port))
                    await asyncio.sleep(0.3)
        finally:
            await hub.stop()
    ok = sum(1 for t in heard if "volume" in _words(t) and ("30" in _words(t) or "thirty" in _words(t)))
    return [
        ("device: STT, listen stop -> ASR final", f"p50 {pct(dev_stt, 50)} / p95 {pct(dev_stt, 95)} ms", ""),
        ("Wyoming: STT, audio-stop -> transcript", f"p50 {pct(wy_stt, 50)} / p95 {pct(wy_stt, 95)} ms", ""),
        ("device: TTS, first sentence ready -> first audio frame", f"p50 {pct(dev_tts, 50)} / p95 {pct(dev_tts, 95)} ms",
         ""),
        ("Wyoming: TTS, synthesize -> first audio-chunk", f"p50 {pct(wy_tts, 50)} / p95 {pct(wy_tts, 95)} ms", ""),
        ("Wyoming: TTS, synthesize -> audio-stop (whole sentence)", f"p50 {pct(wy_total, 50)} ms", ""),
        ("Wyoming: describe -> info", f"p50 {pct(describe, 50)} / max {max(describe) * 1000:.1f} ms" if describe
         else "-", "< 1000 ms"),
        ("transcripts correct (device + Wyoming)", f"{ok}/{len(heard)}", ""),
    ]
