"""One spoken answer: reply text → sentences → TTS → Opus frames, paced to the device.

A :class:`Reply` has two halves. The *producer* turns the streamed reply text into sentences, each
sentence into Opus frames, into a bounded queue; it can start before the answer is allowed to play
(a speculative answer is prepared during the user's trailing silence, :mod:`.speculation`). The
*player* sends ``tts start``, each sentence (``llm`` face, ``sentence_start``, audio paced at real
time by :mod:`.speaker`) and ``tts stop``, then hands control back to the conversation
(:class:`ReplyChannel`), which decides whether to listen again, go idle or close.

The reply runs inside the session's Turn task: cancelling that task (abort, barge-in, close) stops
the LLM, the TTS and the sending at once; the canceller sends ``tts stop`` itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, AsyncIterator, Callable, Protocol

from ..protocol.messages import Alert, Llm, Message, Tts, TtsState
from ..providers.base import BusyError, ProviderError
from .phrases import BUSY_TEXT, ERROR_TEXT, FILLER_TEXT, phrase
from .sentences import SentenceSplitter, clean_for_speech, emotion_of
from .speaker import END, EndOfSpeech, FrameMaker, Pacer, SentenceStart, speak, synthesize_frames
from .timing import TurnTiming

if TYPE_CHECKING:
    from ..context import HubContext
    from ..metrics import Metrics

log = logging.getLogger(__name__)

Item = SentenceStart | bytes | EndOfSpeech

LOOKAHEAD_MS = 4000     # audio the producer may have ready beyond the device's pre-buffer
GAP_S = 0.160           # a pause this long between two frames of one answer is audible (issue 13)
URGENT_BELOW_S = 1.5    # less audio ready than this when a sentence is synthesized: it is urgent too


def lookahead_frames(frame_ms: int) -> int:
    """Frames the producer keeps ready ahead of the pacer (~80 bytes each).

    With a few frames only, the next sentence was synthesized when the current one had ~0.5 s left
    to play; with several devices the TTS engine is queued up and that sentence came late: an
    audible gap. ~4 s ahead, the next sentence is made while this one plays."""
    return max(4, LOOKAHEAD_MS // frame_ms)


class ReplyChannel(Protocol):
    """The conversation a reply is spoken into (:class:`xiaozhi_hub.session.session.Session`)."""

    ctx: "HubContext"
    id: str                                       # the session id every message carries
    device_id: str
    turn_log: collections.deque[dict[str, float]]  # the stamps of recent turns (bench, tests)

    async def send(self, message: Message) -> None: ...

    async def send_audio(self, opus: bytes, timestamp: int = 0) -> None: ...

    def reply_started(self) -> None:
        """``tts start`` was sent: the device is speaking now."""

    async def reply_finished(self, said: str) -> None:
        """``tts stop`` was sent after the whole answer (``said``: its sentences as sent): what comes
        next is the channel's rule."""

    def reply_cut(self, said: str) -> None:
        """The answer was cancelled part way (abort, barge-in, an announcement, close) after ``said``."""


async def close_stream(stream: AsyncIterator[object]) -> None:
    """Close a reply (or LLM) stream that may not have been iterated to its end (an async generator
    holds the LLM until it is closed)."""
    if isinstance(stream, AsyncGenerator):
        await stream.aclose()


