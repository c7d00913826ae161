"""One turn: final transcript → ``stt`` → agent reply → sentences → TTS → paced Opus → ``tts stop``.

A turn is one asyncio task (plus its producer child). Cancelling it (abort, barge-in, close) stops
LLM, TTS and sending at once; the canceller sends ``tts stop`` itself. Latencies are recorded from
the end of speech, which is what a user feels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, AsyncIterator

from ..metrics import Metrics
from ..pipeline.agent import Agent
from ..pipeline.sentences import SentenceSplitter, clean_for_speech, emotion_of
from ..pipeline.speaker import END, EndOfSpeech, FrameMaker, Pacer, SentenceStart, speak, synthesize_frames
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
PHRASES_ZH = {BUSY_TEXT: "抱歉，我现在有点忙，请稍后再问我。", ERROR_TEXT: "抱歉，出了点问题，请再试一次。",
              FILLER_TEXT: "请稍等。"}


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


async def run_turn(session: "Session", utt: Utterance) -> None:
    ctx = session.ctx
    timing = TurnTiming(ctx.extras["metrics"], utt.ended_at or time.monotonic())
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
                await speak_reply(session, _reply_after_asr(session, asr, timing), timing)
                return
        # The usual order: stt, then tts start and the answer.
        try:
            transcript = await asr
        except (BusyError, ProviderError) as err:
            await speak_reply(session, _asr_failure(session, err), timing)
            return
        timing.mark("asr_final")
        text = transcript.text.strip()
        if not text:
            _after_reply_state(session)
            return
        await session.send(Stt(text, session_id=session.id))
        ctx.extras["metrics"].inc("turns")
        agent: Agent = ctx.extras["agent"]
        await speak_reply(session, agent.reply(session, text), timing)
    finally:
        if not asr.done():
            asr.cancel()
        await utt.close()


async def _asr_failure(session: "Session", err: BaseException) -> AsyncIterator[str]:
    if isinstance(err, BusyError):
        session.ctx.extras["metrics"].inc("busy_answers")
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
    await session.send(Stt(text, session_id=session.id))
    session.ctx.extras["metrics"].inc("turns")
    agent: Agent = session.ctx.extras["agent"]
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


async def speak_reply(session: "Session", deltas: AsyncIterator[str], timing: TurnTiming | None = None) -> None:
    """``tts start``, then each sentence (``llm`` emotion, ``sentence_start``, paced audio), then ``tts stop``."""
    ctx = session.ctx
    settings = ctx.settings
    metrics = ctx.extras["metrics"]
    if timing is None:
        timing = TurnTiming(metrics, None)
        session.turn_log.append(timing.stamps)
    tts = ctx.providers.tts
    await session.send(Tts(TtsState.START, session_id=session.id))
    t_tts_start = time.monotonic()
    if session.state is not SessionState.SPEAKING:
        session.set_state(SessionState.SPEAKING)
    gap = settings.session.tts_start_gap_ms / 1000.0
    queue: asyncio.Queue[SentenceStart | bytes | EndOfSpeech] = asyncio.Queue(
        maxsize=settings.audio.prebuffer_frames + 4)
    pacer = Pacer(settings.audio.frame_duration_ms, settings.audio.prebuffer_frames)
    first_sentence = True

    async def say(sentence: str, maker: FrameMaker) -> None:
        nonlocal first_sentence
        spoken = clean_for_speech(sentence)
        emotion = emotion_of(sentence)
        if first_sentence or emotion:
            await session.send(Llm(emotion or "happy", sentence if emotion else None, session_id=session.id))
        if not spoken:
            return
        first_sentence = False
        timing.mark("first_sentence")
        await queue.put(SentenceStart(spoken))
        async for frame in synthesize_frames(tts, spoken, maker):
            timing.mark("first_synth")
            await queue.put(frame)

    sentences: asyncio.Queue[str | None] = asyncio.Queue()   # text is tiny: unbounded

    async def pump() -> None:
        """LLM text → sentences, as fast as the LLM writes. Decoupled from audio pacing so the LLM
        slot is released when generation ends, not when the device has finished playing the reply."""
        splitter = SentenceSplitter()
        try:
            # aclosing: a cancelled reply closes the agent's generator (and the LLM stream) right away.
            async with contextlib.aclosing(deltas) as stream:
                async for delta in stream:
                    timing.mark("first_token")
                    for sentence in splitter.feed(delta):
                        sentences.put_nowait(sentence)
            for sentence in splitter.flush():
                sentences.put_nowait(sentence)
        except BusyError:
            metrics.inc("busy_answers")
            sentences.put_nowait(phrase(settings, BUSY_TEXT))
        except ProviderError as err:
            log.warning("%s: reply failed: %s", session, err)
            sentences.put_nowait(phrase(settings, ERROR_TEXT))
        finally:
            sentences.put_nowait(None)

    filler_after = settings.session.filler_after_ms / 1000.0
    end_of_speech = timing.stamps.get("end_of_speech")
    waited_for_first = False

    async def next_sentence() -> str | None:
        """The next sentence; before the first one, "One moment." once the user has waited too long."""
        nonlocal waited_for_first
        if waited_for_first or not filler_after or end_of_speech is None:
            return await sentences.get()
        waited_for_first = True
        try:
            async with asyncio.timeout(max(0.0, end_of_speech + filler_after - time.monotonic())):
                return await sentences.get()
        except TimeoutError:
            await say_phrase(phrase(settings, FILLER_TEXT))
            return await sentences.get()

    async def say_phrase(text: str) -> None:
        cache = ctx.extras.get("phrases")
        if cache is None:
            return
        metrics.inc("fillers")
        frames = await cache.frames(text)
        await queue.put(SentenceStart(text))
        for frame in frames:
            await queue.put(frame)

    async def produce() -> None:
        maker = FrameMaker(tts.sample_rate, settings.audio.downlink_sample_rate,
                           settings.audio.frame_duration_ms, ctx.compute)
        writer = asyncio.create_task(pump(), name=f"pump:{session.device_id}")
        try:
            while (sentence := await next_sentence()) is not None:
                try:
                    await say(sentence, maker)
                except BusyError:
                    metrics.inc("busy_answers")
                    log.warning("%s: TTS busy, sentence skipped", session)
                except ProviderError as err:
                    log.warning("%s: TTS failed: %s", session, err)
        finally:
            if not writer.done():
                writer.cancel()
        # Only a finished producer signals the end: after a cancellation the consumer is gone and a
        # put into a full queue would never return.
        await queue.put(END)

    async def send_sentence(item: SentenceStart) -> None:
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
        timing.mark("first_audio")

    producer = asyncio.create_task(produce(), name=f"produce:{session.device_id}")
    try:
        await speak(queue, send_sentence, send_frame, pacer)
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
    timing.mark("tts_stop")
    metrics.inc("frames_out", pacer.frames_sent)
    session.last_voice = time.monotonic()  # the idle timeout counts from the end of the answer
    if session.state is SessionState.SPEAKING:
        _after_reply_state(session)
    if session._end_after_reply:
        await session.close(1000, "conversation ended")
