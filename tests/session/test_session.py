"""The Session driven directly through a fake Connection (no sockets): abort, barge-in (``listen
start`` while speaking, and voice in realtime mode), speculation (adopted, discarded, withdrawn) and
the after-reply rule. Fake ASR/LLM/TTS, the real WebRTC VAD, real Opus, the real agent and SQLite;
every test asserts the exact messages the device received and the states the session went through."""

from __future__ import annotations

import asyncio

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.pipeline.speculation import Speculation
from xiaozhi_hub.session.state import SessionState as S

from .conftest import DEVICE_ID, TIMEOUT, Harness

SPEECH = pcmlib.voice_like(1200)          # the VAD hears speech; the fake ASR "hears" its asr_text
END = pcmlib.silence(900, 16000)          # more than vad.silence_ms (500): the end of speech
HEARD = "turn on the kitchen light"       # FakeSettings.asr_text
REPLY = ["Okay.", "The kitchen light is on now."]   # FakeSettings.llm_reply, as the splitter cuts it
SID = "session_id"


def texts_without_ids(h: Harness) -> list[dict]:
    out = []
    for obj in h.conn.texts():
        assert obj.get(SID) == h.session.id, obj          # every message names the session
        out.append({k: v for k, v in obj.items() if k != SID})
    return out


def answer(sentences: list[str] = REPLY) -> list[dict]:
    """What one spoken answer sends (text messages only): tts start, the face, each sentence, tts stop."""
    out: list[dict] = [{"type": "tts", "state": "start"}, {"type": "llm", "emotion": "happy"}]
    out += [{"type": "tts", "state": "sentence_start", "text": s} for s in sentences]
    return out + [{"type": "tts", "state": "stop"}]


def server_hello(h: Harness) -> dict:
    return {"type": "hello", "version": 1, "transport": "websocket",
            "audio_params": {"format": "opus", "sample_rate": 24000, "channels": 1, "frame_duration": 60}}


def audio_between_start_and_stop(h: Harness) -> None:
    """Audio frames only inside a tts start ... tts stop bracket; none after a stop."""
    speaking = False
    for word in h.conn.wire():
        if word == "tts:start":
            speaking = True
        elif word == "tts:stop":
            speaking = False
        elif word == "audio":
            assert speaking, h.conn.wire()


def sentence_started(h: Harness, text: str) -> int:
    """Index in conn.sent of the sentence_start for ``text`` (-1 while not sent)."""
    for i, (kind, obj) in enumerate(h.conn.sent):
        if kind == "text" and obj.get("state") == "sentence_start" and obj.get("text") == text:
            return i
    return -1


async def turn_over(h: Harness, stops: int = 1) -> None:
    """Wait for the ``stops``-th tts stop and for the turn task to have finished behind it."""
    await h.wait_until(lambda: h.conn.wire().count("tts:stop") >= stops)
    await h.turn_done()


async def speaking_second_sentence(h: Harness) -> None:
    """Wait until the second sentence has started and one of its frames went out."""
    def ready() -> bool:
        i = sentence_started(h, REPLY[1])
        return i >= 0 and any(kind == "audio" for kind, _ in h.conn.sent[i:])
    await h.wait_until(ready)


async def test_abort_while_speaking_stops_at_once_and_manual_mode_goes_idle(harness):
    # 200 ms of audio per character: the second sentence alone lasts 5.6 s, far longer than the test.
    h = await harness(fake={"tts_ms_per_char": 200})
    await h.hello()
    await h.send(type="listen", state="start", mode="manual")
    await h.mic(SPEECH)
    await h.send(type="listen", state="stop")
    await speaking_second_sentence(h)
    turn = h.session.turn
    assert turn is not None and h.session.state is S.SPEAKING
    frames_before = h.conn.audio_count()

    await h.send(type="abort")

    assert turn.done() and not h.session.busy            # the turn task is gone, not just told to stop
    assert texts_without_ids(h) == [server_hello(h), {"type": "stt", "text": HEARD}, *answer()]
    assert h.conn.wire()[-1] == "tts:stop" and h.conn.audio_count() == frames_before
    audio_between_start_and_stop(h)
    assert h.session.states == [S.CONNECTED, S.IDLE, S.LISTENING, S.THINKING, S.SPEAKING, S.IDLE]
    assert h.counter("aborts") == 1 and h.session.utterance is None and h.conn.closed_with is None


async def test_abort_after_the_agent_ended_the_conversation_closes_the_channel(harness):
    # The LLM calls end_conversation, then speaks; an abort during that answer ends the channel (1000),
    # as the end of the answer would have (Session.after_reply is the one rule for both).
    h = await harness(fake={"tts_ms_per_char": 200, "llm_tool_call": '{"name": "end_conversation"}'})
    await h.hello()
    await h.send(type="listen", state="start", mode="manual")
    await h.mic(SPEECH)
    await h.send(type="listen", state="stop")
    await speaking_second_sentence(h)
    await h.send(type="abort")
    assert texts_without_ids(h) == [server_hello(h), {"type": "stt", "text": HEARD}, *answer()]
    assert h.conn.closed_with == (1000, "conversation ended") and h.conn.wire()[-2:] == ["tts:stop", "close"]
    assert h.session.states[-1] is S.CLOSED and h.session.closed.is_set()


