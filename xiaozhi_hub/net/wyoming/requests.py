"""One Wyoming request at a time: a transcription (audio in, transcript out) or a synthesis (text in,
audio out), each driving the hub's shared provider through the shared compute pool.

Both write through a ``send`` callable owned by the connection, so they know nothing of sockets.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, AsyncGenerator, Awaitable, Callable, cast

from wyoming.asr import Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event

from ...pipeline.sentences import SentenceSplitter, clean_for_speech
from .audio import AudioFormat, PcmConverter

if TYPE_CHECKING:
    from ...compute import ComputePool
    from ...metrics import Metrics
    from ...providers.base import ASR, TTS

Send = Callable[[Event], Awaitable[None]]


class RequestError(Exception):
    """A request the hub cannot serve as asked; answered with an ``error`` event (code, text)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Transcription:
    """``audio-start`` → ``audio-chunk``… → ``audio-stop`` → ``transcript``.

    With a streaming engine (Vosk) the transcript also streams: ``transcript-start`` at once,
    ``transcript-chunk`` events carrying words as they become stable (every word of a partial result
    but its last, which the engine still revises), the remaining words when the audio stops, then the
    full ``transcript`` (for clients that ignore chunks) and ``transcript-stop``. The chunks are a live
    preview; ``transcript`` is authoritative (if the engine later revises a word already sent, the
    chunks stop and only ``transcript`` carries the correction).
    """

    def __init__(self, asr: "ASR", fmt: AudioFormat, send: Send, *, language: str | None,
                 max_seconds: float, metrics: "Metrics") -> None:
        self.fmt = fmt
        self.language = language
        self.streaming = bool(asr.streaming)
        self._stream = asr.open_stream()
        self._converter = PcmConverter(fmt)
        self._send = send
        self._max_seconds = max_seconds
        self._metrics = metrics
        self._bytes = 0
        self._sent_words: list[str] = []
        self.stopped_at: float | None = None

    @property
    def audio_bytes(self) -> int:
        return self._bytes

    async def begin(self) -> None:
        if self.streaming:
            await self._send(TranscriptStart(language=self.language).event())

    async def feed(self, chunk_format: AudioFormat, audio: bytes) -> None:
        if chunk_format != self.fmt:
            raise RequestError("bad-audio", f"audio-chunk format {chunk_format} differs from audio-start {self.fmt}")
        self._bytes += len(audio)
        if self.fmt.seconds(self._bytes) > self._max_seconds:
            raise RequestError("too-large", f"more than {self._max_seconds:g} s of audio in one transcription")
        pcm = self._converter.convert(audio)
        if pcm:
            partial = await self._stream.feed(pcm)
            if partial is not None and self.streaming:
                words = partial.text.split()
                await self._send_words(words[:-1])

    async def _send_words(self, words: list[str]) -> None:
        sent = self._sent_words
        if len(words) <= len(sent) or words[:len(sent)] != sent:
            return
        new = words[len(sent):]
        self._sent_words = list(words)
        await self._send(TranscriptChunk(text=(" " if sent else "") + " ".join(new)).event())

    async def finish(self) -> str:
        self.stopped_at = time.monotonic()
        tail = self._converter.flush()
        if tail:
            await self._stream.feed(tail)
        result = await self._stream.finish()
        text = result.text.strip()
        if self.streaming:
            await self._send_words(text.split())
        await self._send(Transcript(text=text, language=result.language or self.language).event())
        if self.streaming:
            await self._send(TranscriptStop().event())
        self._metrics.observe("wyoming_stt_after_stop", time.monotonic() - self.stopped_at)
        return text

    async def close(self) -> None:
        await self._stream.close()


class Synthesis:
    """Text → ``audio-start``, ``audio-chunk``… (as the engine makes them), ``audio-stop``.

    Text is split into sentences with the hub's own splitter (the one the devices' replies use), and
    each sentence is synthesized on its own, so the first audio leaves before later sentences are
    made and other clients' work interleaves between sentences. The first sentence runs as urgent
    work (compute.urgent), exactly as a device's first sentence does.
    """

    def __init__(self, tts: "TTS", compute: "ComputePool", send: Send, *, max_chars: int,
                 metrics: "Metrics") -> None:
        self._tts = tts
        self._compute = compute
        self._send = send
        self._max_chars = max_chars
        self._metrics = metrics
        self._splitter = SentenceSplitter()
        self._chars = 0
        self._samples = 0
        self._started = False
        self._t0 = time.monotonic()
        self.first_chunk_s: float | None = None

    async def add_text(self, text: str) -> None:
        self._chars += len(text)
        if self._chars > self._max_chars:
            raise RequestError("too-large", f"more than {self._max_chars} characters of text in one synthesis")
        for sentence in self._splitter.feed(text):
            await self._speak(sentence)

    async def finish(self) -> None:
        for sentence in self._splitter.flush():
            await self._speak(sentence)
        await self._start()
        await self._send(AudioStop(timestamp=self._timestamp_ms()).event())

    def _timestamp_ms(self) -> int:
        return self._samples * 1000 // self._tts.sample_rate

    async def _start(self) -> None:
        if not self._started:
            self._started = True
            await self._send(AudioStart(rate=self._tts.sample_rate, width=2, channels=1).event())

    async def _speak(self, sentence: str) -> None:
        text = clean_for_speech(sentence)
        if not text:
            return
        with contextlib.ExitStack() as stack:
            if self.first_chunk_s is None:
                stack.enter_context(self._compute.urgent())
            # Closed explicitly, so a client that goes away stops the synthesis after the current step.
            generator = cast(AsyncGenerator[bytes, None], self._tts.synthesize(text))
            async with contextlib.aclosing(generator) as chunks:
                async for pcm in chunks:
                    if not pcm:
                        continue
                    await self._start()
                    await self._send(AudioChunk(rate=self._tts.sample_rate, width=2, channels=1, audio=pcm,
                                                timestamp=self._timestamp_ms()).event())
                    self._samples += len(pcm) // 2
                    if self.first_chunk_s is None:
                        self.first_chunk_s = time.monotonic() - self._t0
                        self._metrics.observe("wyoming_tts_first_chunk", self.first_chunk_s)
                        stack.close()
