"""One turn: final transcript → ``stt`` → agent reply → sentences → TTS → paced Opus → ``tts stop``.

A turn is one asyncio task (plus its producer child). Cancelling it (abort, barge-in, close) stops
LLM, TTS and sending at once; the canceller sends ``tts stop`` itself. Latencies are recorded from
the end of speech, which is what a user feels.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import TYPE_CHECKING, AsyncIterator

from ..metrics import Metrics
from ..pipeline.agent import Agent
from ..pipeline.sentences import SentenceSplitter, clean_for_speech, emotion_of, same_words
from ..pipeline.speaker import END, EndOfSpeech, FrameMaker, Pacer, SentenceStart, speak, synthesize_frames
from ..protocol.close import CloseCode
from ..protocol.messages import Alert, ListenMode, Llm, Stt, Tts, TtsState
from ..providers.base import BusyError, ProviderError, Transcript
from ..settings import Settings
from .state import SessionState
from .utterance import Utterance

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)

BUSY_TEXT = "Sorry, I'm busy right now. Please ask me again in a moment."
ERROR_TEXT = "Sorry, something went wrong. Please try again."
FILLER_TEXT = "One moment."
GOODBYE_TEXT = "Goodbye."
PHRASES_ZH = {BUSY_TEXT: "抱歉，我现在有点忙，请稍后再问我。", ERROR_TEXT: "抱歉，出了点问题，请再试一次。",
              FILLER_TEXT: "请稍等。", GOODBYE_TEXT: "再见。"}


def phrase(settings: "Settings", text: str) -> str:
    """A fixed phrase in the hub's language (English unless the ASR language is Chinese)."""
    return PHRASES_ZH.get(text, text) if settings.asr.language.lower().startswith("zh") else text


class TurnTiming:
    """Monotonic timestamps of one turn's stages; each stage is also observed as a latency from the
    end of speech (``/metrics``: asr_final, first_token, first_sentence, first_synth, first_audio)."""

    __slots__ = ("metrics", "stamps")

    def __init__(self, metrics: Metrics, end_of_speech: float | None) -> None:
        self.metrics = metrics
        self.stamps: dict[str, float] = {}
        if end_of_speech is not None:
            self.stamps["end_of_speech"] = end_of_speech

    def mark(self, stage: str) -> None:
        if stage in self.stamps:
            return
        now = self.stamps[stage] = time.monotonic()
        start = self.stamps.get("end_of_speech")
        if start is not None:
            self.metrics.observe(stage, now - start)

    def absorb(self, other: "TurnTiming") -> None:
        """Take over the stages a speculative answer reached before the end of speech (they count as
        0 s in the metrics: the work was done before the user had finished)."""
        start = self.stamps.get("end_of_speech")
        for stage, at in other.stamps.items():
            if stage in self.stamps:
                continue
            self.stamps[stage] = at
            if start is not None and stage != "draft":
                self.metrics.observe(stage, max(0.0, at - start))


