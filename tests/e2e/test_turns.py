"""End-to-end over real sockets on 127.0.0.1: simulated stock devices against an in-process hub
with the fake providers. Covers full turns (auto and manual), abort, barge-in, idle close, MCP,
binary protocol versions, and replacement of a reconnecting device."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.audio.opus import OpusDecoder
from xiaozhi_hub.simulator import SimulatedDevice
from xiaozhi_hub.simulator.device import DeviceState

from ..conftest import LONG_BUDGET, LONG_REPLY, LONG_SENTENCES, ws_url

SPEECH = pcmlib.voice_like(1200)          # ~1.2 s of voiced audio the VAD hears as speech
REPLY = "Okay. The kitchen light is on now."


def assert_complete_turn(turn, expect_stt: str = "turn on the kitchen light",
                         sentences: list[str] | None = None) -> None:
    assert turn.stt_text == expect_stt
    types = [(m.type, m.data.get("state")) for m in turn.messages if m.type != "mcp"]
    # stt, then tts start, then per sentence (llm emotion, sentence_start), then tts stop.
    assert types[0] == ("stt", None), types
    assert ("tts", "start") in types and types[-1] == ("tts", "stop"), types
    assert types.index(("stt", None)) < types.index(("tts", "start")) < types.index(("tts", "sentence_start"))
    assert turn.sentences == (sentences if sentences is not None else ["Okay.", "The kitchen light is on now."])
    assert turn.emotions and turn.emotions[0] == "happy"
    # Every frame arrived while speaking and decoded; the audio length follows the text (60 ms a char).
    assert turn.played and turn.dropped == 0 and turn.decode_errors == 0 and turn.overflow == 0
    expected = sum(len(s) for s in turn.sentences) * 0.060
    assert abs(turn.audio_seconds - expected) < 0.25, (turn.audio_seconds, expected)
    # No audio before "tts start" or after "tts stop".
    assert turn.tts_start_at < turn.played[0].t and turn.played[-1].t <= turn.tts_stop_at


async def test_full_turn_auto_mode_vad_ends_it(start_hub):
    hub = await start_hub()
    async with SimulatedDevice(ws_url(hub)) as dev:
        turn = await dev.run_turn(SPEECH, mode="auto")
        assert_complete_turn(turn)
        assert dev.state in (DeviceState.LISTENING, DeviceState.SPEAKING)
        # Auto mode: the device re-opens the mic after playback drains and a second turn works.
        turn2 = await dev.run_turn(SPEECH, mode="auto")
        assert_complete_turn(turn2)


async def test_full_turn_manual_mode_listen_stop_ends_it(start_hub):
    hub = await start_hub()
    async with SimulatedDevice(ws_url(hub)) as dev:
        turn = await dev.run_turn(SPEECH, mode="manual")
        assert_complete_turn(turn)
        assert turn.listen_stop_at is not None
        assert turn.first_audio_latency is not None and turn.first_audio_latency < 1.0
        await dev.wait_state(DeviceState.IDLE, timeout=3)


async def test_pacing_is_real_time_with_a_small_lead(start_hub):
    hub = await start_hub(fake={"llm_reply": "This reply is long enough to take a few seconds to say aloud."})
    async with SimulatedDevice(ws_url(hub)) as dev:
        turn = await dev.run_turn(SPEECH, mode="manual")
        played = turn.played
        assert len(played) > 20
        # Never more than 5 frames ahead of real time: the n-th frame is not earlier than (n-5) * 60 ms.
        t0 = played[0].t
        for n, a in enumerate(played):
            assert a.t - t0 >= (n - 5) * 0.060 - 0.015, (n, a.t - t0)
        # And the whole reply is not sent much slower than real time.
        assert played[-1].t - t0 <= len(played) * 0.060 + 0.2


async def test_abort_while_speaking_stops_within_100ms_and_no_audio_after(start_hub):
    hub = await start_hub(fake={"llm_reply": LONG_REPLY}, agent=LONG_BUDGET)
    async with SimulatedDevice(ws_url(hub)) as dev:
        turn = await dev.run_turn(SPEECH, mode="manual", abort_after_ms=400)
        assert turn.abort_at is not None and turn.tts_stop_at is not None
        assert turn.abort_to_stop is not None and turn.abort_to_stop < 0.100, turn.abort_to_stop
        await asyncio.sleep(0.3)  # anything still in flight would arrive now
        assert all(a.t <= turn.tts_stop_at for a in turn.audio), "audio frame after tts stop"
        assert len(turn.played) < 30  # the 9-second reply was cut short
        # The session is usable afterwards.
        turn2 = await dev.run_turn(SPEECH, mode="manual")
        assert_complete_turn(turn2, sentences=LONG_SENTENCES)


async def test_abort_when_not_speaking_is_still_answered_with_tts_stop(start_hub):
    hub = await start_hub()
    async with SimulatedDevice(ws_url(hub)) as dev:
        await dev.abort()
        await dev.wait_for("tts", state="stop", timeout=2)


async def test_barge_in_with_a_new_listen_start_cancels_the_turn(start_hub):
    """Firmware >= 2.3: a wake word while speaking sends abort + listen start; older: listen start."""
    hub = await start_hub(fake={"llm_reply": LONG_REPLY}, agent=LONG_BUDGET)
    async with SimulatedDevice(ws_url(hub)) as dev:
        await dev.start_listening("auto")
        await dev.stream_pcm(SPEECH)
        await dev.stream_silence(lambda: dev.turn.tts_start_at is not None, 10)
        first = dev.turn
        await dev.wait_until(lambda: len(first.played) >= 3, 5)
        await dev.start_listening("auto")           # new utterance while the hub is speaking
        t_barge = time.monotonic()
        await dev.wait_until(lambda: first.tts_stop_at is not None or
                             any(m.type == "tts" and m.data.get("state") == "stop" for m in dev.turn.messages), 2)
        second = dev.turn
        await dev.stream_pcm(SPEECH)
        await dev.stream_silence(lambda: second.tts_start_at is not None, 10)
        await dev.wait_until(lambda: second.tts_stop_at is not None, 15)
        assert second.stt_text == "turn on the kitchen light"
        assert len(first.played) < 40               # the first answer was cut off
        assert hub.ctx.metrics.counters["turns"] == 2
        assert time.monotonic() - t_barge < 15


async def test_realtime_mode_voice_during_speaking_barges_in(start_hub):
    hub = await start_hub(fake={"llm_reply": LONG_REPLY}, agent=LONG_BUDGET)
    async with SimulatedDevice(ws_url(hub)) as dev:
        await dev.start_listening("realtime")
        await dev.stream_pcm(SPEECH)
        turn = dev.turn
        await dev.stream_silence(lambda: turn.tts_start_at is not None, 10)
        await dev.wait_until(lambda: len(turn.played) >= 5, 5)
        # Realtime keeps the mic open while speaking: the user talks over the answer.
        await dev.stream_pcm(SPEECH)
        await dev.wait_until(lambda: turn.tts_stop_at is not None, 3)
        assert hub.ctx.metrics.counters["barge_ins"] == 1
        # The interrupting utterance is answered in turn.
        await dev.stream_silence(lambda: hub.ctx.metrics.counters["turns"] >= 2, 10)
        assert hub.ctx.metrics.counters["turns"] == 2


async def test_idle_session_says_goodbye_then_is_closed(start_hub):
    hub = await start_hub(session={"idle_timeout": 0.8})
    async with SimulatedDevice(ws_url(hub)) as dev:
        t0 = time.monotonic()
        await dev.wait_until(lambda: dev.closed, timeout=5)
        assert dev.close_code == 4008
        assert 0.7 < time.monotonic() - t0 < 3.5
        goodbye = dev.turns[-1] if dev.turns else None
        assert goodbye is not None and goodbye.sentences == ["Goodbye."] and goodbye.played
        assert goodbye.tts_stop_at is not None      # the whole goodbye was played before the close
    assert len(hub.ctx.registry) == 0


async def test_idle_session_is_closed_silently_without_idle_goodbye(start_hub):
    hub = await start_hub(session={"idle_timeout": 0.8, "idle_goodbye": False})
    async with SimulatedDevice(ws_url(hub)) as dev:
        t0 = time.monotonic()
        await dev.wait_until(lambda: dev.closed, timeout=5)
        assert dev.close_code == 4008 and 0.7 < time.monotonic() - t0 < 3.0
        assert not any(m.type == "tts" for t in dev.turns for m in t.messages)


async def test_voice_keeps_a_session_open(start_hub):
    hub = await start_hub(session={"idle_timeout": 1.5})
    async with SimulatedDevice(ws_url(hub)) as dev:
        for _ in range(2):
            await dev.run_turn(SPEECH, mode="manual")   # each turn is ~1.2 s of voice + ~2 s reply
        assert not dev.closed


async def test_mcp_tools_are_listed_and_callable(start_hub):
    hub = await start_hub()
    async with SimulatedDevice(ws_url(hub)) as dev:
        session = hub.ctx.registry.by_device(dev.device_id)
        await asyncio.wait_for(session.link.mcp.ready.wait(), 5)
        names = [t.name for t in session.link.device_tools()]
        assert "self.get_device_status" in names and "self.audio_speaker.set_volume" in names
        assert await session.link.call_device_tool("self.audio_speaker.set_volume", {"volume": 30}) == "true"
        assert dev.volume == 30
        # Every request the hub sent used a numeric id.
        assert dev.mcp_calls and all(isinstance(c.id, int) for c in dev.mcp_calls)


@pytest.mark.parametrize("version", [2, 3])
async def test_binary_protocol_versions(start_hub, version):
    hub = await start_hub()
    async with SimulatedDevice(ws_url(hub), protocol_version=version) as dev:
        assert dev.server_hello["version"] == version
        turn = await dev.run_turn(SPEECH, mode="manual")
        assert_complete_turn(turn)


async def test_second_connection_from_the_same_device_replaces_the_first(start_hub):
    hub = await start_hub()
    first = SimulatedDevice(ws_url(hub), device_id="02:00:00:00:00:01")
    await first.connect()
    async with SimulatedDevice(ws_url(hub), device_id="02:00:00:00:00:01") as second:
        await first.wait_until(lambda: first.closed, 3)
        assert first.close_code == 4009
        assert len(hub.ctx.registry) == 1
        turn = await second.run_turn(SPEECH, mode="manual")
        assert_complete_turn(turn)
    await first.close()


async def test_plain_http_get_on_the_websocket_port(start_hub):
    hub = await start_hub()
    async with aiohttp.ClientSession() as cs:
        async with cs.get(f"http://127.0.0.1:{hub.ctx.ws_port}/xiaozhi/v1/") as r:
            assert r.status == 200 and "running" in (await r.text())


async def test_hello_reply_carries_what_the_firmware_needs(start_hub):
    hub = await start_hub()
    async with SimulatedDevice(ws_url(hub)) as dev:
        h = dev.server_hello
        assert h["type"] == "hello" and h["transport"] == "websocket"
        assert isinstance(h["session_id"], str) and len(h["session_id"]) >= 8
        assert h["audio_params"]["sample_rate"] == 24000 and h["audio_params"]["frame_duration"] == 60
        # The declared rate is the real one: a frame decodes to exactly 60 ms at 24 kHz.
        turn = await dev.run_turn(SPEECH, mode="manual")
        assert {a.samples for a in turn.played} == {1440}
        OpusDecoder(24000, 1, 60)  # decodable by a decoder configured from the hello


async def test_one_moment_when_the_answer_is_slow(start_hub):
    # The fake LLM's only sentence is complete after 4 more chunks x 200 ms; the filler is due 300 ms
    # after the end of speech.
    hub = await start_hub(session={"filler_after_ms": 300},
                          fake={"llm_chunk_delay_ms": 200, "llm_reply": "The kitchen light is on now."})
    async with SimulatedDevice(ws_url(hub)) as dev:
        turn = await dev.run_turn(SPEECH, mode="manual")
        assert turn.sentences == ["One moment.", "The kitchen light is on now."]
        assert turn.decode_errors == 0 and turn.dropped == 0
        assert hub.ctx.metrics.counters["fillers"] == 1
        # The filler is heard long before the answer's first sentence would have been.
        assert turn.first_audio_latency < 0.6


async def test_no_filler_when_the_answer_is_quick(start_hub):
    hub = await start_hub(session={"filler_after_ms": 1500})
    async with SimulatedDevice(ws_url(hub)) as dev:
        turn = await dev.run_turn(SPEECH, mode="manual")
        assert turn.sentences == ["Okay.", "The kitchen light is on now."]
        assert hub.ctx.metrics.counters["fillers"] == 0


async def test_busy_answer_when_the_llm_queue_is_too_long(start_hub):
    # One generation at a time, each ~1.2 s; a device that would wait over 0.5 s hears the busy answer.
    hub = await start_hub(llm={"max_wait": 0.5}, session={"filler_after_ms": 0},
                          fake={"llm_chunk_delay_ms": 200})
    hub.ctx.compute.set_limit("llm", 1, max_wait=0.5)
    fake_llm = hub.ctx.providers.llm
    original = fake_llm.stream

    async def one_at_a_time(messages, tools=()):
        async with hub.ctx.compute.slot("llm"):
            async for event in original(messages, tools):
                yield event

    fake_llm.stream = one_at_a_time
    devices = [SimulatedDevice(ws_url(hub)) for _ in range(3)]
    for d in devices:
        await d.connect()
    try:
        turns = await asyncio.gather(*(d.run_turn(SPEECH, mode="manual") for d in devices))
    finally:
        for d in devices:
            await d.close()
    answers = sorted(tuple(t.sentences) for t in turns)
    busy = ("Sorry, I'm busy right now. Please ask me again in a moment.",)
    assert all(t.played for t in turns)                       # nobody is left in silence
    assert busy in answers and ("Okay.", "The kitchen light is on now.") in answers
    assert hub.ctx.metrics.counters["busy_answers"] >= 1


async def test_one_moment_while_transcription_is_queued(start_hub):
    """ASR slower than the filler deadline: tts start and "One moment." come before the stt."""
    hub = await start_hub(session={"filler_after_ms": 300})
    asr = hub.ctx.providers.asr
    original = asr.open_stream

    def slow_stream():
        stream = original()
        finish = stream.finish

        async def slow_finish():
            await asyncio.sleep(1.0)          # as if queued behind three other devices
            return await finish()

        stream.finish = slow_finish
        return stream

    asr.open_stream = slow_stream
    async with SimulatedDevice(ws_url(hub)) as dev:
        turn = await dev.run_turn(SPEECH, mode="manual")
    assert turn.sentences == ["One moment.", "Okay.", "The kitchen light is on now."]
    types = [(m.type, m.data.get("state")) for m in turn.messages if m.type != "mcp"]
    assert types.index(("tts", "start")) < types.index(("stt", None))
    assert turn.stt_text == "turn on the kitchen light"
    assert turn.first_audio_latency < 0.8


@pytest.mark.parametrize("mode", ["manual", "auto"])
async def test_listen_detect_with_a_question_is_answered_like_speech(start_hub, mode):
    hub = await start_hub()
    async with SimulatedDevice(ws_url(hub)) as dev:
        turn = await dev.run_turn(text="turn on the kitchen light", mode=mode)
        assert_complete_turn(turn)
        # The session goes on as after a spoken turn.
        assert_complete_turn(await dev.run_turn(SPEECH, mode=mode))


async def test_listen_detect_with_a_wake_word_only_starts_a_clean_utterance(start_hub):
    hub = await start_hub(session={"wake_words": ["Hi ESP", "你好小智"]})
    async with SimulatedDevice(ws_url(hub)) as dev:
        turn = await dev.start_listening("auto")
        await dev.detect("hi, ESP!")                # case and punctuation do not matter
        await dev.detect("你好小智")
        await asyncio.sleep(0.3)
        assert not any(m.type in ("stt", "tts") for m in turn.messages), turn.messages
        assert hub.ctx.metrics.counters.get("turns", 0) == 0
        assert_complete_turn(await dev.run_turn(SPEECH, mode="auto"))


async def test_a_typed_question_while_speaking_interrupts_the_answer(start_hub):
    hub = await start_hub(fake={"llm_reply": LONG_REPLY}, agent=LONG_BUDGET)
    async with SimulatedDevice(ws_url(hub)) as dev:
        first = await dev.start_listening("manual")
        await dev.stream_pcm(SPEECH)
        await dev.stop_listening()
        await dev.wait_until(lambda: len(first.played) >= 3, 5)
        await dev.detect("what time is it")
        await dev.wait_until(lambda: "what time is it" in first.texts("stt"), 3)
        await dev.wait_until(lambda: first.texts("tts", "stop") != [], 3)
        stops = first.texts("tts", "stop")
        assert len(stops) >= 1
        assert hub.ctx.metrics.counters["turns"] == 2
