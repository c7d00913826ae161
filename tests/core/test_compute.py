"""The shared compute pool: per-engine limits, FIFO order across devices, busy instead of waiting."""

import asyncio
import contextlib
import threading
import time
from typing import Any, Callable

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


def _generation(pool: ComputePool, steps: list[float], done: threading.Event, limit: float = 5.0) -> None:
    for _ in range(40):               # like llama.cpp's per-token callback
        pool.pause_for_urgent(limit=limit)
        steps.append(time.monotonic())
        time.sleep(0.005)
    done.set()


async def test_background_work_pauses_while_an_urgent_job_runs_and_resumes_after():
    pool = ComputePool(workers=2)
    steps: list[float] = []
    done = threading.Event()
    started = threading.Event()
    marks: dict[str, float] = {}

    def synthesize() -> None:          # the first sentence's TTS job
        marks["start"] = time.monotonic()
        started.set()
        time.sleep(0.2)
        marks["end"] = time.monotonic()

    with pool.urgent():
        job = asyncio.create_task(pool.run("tts", synthesize))
        await asyncio.to_thread(started.wait, 5)
        t = threading.Thread(target=_generation, args=(pool, steps, done))
        t.start()
        await job
    assert await asyncio.to_thread(done.wait, 5)
    t.join()
    assert len(steps) == 40
    assert not any(marks["start"] + 0.01 < s < marks["end"] for s in steps)   # not one step while it ran
    assert pool.paused_s >= 0.1
    pool.shutdown()


async def test_an_urgent_job_waiting_in_a_queue_does_not_pause_background_work():
    """Four devices' first sentences queued for the one TTS engine used to hold the LLM still."""
    pool = ComputePool(workers=4)
    pool.set_limit("tts", 1)
    release = threading.Event()
    blocker = asyncio.create_task(pool.run("tts", release.wait, 5))    # not urgent: holds the engine
    await asyncio.sleep(0.05)
    with pool.urgent():
        queued = asyncio.create_task(pool.run("tts", time.sleep, 0))    # urgent, but only queued
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        await asyncio.to_thread(pool.pause_for_urgent, 5.0)
        assert time.monotonic() - t0 < 0.5                              # no pause: nothing urgent runs
        release.set()
        await asyncio.gather(blocker, queued)
    pool.shutdown()


async def test_a_pause_for_urgent_work_is_bounded():
    pool = ComputePool(workers=2)
    started = threading.Event()
    with pool.urgent():
        job = asyncio.create_task(pool.run("tts", lambda: (started.set(), time.sleep(1.0))))
        await asyncio.to_thread(started.wait, 5)
        t0 = time.monotonic()
        await asyncio.to_thread(pool.pause_for_urgent, 0.1)
        waited = time.monotonic() - t0
        await job
    assert 0.09 <= waited < 0.9         # background work still advances if urgent work never ends
    t0 = time.monotonic()
    pool.pause_for_urgent(limit=5.0)    # nothing urgent: no wait at all
    assert time.monotonic() - t0 < 0.05
    pool.shutdown()


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


async def test_the_estimate_counts_what_the_holder_still_needs_not_a_whole_hold():
    pool = ComputePool(workers=2)
    pool.set_limit("llm", 1, max_wait=10.0)
    lim = pool.limit("llm")
    lim.hold_ewma = 2.0
    async with pool.slot("llm"):
        now = lim.since[0]
        assert lim.expected_wait(now) == pytest.approx(2.0)          # just started: a whole hold
        assert lim.expected_wait(now + 1.5) == pytest.approx(0.5)    # most of it is done
        assert lim.expected_wait(now + 5.0) == pytest.approx(0.2)    # overdue: a tenth of a hold
    assert lim.expected_wait() == 0.0                                # free
    pool.shutdown()


