"""The Wyoming server with the fake providers, through the wyoming package's client on 127.0.0.1:
describe, transcription in any audio format, synthesis (whole and streamed), the shared compute pool."""

from __future__ import annotations

import asyncio
import math
from typing import Any, AsyncIterator

import numpy as np
import pytest
from wyoming.asr import Transcript
from wyoming.audio import AudioStart
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeVoice

from xiaozhi_hub.app import Hub
from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.net.wyoming.audio import AudioFormat, PcmConverter
from xiaozhi_hub.providers.base import Providers, Transcript as HubTranscript
from xiaozhi_hub.providers.fake import FakeASR, FakeLLM, FakeTTS
from xiaozhi_hub.providers.vad_webrtc import WebRtcVAD
from xiaozhi_hub.pipeline.phrases import BUSY_TEXT, FILLER_TEXT
from xiaozhi_hub.settings import FakeSettings
from xiaozhi_hub.simulator import SimulatedDevice

from ..conftest import fake_settings, ws_url
from .conftest import Answer, WyomingClient, wyoming_port

SPEECH = pcmlib.voice_like(1200)               # what the fake ASR "hears" as its fixed sentence
HEARD = "turn on the kitchen light"
PHRASES = (BUSY_TEXT, FILLER_TEXT)


def encode(pcm16: bytes, rate: int, width: int, channels: int) -> bytes:
    """16 kHz mono s16 → the given Wyoming format (what a client in that format would send)."""
    x = np.frombuffer(pcmlib.resample(pcm16, 16000, rate), dtype="<i2").astype(np.float64) / 32768.0
    x = np.repeat(x, channels)
    if width == 1:
        return np.clip(np.round(x * 127 + 128), 0, 255).astype(np.uint8).tobytes()
    if width == 2:
        return np.round(x * 32767).astype("<i2").tobytes()
    if width == 3:
        v = np.round(x * (2 ** 23 - 1)).astype(np.int32)
        return np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], axis=1).astype(np.uint8).tobytes()
    return np.round(x * (2 ** 31 - 1)).astype("<i4").tobytes()


async def test_describe_lists_the_hubs_asr_and_tts_with_honest_streaming_flags(wyoming_hub):
    hub = await wyoming_hub()
    async with WyomingClient(wyoming_port(hub)) as c:
        info, seconds = await c.describe()
    (asr,), (tts,) = info.asr, info.tts
    assert asr.installed and asr.models[0].installed and asr.models[0].languages == ["en"]
    assert asr.supports_transcript_streaming is False          # the fake ASR, like Whisper, is a batch engine
    assert tts.installed and [v.name for v in tts.voices] == ["fake"] and tts.voices[0].installed
    assert tts.supports_synthesize_streaming is True
    assert not info.handle and not info.wake and info.satellite is None


@pytest.mark.parametrize("rate,width,channels", [
    (16000, 2, 1), (44100, 2, 2), (8000, 1, 1), (48000, 4, 1), (22050, 3, 2), (96000, 2, 6)])
async def test_any_audio_format_is_converted_and_transcribed(wyoming_hub, rate, width, channels):
    hub = await wyoming_hub()
    async with WyomingClient(wyoming_port(hub)) as c:
        audio = encode(SPEECH, rate, width, channels)
        # Odd chunk sizes split sample frames: the converter must carry the remainder.
        answer = await c.transcribe(audio, rate=rate, width=width, channels=channels, chunk_bytes=1001)
        assert Transcript.from_event(answer.of("transcript")[0]).text == HEARD
        silence = await c.transcribe(bytes(len(audio)) if width != 1 else b"\x80" * len(audio),
                                     rate=rate, width=width, channels=channels)
        assert Transcript.from_event(silence.of("transcript")[0]).text == ""   # the same connection, again


def test_the_converter_keeps_pitch_level_and_length():
    """A 440 Hz tone in 24-bit stereo at 48 kHz comes out as the same tone at 16 kHz mono."""
    tone = pcmlib.tone(440, 1000, 48000, amplitude=0.5)
    raw = encode(pcmlib.resample(tone, 48000, 16000), 48000, 3, 2)
    conv = PcmConverter(AudioFormat(48000, 3, 2))
    out = b"".join(conv.convert(raw[i:i + 777]) for i in range(0, len(raw), 777)) + conv.flush()
    x = np.frombuffer(out, dtype="<i2").astype(np.float64)
    assert abs(len(x) - 16000) < 64
    spectrum = np.abs(np.fft.rfft(x[2000:14000]))
    assert abs(np.argmax(spectrum) * 16000 / 12000 - 440) < 3
    assert abs(pcmlib.rms(out) / (0.5 * 32767 / math.sqrt(2)) - 1) < 0.05


