"""webrtcvad provider: real classifier on synthesized audio, plus the hysteresis state machine."""

from __future__ import annotations

import time

import pytest

from xiaozhi_hub.audio import pcm
from xiaozhi_hub.providers.base import VAD, VADEvent, VADStream
from xiaozhi_hub.providers.vad_webrtc import FRAME_BYTES, WebRtcVAD
from xiaozhi_hub.settings import VADSettings

START, END = VADEvent.SPEECH_START, VADEvent.SPEECH_END
RATE = 16000


def feed_timed(stream: VADStream, audio: bytes, chunk: int = 1920) -> list[tuple[float, VADEvent]]:
    """Feed in device-sized chunks; events are stamped with the end time (ms) of their chunk."""
    out = []
    for off in range(0, len(audio), chunk):
        piece = audio[off:off + chunk]
        for ev in stream.feed(piece):
            out.append(((off + len(piece)) / 32.0, ev))
    return out


def utterance(lead_ms: int = 500, voice_ms: int = 1500, tail_ms: int = 1200, **voice) -> bytes:
    return pcm.silence(lead_ms, RATE) + pcm.voice_like(voice_ms, RATE, **voice) + pcm.silence(tail_ms, RATE)


def test_provider_shape() -> None:
    vad = WebRtcVAD(VADSettings())
    assert isinstance(vad, VAD)
    assert isinstance(vad.open_stream(), VADStream)
    assert vad.open_stream() is not vad.open_stream()             # per-utterance state


def test_silence_produces_no_events() -> None:
    s = WebRtcVAD(VADSettings()).open_stream()
    assert feed_timed(s, pcm.silence(3000, RATE)) == []
    assert not s.in_speech


@pytest.mark.parametrize("aggressiveness", [0, 1, 2, 3])
def test_voice_between_silences_starts_and_ends(aggressiveness: int) -> None:
    settings = VADSettings(aggressiveness=aggressiveness, min_speech_ms=150, silence_ms=600)
    events = feed_timed(WebRtcVAD(settings).open_stream(), utterance())
    assert [e for _, e in events] == [START, END]
    (t_start, _), (t_end, _) = events
    assert 500 + 150 <= t_start <= 500 + 150 + 120                  # voice begins at 500 ms
    assert 2000 + 600 <= t_end <= 2000 + 600 + 240                  # voice ends at 2000 ms (+ hangover)


def test_events_do_not_depend_on_chunk_size() -> None:
    audio = utterance()
    sizes = {}
    for chunk in (7, 640, 1920, 5000, len(audio)):
        stream = WebRtcVAD(VADSettings()).open_stream()
        sizes[chunk] = [e for _, e in feed_timed(stream, audio, chunk)]
    assert all(v == [START, END] for v in sizes.values()), sizes


def test_short_burst_is_not_speech() -> None:
    s = WebRtcVAD(VADSettings(min_speech_ms=300)).open_stream()
    assert feed_timed(s, pcm.silence(300, RATE) + pcm.voice_like(90, RATE) + pcm.silence(1000, RATE)) == []


def test_two_utterances_in_one_stream() -> None:
    s = WebRtcVAD(VADSettings(silence_ms=300)).open_stream()
    audio = utterance(300, 800, 800) + utterance(0, 800, 800)
    assert [e for _, e in feed_timed(s, audio)] == [START, END, START, END]


def test_reset_forgets_speech_in_progress() -> None:
    s = WebRtcVAD(VADSettings()).open_stream()
    assert [e for _, e in feed_timed(s, pcm.voice_like(600, RATE))] == [START]
    assert s.in_speech
    s.feed(b"\x00" * 100)                                            # a partial frame is buffered...
    s.reset()                                                         # ...and dropped with the state
    assert not s.in_speech
    assert feed_timed(s, pcm.silence(2000, RATE)) == []              # no END for the forgotten speech


def test_quiet_voice_at_max_aggressiveness_still_detected_despite_flicker() -> None:
    """At aggressiveness 3 a quiet voice flickers between voiced/unvoiced frames (measured)."""
    s = WebRtcVAD(VADSettings(aggressiveness=3, min_speech_ms=150, silence_ms=600)).open_stream()
    events = feed_timed(s, utterance(500, 2000, 1500, amplitude=0.03))
    assert [e for _, e in events][:1] == [START]


# ---------------------------------------------------------------------------- hysteresis table
# Drives the frame-level state machine with the classifier's per-30 ms decisions ('1' voiced).
# min_speech 150 ms = 5 frames within a 7-frame window; silence 300 ms = 10 quiet frames.

def run_frames(pattern: str, **settings) -> list[tuple[int, VADEvent]]:
    stream = WebRtcVAD(VADSettings(**({"min_speech_ms": 150, "silence_ms": 300} | settings))).open_stream()
    out = []
    for i, c in enumerate(pattern.replace(" ", "")):
        ev = stream._step(c == "1")
        if ev is not None:
            out.append((i, ev))
    return out


@pytest.mark.parametrize("pattern,expected", [
    ("00000 11111 00000", [(9, START)]),                          # 5 voiced in a row
    ("00000 11011 1 00000", [(10, START)]),                       # one flicker tolerated within the window
    ("10101 01010 10101", []),                                    # alternating noise never reaches 5 of 7
    ("1111 0000 1111", []),                                       # two bursts too far apart
    ("11111 1111111111", [(4, START)]),                           # continuous voice never ends
    ("11111 0000000000", [(4, START), (14, END)]),                # 10 quiet frames end it
    ("11111 00000 11 0000000000", [(4, START), (21, END)]),       # two consecutive voiced restart the timer
    ("11111 0000 1 00000", [(4, START), (14, END)]),              # an isolated voiced blip does not
])
def test_hysteresis(pattern: str, expected: list) -> None:
    assert run_frames(pattern) == expected


def test_vad_is_cheap_enough_for_the_event_loop() -> None:
    s = WebRtcVAD(VADSettings()).open_stream()
    audio = utterance(0, 3000, 0)
    frames = [audio[i:i + 1920] for i in range(0, len(audio), 1920)]
    t0 = time.perf_counter()
    for _ in range(5):
        for f in frames:
            s.feed(f)
    per_frame = (time.perf_counter() - t0) / (5 * len(frames))
    assert per_frame < 0.001, f"{per_frame * 1e6:.0f} µs per 60 ms frame"
    assert FRAME_BYTES == 960
