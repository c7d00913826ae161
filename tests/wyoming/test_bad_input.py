"""Bad Wyoming input: each case is answered with an ``error`` event (or the connection is closed),
nothing is read beyond the limits, and other clients (Wyoming and devices) are served meanwhile."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStop, SynthesizeVoice

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.simulator import SimulatedDevice

from ..conftest import ws_url
from .conftest import WyomingClient, raw, raw_events, wyoming_port

SPEECH = pcmlib.voice_like(1200)


async def error_of(reader: asyncio.StreamReader) -> Error:
    """The error event a raw connection receives, checking that the hub then closes it."""
    events = [e async for e in raw_events(reader)]
    assert events and Error.is_type(events[-1].type), [e.type for e in events]
    return Error.from_event(events[-1])


async def still_serves(hub) -> None:
    """Another client is answered normally (describe, and a transcription)."""
    async with WyomingClient(wyoming_port(hub)) as c:
        info, _ = await c.describe()
        assert info.asr
        answer = await c.transcribe(SPEECH)
        assert Transcript.from_event(answer.of("transcript")[0]).text == "turn on the kitchen light"


@pytest.mark.parametrize("data,code,fragment", [
    (b"this is not json\n", "bad-event", "not JSON"),
    (b'{"data": {}}\n', "bad-event", '"type"'),
    (b'["audio-chunk"]\n', "bad-event", '"type"'),
    (b'{"type": "audio-chunk", "data": [1, 2]}\n', "bad-event", '"data"'),
    (b'{"type": "audio-chunk", "payload_length": -5}\n', "bad-event", "payload_length"),
    (b'{"type": "audio-chunk", "payload_length": "lots"}\n', "bad-event", "payload_length"),
    (b'{"type": "audio-chunk", "payload_length": 10000000000}\n', "too-large", "payload_length"),
    (b'{"type": "synthesize", "data_length": 99999999}\n', "too-large", "data_length"),
    (b'{"type": "synthesize", "data_length": 5}\nnope!', "bad-event", "not JSON"),
    (b'{"type": "describe", "data_length": 20}\n{"short":', "bad-event", "middle of an event"),
], ids=["not-json", "no-type", "not-object", "data-not-object", "negative-length", "string-length",
        "huge-payload", "huge-data", "data-not-json", "truncated"])
async def test_malformed_frames_get_an_error_and_a_close(wyoming_hub, data, code, fragment):
    hub = await wyoming_hub()
    reader, writer = await raw(wyoming_port(hub), data)
    if fragment == "middle of an event":
        writer.write_eof()                     # the client stops sending before the announced data
    err = await error_of(reader)
    writer.close()
    assert err.code == code and fragment in err.text, err
    await still_serves(hub)


async def test_an_endless_header_is_refused_after_the_limit(wyoming_hub):
    hub = await wyoming_hub(wyoming={"max_event_bytes": 4096})
    reader, writer = await raw(wyoming_port(hub), b'{"type": "' + b"x" * 100_000)
    err = await error_of(reader)
    writer.close()
    assert err.code == "too-large" and "4096" in err.text
    await still_serves(hub)


async def request_error(hub, *events: Event) -> Error:
    """Send ``events`` through the library's client; return the error the hub answers, and check it closes."""
    async with WyomingClient(wyoming_port(hub)) as c:
        await c.write(*events)
        answer = await c.read_until(lambda e: False)
        assert answer.error is not None, answer.types
        assert await c.closed()
        return answer.error


def chunk(rate: int = 16000, width: int = 2, channels: int = 1, audio: bytes = b"\0" * 640) -> Event:
    return AudioChunk(rate=rate, width=width, channels=channels, audio=audio).event()


@pytest.mark.parametrize("events,code,fragment", [
    ([AudioStart(rate=16000, width=5, channels=1).event()], "bad-audio", "width"),
    ([AudioStart(rate=10, width=2, channels=1).event()], "bad-audio", "rate"),
    ([Event("audio-start", {"rate": "fast", "width": 2, "channels": 1})], "bad-audio", "rate"),
    ([AudioStart(rate=16000, width=2, channels=0).event()], "bad-audio", "channels"),
    ([AudioStart(rate=16000, width=2, channels=1).event(), chunk(rate=8000)], "bad-audio", "differs"),
    ([Event("audio-stop", {})], "bad-request", "without audio"),
    ([Transcribe(language="fr").event()], "unsupported", "language"),
    ([Transcribe(name="another-model").event()], "unsupported", "model"),
    ([Event("synthesize", {})], "bad-event", "text"),
    ([Synthesize(text="Hi.", voice=SynthesizeVoice(name="nobody")).event()], "unsupported", "voice"),
    ([SynthesizeChunk(text="Hello.").event()], "bad-request", "without synthesize-start"),
    ([SynthesizeStop().event()], "bad-request", "without synthesize-start"),
], ids=["width", "rate", "rate-type", "channels", "format-change", "stop-alone", "language", "model",
        "no-text", "voice", "chunk-alone", "stop-without-start"])