async def test_synthesize_answers_audio_at_the_engines_rate(wyoming_hub):
    hub = await wyoming_hub()
    text = "Hello there. How are you today?"
    async with WyomingClient(wyoming_port(hub)) as c:
        answer = await c.synthesize(text, voice=SynthesizeVoice(name="fake"))
    assert answer.types[0] == "audio-start" and answer.types[-1] == "audio-stop"
    start = AudioStart.from_event(answer.of("audio-start")[0])
    assert (start.rate, start.width, start.channels) == (24000, 2, 1)
    # The fake voice speaks 60 ms a character, sentence by sentence.
    expected = sum(len(s) for s in ("Hello there.", "How are you today?")) * 0.060
    assert abs(pcmlib.duration_ms(answer.audio, 24000) / 1000 - expected) < 0.01


class GatedTTS(FakeTTS):
    """The fake voice, but every sentence after the first waits for ``gate``: the test sees what the
    client has received while later sentences are still being synthesized."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.requested: list[str] = []
        self.gate = asyncio.Event()

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if text not in PHRASES:               # the hub's own fixed phrases, made at start-up
            self.requested.append(text)
            if len(self.requested) > 1:
                await self.gate.wait()
        async for chunk in super().synthesize(text):
            yield chunk


class PooledTTS(FakeTTS):
    """The fake voice, but every chunk is made in the hub's compute pool under the "tts" limit, as
    Piper's are, so a test can fill the engine the way a device's reply does."""

    compute = None          # the hub's pool, set once the hub has started

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        async for chunk in super().synthesize(text):
            yield chunk if self.compute is None else await self.compute.run("tts", bytes, chunk)


@pytest.fixture
async def hub_with(tmp_path):
    """``hub = await hub_with(tts)``: a fake-provider hub with Wyoming on a free port and this TTS."""
    hubs: list[Hub] = []

    async def start(tts: FakeTTS | None = None, asr: Any = None) -> Hub:
        settings = fake_settings(tmp_path, wyoming={"enabled": True, "port": 0})
        hub = Hub(settings)
        await hub.start(Providers(vad=WebRtcVAD(settings.vad), asr=asr or FakeASR(settings.fake),
                                  llm=FakeLLM(settings.fake), tts=tts or FakeTTS(settings.fake)))
        hubs.append(hub)
        if isinstance(tts, PooledTTS):
            tts.compute = hub.ctx.compute
        return hub
    yield start
    for hub in hubs:
        await hub.stop()


async def test_first_audio_leaves_before_the_rest_of_the_text_is_synthesized(hub_with):
    tts = GatedTTS(FakeSettings())
    hub = await hub_with(tts)
    async with WyomingClient(wyoming_port(hub)) as c:
        await c.write(Synthesize(text="The first sentence is short. The second one waits for the gate.").event())
        first = await c.read_until(lambda e: e.type == "audio-chunk")
        assert first.types == ["audio-start", "audio-chunk"] and not tts.gate.is_set()
        tts.gate.set()
        rest = await c.read_until(lambda e: e.type == "audio-stop")
    assert tts.requested == ["The first sentence is short.", "The second one waits for the gate."]
    assert rest.types[-1] == "audio-stop" and "audio-start" not in rest.types


async def test_streamed_text_is_spoken_sentence_by_sentence_as_it_arrives(hub_with):
    tts = GatedTTS(FakeSettings())
    hub = await hub_with(tts)
    pieces = ["Hello the", "re my friend. How are", " you doing today?"]
    seen_before_end: list[str] = []
    calls = 0

    async def between() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:                      # "Hello there my friend." is complete now, the rest is not
            async with asyncio.timeout(30):
                while not tts.requested:
                    await asyncio.sleep(0.01)
            seen_before_end.extend(tts.requested)
            tts.gate.set()
    async with WyomingClient(wyoming_port(hub)) as c:
        answer = await c.synthesize_streamed(pieces, between=between)
    assert seen_before_end == ["Hello there my friend."]     # spoken before the text was complete
    # The trailing whole-text synthesize (sent for older servers) is not spoken a second time.
    assert tts.requested == ["Hello there my friend.", "How are you doing today?"]
    assert answer.types.count("audio-start") == 1 and answer.types[-2:] == ["audio-stop", "synthesize-stopped"]
    expected = len("Hello there my friend.How are you doing today?") * 0.060
    assert abs(pcmlib.duration_ms(answer.audio, 24000) / 1000 - expected) < 0.01


async def test_a_wyoming_client_queues_fairly_and_gets_the_busy_answer(hub_with):
    hub = await hub_with(PooledTTS(FakeSettings()))
    compute = hub.ctx.compute
    async with WyomingClient(wyoming_port(hub)) as c:
        async with compute.slot("tts"):                      # a device holds the TTS engine
            waiting = asyncio.ensure_future(c.synthesize("Wait for your turn."))
            await asyncio.sleep(0.3)
            assert not waiting.done()                        # queued behind it, not refused
        answer = await waiting
        assert answer.error is None and answer.types[-1] == "audio-stop"

    compute.set_limit("tts", 1, max_wait=0.05)               # the same settings that make devices hear "busy"
    async with compute.slot("tts"):
        async with WyomingClient(wyoming_port(hub)) as c:
            answer = await c.synthesize("No room now.")
            assert answer.error is not None and answer.error.code == "busy" and BUSY_TEXT in answer.error.text
            assert await c.closed()


async def test_describe_is_answered_at_once_while_the_engines_are_busy(hub_with):
    hub = await hub_with(PooledTTS(FakeSettings()))
    async with WyomingClient(wyoming_port(hub)) as busy:
        answer = Answer()
        async with hub.ctx.compute.slot("tts"), hub.ctx.compute.slot("asr"):   # both engines taken
            await busy.write(Synthesize(text="Blocked for now.").event())
            reading = asyncio.ensure_future(busy.read_until(lambda e: e.type == "audio-stop", answer=answer))
            async with WyomingClient(wyoming_port(hub)) as other:
                info, _ = await other.describe()                 # another connection
            assert info.tts
            await busy.write(Describe().event())                 # and the connection whose request waits
            async with asyncio.timeout(10):
                while "info" not in answer.types:
                    await asyncio.sleep(0.01)
            assert not reading.done() and "audio-start" not in answer.types
        await reading
    assert answer.types[0] == "info" and answer.types[-1] == "audio-stop"


async def test_three_clients_and_a_device_are_served_at_once(wyoming_hub):
    hub = await wyoming_hub()
    port = wyoming_port(hub)

    async def stt() -> str:
        async with WyomingClient(port) as c:
            return Transcript.from_event((await c.transcribe(SPEECH)).of("transcript")[0]).text

    async def tts() -> float:
        async with WyomingClient(port) as c:
            return pcmlib.duration_ms((await c.synthesize("One two three.")).audio, 24000)

    async def device() -> str | None:
        async with SimulatedDevice(ws_url(hub)) as dev:
            return (await dev.run_turn(SPEECH, mode="auto", timeout=60)).stt_text

    results = await asyncio.gather(stt(), tts(), stt(), device())
    assert results[0] == results[2] == HEARD and results[3] == HEARD
    assert abs(results[1] - len("One two three.") * 60) < 10


class StreamingASR:
    """A streaming engine's behaviour, scripted: each fed chunk reveals the next partial result (the
    last word still changing, one partial revising it), and ``finish`` gives the final text."""

    name, streaming = "scripted", True
    PARTIALS = ["turn", "turn of", "turn off the", "turn off the kitchen", "turn off the kitchen lie"]
    FINAL = "turn off the kitchen light"

    def open_stream(self) -> "StreamingASR.Stream":
        return StreamingASR.Stream()

    class Stream:
        def __init__(self) -> None:
            self.fed = 0

        async def feed(self, pcm: bytes) -> HubTranscript | None:
            self.fed += 1
            partials = StreamingASR.PARTIALS
            return HubTranscript(partials[min(self.fed, len(partials)) - 1], final=False)

        async def finish(self) -> HubTranscript:
            return HubTranscript(StreamingASR.FINAL, final=True, language="en")

        async def draft(self) -> HubTranscript | None:
            return None

        async def close(self) -> None:
            pass


async def test_a_streaming_engine_streams_stable_words_then_the_transcript(hub_with):
    hub = await hub_with(asr=StreamingASR())
    async with WyomingClient(wyoming_port(hub)) as c:
        info, _ = await c.describe()
        assert info.asr[0].supports_transcript_streaming is True
        answer = await c.transcribe(SPEECH[:3200 * 6], chunk_bytes=3200)     # six chunks, six partials
    types = answer.types
    assert types[0] == "transcript-start" and types[-2:] == ["transcript", "transcript-stop"]
    chunks = [e.data["text"] for e in answer.of("transcript-chunk")]
    # A word goes out once a later partial has moved past it: the still-changing last word ("of" that
    # became "off", "lie" that became "light") never does; the final words follow at audio-stop.
    assert chunks == ["turn", " off", " the", " kitchen", " light"]
    assert "".join(chunks) == StreamingASR.FINAL
    assert Transcript.from_event(answer.of("transcript")[0]).text == StreamingASR.FINAL
    assert types.index("transcript-chunk") < types.index("transcript")


async def test_the_hub_stops_with_clients_connected(tmp_path):
    hub = Hub(fake_settings(tmp_path, wyoming={"enabled": True, "port": 0}))
    await hub.start()
    async with WyomingClient(wyoming_port(hub)) as idle, WyomingClient(wyoming_port(hub)) as talking:
        await talking.write(Synthesize(text="A sentence that is being spoken while the hub stops. " * 5).event())
        await talking.read_until(lambda e: e.type == "audio-chunk")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await hub.stop()
        assert loop.time() - t0 < 15                    # grace for connections, then cancelled
        assert await idle.closed() and await talking.closed()
