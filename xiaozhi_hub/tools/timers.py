"""Timers and alarms: stored in SQLite, announced on the device when due, across hub restarts.

A timer is a row until it has been announced (or cancelled), so a hub restart loses nothing: the new
process finds the row and announces it when due. Delivery is at-least-once: the row is deleted only
after the announcement was spoken (or the user stopped it), never before, so a crash in between
repeats the announcement rather than dropping it.

Stock devices keep their channel open only while a conversation is going on (the hub closes idle
sessions), so a due timer often finds its device disconnected. It then waits, and the scheduler
looks for the device in the session registry every ``agent.timer_poll_seconds`` until it connects
again (or the timer is older than ``agent.timer_max_late_hours``). A device that is in the middle of
a conversation turn is not interrupted; the announcement follows the turn.

One asyncio task runs the schedule: it sleeps until the next due time (or the next poll while a
due timer is waiting for its device) and is woken early when a timer is added or cancelled. The
agent owns the service and starts it (the hub starts the agent, see :mod:`xiaozhi_hub.app`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Protocol, Sequence

from ..session.state import SessionState
from ..settings import Settings
from ..store.db import Database, migration
from .spoken import format_clock, format_duration

log = logging.getLogger(__name__)

migration("tools.timers.v1", """
CREATE TABLE IF NOT EXISTS timers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('timer', 'alarm')),
    label TEXT NOT NULL DEFAULT '',
    duration REAL,
    due_at REAL NOT NULL,
    lang TEXT NOT NULL DEFAULT 'en',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS timers_due_at ON timers (due_at);
CREATE INDEX IF NOT EXISTS timers_device ON timers (device_id, due_at);
""")

# Session states in which an announcement may start.
_READY_STATES = frozenset({SessionState.IDLE, SessionState.LISTENING})


@dataclass(frozen=True)
class Timer:
    id: int
    device_id: str
    kind: str            # "timer" | "alarm"
    label: str
    duration: float | None
    due_at: float        # unix time
    lang: str
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Timer":
        return cls(row["id"], row["device_id"], row["kind"], row["label"], row["duration"], row["due_at"],
                   row["lang"], row["created_at"])

    def remaining(self, now: float) -> float:
        return max(0.0, self.due_at - now)

    def describe(self, lang: str, now: float) -> str:
        """Speakable: "the 10 minute timer, 4 minutes left" / "the alarm at 7 AM"."""
        if self.kind == "alarm":
            t = time.localtime(self.due_at)
            at = format_clock(t.tm_hour, t.tm_min, lang)
            if lang == "zh":
                return f"{self.label + '的' if self.label else ''}{at}的闹钟"
            return f"the {self.label + ' ' if self.label else ''}alarm at {at}"
        left = format_duration(int(round(self.remaining(now))), lang)
        name = self.label or format_duration(int(self.duration or 0), lang, compound=True)
        if lang == "zh":
            return f"{name}的计时器，还剩{left}"
        return f"the {name} timer, {left} left"

    def announcement(self, now: float) -> str:
        """What the device says when the timer is due (mentions lateness after a missed delivery)."""
        late = now - self.due_at
        zh = self.lang == "zh"
        if self.kind == "alarm":
            t = time.localtime(self.due_at)
            at = format_clock(t.tm_hour, t.tm_min, self.lang)
            text = (f"现在是{at}，{self.label + '，' if self.label else ''}闹钟响了。" if zh else
                    f"It's {at}. {'Time to ' + self.label + '. ' if self.label else ''}Your alarm is going off.")
        elif self.label:
            text = f"时间到了：{self.label}。" if zh else f"Time's up: {self.label}."
        else:
            d = format_duration(int(self.duration or 0), self.lang, compound=True)
            text = f"{d}的计时器时间到了。" if zh else f"Your {d} timer is done."
        if late >= 60:
            ago = format_duration(int(late // 60) * 60, self.lang)
            text += f"（它在{ago}前就到了。）" if zh else f" It went off {ago} ago."
        return text


class TimerLimitError(Exception):
    """The device already has ``agent.max_timers`` active timers."""


class TimerStore:
    """The ``timers`` table. Each write is its own transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, device_id: str, kind: str, due_at: float, label: str = "", duration: float | None = None,
                  lang: str = "en", limit: int | None = None, now: float | None = None) -> Timer:
        created = time.time() if now is None else now

        def write(conn: sqlite3.Connection) -> Timer:
            if limit is not None:
                n = conn.execute("SELECT COUNT(*) FROM timers WHERE device_id = ?", (device_id,)).fetchone()[0]
                if n >= limit:
                    raise TimerLimitError(f"{device_id} already has {n} timers")
            cur = conn.execute(
                "INSERT INTO timers (device_id, kind, label, duration, due_at, lang, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", (device_id, kind, label, duration, due_at, lang, created))
            return Timer(int(cur.lastrowid or 0), device_id, kind, label, duration, due_at, lang, created)

        return await self.db.transaction(write)

    async def for_device(self, device_id: str) -> list[Timer]:
        rows = await self.db.fetchall("SELECT * FROM timers WHERE device_id = ? ORDER BY due_at, id", (device_id,))
        return [Timer.from_row(r) for r in rows]

    async def due(self, now: float) -> list[Timer]:
        rows = await self.db.fetchall("SELECT * FROM timers WHERE due_at <= ? ORDER BY due_at, id", (now,))
        return [Timer.from_row(r) for r in rows]

    async def next_due_at(self, after: float) -> float | None:
        row = await self.db.fetchone("SELECT MIN(due_at) FROM timers WHERE due_at > ?", (after,))
        return row[0] if row and row[0] is not None else None

    async def delete(self, timer_ids: Sequence[int]) -> int:
        if not timer_ids:
            return 0
        marks = ",".join("?" * len(timer_ids))
        return await self.db.execute(f"DELETE FROM timers WHERE id IN ({marks})", tuple(timer_ids))