async def test_an_answer_that_ended_the_conversation_closes_after_tts_stop(harness):
    h = await harness(fake={"tts_ms_per_char": 10, "llm_tool_call": '{"name": "end_conversation"}'})
    await h.hello()
    await h.send(type="listen", state="start", mode="auto")
    await h.mic(SPEECH + END)
    async with asyncio.timeout(TIMEOUT):
        await h.session.closed.wait()
    assert texts_without_ids(h) == [server_hello(h), {"type": "stt", "text": HEARD}, *answer()]
    assert h.conn.closed_with == (1000, "conversation ended") and h.conn.wire()[-2:] == ["tts:stop", "close"]
    assert h.session.states == [S.CONNECTED, S.IDLE, S.LISTENING, S.THINKING, S.SPEAKING, S.CLOSED]


async def test_listen_start_while_speaking_is_barge_in(harness):
    h = await harness(fake={"tts_ms_per_char": 200})
    await h.hello()
    await h.send(type="listen", state="start", mode="auto")
    await h.mic(SPEECH + END)                       # the VAD ends the utterance: the turn starts
    await speaking_second_sentence(h)
    turn = h.session.turn
    frames_before = h.conn.audio_count()

    await h.send(type="listen", state="start", mode="auto")   # the user talks over the answer

    assert turn is not None and turn.done()
    assert texts_without_ids(h) == [server_hello(h), {"type": "stt", "text": HEARD}, *answer()]
    assert h.conn.audio_count() == frames_before
    assert h.session.states == [S.CONNECTED, S.IDLE, S.LISTENING, S.THINKING, S.SPEAKING, S.LISTENING]
    assert h.session.utterance is not None                     # listening to the new words already
    assert h.counter("aborts") == 0 and h.counter("barge_ins") == 0   # not an abort: a new utterance

    # The new utterance is answered like any other.
    h.fast_tts()
    await h.mic(SPEECH + END)
    await turn_over(h, stops=2)
    assert texts_without_ids(h)[len(answer()) + 2:] == [{"type": "stt", "text": HEARD}, *answer()]
    assert h.session.states[6:] == [S.THINKING, S.SPEAKING, S.LISTENING]
    audio_between_start_and_stop(h)


async def test_voice_while_speaking_in_realtime_mode_is_barge_in(harness):
    h = await harness(fake={"tts_ms_per_char": 200})
    await h.hello()
    await h.send(type="listen", state="start", mode="realtime")
    await h.mic(SPEECH + END)
    await speaking_second_sentence(h)
    turn = h.session.turn
    assert h.session.state is S.SPEAKING

    await h.mic(pcmlib.voice_like(300))             # the microphone stays open: the VAD hears voice

    assert turn is not None and turn.done()
    assert h.counter("barge_ins") == 1
    assert texts_without_ids(h) == [server_hello(h), {"type": "stt", "text": HEARD}, *answer()]
    assert h.session.states[-1] is S.LISTENING
    # The voice that interrupted is the start of the next utterance: it is answered when it ends.
    h.fast_tts()
    await h.mic(SPEECH + END)
    await turn_over(h, stops=2)
    assert texts_without_ids(h)[len(answer()) + 2:] == [{"type": "stt", "text": HEARD}, *answer()]
    assert h.session.states == [S.CONNECTED, S.IDLE, S.LISTENING, S.THINKING, S.SPEAKING, S.LISTENING,
                                S.THINKING, S.SPEAKING, S.LISTENING]
    audio_between_start_and_stop(h)


# ---------------------------------------------------------------------------- speculation

async def pause_until_speculating(h: Harness) -> Speculation:
    """Trailing silence, frame by frame, until the utterance has asked for a draft (asr.early_decode_ms
    of quiet); then wait for the speculative answer the draft starts."""
    utt = h.session.utterance
    assert utt is not None and utt.vad_stream is not None
    while utt.vad_stream.quiet_ms < h.ctx.settings.asr.early_decode_ms:
        await h.mic(pcmlib.silence(60, 16000))
    await h.wait_until(lambda: h.session.speculation.current is not None)
    spec = h.session.speculation.current
    assert spec is not None
    return spec


async def stored(h: Harness) -> list[tuple[str, str]]:
    memory = h.ctx.agent.memory
    assert memory is not None
    return [(m.role, m.content) for m in await memory.store.messages(DEVICE_ID)]