async def run_turn(session: "Session", utt: Utterance, speculation: "Speculation | None" = None) -> None:
    ctx = session.ctx
    metrics = ctx.metrics
    timing = TurnTiming(metrics, utt.ended_at or time.monotonic())
    session.turn_log.append(timing.stamps)
    asr = asyncio.ensure_future(utt.finish())
    try:
        filler_after = ctx.settings.session.filler_after_ms / 1000.0
        if filler_after:
            deadline = timing.stamps["end_of_speech"] + filler_after
            done, _ = await asyncio.wait({asr}, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                # Transcription is queued behind other devices: start speaking now ("One moment.")
                # and answer as soon as the transcript is there.
                speculation = await _drop(speculation, metrics)
                await speak_reply(session, _reply_after_asr(session, asr, timing), timing)
                return
        # The usual order: stt, then tts start and the answer.
        try:
            transcript = await asr
        except (BusyError, ProviderError) as err:
            speculation = await _drop(speculation, metrics)
            await speak_reply(session, _asr_failure(session, err), timing)
            return
        timing.mark("asr_final")
        text = transcript.text.strip()
        if not text:
            speculation = await _drop(speculation, metrics)
            _after_reply_state(session)
            return
        await _heard(session, text)
        if speculation is not None and same_words(speculation.text, text):
            # The answer started during the trailing silence is the right one: play it.
            metrics.inc("speculation_hits")
            reply, speculation = speculation.adopt(timing), None
            await reply.play()
            return
        speculation = await _drop(speculation, metrics)
        agent: Agent = ctx.agent
        await speak_reply(session, agent.reply(session, text), timing)
    finally:
        if speculation is not None:     # cancelled (abort, barge-in, close) before it was decided
            await speculation.discard()
        if not asr.done():
            asr.cancel()
        await utt.close()


async def run_text_turn(session: "Session", text: str) -> None:
    """A typed question (``listen detect`` with text that is not a wake word): ``stt`` echoes it,
    then it is answered like speech."""
    await _heard(session, text)
    agent: Agent = session.ctx.agent
    await speak_reply(session, agent.reply(session, text))


async def say_goodbye(session: "Session") -> None:
    """The idle close: "Goodbye." (so the device does not just go quiet), then close with 4008."""
    if session.ctx.settings.session.idle_goodbye:
        try:
            async with asyncio.timeout(10.0):
                await speak_reply(session, _once(phrase(session.ctx.settings, GOODBYE_TEXT)))
        except (TimeoutError, ProviderError, ConnectionError) as err:
            log.info("%s: goodbye not spoken: %s", session, err)
    await session.close(CloseCode.IDLE, "idle")


async def _heard(session: "Session", text: str) -> None:
    """Tell the device what was understood (``stt``) and count the turn."""
    await session.send(Stt(text, session_id=session.id))
    session.ctx.metrics.inc("turns")


async def _drop(speculation: "Speculation | None", metrics: Metrics) -> None:
    """Discard a speculative answer that is not wanted (returns None, to clear the caller's reference)."""
    if speculation is not None:
        metrics.inc("speculation_misses")
        await speculation.discard()
    return None


async def _asr_failure(session: "Session", err: BaseException) -> AsyncIterator[str]:
    if isinstance(err, BusyError):
        session.ctx.metrics.inc("busy_answers")
        yield phrase(session.ctx.settings, BUSY_TEXT)
    else:
        log.warning("%s: ASR failed: %s", session, err)
        yield phrase(session.ctx.settings, ERROR_TEXT)


async def _reply_after_asr(session: "Session", asr: "asyncio.Future[Transcript]",
                           timing: TurnTiming) -> AsyncIterator[str]:
    """The answer to a transcript still being computed: wait for it, send ``stt``, stream the reply."""
    try:
        transcript = await asyncio.shield(asr)
    except (BusyError, ProviderError) as err:
        async for text in _asr_failure(session, err):
            yield text
        return
    timing.mark("asr_final")
    text = transcript.text.strip()
    if not text:
        return  # nothing was said after all: the filler ends the turn
    await _heard(session, text)
    agent: Agent = session.ctx.agent
    async with contextlib.aclosing(agent.reply(session, text)) as reply:
        async for delta in reply:
            yield delta


async def _once(text: str) -> AsyncIterator[str]:
    yield text


def _after_reply_state(session: "Session") -> None:
    if session.state is SessionState.CLOSED:
        return
    if session.mode is ListenMode.MANUAL:
        session.set_state(SessionState.IDLE)
    else:
        session.set_state(SessionState.LISTENING)
        if session.utterance is None:
            session.utterance = session._new_utterance()


class Reply:
    """One spoken answer: ``tts start``, then each sentence (``llm`` face, ``sentence_start``, paced
    audio), then ``tts stop``.

    The *producer* (reply text → sentences → TTS → Opus frames, into a bounded queue) can start
    before the answer is allowed to play: a speculative answer is prepared during the user's
    trailing silence and sits in the queue until :meth:`play`. Nothing reaches the device before
    ``play``; :meth:`discard` throws an unplayed answer away.
    """

    def __init__(self, session: "Session", deltas: AsyncIterator[str], timing: TurnTiming | None = None) -> None:
        self.session = session
        self.deltas = deltas
        ctx = session.ctx
        self.settings = ctx.settings
        self.metrics: Metrics = ctx.metrics
        if timing is None:
            timing = TurnTiming(self.metrics, None)
            session.turn_log.append(timing.stamps)
        self.timing = timing
        self.queue: asyncio.Queue[SentenceStart | bytes | EndOfSpeech] = asyncio.Queue(
            maxsize=self.settings.audio.prebuffer_frames + 4)
        self._sentences: asyncio.Queue[str | None] = asyncio.Queue()   # text is tiny: unbounded
        self._producer: asyncio.Task[None] | None = None

    # -- the producer ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start preparing the answer (idempotent)."""
        if self._producer is None:
            self._producer = asyncio.create_task(self._produce(), name=f"produce:{self.session.device_id}")

    async def discard(self) -> None:
        """Drop an answer that was never played: stop the LLM and TTS work behind it."""
        producer = self._producer
        if producer is None:
            with contextlib.suppress(Exception):
                await self.deltas.aclose()  # type: ignore[attr-defined]
            return
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await producer

    async def _pump(self) -> None:
        """Reply text → sentences, as fast as the LLM writes. Decoupled from audio pacing so the LLM
        slot is released when generation ends, not when the device has finished playing the reply."""
        splitter = SentenceSplitter()
        try:
            # aclosing: a cancelled reply closes the agent's generator (and the LLM stream) right away.
            async with contextlib.aclosing(self.deltas) as stream:  # type: ignore[type-var]
                async for delta in stream:
                    self.timing.mark("first_token")
                    for sentence in splitter.feed(delta):
                        self._sentences.put_nowait(sentence)
            for sentence in splitter.flush():
                self._sentences.put_nowait(sentence)
        except BusyError:
            self.metrics.inc("busy_answers")
            self._sentences.put_nowait(phrase(self.settings, BUSY_TEXT))
        except ProviderError as err:
            log.warning("%s: reply failed: %s", self.session, err)
            self._sentences.put_nowait(phrase(self.settings, ERROR_TEXT))
        finally:
            self._sentences.put_nowait(None)

    async def _produce(self) -> None:
        ctx = self.session.ctx
        maker = FrameMaker(ctx.providers.tts.sample_rate, self.settings.audio.downlink_sample_rate,
                           self.settings.audio.frame_duration_ms, ctx.compute)
        writer = asyncio.create_task(self._pump(), name=f"pump:{self.session.device_id}")
        first = True
        try:
            while (sentence := await self._sentences.get()) is not None:
                try:
                    first = await self._say(sentence, maker, first)
                except BusyError:
                    self.metrics.inc("busy_answers")
                    log.warning("%s: TTS busy, sentence skipped", self.session)
                except ProviderError as err:
                    log.warning("%s: TTS failed: %s", self.session, err)
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
        await self.queue.put(SentenceStart(spoken, face))
        with contextlib.ExitStack() as urgent:
            if first:   # the user is waiting for this one: other work pauses until it is synthesized
                urgent.enter_context(self.session.ctx.compute.urgent())
            async for frame in synthesize_frames(self.session.ctx.providers.tts, spoken, maker):
                self.timing.mark("first_synth")
                urgent.close()
                await self.queue.put(frame)
        return False

    # -- the consumer ------------------------------------------------------------------------------
    async def play(self) -> None:
        session = self.session
        settings = self.settings
        await session.send(Tts(TtsState.START, session_id=session.id))
        t_tts_start = time.monotonic()
        if session.state is not SessionState.SPEAKING:
            session.set_state(SessionState.SPEAKING)
        self.start()
        gap = settings.session.tts_start_gap_ms / 1000.0
        pacer = Pacer(settings.audio.frame_duration_ms, settings.audio.prebuffer_frames)
        filler_after = settings.session.filler_after_ms / 1000.0
        end_of_speech = self.timing.stamps.get("end_of_speech")
        pending: collections.deque[SentenceStart | bytes] = collections.deque()
        waited = not filler_after or end_of_speech is None

        async def next_item() -> SentenceStart | bytes | EndOfSpeech:
            """The next queued item; before the first one, "One moment." once the user has waited too long."""
            nonlocal waited
            if pending:
                return pending.popleft()
            if waited:
                return await self.queue.get()
            waited = True
            assert end_of_speech is not None
            try:
                async with asyncio.timeout(max(0.0, end_of_speech + filler_after - time.monotonic())):
                    return await self.queue.get()
            except TimeoutError:
                filler = await self._filler()
                if not filler:
                    return await self.queue.get()
                pending.extend(filler[1:])
                return filler[0]

        async def send_sentence(item: SentenceStart) -> None:
            if item.face is not None:
                emotion, text = item.face
                await session.send(Llm(emotion, text, session_id=session.id))
            if item.text:
                await session.send(Tts(TtsState.SENTENCE_START, item.text, session_id=session.id))

        first = True

        async def send_frame(frame: bytes) -> None:
            nonlocal first
            if first:
                first = False
                wait = gap - (time.monotonic() - t_tts_start)
                if wait > 0:
                    await asyncio.sleep(wait)  # let the device enter "speaking" before audio arrives
            await session.send_audio(frame)
            self.timing.mark("first_audio")

        producer = self._producer
        assert producer is not None
        try:
            await speak(next_item, send_sentence, send_frame, pacer)
            await producer
            # Let the device play what it buffered before it leaves "speaking".
            drain = pacer.drained_in()
            if drain > 0:
                await asyncio.sleep(drain)
        except asyncio.CancelledError:
            producer.cancel()
            raise
        except Exception:
            producer.cancel()
            log.exception("%s: turn failed", session)
            await session.send(Alert("error", ERROR_TEXT, "sad", session_id=session.id))
        await session.send(Tts(TtsState.STOP, session_id=session.id))
        self.timing.mark("tts_stop")
        self.metrics.inc("frames_out", pacer.frames_sent)
        session.last_voice = time.monotonic()  # the idle timeout counts from the end of the answer
        if session.state is SessionState.SPEAKING:
            _after_reply_state(session)
        if session._end_after_reply:
            await session.close(CloseCode.NORMAL, "conversation ended")

    async def _filler(self) -> list[SentenceStart | bytes]:
        cache = self.session.ctx.phrases
        self.metrics.inc("fillers")
        text = phrase(self.settings, FILLER_TEXT)
        return [SentenceStart(text), *await cache.frames(text)]


async def speak_reply(session: "Session", deltas: AsyncIterator[str], timing: TurnTiming | None = None) -> None:
    """Speak a streamed reply now (see :class:`Reply`)."""
    await Reply(session, deltas, timing).play()


class Speculation:
    """An answer started on a draft transcript while the user is (probably) done but the VAD is still
    waiting out the end-of-speech silence.

    The agent runs with a *gate*: it may read the conversation and generate text (and the reply may
    be synthesized), but it stores nothing and calls no tool until the gate opens. At the end of
    speech the turn either adopts the speculation (the final transcript says the same words: open the
    gate and play) or discards it without a trace.
    """

    def __init__(self, session: "Session", text: str) -> None:
        self.text = text
        self.gate = asyncio.Event()
        self.started_at = time.monotonic()
        agent: Agent = session.ctx.agent
        self.timing = TurnTiming(session.ctx.metrics, None)
        self.timing.stamps["draft"] = self.started_at
        self.reply = Reply(session, agent.reply(session, text, gate=self.gate), self.timing)
        self.reply.start()

    def adopt(self, timing: TurnTiming) -> Reply:
        """Commit: the answer may act and be stored now; its stages count towards ``timing``."""
        timing.absorb(self.timing)
        self.reply.timing = timing
        self.gate.set()
        return self.reply

    async def discard(self) -> None:
        await self.reply.discard()