class HeardSpeech(Protocol):
    """The utterance in progress, as far as an announcement cares."""

    @property
    def heard_speech(self) -> bool: ...


class Announcer(Protocol):
    """What the scheduler needs from a connected session (``Session`` has all of it)."""

    @property
    def state(self) -> SessionState: ...

    @property
    def busy(self) -> bool: ...

    @property
    def utterance(self) -> HeardSpeech | None: ...

    def start_reply(self, deltas: AsyncIterator[str], user_text: str | None = None) -> "asyncio.Task[None]": ...


async def _once(text: str) -> AsyncIterator[str]:
    yield text


class TimerService:
    """Adds, lists, cancels timers and announces them when due."""

    def __init__(self, db: Database, settings: Settings,
                 find_session: Callable[[str], Announcer | None],
                 clock: Callable[[], float] = time.time) -> None:
        self.store = TimerStore(db)
        self.settings = settings
        self.find_session = find_session
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._delivering: dict[int, asyncio.Task[None]] = {}
        self.announced: list[Timer] = []  # most recent last; kept short, for status and tests
        self.on_announced: Callable[[Timer], Awaitable[None] | None] | None = None

    # -- commands (called by tools) ------------------------------------------------------
    async def add_timer(self, device_id: str, seconds: float, label: str = "", lang: str = "en") -> Timer:
        now = self.clock()
        timer = await self.store.add(device_id, "timer", now + seconds, label, seconds, lang,
                                     self.settings.agent.max_timers, now)
        self._wake.set()
        return timer

    async def add_alarm(self, device_id: str, due_at: float, label: str = "", lang: str = "en") -> Timer:
        timer = await self.store.add(device_id, "alarm", due_at, label, None, lang,
                                     self.settings.agent.max_timers, self.clock())
        self._wake.set()
        return timer

    async def active(self, device_id: str) -> list[Timer]:
        """The device's timers and alarms, soonest first (those being announced excluded)."""
        return [t for t in await self.store.for_device(device_id) if t.id not in self._delivering]

    async def cancel(self, device_id: str, label: str | None = None, kind: str | None = None,
                     all_: bool = False) -> list[Timer]:
        """Cancel matching timers: all of them, those whose label matches, or else the next one due."""
        timers = await self.active(device_id)
        if kind:
            timers = [t for t in timers if t.kind == kind]
        if not all_:
            if label:
                want = label.strip().lower()
                timers = [t for t in timers if t.label.lower() == want or want in t.label.lower()]
            timers = timers[:1]
        await self.store.delete([t.id for t in timers])
        self._wake.set()
        return timers

    # -- scheduling --------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
            self._task.set_name("timers")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._delivering.values()) if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        self._task = None
        self._delivering.clear()

    def wake(self) -> None:
        """Look at due timers now (e.g. a device just connected)."""
        self._wake.set()

    async def _run(self) -> None:
        poll = self.settings.agent.timer_poll_seconds
        while True:
            try:
                waiting = await self.deliver_due()
                now = self.clock()
                nxt = await self.store.next_due_at(now)
                delay = 3600.0 if nxt is None else max(0.0, nxt - now)
                if waiting:
                    delay = min(delay, poll)
            except asyncio.CancelledError:
                raise
            except Exception:  # the schedule must survive a bad row or a database hiccup
                log.exception("timer scheduler failed; retrying")
                delay = max(poll, 1.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # not wait_for: it can swallow close()'s cancel on 3.11
                    await self._wake.wait()

    async def deliver_due(self) -> int:
        """Announce due timers whose device is ready; returns how many are still waiting."""
        now = self.clock()
        max_late = self.settings.agent.timer_max_late_hours * 3600
        waiting = 0
        expired: list[int] = []
        for timer in await self.store.due(now):
            if timer.id in self._delivering:
                continue
            if now - timer.due_at > max_late:
                log.info("timer %s of %s dropped: missed by %.0f s", timer.id, timer.device_id, now - timer.due_at)
                expired.append(timer.id)
                continue
            session = self.find_session(timer.device_id)
            if session is None or not _ready(session):
                waiting += 1
                continue
            self._announce(session, timer, now)
        await self.store.delete(expired)
        return waiting

    def _announce(self, session: Announcer, timer: Timer, now: float) -> None:
        text = timer.announcement(now)
        log.info("timer %s: announcing on %s: %s", timer.id, timer.device_id, text)
        reply = session.start_reply(_once(text))
        task = asyncio.ensure_future(self._finish(session, timer, reply))
        task.set_name(f"timer-announce:{timer.id}")
        self._delivering[timer.id] = task

    async def _finish(self, session: Announcer, timer: Timer, reply: "asyncio.Task[None]") -> None:
        """Delete the timer once its announcement was spoken or stopped by the user; if the session
        closed first, keep it for the next connection."""
        try:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(reply)
            if session.state is SessionState.CLOSED:
                log.info("timer %s: device left during the announcement; will retry", timer.id)
                return
            await self.store.delete([timer.id])
            self.announced.append(timer)
            del self.announced[:-20]
            if self.on_announced is not None:
                result = self.on_announced(timer)
                if asyncio.iscoroutine(result):
                    await result
        finally:
            self._delivering.pop(timer.id, None)
            self._wake.set()


def _ready(session: Announcer) -> bool:
    """A session can take an announcement: hello done, not closed, not in a turn, user not speaking."""
    if session.state not in _READY_STATES or session.busy:
        return False
    utt = session.utterance
    return not (utt is not None and utt.heard_speech)