class Reply:
    """One spoken answer (see the module docstring). Nothing reaches the device before :meth:`play`;
    :meth:`discard` throws an unplayed answer away."""

    def __init__(self, channel: ReplyChannel, deltas: AsyncIterator[str], timing: TurnTiming | None = None) -> None:
        self.channel = channel
        self.deltas = deltas
        self.ctx = channel.ctx
        self.settings = self.ctx.settings
        self.metrics = self.ctx.metrics
        if timing is None:
            timing = TurnTiming(self.metrics, None)
            channel.turn_log.append(timing.stamps)
        self.timing = timing
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=self.settings.audio.prebuffer_frames
                                                        + lookahead_frames(self.settings.audio.frame_duration_ms))
        self._sentences: asyncio.Queue[str | None] = asyncio.Queue()   # text is tiny: unbounded
        self._producer: asyncio.Task[None] | None = None
        self._tts_started = 0.0
        self._audio_started = False
        self._gaps = GapWatch(self.metrics)
        self._pacer: Pacer | None = None
        self.said: list[str] = []     # the sentences sent to the device

    # -- the producer ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start preparing the answer (idempotent)."""
        if self._producer is None:
            self._producer = asyncio.create_task(self._produce(), name=f"produce:{self.channel.device_id}")

    async def discard(self) -> None:
        """Drop an answer that was never played: stop the LLM and TTS work behind it."""
        producer = self._producer
        if producer is None:
            with contextlib.suppress(Exception):
                await close_stream(self.deltas)
            return
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await producer

    async def _pump(self) -> None:
        """Reply text → sentences, as fast as the LLM writes. Decoupled from audio pacing so the LLM
        slot is released when generation ends, not when the device has finished playing the reply."""
        splitter = SentenceSplitter()
        try:
            try:
                # Once the answer plays, its next stretch of text goes ahead of new questions in the
                # LLM's queue when this device is about to run out of audio (compute.PROMOTE_BELOW_S).
                with self.ctx.compute.playing(self.audio_left):
                    async for delta in self.deltas:
                        self.timing.mark("first_token")
                        # The agent yields whole pieces (docs/agent.md, Spoken answers): each one ends
                        # where a sentence may, so it is released now, not when the next one comes.
                        for sentence in [*splitter.feed(delta), *splitter.flush()]:
                            self._sentences.put_nowait(sentence)
            finally:
                # A cancelled reply closes the agent's generator (and the LLM stream) right away.
                await close_stream(self.deltas)
        except BusyError:
            self.metrics.inc("busy_answers")
            self._sentences.put_nowait(phrase(self.settings, BUSY_TEXT))
        except ProviderError as err:
            log.warning("%s: reply failed: %s", self.channel, err)
            self._sentences.put_nowait(phrase(self.settings, ERROR_TEXT))
        finally:
            self._sentences.put_nowait(None)

    async def _produce(self) -> None:
        maker = FrameMaker(self.ctx.providers.tts.sample_rate, self.settings.audio.downlink_sample_rate,
                           self.settings.audio.frame_duration_ms, self.ctx.compute)
        writer = asyncio.create_task(self._pump(), name=f"pump:{self.channel.device_id}")
        first = True
        try:
            while (sentence := await self._sentences.get()) is not None:
                try:
                    first = await self._say(sentence, maker, first)
                except BusyError:
                    self.metrics.inc("busy_answers")
                    log.warning("%s: TTS busy, sentence skipped", self.channel)
                except ProviderError as err:
                    log.warning("%s: TTS failed: %s", self.channel, err)
        finally:
            if not writer.done():
                writer.cancel()
        # Only a finished producer signals the end: after a cancellation the consumer is gone and a
        # put into a full queue would never return.
        await self.queue.put(END)

    async def _say(self, sentence: str, maker: FrameMaker, first: bool) -> bool:
        """Queue one sentence and its frames; returns whether the first spoken sentence is still to come."""
        spoken = clean_for_speech(sentence)
        emotion = emotion_of(sentence)
        face = (emotion or "happy", sentence if emotion else None) if (first or emotion) else None
        if not spoken:
            if face is not None:
                await self.queue.put(SentenceStart("", face))
            return first
        self.timing.mark("first_sentence")
        # The user is waiting for this one, or will be before it is ready (after a short first piece
        # such as "Sure!"): other work pauses while it is synthesized.
        pressing = first or self.ready_s() < URGENT_BELOW_S
        await self.queue.put(SentenceStart(spoken, face))
        with contextlib.ExitStack() as urgent:
            if pressing:
                urgent.enter_context(self.ctx.compute.urgent())
            async for frame in synthesize_frames(self.ctx.providers.tts, spoken, maker):
                self.timing.mark("first_synth")
                urgent.close()
                await self.queue.put(frame)
        return False

    def audio_left(self) -> float | None:
        """Seconds of this answer's audio left to play, None before it plays."""
        return self.ready_s() if self._audio_started else None

    def ready_s(self) -> float:
        """Seconds of this answer's audio made but not yet played: the frames queued for the player
        (a sentence start counts as one) and what the device has buffered."""
        ahead = self._pacer.drained_in() if self._pacer is not None else 0.0
        return self.queue.qsize() * self.settings.audio.frame_duration_ms / 1000.0 + ahead

    # -- the player --------------------------------------------------------------------------------
    async def play(self) -> str:
        """``tts start``, the answer paced at real time, ``tts stop``; then the channel's next step.
        Returns what was spoken ("" when no audio reached the device)."""
        channel = self.channel
        await channel.send(Tts(TtsState.START, session_id=channel.id))
        self._tts_started = time.monotonic()
        channel.reply_started()
        self.start()
        producer = self._producer
        assert producer is not None
        pacer = self._pacer = Pacer(self.settings.audio.frame_duration_ms, self.settings.audio.prebuffer_frames)
        try:
            await speak(_Feed(self).next, self._send_sentence, self._send_frame, pacer)
            await producer
            # Let the device play what it buffered before it leaves "speaking".
            drain = pacer.drained_in()
            if drain > 0:
                await asyncio.sleep(drain)
        except asyncio.CancelledError:
            producer.cancel()
            channel.reply_cut(" ".join(self.said))
            raise
        except Exception:
            producer.cancel()
            log.exception("%s: turn failed", channel)
            self.ctx.live.error(channel.device_id, "the reply failed")
            await channel.send(Alert("error", ERROR_TEXT, "sad", session_id=channel.id))
        await channel.send(Tts(TtsState.STOP, session_id=channel.id))
        self.timing.mark("tts_stop")
        self.metrics.inc("frames_out", pacer.frames_sent)
        said = " ".join(self.said)
        await channel.reply_finished(said)
        return said if pacer.frames_sent else ""

    async def _send_sentence(self, item: SentenceStart) -> None:
        self._gaps.sentence()
        channel = self.channel
        if item.face is not None:
            emotion, text = item.face
            await channel.send(Llm(emotion, text, session_id=channel.id))
        if item.text:
            self.said.append(item.text)
            await channel.send(Tts(TtsState.SENTENCE_START, item.text, session_id=channel.id))

    async def _send_frame(self, frame: bytes) -> None:
        if not self._audio_started:
            self._audio_started = True
            wait = self.settings.session.tts_start_gap_ms / 1000.0 - (time.monotonic() - self._tts_started)
            if wait > 0:
                await asyncio.sleep(wait)  # let the device enter "speaking" before audio arrives
        await self.channel.send_audio(frame)
        self._gaps.frame()
        self.timing.mark("first_audio")

    async def filler(self) -> list[SentenceStart | bytes]:
        """ "One moment." as a sentence and its cached frames."""
        self.metrics.inc("fillers")
        text = phrase(self.settings, FILLER_TEXT)
        return [SentenceStart(text), *await self.ctx.phrases.frames(text)]


