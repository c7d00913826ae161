"""Shared, bounded compute for blocking work (codecs, ASR, LLM, TTS).

One thread pool for the whole process, sized to the machine, never one per connection. Each engine
("asr", "llm", "tts", "opus", ...) has its own concurrency limit and a FIFO queue in front of it, so
devices are served in arrival order. A caller that would wait longer than ``max_wait`` gets
:class:`BusyError` and can answer "busy" instead of leaving the device in silence.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, Iterator, TypeVar

from .providers.base import BusyError

T = TypeVar("T")


class _FairLimit:
    """A FIFO semaphore whose waiters can give up after a timeout without losing their place."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.hold_ewma: float | None = None  # how long a slot is typically held (seconds)

    def expected_wait(self) -> float:
        """Seconds a new arrival would wait, from the queue ahead of it and typical hold times."""
        ahead = self.waiting + self.active - self.limit + 1
        if ahead <= 0 or self.hold_ewma is None:
            return 0.0
        return ahead / self.limit * self.hold_ewma

    def held(self, seconds: float) -> None:
        self.hold_ewma = seconds if self.hold_ewma is None else 0.7 * self.hold_ewma + 0.3 * seconds

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self, timeout: float | None) -> None:
        if self.active < self.limit and not self.waiting:
            self.active += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            if timeout is None:
                await fut
            else:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can return the slot granted at
                # the last moment and lose a cancellation (abort) that arrived with it.
                async with asyncio.timeout(timeout):
                    await asyncio.shield(fut)
        except (TimeoutError, asyncio.CancelledError):
            if fut.done() and not fut.cancelled():
                # We were granted the slot at the last moment: hand it on.
                self._release_slot()
            else:
                fut.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
            raise
        # The slot was transferred to us by release(); active already counts it.

    def _release_slot(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # transfer the slot
                return
        self.active -= 1

    def release(self) -> None:
        self._release_slot()


class ComputePool:
    """Run blocking callables on a shared executor under per-engine limits."""

    def __init__(self, workers: int | None = None, limits: dict[str, int] | None = None,
                 max_wait: dict[str, float] | None = None) -> None:
        cores = os.cpu_count() or 2
        self.workers = workers or max(2, cores)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="compute")
        self._limits: dict[str, _FairLimit] = {}
        self._default_limit = max(1, cores)
        for kind, n in (limits or {}).items():
            self._limits[kind] = _FairLimit(max(1, n))
        self._max_wait = dict(max_wait or {})
        self._pinned: dict[str, ThreadPoolExecutor] = {}
        self.stats: dict[str, dict[str, float]] = collections.defaultdict(
            lambda: {"calls": 0, "busy": 0, "wait_s": 0.0, "run_s": 0.0})
        self._urgent = 0
        self._urgent_cv = threading.Condition()
        self.paused_s = 0.0          # time background work spent paused for urgent work

    def limit(self, kind: str) -> _FairLimit:
        lim = self._limits.get(kind)
        if lim is None:
            lim = self._limits[kind] = _FairLimit(self._default_limit)
        return lim

    def set_limit(self, kind: str, limit: int, max_wait: float | None = None) -> None:
        self.limit(kind).limit = max(1, limit)
        if max_wait is not None:
            self._max_wait[kind] = max_wait

    def pin(self, kind: str) -> None:
        """Run ``kind`` on one dedicated thread of its own.

        llama.cpp's OpenMP runtime keeps per-thread state: when different pool threads take turns
        calling it, generation runs ~1.8x slower. Pinning keeps it on one thread (its limit is 1 anyway).
        """
        if kind not in self._pinned:
            self._pinned[kind] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"compute-{kind}")

    @contextlib.asynccontextmanager
    async def slot(self, kind: str, max_wait: float | None = None, *, background: bool = False) -> AsyncIterator[None]:
        """Hold one slot of ``kind`` (for streaming work that spans several calls).

        ``background``: optional work (a prompt-cache warm-up or prefill) whose hold time says nothing
        about how long a device's request holds the slot, so it is left out of the estimate behind
        the busy answer (a warm-up of many seconds on a busy machine made later turns look queued)."""
        lim = self.limit(kind)
        wait = self._max_wait.get(kind) if max_wait is None else max_wait
        if wait is not None and lim.expected_wait() > wait:
            # Answer "busy" now rather than after a silent wait that would end the same way.
            self.stats[kind]["busy"] += 1
            raise BusyError(f"{kind} engine busy (about {lim.expected_wait():.1f}s of work queued)")
        t0 = time.monotonic()
        try:
            await lim.acquire(wait)
        except TimeoutError:
            self.stats[kind]["busy"] += 1
            raise BusyError(f"{kind} engine busy (waited {wait:.1f}s)") from None
        t1 = time.monotonic()
        self.stats[kind]["wait_s"] += t1 - t0
        try:
            yield
        finally:
            if not background:
                lim.held(time.monotonic() - t1)
            lim.release()

    async def run_in_slot(self, kind: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the executor; the caller already holds a slot of ``kind``."""
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        try:
            executor = self._pinned.get(kind, self._executor)
            return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))
        finally:
            st = self.stats[kind]
            st["calls"] += 1
            st["run_s"] += time.monotonic() - t0

    async def run(self, kind: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Wait for a slot of ``kind`` (FIFO), then run ``fn`` on the shared executor."""
        async with self.slot(kind):
            return await self.run_in_slot(kind, fn, *args, **kwargs)

    # -- latency priority -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def urgent(self) -> Iterator[None]:
        """Mark latency-critical work in progress: the first sentence a user is waiting to hear.

        On two cores, synthesizing that sentence while an LLM generates (with a thread per core)
        took ~1.7x as long. Generations call :meth:`pause_for_urgent` between tokens and wait while
        urgent work runs; the LLM writes far faster than speech plays, so nobody hears the pause.
        """
        with self._urgent_cv:
            self._urgent += 1
        try:
            yield
        finally:
            with self._urgent_cv:
                self._urgent -= 1
                if not self._urgent:
                    self._urgent_cv.notify_all()

    def pause_for_urgent(self, limit: float = 0.5) -> None:
        """Call between the steps of long background work on a compute thread: wait while urgent
        work runs, at most ``limit`` seconds (so the background work still advances)."""
        if not self._urgent:
            return
        t0 = time.monotonic()
        with self._urgent_cv:
            self._urgent_cv.wait_for(lambda: not self._urgent, timeout=limit)
        self.paused_s += time.monotonic() - t0

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        for executor in self._pinned.values():
            executor.shutdown(wait=False, cancel_futures=True)


_default: ComputePool | None = None


def default_pool() -> ComputePool:
    """The process-wide pool (created on first use; the app configures its limits at start)."""
    global _default
    if _default is None:
        _default = ComputePool()
    return _default
