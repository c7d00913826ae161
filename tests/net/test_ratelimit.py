"""Token bucket behaviour, with a controllable clock."""

from __future__ import annotations

import pytest

from xiaozhi_hub.net.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_per_minute() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=6, clock=clock)         # 6 at once, then one every 10 s
    assert [limiter.acquire("1.2.3.4") for _ in range(6)] == [0.0] * 6
    wait = limiter.acquire("1.2.3.4")
    assert wait == pytest.approx(10.0)
    clock.now += 5
    assert limiter.acquire("1.2.3.4") == pytest.approx(5.0)  # half a token is not enough
    clock.now += 5
    assert limiter.acquire("1.2.3.4") == 0.0
    assert limiter.acquire("1.2.3.4") > 0


def test_clients_have_separate_buckets() -> None:
    limiter = RateLimiter(per_minute=1, clock=Clock())
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0


def test_refill_is_capped_at_capacity() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=2, clock=clock)
    limiter.acquire("a")
    clock.now += 3600                       # an hour idle does not bank 120 requests
    assert [limiter.acquire("a") for _ in range(3)][:2] == [0.0, 0.0]
    assert limiter.acquire("a") > 0


def test_memory_is_bounded() -> None:
    limiter = RateLimiter(per_minute=1, max_keys=100, clock=Clock())
    for i in range(1000):
        limiter.acquire(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100


def test_retry_after_rounds_up() -> None:
    assert RateLimiter.retry_after_header(0.2) == "1"
    assert RateLimiter.retry_after_header(9.01) == "10"