async def test_bad_requests_get_an_error_event(wyoming_hub, events, code, fragment):
    hub = await wyoming_hub()
    err = await request_error(hub, *events)
    assert err.code == code and fragment in err.text, err
    await still_serves(hub)


async def test_too_much_audio_or_text_is_refused(wyoming_hub):
    hub = await wyoming_hub(wyoming={"max_audio_seconds": 2, "max_text_chars": 100})
    events = [AudioStart(rate=16000, width=2, channels=1).event()] + [chunk(audio=b"\1\0" * 8000)] * 6
    err = await request_error(hub, *events)
    assert err.code == "too-large" and "2 s of audio" in err.text
    err = await request_error(hub, Synthesize(text="word " * 50).event())
    assert err.code == "too-large" and "100 characters" in err.text
    await still_serves(hub)


async def test_unknown_events_are_ignored(wyoming_hub):
    hub = await wyoming_hub()
    async with WyomingClient(wyoming_port(hub)) as c:
        await c.write(Event("select-program", {"name": "xiaozhi-hub-asr"}), Event("detect", {}))
        info, _ = await c.describe()
        assert info.asr


async def test_an_idle_connection_is_closed_with_an_error(wyoming_hub):
    hub = await wyoming_hub(wyoming={"idle_timeout": 0.5})
    async with WyomingClient(wyoming_port(hub)) as c:
        t0 = time.monotonic()
        answer = await c.read_until(lambda e: False)
        assert answer.error is not None and answer.error.code == "timeout"
        assert await c.closed() and time.monotonic() - t0 < 30


async def test_more_clients_than_allowed_get_describe_and_then_busy(wyoming_hub):
    hub = await wyoming_hub(wyoming={"max_clients": 2})
    port = wyoming_port(hub)
    async with WyomingClient(port) as a, WyomingClient(port) as b:
        await a.describe()
        await b.describe()                         # both are being served now
        async with WyomingClient(port) as c:
            info, _ = await c.describe()           # a third still learns what the hub offers
            assert info.asr
            await c.write(Synthesize(text="Hello.").event())
            answer = await c.read_until(lambda e: False)
            assert answer.error is not None and answer.error.code == "busy"
        answer = await a.synthesize("Still fine.")
        assert answer.error is None and answer.types[-1] == "audio-stop"


async def test_abrupt_closes_stop_the_work_and_never_touch_a_device(wyoming_hub):
    hub = await wyoming_hub()
    port = wyoming_port(hub)
    async with SimulatedDevice(ws_url(hub)) as dev:
        turn = asyncio.ensure_future(dev.run_turn(SPEECH, mode="auto", timeout=60))
        for _ in range(5):
            # Half an utterance, then gone; a long synthesis, then gone after its first audio; a torn frame.
            reader, writer = await raw(port, b"")
            writer.write(b"".join(_wire(e) for e in (Transcribe(language="en").event(),
                                                        AudioStart(rate=16000, width=2, channels=1).event(),
                                                        chunk(audio=SPEECH[:16000]))))
            writer.transport.abort()
            async with WyomingClient(port) as c:
                await c.write(Synthesize(text="A long answer. " * 20).event())
                await c.read_until(lambda e: e.type == "audio-chunk")
            reader, writer = await raw(port, b'{"type": "audio-chunk", "payload_length": 64000}\n' + b"\0" * 100)
            writer.transport.abort()
        record = await turn
        assert record.stt_text == "turn on the kitchen light" and record.played
    async with asyncio.timeout(10):                # every abandoned connection was wound up
        while hub.ctx.wyoming.clients:
            await asyncio.sleep(0.05)
    await still_serves(hub)


def _wire(event: Event) -> bytes:
    """An event as bytes on the wire (header line, data, payload), for raw writes."""
    data = json.dumps(event.data or {}).encode()
    header = {"type": event.type, "data_length": len(data)}
    if event.payload:
        header["payload_length"] = len(event.payload)
    return json.dumps(header).encode() + b"\n" + data + (event.payload or b"")
