"""Speculative answers: with a streaming ASR, the hub starts the answer on the draft transcript
during the end-of-speech silence, and keeps it only if the final transcript says the same words.
Fake providers over real sockets; the fake ASR's ``asr_draft`` plays the streaming engine's guess."""

from __future__ import annotations

import pytest

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.simulator import SimulatedDevice

from ..conftest import ws_url
from .test_turns import assert_complete_turn

SPEECH = pcmlib.voice_like(1200)


def counters(hub) -> dict[str, float]:
    return hub.ctx.metrics.counters


async def test_a_matching_draft_is_adopted_and_answers_before_the_end_of_speech(start_hub):
    # The fake LLM takes 6 x 50 ms to write its reply: started on the draft, it is done (and
    # synthesized) by the time the VAD declares the end, so the first frame follows at once.
    hub = await start_hub(fake={"asr_draft": "Turn on the kitchen light.", "llm_chunk_delay_ms": 50})
    async with SimulatedDevice(ws_url(hub)) as dev:
        session = hub.ctx.registry.by_device(dev.device_id)
        turn = await dev.run_turn(SPEECH, mode="auto")
        assert_complete_turn(turn)
        c = counters(hub)
        assert c["speculations"] == 1 and c["speculation_hits"] == 1
        assert c.get("speculation_misses", 0) == 0
        stamps = session.turn_log[-1]
        assert stamps["draft"] < stamps["end_of_speech"]
        # The reply was written before the end of speech was declared...
        assert stamps["first_sentence"] < stamps["end_of_speech"]
        # ...so audio starts right after the final transcript (the 20 ms tts-start gap, plus scheduling).
        assert stamps["first_audio"] - stamps["asr_final"] < 0.15, stamps


async def test_a_draft_that_differs_from_the_final_transcript_is_discarded(start_hub):
    hub = await start_hub(fake={"asr_draft": "turn on the kitchen", "llm_chunk_delay_ms": 10})
    async with SimulatedDevice(ws_url(hub)) as dev:
        turn = await dev.run_turn(SPEECH, mode="auto")
        assert_complete_turn(turn)          # the answer to the final words, complete and once
        c = counters(hub)
        assert c["speculations"] == 1 and c["speculation_misses"] == 1
        assert c.get("speculation_hits", 0) == 0
        # Only the real answer was stored: one user and one assistant message.
        memory = hub.ctx.agent.memory
        history = await memory.store.messages(dev.device_id)
        assert [(m.role, m.content) for m in history] == [
            ("user", "turn on the kitchen light"), ("assistant", "Okay. The kitchen light is on now.")]


async def test_speech_that_resumes_after_a_pause_withdraws_the_draft_and_drafts_again(start_hub):
    # A 300 ms pause is long enough for a draft (150 ms) but not for the end of speech (500 ms).
    hub = await start_hub(fake={"asr_draft": "turn on the kitchen light", "llm_chunk_delay_ms": 20})
    async with SimulatedDevice(ws_url(hub)) as dev:
        turn = await dev.run_turn(SPEECH + pcmlib.silence(300, 16000) + SPEECH, mode="auto")
        assert_complete_turn(turn)
        c = counters(hub)
        assert c["speculations"] == 2          # one in the pause, one at the real end
        assert c["speculation_misses"] == 1    # the first was withdrawn when speech resumed
        assert c["speculation_hits"] == 1
        assert c["turns"] == 1


VOLUME_CALL = '{"name": "self_audio_speaker_set_volume", "arguments": {"volume": 30}}'


@pytest.mark.parametrize("draft,adopted", [("turn on the kitchen light", True), ("turn on the", False)])
async def test_a_speculative_answer_calls_no_tool_before_it_is_adopted(start_hub, draft, adopted):
    # The LLM asks for a device tool at once; the hub must not call it on a guess. Adopted, the call
    # happens exactly once, after the end of speech; discarded, only the real turn calls it.
    hub = await start_hub(fake={"asr_draft": draft, "llm_tool_call": VOLUME_CALL, "llm_reply": "Done."})
    async with SimulatedDevice(ws_url(hub)) as dev:
        await dev.wait_until(lambda: any(c.method == "tools/list" for c in dev.mcp_calls), 5)
        turn = await dev.run_turn(SPEECH, mode="auto")
        calls = [c for c in dev.mcp_calls if c.method == "tools/call"]
        assert len(calls) == 1, calls
        assert calls[0].params["name"] == "self.audio_speaker.set_volume"
        assert calls[0].params["arguments"] == {"volume": 30}
        stt_at = next(m.t for m in turn.messages if m.type == "stt")
        assert calls[0].t > stt_at             # only once the final transcript was known
        assert dev.volume == 30
        assert turn.stt_text == "turn on the kitchen light" and turn.sentences == ["Done."]
        c = counters(hub)
        assert c.get("speculation_hits", 0) == (1 if adopted else 0)
        assert c.get("speculation_misses", 0) == (0 if adopted else 1)