class GapWatch:
    """Audible pauses in an answer as the hub sent it, by what the answer was waiting for
    (``/metrics``: ``reply_gap_text``, ``reply_gap_audio``, ``reply_gap_frames``):

    * ``text``: the next sentence reached the player only after the pause began (its words were not
      written yet, or the producer was still on the sentence before);
    * ``audio``: the sentence was there, its first frame was not (its synthesis came late);
    * ``frames``: a pause inside a sentence (the TTS, the encoder or the event loop fell behind).
    """

    def __init__(self, metrics: "Metrics", clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.clock = clock
        self.last_frame: float | None = None
        self.sentence_at: float | None = None   # when the sentence now starting reached the player

    def sentence(self) -> None:
        self.sentence_at = self.clock()

    def restart(self) -> None:
        """The pause before the next frame is intended (after "One moment.")."""
        self.last_frame = None

    def frame(self) -> None:
        now = self.clock()
        last, self.last_frame = self.last_frame, now
        at, self.sentence_at = self.sentence_at, None
        if last is None or now - last <= GAP_S:
            return
        cause = "frames" if at is None else "text" if at - last > GAP_S else "audio"
        self.metrics.observe(f"reply_gap_{cause}", now - last)


class _Feed:
    """The producer's queue as the player reads it. Before the first item, once the user has waited
    ``session.filler_after_ms`` since the end of speech, "One moment." is played first (once)."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.pending: collections.deque[SentenceStart | bytes] = collections.deque()
        filler_after = reply.settings.session.filler_after_ms / 1000.0
        end_of_speech = reply.timing.stamps.get("end_of_speech")
        self.deadline = end_of_speech + filler_after if filler_after and end_of_speech is not None else None
        self.filled = False

    async def next(self) -> Item:
        if self.pending:
            return self.pending.popleft()
        queue = self.reply.queue
        if self.filled:     # the wait after "One moment." is what the filler is for: not a gap
            self.filled = False
            item = await queue.get()
            self.reply._gaps.restart()
            return item
        if self.deadline is None:
            return await queue.get()
        deadline, self.deadline = self.deadline, None
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await queue.get()
        except TimeoutError:
            filler = await self.reply.filler()
            if not filler:
                return await queue.get()
            self.pending.extend(filler[1:])
            self.filled = True
            return filler[0]


async def speak_reply(channel: ReplyChannel, deltas: AsyncIterator[str], timing: TurnTiming | None = None) -> str:
    """Speak a streamed reply now (see :class:`Reply`); returns what was spoken."""
    return await Reply(channel, deltas, timing).play()
