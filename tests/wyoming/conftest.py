"""Helpers for the Wyoming tests: a client built on the ``wyoming`` package's own ``AsyncTcpClient``,
and raw-socket access for the malformed-input cases the library's client cannot produce."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from xiaozhi_hub.app import Hub

TIMEOUT = 60.0          # generous: the machine is shared


def wyoming_port(hub: Hub) -> int:
    assert hub.ctx is not None and hub.ctx.wyoming is not None, "the hub has no Wyoming server"
    return hub.ctx.wyoming.port


@pytest.fixture
async def wyoming_hub(start_hub) -> Callable[..., Any]:
    """``hub = await wyoming_hub(**sections)``: a fake-provider hub with Wyoming on a free port."""
    async def start(**sections: Any) -> Hub:
        wy = {"enabled": True, "port": 0, **sections.pop("wyoming", {})}
        return await start_hub(wyoming=wy, **sections)
    return start


@dataclass
class Answer:
    """What a server sent in answer to one request, with arrival times (monotonic seconds)."""

    events: list[tuple[float, Event]] = field(default_factory=list)
    sent_at: float = 0.0

    def of(self, event_type: str) -> list[Event]:
        return [e for _, e in self.events if e.type == event_type]

    @property
    def types(self) -> list[str]:
        return [e.type for _, e in self.events]

    @property
    def audio(self) -> bytes:
        return b"".join(AudioChunk.from_event(e).audio for e in self.of("audio-chunk"))

    def first(self, event_type: str) -> float:
        return next(t for t, e in self.events if e.type == event_type) - self.sent_at

    @property
    def error(self) -> Error | None:
        errors = self.of("error")
        return Error.from_event(errors[0]) if errors else None


class WyomingClient:
    """One connection through the wyoming package's client (as Home Assistant's integration does)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.client = AsyncTcpClient(host, port)

    async def __aenter__(self) -> "WyomingClient":
        await self.client.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.disconnect()

    async def write(self, *events: Event) -> None:
        for event in events:
            await self.client.write_event(event)

    async def read_until(self, done: Callable[[Event], bool], timeout: float = TIMEOUT,
                         answer: Answer | None = None) -> Answer:
        """Events until ``done(event)`` is true, an error arrives or the server closes."""
        answer = answer or Answer(sent_at=time.monotonic())
        async with asyncio.timeout(timeout):
            while True:
                event = await self.client.read_event()
                if event is None:
                    return answer
                answer.events.append((time.monotonic(), event))
                if done(event) or Error.is_type(event.type):
                    return answer

    async def closed(self, timeout: float = TIMEOUT) -> bool:
        """True once the server has closed the connection (nothing more to read)."""
        async with asyncio.timeout(timeout):
            while True:
                if await self.client.read_event() is None:
                    return True

    async def describe(self) -> tuple[Info, float]:
        t0 = time.monotonic()
        await self.write(Describe().event())
        answer = await self.read_until(lambda e: Info.is_type(e.type))
        return Info.from_event(answer.of("info")[0]), time.monotonic() - t0

    async def transcribe(self, pcm: bytes, *, rate: int = 16000, width: int = 2, channels: int = 1,
                         language: str | None = "en", chunk_bytes: int = 2048, stop: bool = True) -> Answer:
        if language is not None:
            await self.write(Transcribe(language=language).event())
        await self.write(AudioStart(rate=rate, width=width, channels=channels).event())
        for i in range(0, len(pcm), chunk_bytes):
            await self.write(AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[i:i + chunk_bytes]).event())
        answer = Answer(sent_at=time.monotonic())
        if not stop:
            return answer
        await self.write(AudioStop().event())
        await self.read_until(lambda e: Transcript.is_type(e.type), answer=answer)
        if answer.of("transcript-start") and answer.of("transcript"):     # a streaming engine: its stop follows
            await self.read_until(lambda e: e.type == "transcript-stop", answer=answer)
        return answer

    async def synthesize(self, text: str, voice: Any = None) -> Answer:
        answer = Answer(sent_at=time.monotonic())
        await self.write(Synthesize(text=text, voice=voice).event())
        return await self.read_until(lambda e: AudioStop.is_type(e.type), answer=answer)

    async def synthesize_streamed(self, pieces: list[str], *, between: Callable[[], Any] | None = None) -> Answer:
        """Home Assistant's streamed order: start, chunks, the whole text again, stop; read in parallel."""
        answer = Answer(sent_at=time.monotonic())

        async def write() -> None:
            await self.write(SynthesizeStart().event())
            for piece in pieces:
                await self.write(SynthesizeChunk(text=piece).event())
                if between is not None:
                    await between()
            await self.write(Synthesize(text="".join(pieces)).event(), SynthesizeStop().event())

        writer = asyncio.ensure_future(write())
        try:
            await self.read_until(lambda e: SynthesizeStopped.is_type(e.type), answer=answer)
            await writer
        finally:
            writer.cancel()
        return answer


async def raw(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain TCP connection that writes ``data`` as is."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def raw_events(reader: asyncio.StreamReader, timeout: float = TIMEOUT) -> AsyncIterator[Event]:
    from wyoming.event import async_read_event

    async with asyncio.timeout(timeout):
        while True:
            event = await async_read_event(reader)
            if event is None:
                return
            yield event
