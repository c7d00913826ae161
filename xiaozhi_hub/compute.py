"""Shared, bounded compute for blocking work (codecs, ASR, LLM, TTS).

One thread pool for the whole process, sized to the machine, never one per connection. Each engine
("asr", "llm", "tts", "opus", ...) has its own concurrency limit and a FIFO queue in front of it, so
devices are served in arrival order (urgent work, :meth:`ComputePool.urgent`, ahead of the rest). A caller that would wait longer than ``max_wait`` gets
:class:`BusyError` and can answer "busy" instead of leaving the device in silence.

The busy answer rests on an estimate of the wait, so every estimate is checked against what then
happened: an admitted request's real wait, and for a refused one, how long the work that was ahead
of it really took to drain. ``/metrics`` reports both (``<kind>_wait*``, ``<kind>_busy*``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator, TypeVar

from .providers.base import BusyError

if TYPE_CHECKING:
    from .metrics import Metrics

T = TypeVar("T")

# Set (per task) while the task does latency-critical work; its jobs then count as urgent while they run.
_URGENT: contextvars.ContextVar[bool] = contextvars.ContextVar("compute_urgent", default=False)
# Set (per task) by an answer that is playing: how many seconds of its audio are left to play (None
# before it plays). Its request waiting in a queue is served first once that falls below PROMOTE_BELOW_S.
_AUDIO_LEFT: contextvars.ContextVar[Callable[[], float | None] | None] = contextvars.ContextVar(
    "compute_audio_left", default=None)
PROMOTE_BELOW_S = 2.0   # audio left when a playing answer's next text goes ahead of new questions


class _Ghost:
    """A refused request, still counted: the work that was ahead of it and when it was refused."""

    __slots__ = ("at", "ahead", "predicted")

    def __init__(self, at: float, ahead: int, predicted: float) -> None:
        self.at = at
        self.ahead = ahead
        self.predicted = predicted


class _FairLimit:
    """A FIFO semaphore whose waiters can give up after a timeout without losing their place.

    An urgent waiter (:meth:`ComputePool.urgent`: a sentence a user is waiting to hear) queues ahead
    of the ordinary ones, behind earlier urgent ones: with several devices, the second sentence of
    one answer (its first still playing) used to be synthesized before another device's first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._urgent: set[asyncio.Future[None]] = set()    # the waiters that queued as urgent
        self._playing: dict[asyncio.Future[None], Callable[[], float | None]] = {}   # their audio left
        self.on_promoted: Callable[[], None] | None = None   # a playing answer served ahead of earlier arrivals
        self.hold_ewma: float | None = None  # how long a slot is typically held (seconds)
        self.since: list[float] = []         # when each current holder took its slot
        self.ghosts: list[_Ghost] = []       # refused requests whose would-be wait is still running
        self.on_ghost_done: Callable[[_Ghost, float], None] | None = None

    def expected_wait(self, now: float | None = None) -> float:
        """Seconds a new arrival would wait: what the holders typically still need (a typical hold
        minus what they have held already, at least a tenth of one), then a typical hold for each
        request queued ahead, shared over the slots."""
        hold = self.hold_ewma
        if hold is None or (self.active < self.limit and not self.waiting):
            return 0.0
        now = time.monotonic() if now is None else now
        remaining = sum(max(0.1 * hold, hold - (now - t)) for t in self.since)
        return (remaining + self.waiting * hold) / self.limit

    def refuse(self, predicted: float) -> None:
        """Remember a refused request, to learn how long it would really have waited."""
        self.ghosts.append(_Ghost(time.monotonic(), self.active + self.waiting, predicted))

    def _one_left(self) -> None:
        """A holder or waiter ahead of the ghosts left: those with a free slot now are done."""
        if not self.ghosts:
            return
        now = time.monotonic()
        still = []
        for ghost in self.ghosts:
            ghost.ahead -= 1
            if ghost.ahead < self.limit:
                if self.on_ghost_done is not None:
                    self.on_ghost_done(ghost, now - ghost.at)
            else:
                still.append(ghost)
        self.ghosts = still

    def held(self, seconds: float) -> None:
        self.hold_ewma = seconds if self.hold_ewma is None else 0.7 * self.hold_ewma + 0.3 * seconds

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def queued(self) -> int:
        """Requests in the queue, for a compute thread to ask (a length, safe to read off the loop)."""
        return len(self._waiters)

    async def acquire(self, timeout: float | None) -> None:
        if self.active < self.limit and not self.waiting:
            self.active += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(fut, _URGENT.get())
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
                self._one_left()
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
            self._urgent.discard(fut)
            self._playing.pop(fut, None)
            raise
        # The slot was transferred to us by release(); active already counts it.

    def _enqueue(self, fut: asyncio.Future[None], urgent: bool) -> None:
        audio_left = _AUDIO_LEFT.get()
        if audio_left is not None:
            self._playing[fut] = audio_left
        if not urgent:
            self._waiters.append(fut)
            return
        self._urgent.add(fut)
        ahead = next((i for i, w in enumerate(self._waiters) if w not in self._urgent), len(self._waiters))
        self._waiters.insert(ahead, fut)

    def _release_slot(self) -> None:
        self._one_left()
        while self._waiters:
            fut = self._next()
            self._waiters.remove(fut)
            self._urgent.discard(fut)
            self._playing.pop(fut, None)
            if not fut.done():
                fut.set_result(None)  # transfer the slot
                return
        self.active -= 1

    def _next(self) -> asyncio.Future[None]:
        """Who gets a freed slot: the queue's head, unless that is an ordinary request and a playing
        answer in the queue has less than ``PROMOTE_BELOW_S`` of audio left (the one with the least).

        With several devices asking on and on, an answer that gave the LLM up after its first
        sentences (llm_llamacpp, Taking turns) queued behind every question asked since; its
        device fell silent mid-answer for up to 7.9 s in a 30-minute run. A question waiting a
        little longer is covered by "One moment."; a pause in the middle of an answer is not."""
        head = self._waiters[0]
        if head in self._urgent or not self._playing:
            return head
        best, least = head, PROMOTE_BELOW_S
        for fut, audio_left in self._playing.items():
            left = None if fut.done() else audio_left()
            if left is not None and left < least:
                best, least = fut, left
        if best is not head and self.on_promoted is not None:
            self.on_promoted()
        return best

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
            self._limits[kind] = self._new_limit(kind, n)
        self._max_wait = dict(max_wait or {})
        self._pinned: dict[str, ThreadPoolExecutor] = {}
        self.stats: dict[str, dict[str, float]] = collections.defaultdict(
            lambda: {"calls": 0, "busy": 0, "wait_s": 0.0, "run_s": 0.0})
        self._urgent = 0             # urgent jobs running now
        self._urgent_cv = threading.Condition()
        self.paused_s = 0.0          # time background work spent paused for urgent work
        self.metrics: Metrics | None = None   # where the busy estimate's checks go (the app sets it)

    def limit(self, kind: str) -> _FairLimit:
        lim = self._limits.get(kind)
        if lim is None:
            lim = self._limits[kind] = self._new_limit(kind, self._default_limit)
        return lim

    def _new_limit(self, kind: str, n: int) -> _FairLimit:
        lim = _FairLimit(max(1, n))
        lim.on_promoted = lambda: self.metrics.inc(f"{kind}_promoted") if self.metrics is not None else None
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
    async def slot(self, kind: str, max_wait: float | None = None, *, background: bool = False,
                   patient: bool = False) -> AsyncIterator[None]:
        """Hold one slot of ``kind`` (for streaming work that spans several calls).

        ``max_wait``: None is the kind's own limit (``set_limit``). ``patient``: no limit at all, never
        busy (the rest of an answer that has begun playing).
        ``background``: optional work (a prompt-cache warm-up or prefill) whose hold time says nothing
        about how long a device's request holds the slot, so it is left out of the estimate behind
        the busy answer (a warm-up of many seconds on a busy machine made later turns look queued)."""
        lim = self.limit(kind)
        if patient:
            wait = None
        else:
            wait = self._max_wait.get(kind) if max_wait is None else max_wait
        checked = wait is not None and wait > 0 and not background     # a device's request that may hear "busy"
        predicted = lim.expected_wait()
        if wait is not None and predicted > wait:
            # Answer "busy" now rather than after a silent wait that would end the same way.
            self.stats[kind]["busy"] += 1
            if checked:
                self._refused(kind, lim, predicted)
            raise BusyError(f"{kind} engine busy (about {predicted:.1f}s of work queued)")
        t0 = time.monotonic()
        try:
            await lim.acquire(wait)
        except TimeoutError:
            self.stats[kind]["busy"] += 1
            if checked:
                self._observe(f"{kind}_busy_timeout", predicted)
            raise BusyError(f"{kind} engine busy (waited {wait:.1f}s)") from None
        t1 = time.monotonic()
        self.stats[kind]["wait_s"] += t1 - t0
        if checked:
            self._waited(kind, predicted, t1 - t0)
        lim.since.append(t1)
        try:
            yield
        finally:
            lim.since.remove(t1)
            if not background:
                lim.held(time.monotonic() - t1)
            lim.release()

    # -- the busy estimate, checked against what happened ---------------------------------------------
    def _observe(self, name: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe(name, seconds)

    def _waited(self, kind: str, predicted: float, actual: float) -> None:
        """An admitted request: its estimated wait and its real one."""
        self._observe(f"{kind}_wait", actual)
        self._observe(f"{kind}_wait_predicted", predicted)
        self._observe(f"{kind}_wait_error", abs(actual - predicted))
        if self.metrics is not None:
            self.metrics.inc(f"{kind}_wait_estimates")

    def _refused(self, kind: str, lim: _FairLimit, predicted: float) -> None:
        """A refused request: how long the work ahead of it really takes is recorded when it is done."""
        if lim.on_ghost_done is None:
            def done(ghost: _Ghost, actual: float) -> None:
                self._observe(f"{kind}_busy_predicted", ghost.predicted)
                self._observe(f"{kind}_busy_actual", actual)
            lim.on_ghost_done = done
        lim.refuse(predicted)
        if self.metrics is not None:
            self.metrics.inc(f"{kind}_busy_refusals")

    async def run_in_slot(self, kind: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the executor; the caller already holds a slot of ``kind``. Inside
        :meth:`urgent`, the job counts as urgent work while it runs."""
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        call: Callable[[], T] = functools.partial(fn, *args, **kwargs)
        if _URGENT.get():
            call = functools.partial(self._run_urgent, call)
        try:
            executor = self._pinned.get(kind, self._executor)
            return await loop.run_in_executor(executor, call)
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
    def playing(self, audio_left: Callable[[], float | None]) -> Iterator[None]:
        """Mark the current task as the producer of an answer that may be playing: ``audio_left()``
        says how many seconds of its audio are left to play (None while it does not play). A request
        it queues is served ahead of ordinary ones once that is below ``PROMOTE_BELOW_S``."""
        token = _AUDIO_LEFT.set(audio_left)
        try:
            yield
        finally:
            _AUDIO_LEFT.reset(token)

    @contextlib.contextmanager
    def urgent(self) -> Iterator[None]:
        """Mark the current task's work as latency-critical: the first sentence a user is waiting to hear
        (or the next one, when the answer has less than a sentence's synthesis time of audio left).

        On two cores, synthesizing that sentence while an LLM generates (with a thread per core)
        took ~1.7x as long. While one of this task's jobs *runs* (not while it waits in a queue:
        four devices' first sentences queued for the one TTS engine used to hold the LLM still for
        seconds), generations that call :meth:`pause_for_urgent` between tokens wait; the LLM
        writes far faster than speech plays, so nobody hears the pause.
        """
        token = _URGENT.set(True)
        try:
            yield
        finally:
            _URGENT.reset(token)

    def _run_urgent(self, call: Callable[[], T]) -> T:
        with self._urgent_cv:
            self._urgent += 1
        try:
            return call()
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
