"""One turn, orchestrated: final transcript → ``stt`` → the agent's reply, spoken → the session's next step.

A turn is one asyncio task (the reply's producer is its child). Cancelling it (abort, barge-in,
close) stops the ASR, the LLM, the TTS and the sending at once; the canceller sends ``tts stop``
itself. The reply machinery (production, pacing, timing, speculation, fixed phrases) lives in
:mod:`xiaozhi_hub.pipeline`; this module decides which reply a turn gets and in which order:

* the usual order: ``stt``, then the answer;
* the answer speculated on the draft transcript, when the final transcript says the same words;
* "One moment." first, when the transcript is still queued ``session.filler_after_ms`` after the
  end of speech (the answer follows as soon as it is known);
* the busy or error phrase when the ASR cannot transcribe; nothing when nothing was said.

Latencies are recorded from the end of speech, which is what a user feels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, AsyncIterator

from ..metrics import Metrics
from ..pipeline.phrases import BUSY_TEXT, ERROR_TEXT, GOODBYE_TEXT, phrase
from ..pipeline.reply import speak_reply
from ..pipeline.sentences import same_words
from ..pipeline.speculation import Speculation
from ..pipeline.timing import TurnTiming
from ..protocol.close import CloseCode
from ..protocol.messages import Stt
from ..providers.base import BusyError, ProviderError, Transcript
from .utterance import Utterance

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)


async def run_turn(session: "Session", utt: Utterance, speculation: Speculation | None = None) -> None:
    """Answer one utterance (``speculation``: an answer already started on its draft, or None)."""
    metrics = session.ctx.metrics
    timing = TurnTiming(metrics, utt.ended_at or time.monotonic())
    session.turn_log.append(timing.stamps)
    asr = asyncio.ensure_future(utt.finish())
    try:
        if not await _transcribed_in_time(session, asr, timing):
            # Transcription is queued behind other devices: start speaking now ("One moment.")
            # and answer as soon as the transcript is there.
            await _miss(speculation, metrics)
            await speak_reply(session, _reply_after_asr(session, asr, timing), timing)
            return
        # The usual order: stt, then tts start and the answer.
        try:
            transcript = await asr
        except (BusyError, ProviderError) as err:
            await _miss(speculation, metrics)
            await speak_reply(session, _asr_failure(session, err), timing)
            return
        timing.mark("asr_final")
        text = transcript.text.strip()
        if not text:
            await _miss(speculation, metrics)
            await session.after_reply()
            return
        await _heard(session, text)
        if speculation is not None and same_words(speculation.text, text):
            # The answer started during the trailing silence is the right one: play it.
            metrics.inc("speculation_hits")
            await speculation.adopt(timing).play()
            return
        await _miss(speculation, metrics)
        await speak_reply(session, session.ctx.agent.reply(session.link, text), timing)
    finally:
        if speculation is not None and not speculation.decided:
            await speculation.discard()     # cancelled (abort, barge-in, close) before it was decided
        if not asr.done():
            asr.cancel()
        await utt.close()


async def run_text_turn(session: "Session", text: str) -> None:
    """A typed question (``listen detect`` with text that is not a wake word): ``stt`` echoes it,
    then it is answered like speech."""
    await _heard(session, text)
    await speak_reply(session, session.ctx.agent.reply(session.link, text))


async def say_goodbye(session: "Session") -> None:
    """The idle close: "Goodbye." (so the device does not just go quiet), then close with 4008."""
    if session.ctx.settings.session.idle_goodbye:
        try:
            async with asyncio.timeout(10.0):
                await speak_reply(session, _once(phrase(session.ctx.settings, GOODBYE_TEXT)))
        except (TimeoutError, ProviderError, ConnectionError) as err:
            log.info("%s: goodbye not spoken: %s", session, err)
    await session.close(CloseCode.IDLE, "idle")


async def _transcribed_in_time(session: "Session", asr: "asyncio.Future[Transcript]", timing: TurnTiming) -> bool:
    """Whether the transcript is ready before the filler is due (always, with the filler off)."""
    filler_after = session.ctx.settings.session.filler_after_ms / 1000.0
    if not filler_after:
        return True
    deadline = timing.stamps["end_of_speech"] + filler_after
    done, _ = await asyncio.wait({asr}, timeout=max(0.0, deadline - time.monotonic()))
    return bool(done)


async def _heard(session: "Session", text: str) -> None:
    """Tell the device what was understood (``stt``) and count the turn."""
    await session.send(Stt(text, session_id=session.id))
    session.ctx.metrics.inc("turns")
    session.ctx.live.heard(session.device_id, text)


async def _miss(speculation: Speculation | None, metrics: Metrics) -> None:
    """Discard a speculative answer that turned out not to be wanted."""
    if speculation is not None and not speculation.decided:
        metrics.inc("speculation_misses")
        await speculation.discard()


async def _asr_failure(session: "Session", err: BaseException) -> AsyncIterator[str]:
    if isinstance(err, BusyError):
        session.ctx.metrics.inc("busy_answers")
        yield phrase(session.ctx.settings, BUSY_TEXT)
    else:
        log.warning("%s: ASR failed: %s", session, err)
        session.ctx.live.error(session.device_id, "speech recognition failed")
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
    async with contextlib.aclosing(session.ctx.agent.reply(session.link, text)) as reply:
        async for delta in reply:
            yield delta


async def _once(text: str) -> AsyncIterator[str]:
    yield text
