"""The WebSocket server's flood guard: a token bucket on inbound frames, on a manual clock."""

from __future__ import annotations

from xiaozhi_hub.transport.ws_server import FloodGuard


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_flood_is_throttled_then_closed_after_the_grace():
    clock = Clock()
    guard = FloodGuard(rate=10, grace=2.0, clock=clock)
    assert [guard.allow() for _ in range(10)] == [True] * 10     # a full bucket passes at once
    results = []
    while len(results) < 500:                                    # then 5x the rate: a frame every 20 ms
        clock.t += 0.02
        results.append(guard.allow())
        if results[-1] is None:
            break
    assert results[0] is False                                   # the first frame over the rate is dropped
    passed = results.count(True)
    assert 0 < passed < len(results) / 3                         # about every fifth frame still gets through
    seconds_over = len(results) * 0.02
    assert results[-1] is None and 2.0 < seconds_over <= 2.1     # closed once over for longer than the grace


def test_a_pause_that_refills_half_the_bucket_forgives_an_earlier_flood():
    clock = Clock()
    guard = FloodGuard(rate=10, grace=2.0, clock=clock)
    assert [guard.allow() for _ in range(11)][-1] is False       # over
    clock.t += 0.5                                               # 5 tokens back: half the bucket
    assert guard.allow() is True and guard.over_since is None
    clock.t += 10.0                                              # long after the grace...
    assert [guard.allow() for _ in range(10)] == [True] * 10
    assert guard.allow() is False                                # ...a new burst is only throttled, not closed
