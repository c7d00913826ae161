"""TTS → Opus frames → the device, paced at real time (docs/protocol.md, Pacing).

The device queues at most 40 packets (2.4 s) and silently drops the rest, and it has no flow control,
so the hub paces: it keeps the device's buffer at most ``lead_frames`` frames ahead of what the
device has played. ``buffer_end`` is the wall-clock time the device will have played everything
sent so far; a frame is released when ``buffer_end - now < lead``. The first ``lead_frames`` frames
therefore go out at once (pre-buffer), and if synthesis falls behind the buffer simply drains and
refills without "catching up" in a burst.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

from ..audio.opus import OpusEncoder
from ..audio.pcm import Resampler
from ..compute import ComputePool
from ..providers.base import TTS


@dataclass(frozen=True, slots=True)
class SentenceStart:
    """A sentence is about to be spoken. ``face`` = (emotion, text) of an ``llm`` message to send
    first; ``text`` may be empty when a piece of the reply only changes the face (an emoji)."""

    text: str
    face: tuple[str, str | None] | None = None


class EndOfSpeech:
    """Queue sentinel: the producer is done."""


END = EndOfSpeech()


class Pacer:
    """Real-time release schedule for one reply."""

    def __init__(self, frame_ms: int, lead_frames: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.frame_s = frame_ms / 1000.0
        self.lead_s = lead_frames * self.frame_s
        self.clock = clock
        self.buffer_end = 0.0  # when the device will have played all frames sent so far
        self.frames_sent = 0

    def delay(self) -> float:
        """Seconds to wait before the next frame may be sent (0 when it may go now).

        After a send the device holds at most ``lead`` seconds of audio, so a frame may go when the
        buffered audio is at most ``lead - frame``.
        """
        ahead = self.buffer_end - self.clock()
        return max(0.0, ahead - max(0.0, self.lead_s - self.frame_s))

    def sent(self) -> None:
        now = self.clock()
        self.buffer_end = max(self.buffer_end, now) + self.frame_s
        self.frames_sent += 1

    def drained_in(self) -> float:
        """Seconds until the device has played everything sent."""
        return max(0.0, self.buffer_end - self.clock())


async def speak(next_item: Callable[[], Awaitable["SentenceStart | bytes | EndOfSpeech"]],
                send_sentence: Callable[[SentenceStart], Awaitable[None]],
                send_frame: Callable[[bytes], Awaitable[None]],
                pacer: Pacer, on_first_frame: Callable[[], None] | None = None) -> None:
    """Take sentences and Opus frames from ``next_item`` (a queue's ``get``) and send them, paced, until END."""
    while True:
        item = await next_item()
        if isinstance(item, EndOfSpeech):
            return
        if isinstance(item, SentenceStart):
            await send_sentence(item)
            continue
        wait = pacer.delay()
        if wait > 0:
            await asyncio.sleep(wait)
        await send_frame(item)
        if pacer.frames_sent == 0 and on_first_frame is not None:
            on_first_frame()
        pacer.sent()


class FrameMaker:
    """PCM at the TTS rate → resampled to the downlink rate → whole Opus frames.

    One per reply: the encoder and resampler carry state from chunk to chunk, and a fresh pair per
    reply means a cancelled reply can never leak state into the next one.
    """

    def __init__(self, src_rate: int, dst_rate: int, frame_ms: int, compute: ComputePool) -> None:
        self.encoder = OpusEncoder(sample_rate=dst_rate, frame_ms=frame_ms)
        self.resampler = Resampler(src_rate, dst_rate) if src_rate != dst_rate else None
        self.frame_bytes = dst_rate * frame_ms // 1000 * 2
        self.compute = compute
        self._pending = b""

    def _encode(self, pcm: bytes, final: bool) -> list[bytes]:
        if self.resampler is not None:
            pcm = self.resampler.process(pcm) + (self.resampler.flush() if final else b"")
        buf = self._pending + pcm
        cut = len(buf) - len(buf) % self.frame_bytes
        frames = [self.encoder.encode(buf[i:i + self.frame_bytes]) for i in range(0, cut, self.frame_bytes)]
        rest = buf[cut:]
        if final and rest:
            frames.append(self.encoder.encode(rest))  # the encoder pads the last partial frame
            rest = b""
        self._pending = rest
        return frames

    async def frames(self, pcm: bytes, final: bool = False) -> list[bytes]:
        return await self.compute.run("opus", self._encode, pcm, final)


async def synthesize_frames(tts: TTS, text: str, maker: FrameMaker) -> AsyncIterator[bytes]:
    """Opus frames for one sentence, yielded as soon as each TTS chunk is encoded."""
    async for chunk in tts.synthesize(text):
        for frame in await maker.frames(chunk):
            yield frame
    for frame in await maker.frames(b"", final=True):
        yield frame


class PhraseCache:
    """Short fixed phrases ("One moment.", the busy answer) synthesized once and kept as Opus frames,
    so they can be spoken at once even while the TTS engine is queued up."""

    def __init__(self, tts: TTS, dst_rate: int, frame_ms: int, compute: ComputePool) -> None:
        self.tts = tts
        self.dst_rate = dst_rate
        self.frame_ms = frame_ms
        self.compute = compute
        self._frames: dict[str, list[bytes]] = {}

    def cached(self, text: str) -> list[bytes] | None:
        return self._frames.get(text)

    async def frames(self, text: str) -> list[bytes]:
        frames = self._frames.get(text)
        if frames is None:
            maker = FrameMaker(self.tts.sample_rate, self.dst_rate, self.frame_ms, self.compute)
            frames = [f async for f in synthesize_frames(self.tts, text, maker)]
            self._frames[text] = frames
        return frames
