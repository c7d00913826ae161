"""Timers and alarms: stored in SQLite, announced on the device when due, across hub restarts.

A timer is a row until it is due (or cancelled), so a hub restart loses nothing: the new process
finds the row and hands it over when due. When due it becomes an announcement
(:mod:`xiaozhi_hub.services.announce`), so timers follow the same rules as every "say this": spoken
at once on a device whose channel is open (after a reply in progress, never cutting it off), else
queued in SQLite and spoken right after the device's next hello, saying how late it is; given up
once it is ``agent.timer_max_late_hours`` late. Stock devices keep their channel open only during a
conversation, so a due timer often waits for the device's next connection.

One asyncio task runs the schedule: it sleeps until the next due time and is woken early when a
timer is added or cancelled. The agent owns the service and starts it (the hub starts the agent,
see :mod:`xiaozhi_hub.app`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

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

    def announcement(self) -> str:
        """What the device says when the timer is due (how late it is, if it is, the announcement adds)."""
        zh = self.lang == "zh"
        if self.kind == "alarm":
            t = time.localtime(self.due_at)
            at = format_clock(t.tm_hour, t.tm_min, self.lang)
            return (f"现在是{at}，{self.label + '，' if self.label else ''}闹钟响了。" if zh else
                    f"It's {at}. {'Time to ' + self.label + '. ' if self.label else ''}Your alarm is going off.")
        if self.label:
            return f"时间到了：{self.label}。" if zh else f"Time's up: {self.label}."
        d = format_duration(int(self.duration or 0), self.lang, compound=True)
        return f"{d}的计时器时间到了。" if zh else f"Your {d} timer is done."


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


class TimerAnnouncer(Protocol):
    """Where due timers go: the announcement rules (:class:`xiaozhi_hub.services.announce.Announcements`)."""

    async def say(self, device_id: str, text: Any, *, ttl: Any = None, ann_id: Any = None, source: str = "api",
                  lang: str | None = None, wait: bool = True, since: float | None = None) -> Any: ...


class TimerService:
    """Adds, lists, cancels timers and hands them to the announcements when due."""

    def __init__(self, db: Database, settings: Settings, announcer: TimerAnnouncer | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = TimerStore(db)
        self.settings = settings
        self.announcer = announcer        # None: nothing announces (an agent without a hub, in tests)
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

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
        """The device's timers and alarms, soonest first."""
        return await self.store.for_device(device_id)

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
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=2.0)

    async def _run(self) -> None:
        while True:
            try:
                await self.deliver_due()
                now = self.clock()
                nxt = await self.store.next_due_at(now)
                delay = 3600.0 if nxt is None else max(0.0, nxt - now)
            except asyncio.CancelledError:
                raise
            except Exception:  # the schedule must survive a bad row or a database hiccup
                log.exception("timer scheduler failed; retrying")
                delay = 5.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # not wait_for: it can swallow close()'s cancel on 3.11
                    await self._wake.wait()

    async def deliver_due(self) -> int:
        """Hand every due timer to the announcements (or drop it when missed for too long); returns how
        many were handed over. The announcement is stored before the timer row is deleted, under the id
        ``timer-<id>``, so a crash in between repeats it at most once and never loses it."""
        if self.announcer is None:
            return 0
        now = self.clock()
        max_late = self.settings.agent.timer_max_late_hours * 3600
        done: list[int] = []
        for timer in await self.store.due(now):
            late = now - timer.due_at
            if late > max_late:
                log.info("timer %s of %s dropped: missed by %.0f s", timer.id, timer.device_id, late)
            else:
                log.info("timer %s due on %s", timer.id, timer.device_id)
                await self.announcer.say(timer.device_id, timer.announcement(), ttl=max(1.0, max_late - late),
                                         ann_id=f"timer-{timer.id}", source="timer", lang=timer.lang, wait=False,
                                         since=timer.due_at)
            done.append(timer.id)
        await self.store.delete(done)
        return len(done)