async def test_every_estimate_is_checked_against_the_real_wait():
    from xiaozhi_hub.metrics import Metrics

    pool = ComputePool(workers=4)
    pool.metrics = Metrics()
    pool.set_limit("llm", 1, max_wait=15.0)
    lim = pool.limit("llm")
    lim.hold_ewma = 10.0                                    # the pool believes a hold takes 10 s...
    first = asyncio.create_task(pool.run("llm", time.sleep, 0.15))    # ...they take 0.15 s
    await asyncio.sleep(0.01)
    second = asyncio.create_task(pool.run("llm", time.sleep, 0.15))   # ~10 s ahead: admitted, waits
    await asyncio.sleep(0.01)
    with pytest.raises(BusyError):                          # ~20 s ahead > 15 s: refused at once
        await pool.run("llm", time.sleep, 0)
    await asyncio.gather(first, second)
    m = pool.metrics
    assert m.counters["llm_wait_estimates"] == 2 and m.counters["llm_busy_refusals"] == 1
    assert sorted(m.latencies["llm_wait"])[-1] > 0.1        # the second one really waited for the first
    assert max(m.latencies["llm_wait_error"]) > 5           # and the estimate was far off: it shows
    predicted, actual = m.latencies["llm_busy_predicted"][0], m.latencies["llm_busy_actual"][0]
    assert predicted > 15.0
    assert 0.1 < actual < predicted                         # the work ahead drained in well under the estimate
    pool.shutdown()


async def served_order(pool: ComputePool, kind: str, requests: list[tuple[str, Any]],
                       before_release: Callable[[], None] = lambda: None) -> list[str]:
    """One holder takes ``kind``'s only slot; ``requests`` (a name, the context it queues in) queue
    behind it in this order; once the holder lets go, the order they were served in."""
    order: list[str] = []
    holder, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with pool.slot(kind):
            holder.set()
            await release.wait()

    async def ask(name: str, context: Any) -> None:
        with context:
            async with pool.slot(kind):
                order.append(name)

    first = asyncio.create_task(hold())
    await holder.wait()
    tasks = []
    for name, context in requests:
        tasks.append(asyncio.create_task(ask(name, context)))
        while pool.limit(kind).queued() < len(tasks):       # queued in this order
            await asyncio.sleep(0)
    before_release()
    release.set()
    await asyncio.wait_for(asyncio.gather(first, *tasks), 30)
    assert pool.limit(kind).active == 0
    return order


async def test_an_urgent_request_queues_ahead_of_ordinary_ones_behind_earlier_urgent_ones():
    """The first sentence a device waits for is synthesized before another answer's next sentence
    (whose first one is still playing); among urgent ones, and among ordinary ones, arrival order."""
    pool = ComputePool(workers=2)
    pool.set_limit("tts", 1)
    order = await served_order(pool, "tts", [
        ("next sentence A", contextlib.nullcontext()), ("first sentence B", pool.urgent()),
        ("next sentence B", contextlib.nullcontext()), ("first sentence C", pool.urgent())])
    assert order == ["first sentence B", "first sentence C", "next sentence A", "next sentence B"]
    pool.shutdown()


async def test_a_playing_answer_about_to_run_out_of_audio_goes_ahead_of_new_questions():
    """An answer that gave the LLM up mid-answer waits behind the questions asked since, until its
    device has less than PROMOTE_BELOW_S of audio left: then it is served first (the one with the
    least audio left first); one that does not play yet (None) keeps its place."""
    from xiaozhi_hub.compute import PROMOTE_BELOW_S

    from xiaozhi_hub.metrics import Metrics

    pool = ComputePool(workers=2)
    pool.metrics = Metrics()
    pool.set_limit("llm", 1)
    audio: dict[str, float | None] = {"A": 10.0, "B": 10.0, "D": None}

    def playing(name: str) -> Any:
        return pool.playing(lambda: audio[name])

    def running_out() -> None:            # both are about to run out of audio, B more
        audio["A"], audio["B"] = PROMOTE_BELOW_S - 0.5, PROMOTE_BELOW_S - 1.0

    order = await served_order(pool, "llm", [
        ("new question Q1", contextlib.nullcontext()), ("A", playing("A")),
        ("new question Q2", contextlib.nullcontext()), ("B", playing("B")), ("D", playing("D")),
        ("new question Q3", contextlib.nullcontext())], running_out)
    assert order == ["B", "A", "new question Q1", "new question Q2", "D", "new question Q3"]
    assert pool.metrics.counters["llm_promoted"] == 2
    pool.shutdown()


async def test_a_playing_answer_with_audio_to_spare_keeps_its_place_in_the_queue():
    from xiaozhi_hub.metrics import Metrics

    pool = ComputePool(workers=2)
    pool.metrics = Metrics()
    pool.set_limit("llm", 1)
    order = await served_order(pool, "llm", [
        ("Q1", contextlib.nullcontext()), ("A", pool.playing(lambda: 5.0)), ("Q2", contextlib.nullcontext())])
    assert order == ["Q1", "A", "Q2"]
    assert pool.metrics.counters["llm_promoted"] == 0
    pool.shutdown()
