"""The downlink pacing schedule: pre-buffer, then one frame per frame duration, no catch-up burst."""

import pytest

from xiaozhi_hub.pipeline.speaker import Pacer


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def run(pacer: Pacer, clock: Clock, n: int, stall_at: int | None = None, stall: float = 0.0) -> list[float]:
    times = []
    for i in range(n):
        if i == stall_at:
            clock.t += stall
        clock.t += pacer.delay()
        times.append(clock.t)
        pacer.sent()
    return times


def test_prebuffer_then_real_time():
    clock = Clock()
    pacer = Pacer(60, 5, clock)
    times = run(pacer, clock, 12)
    assert times[:5] == pytest.approx([100.0] * 5)                     # pre-buffer goes at once
    gaps = [round(b - a, 6) for a, b in zip(times[4:], times[5:])]
    assert gaps[0] == 0.06 and all(g == 0.06 for g in gaps)
    # The device never holds more than 5 frames (300 ms).
    assert pacer.buffer_end - clock.t <= 0.3 + 1e-9


def test_stall_rebases_without_burst():
    clock = Clock()
    pacer = Pacer(60, 5, clock)
    times = run(pacer, clock, 20, stall_at=10, stall=2.0)   # synthesis stalls 2 s mid-reply
    # After the stall the buffer had drained: a fresh pre-buffer of 5, then real time again.
    after = times[10:]
    assert after[:5] == pytest.approx([after[0]] * 5)
    assert all(round(b - a, 6) == 0.06 for a, b in zip(after[4:], after[5:]))


def test_no_lead():
    clock = Clock()
    pacer = Pacer(60, 0, clock)
    times = run(pacer, clock, 4)
    assert [round(t - 100, 6) for t in times] == [0.0, 0.06, 0.12, 0.18]


# ---------------------------------------------------------------------------- audible pauses, by cause


def test_audible_pauses_are_counted_by_what_the_answer_waited_for():
    from xiaozhi_hub.metrics import Metrics
    from xiaozhi_hub.pipeline.reply import GAP_S, GapWatch

    clock = Clock()
    metrics = Metrics()
    watch = GapWatch(metrics, clock)

    def frames(n: int, step: float = 0.06) -> None:
        for _ in range(n):
            watch.frame()
            clock.t += step

    watch.sentence()
    frames(5, 0.0)                      # the pre-buffer goes at once: no pause
    frames(10)                          # then one frame per 60 ms: no pause
    clock.t += GAP_S - 0.06 - 1e-6      # just under an audible pause, then the next sentence
    watch.sentence()
    frames(3)
    assert not metrics.latencies

    clock.t += 0.5                      # the words of the next sentence came late...
    watch.sentence()
    frames(3)
    watch.sentence()                    # ...this one was ready, its synthesis came late
    clock.t += 0.3
    frames(3)
    clock.t += 0.2                      # a pause inside a sentence
    frames(2)
    watch.restart()                     # "One moment." and the wait it covers: not a pause
    clock.t += 2.0
    watch.sentence()
    frames(2)

    assert list(metrics.latencies["reply_gap_text"]) == pytest.approx([0.56])
    assert list(metrics.latencies["reply_gap_audio"]) == pytest.approx([0.36])
    assert list(metrics.latencies["reply_gap_frames"]) == pytest.approx([0.26])
    assert set(metrics.latencies) == {"reply_gap_text", "reply_gap_audio", "reply_gap_frames"}
