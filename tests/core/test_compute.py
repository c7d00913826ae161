"""The shared compute pool: per-engine limits, FIFO order across devices, busy instead of waiting."""

import asyncio
import threading
import time

import pytest

from xiaozhi_hub.compute import ComputePool
from xiaozhi_hub.providers.base import BusyError


async def test_limit_is_respected_and_order_is_fifo():
    pool = ComputePool(workers=4)
    pool.set_limit("llm", 1)
    running = 0
    peak = 0
    order: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
            order.append(i)
        return i

    tasks = []
    for i in range(6):
        tasks.append(asyncio.create_task(pool.run("llm", work, i)))
        await asyncio.sleep(0.001)  # arrival order
    assert await asyncio.gather(*tasks) == list(range(6))
    assert peak == 1
    assert order == list(range(6))
    pool.shutdown()


async def test_waiting_longer_than_max_wait_raises_busy():
    pool = ComputePool(workers=2)
    pool.set_limit("llm", 1, max_wait=0.05)
    first = asyncio.create_task(pool.run("llm", time.sleep, 0.3))
    await asyncio.sleep(0.01)
    with pytest.raises(BusyError):
        await pool.run("llm", time.sleep, 0)
    await first
    # The slot is usable again and the timed-out waiter left no ghost behind.
    await pool.run("llm", time.sleep, 0)
    assert pool.limit("llm").active == 0
    assert pool.stats["llm"]["busy"] == 1
    pool.shutdown()


async def test_cancelled_waiter_does_not_leak_a_slot():
    pool = ComputePool(workers=2)
    pool.set_limit("tts", 1)
    hold = asyncio.create_task(pool.run("tts", time.sleep, 0.1))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(pool.run("tts", time.sleep, 0))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(hold, waiter, return_exceptions=True)
    await asyncio.wait_for(pool.run("tts", time.sleep, 0), 1)
    assert pool.limit("tts").active == 0
    pool.shutdown()


async def test_busy_is_answered_at_once_when_the_queue_ahead_is_too_long():
    pool = ComputePool(workers=4)
    pool.set_limit("llm", 1, max_wait=0.5)
    await pool.run("llm", time.sleep, 0.2)            # teaches the pool a slot is held ~0.2 s
    held = [asyncio.create_task(pool.run("llm", time.sleep, 0.2)) for _ in range(3)]
    await asyncio.sleep(0.01)
    # Three generations of ~0.2 s are ahead: ~0.6 s > 0.5 s, so the answer is "busy" without waiting.
    t0 = time.monotonic()
    with pytest.raises(BusyError, match="queued"):
        await pool.run("llm", time.sleep, 0)
    assert time.monotonic() - t0 < 0.05
    await asyncio.gather(*held)
    # With the queue gone, work is admitted again.
    await pool.run("llm", time.sleep, 0)
    pool.shutdown()


def test_background_work_pauses_while_urgent_work_runs_and_resumes_after():
    pool = ComputePool(workers=2)
    steps: list[float] = []
    done = threading.Event()

    def generation() -> None:          # like llama.cpp's per-token callback
        for _ in range(40):
            pool.pause_for_urgent(limit=5.0)
            steps.append(time.monotonic())
            time.sleep(0.005)
        done.set()

    with pool.urgent():
        t = threading.Thread(target=generation)
        t.start()
        time.sleep(0.2)
        assert steps == []             # not one step while the first sentence is synthesized
        released = time.monotonic()
    assert done.wait(5)
    t.join()
    assert steps[0] >= released and len(steps) == 40
    assert pool.paused_s >= 0.15


def test_a_pause_for_urgent_work_is_bounded():
    pool = ComputePool(workers=2)
    with pool.urgent():
        t0 = time.monotonic()
        pool.pause_for_urgent(limit=0.1)
        waited = time.monotonic() - t0
    assert 0.09 <= waited < 1.0         # background work still advances if urgent work never ends
    t0 = time.monotonic()
    pool.pause_for_urgent(limit=5.0)    # nothing urgent: no wait at all
    assert time.monotonic() - t0 < 0.05


async def test_background_holds_do_not_feed_the_busy_estimate():
    """A prompt-cache warm-up holds the LLM for many seconds once; that says nothing about a turn."""
    pool = ComputePool(workers=2)
    pool.set_limit("llm", 1, max_wait=1.0)
    lim = pool.limit("llm")
    async with pool.slot("llm", background=True):
        await asyncio.sleep(0.2)
    assert lim.hold_ewma is None                        # not taken as a typical hold
    async with pool.slot("llm"):                        # a device's request is
        await asyncio.sleep(0.01)
    assert lim.hold_ewma is not None
    pool.shutdown()