async def test_a_speculation_on_the_right_words_is_adopted(harness):
    h = await harness(fake={"asr_draft": HEARD, "tts_ms_per_char": 10})
    await h.hello()
    await h.send(type="listen", state="start", mode="auto")
    await h.mic(SPEECH)
    spec = await pause_until_speculating(h)
    assert spec.text == HEARD and not spec.decided
    assert h.conn.wire() == ["hello"] and h.session.state is S.LISTENING   # the guess is not heard yet

    await h.mic(END)
    await turn_over(h)

    assert spec.decided and h.session.speculation.current is None
    assert texts_without_ids(h) == [server_hello(h), {"type": "stt", "text": HEARD}, *answer()]
    audio_between_start_and_stop(h)
    assert (h.counter("speculations"), h.counter("speculation_hits"), h.counter("speculation_misses")) == (1, 1, 0)
    assert h.session.states == [S.CONNECTED, S.IDLE, S.LISTENING, S.THINKING, S.SPEAKING, S.LISTENING]
    assert await stored(h) == [("user", HEARD), ("assistant", " ".join(REPLY))]


async def test_a_speculation_on_other_words_is_discarded_and_the_real_answer_plays_once(harness):
    h = await harness(fake={"asr_draft": "turn on the kitchen", "tts_ms_per_char": 10})
    await h.hello()
    await h.send(type="listen", state="start", mode="auto")
    await h.mic(SPEECH)
    spec = await pause_until_speculating(h)
    await h.mic(END)
    await turn_over(h)

    assert spec.decided
    assert texts_without_ids(h) == [server_hello(h), {"type": "stt", "text": HEARD}, *answer()]
    assert (h.counter("speculations"), h.counter("speculation_hits"), h.counter("speculation_misses")) == (1, 0, 1)
    assert h.session.states == [S.CONNECTED, S.IDLE, S.LISTENING, S.THINKING, S.SPEAKING, S.LISTENING]
    assert await stored(h) == [("user", HEARD), ("assistant", " ".join(REPLY))]   # the guess left no trace


async def test_speech_after_the_draft_withdraws_the_speculation(harness):
    h = await harness(fake={"asr_draft": HEARD, "tts_ms_per_char": 10})
    await h.hello()
    await h.send(type="listen", state="start", mode="auto")
    await h.mic(SPEECH)
    first = await pause_until_speculating(h)

    await h.mic(SPEECH)                               # the user was not done: the guess is withdrawn
    await h.wait_until(lambda: h.session.speculation.current is None)
    assert h.counter("speculation_misses") == 1
    assert h.conn.wire() == ["hello"] and h.session.state is S.LISTENING

    second = await pause_until_speculating(h)         # the real end: a new guess, on all the words
    assert second is not first
    await h.mic(END)
    await turn_over(h)
    assert first.decided and second.decided           # the first was discarded, the second adopted

    assert texts_without_ids(h) == [server_hello(h), {"type": "stt", "text": HEARD}, *answer()]
    assert (h.counter("speculations"), h.counter("speculation_hits"), h.counter("speculation_misses")) == (2, 1, 1)
    assert h.counter("turns") == 1
    assert h.session.states == [S.CONNECTED, S.IDLE, S.LISTENING, S.THINKING, S.SPEAKING, S.LISTENING]
    assert await stored(h) == [("user", HEARD), ("assistant", " ".join(REPLY))]


async def test_listen_stop_in_auto_mode_with_nothing_heard_goes_idle_at_once(harness):
    """The device stopped listening before anyone spoke: no answer, no waiting for the idle sweeper."""
    h = await harness()
    await h.hello()
    await h.send(type="listen", state="start", mode="auto")
    await h.mic(pcmlib.silence(600, 16000))           # the microphone was open; nobody spoke
    assert h.session.state is S.LISTENING and h.session.utterance is not None
    await h.send(type="listen", state="stop")
    assert h.session.state is S.IDLE and h.session.utterance is None and h.session.turn is None
    assert h.session.states == [S.CONNECTED, S.IDLE, S.LISTENING, S.IDLE]
    assert h.conn.wire() == ["hello"]                  # nothing was answered
    await h.mic(SPEECH + END)                          # audio while idle is ignored, as documented
    assert h.session.state is S.IDLE and h.conn.wire() == ["hello"]
    assert h.counter("turns") == 0


async def test_listen_stop_in_auto_mode_after_speech_answers_it(harness):
    h = await harness()
    await h.hello()
    await h.send(type="listen", state="start", mode="auto")
    await h.mic(SPEECH)                                # speech, and the device ends it before the VAD does
    await h.send(type="listen", state="stop")
    await turn_over(h)
    assert texts_without_ids(h) == [server_hello(h), {"type": "stt", "text": HEARD}, *answer()]
    assert h.session.states == [S.CONNECTED, S.IDLE, S.LISTENING, S.THINKING, S.SPEAKING, S.LISTENING]
