"""Which sentences of an answer are synthesized as urgent work (the LLM pauses for them): the first,
and any that comes when less than ``URGENT_BELOW_S`` of the answer's audio is left to play, such as
the sentence after a short "Sure!" (with several devices its synthesis otherwise came late: a pause).

Fake TTS (a tone as long as the text), real frame maker, compute pool and reply producer; the
producer runs without a player, so the audio ready is exactly what it has queued (nothing timed)."""

from __future__ import annotations

import asyncio
import collections
from types import SimpleNamespace
from typing import Any, AsyncIterator

from xiaozhi_hub.compute import _URGENT, ComputePool
from xiaozhi_hub.metrics import Metrics
from xiaozhi_hub.pipeline.reply import URGENT_BELOW_S, Reply
from xiaozhi_hub.providers.fake import FakeTTS

from ..conftest import fake_settings


class RecordingTTS(FakeTTS):
    """Notes, per sentence, whether it was synthesized as urgent work."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.urgent: list[tuple[str, bool]] = []

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.urgent.append((text, _URGENT.get()))
        async for chunk in super().synthesize(text):
            yield chunk


class Channel:
    """A reply channel that is never played to (the producer alone runs)."""

    id = "session-1"
    device_id = "aa:bb:cc:dd:ee:01"

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.turn_log: collections.deque[dict[str, float]] = collections.deque(maxlen=10)


async def pieces(*texts: str) -> AsyncIterator[str]:
    for text in texts:
        yield text


def hub(settings: Any, tts: Any) -> Any:
    """What a reply reads of the hub: settings, metrics, the compute pool and the TTS."""
    return SimpleNamespace(settings=settings, metrics=Metrics(), compute=ComputePool(workers=2),
                           providers=SimpleNamespace(tts=tts))


async def produce(reply: Reply) -> None:
    """Run the reply's producer alone to its end (no player), then let it go."""
    try:
        reply.start()
        assert reply._producer is not None
        await asyncio.wait_for(reply._producer, 30)
    finally:
        await reply.discard()
        reply.ctx.compute.shutdown()


async def test_the_sentence_after_a_short_first_piece_is_urgent_too_but_not_one_with_audio_ready(tmp_path):
    settings = fake_settings(tmp_path)
    tts = RecordingTTS(settings.fake)
    ctx = hub(settings, tts)
    short, long, last = "Sure!", "I can turn on the kitchen light for you.", "It is on now."
    assert tts.duration_ms(short) / 1000 < URGENT_BELOW_S < tts.duration_ms(long) / 1000
    await produce(Reply(Channel(ctx), pieces(short, f" {long}", f" {last}")))  # type: ignore[arg-type]
    assert tts.urgent == [(short, True), (long, True), (last, False)]


async def test_the_answers_llm_requests_carry_its_audio_left_once_it_plays(tmp_path):
    """What the LLM's queue reads to serve a playing answer that is running out of audio first
    (compute.PROMOTE_BELOW_S): nothing before the answer plays, then its seconds of audio left."""
    from xiaozhi_hub.compute import _AUDIO_LEFT

    settings = fake_settings(tmp_path)
    ctx = hub(settings, FakeTTS(settings.fake))
    seen: list[float | None] = []
    holder: list[Reply] = []

    async def deltas() -> AsyncIterator[str]:
        audio_left = _AUDIO_LEFT.get()
        assert audio_left is not None
        seen.append(audio_left())
        yield "The kitchen light is on."
        holder[0]._audio_started = True          # as the player does on its first frame
        while holder[0].queue.qsize() == 0:      # the first sentence's frames are made
            await asyncio.sleep(0.01)
        seen.append(audio_left())
        yield " Anything else?"

    reply = Reply(Channel(ctx), deltas())  # type: ignore[arg-type]
    holder.append(reply)
    await produce(reply)
    assert seen[0] is None
    assert seen[1] is not None and seen[1] > 0
    assert _AUDIO_LEFT.get() is None                 # only the answer's own task carried it
