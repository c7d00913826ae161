"""Announcements — "say this on that device" — and the one set of rules for delivering them.

The HTTP API, MQTT and the timers are front doors to :meth:`Announcements.say`. The rules:

- Every announcement is first stored in SQLite (:mod:`xiaozhi_hub.store.announcements`), so nothing
  accepted is lost to a restart or ``kill -9``; the row is deleted once the outcome is final.
- A device whose channel is open speaks it at once: priority ``normal`` waits until a reply in
  progress has ended (and the user is not in the middle of a sentence); ``now`` cancels the reply
  (the agent stores the cut-off answer as interrupted) and speaks.
- A device that is not connected gets it queued (outcome ``queued``); if it is reachable while idle
  (connected over MQTT, docs/mqtt-udp.md) the text shows on its screen at once (:attr:`alert`),
  and it is still spoken on its next audio channel. Queued announcements are
  spoken in order on the device's next connection, right after the hello and before the device's
  own request is answered (a ``listen start`` meanwhile does not cut them off).
- At most ``announce.max_queued`` wait per device; a new one pushes out the oldest (``dropped``).
- One not delivered within its ttl (``announce.ttl_seconds`` unless the caller gives one) is
  ``expired``.
- ``spoken`` once it has been said (also when the user stopped it part way, with
  ``"interrupted": true`` in the event); ``failed`` when nothing could be synthesised. A device that
  leaves while it is being spoken keeps it queued for its next connection (delivery is at least once).
- A spoken announcement returns the device to the state it was in (the session restores it).

Every outcome is published as an ``announcement`` event ``{"id", "status", "text"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol, Sequence

from ..settings import AnnounceSettings
from ..store.announcements import Announcement, AnnouncementQueue
from ..store.db import Database
from ..tools.spoken import format_duration
from .events import EventType
from .live import LiveDevices

log = logging.getLogger(__name__)

SPOKEN, QUEUED, EXPIRED, DROPPED, FAILED = "spoken", "queued", "expired", "dropped", "failed"
PRIORITIES = ("normal", "now")
MAX_TEXT_CHARS = 1000             # longer text is refused (about a minute of speech)
MAX_ID_CHARS = 64
MAX_TTL_SECONDS = 30 * 24 * 3600
WAIT_SECONDS = 60.0               # how long say(wait=True) waits for a connected device's outcome
READY_POLL = 0.05                 # how often a waiting normal announcement looks at its device
LATE_AFTER = 60.0                 # announcements with a language say how late they are after this


class AnnounceError(ValueError):
    """A ``say`` request that cannot be accepted; the message is meant for the caller."""


class AnnounceTarget(Protocol):
    """What the rules need from a connected session (``Session`` implements it)."""

    device_id: str

    @property
    def channel_open(self) -> bool: ...

    def ready_for_announcement(self) -> bool: ...

    def announce(self, work: Callable[[], Awaitable[None]]) -> "asyncio.Task[Any]": ...

    async def speak_text(self, text: str) -> str: ...


@dataclass(frozen=True)
class SayResult:
    id: str
    status: str
    device_id: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "status": self.status, "device_id": self.device_id}


def validate(text: Any, ttl: Any, priority: Any, ann_id: Any) -> tuple[str, float | None, str, str | None]:
    """Check the caller's values (any front door); raises :class:`AnnounceError` with the reason."""
    if not isinstance(text, str) or not text.strip():
        raise AnnounceError("text must be a non-empty string")
    text = text.strip()
    if len(text) > MAX_TEXT_CHARS:
        raise AnnounceError(f"text is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))
                            or not 0 < ttl <= MAX_TTL_SECONDS):
        raise AnnounceError(f"ttl must be a number of seconds between 1 and {MAX_TTL_SECONDS}")
    if priority not in PRIORITIES:
        raise AnnounceError("priority must be \"normal\" or \"now\"")
    if ann_id is not None and (not isinstance(ann_id, str) or not 0 < len(ann_id) <= MAX_ID_CHARS
                               or not ann_id.isprintable()):
        raise AnnounceError(f"id must be a printable string of 1-{MAX_ID_CHARS} characters")
    return text, (float(ttl) if ttl is not None else None), priority, ann_id


def late_note(ann: Announcement, now: float) -> str:
    """The text to speak: for announcements with a language, how late it is when delivered late."""
    late = now - ann.created_at
    if ann.lang is None or late < LATE_AFTER:
        return ann.text
    ago = format_duration(int(late // 60) * 60, ann.lang)
    return f"{ann.text}（这是{ago}前的提醒。）" if ann.lang == "zh" else f"{ann.text} This was due {ago} ago."


class Announcements:
    def __init__(self, db: Database, settings: AnnounceSettings, live: LiveDevices,
                 find_session: Callable[[str], AnnounceTarget | None], clock: Callable[[], float] = time.time) -> None:
        self.queue = AnnouncementQueue(db)
        self.settings = settings
        self.live = live
        self.find_session = find_session
        self.clock = clock
        self._queued: dict[str, int] = {}             # rows per device (exact: every write is ours)
        self._busy: set[int] = set()                  # rows being spoken now
        self._waiters: dict[int, list[asyncio.Future[str]]] = {}
        self._unsettled: dict[int, Announcement] = {}  # accepted for an open channel, no outcome yet
        self._urgent: set[str] = set()                # devices with a "now" row waiting
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._expiry: asyncio.Task[None] | None = None
        # Shows a queued announcement's text on an idle device's screen (set by the app; False when
        # the device cannot be reached that way). Never delays or changes the outcome.
        self.alert: Callable[[str, str], Awaitable[bool]] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._queued = await self.queue.counts()
        self._expiry = asyncio.create_task(self._expiry_loop(), name="announce-expiry")

    async def close(self) -> None:
        tasks = [t for t in (self._expiry, *self._workers.values(), *self._tasks) if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        for futures in self._waiters.values():
            for fut in futures:
                if not fut.done():
                    fut.set_result(QUEUED)
        self._waiters.clear()

    # -- the front door ------------------------------------------------------------------------------
    async def say(self, device_id: str, text: Any, *, ttl: Any = None, priority: Any = "normal",
                  ann_id: Any = None, source: str = "api", lang: str | None = None, wait: bool = True,
                  wait_seconds: float = WAIT_SECONDS, since: float | None = None) -> SayResult:
        """Accept one announcement for one device; the result is its outcome so far (see module doc).

        ``lang``: say how late it is when delivered a minute or more after ``since`` (when it was due,
        default now) in this language ("en"/"zh"); the timers use it."""
        text, ttl_s, priority, ann_id = validate(text, ttl, priority, ann_id)
        now = self.clock()
        ann = Announcement(0, ann_id or uuid.uuid4().hex[:12], device_id, text, priority, source, lang,
                           now if since is None else since,
                           now + (ttl_s if ttl_s is not None else self.settings.ttl_seconds))
        stored, new, dropped = await self.queue.enqueue(ann, self.settings.max_queued, self._busy)
        self._count(device_id, int(new) - len(dropped))
        for old in dropped:
            self._settle(old, DROPPED)
        self._wake.set()          # the expiry timer may need to fire sooner
        session = self.find_session(device_id)
        if session is None or not session.channel_open:
            self._publish(stored, QUEUED)
            if self.alert is not None:
                self._track(self._show(device_id, text))
            return SayResult(stored.id, QUEUED, device_id)
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(stored.seq, []).append(outcome)
        self._unsettled[stored.seq] = stored
        if priority == "now":
            self._urgent.add(device_id)
        self._kick(device_id)
        if not wait:
            return SayResult(stored.id, QUEUED, device_id)
        try:
            async with asyncio.timeout(wait_seconds):
                status = await asyncio.shield(outcome)
        except TimeoutError:
            status = QUEUED       # still waiting for its turn; the outcome follows as an event
        return SayResult(stored.id, status, device_id)

    async def _show(self, device_id: str, text: str) -> None:
        assert self.alert is not None
        try:
            await self.alert(device_id, text)
        except Exception:           # the alert is a courtesy; the queued row is what counts
            log.exception("%s: showing an announcement as an alert failed", device_id)

    async def say_many(self, device_ids: Sequence[str], text: Any, **kw: Any) -> list[SayResult]:
        validate(text, kw.get("ttl"), kw.get("priority", "normal"), kw.get("ann_id"))   # one error, not N
        return list(await asyncio.gather(*(self.say(d, text, **kw) for d in device_ids)))

    # -- the session hook ------------------------------------------------------------------------------
    def on_hello(self, session: AnnounceTarget) -> None:
        """Called by a session right after its hello (synchronously, before it reads the next message):
        queued announcements become the session's turn at once, so the device's own first request
        waits for them."""
        device = session.device_id
        if not self._queued.get(device):
            return
        old = self._workers.pop(device, None)
        if old is not None and not old.done():
            old.cancel()       # it waited on the previous connection; this one takes over
        first = session.announce(lambda: self._drain(session))
        self._workers[device] = asyncio.create_task(self._work(device, first), name=f"announce:{device}")

    # -- delivery --------------------------------------------------------------------------------------
    def _kick(self, device_id: str) -> None:
        worker = self._workers.get(device_id)
        if worker is None or worker.done():
            self._workers[device_id] = asyncio.create_task(self._work(device_id), name=f"announce:{device_id}")

    async def _work(self, device: str, first: "asyncio.Task[Any] | None" = None) -> None:
        """One per device with something to say: wait for the right moment, let the session speak."""
        try:
            if first is not None:
                await asyncio.wait({first})
            while self._queued.get(device):
                session = self.find_session(device)
                if session is None or not session.channel_open:
                    break
                if not await self._until_ready(session):
                    continue
                turn = session.announce(functools.partial(self._drain, session))
                await asyncio.wait({turn})
                if not turn.cancelled() and turn.exception() is not None:
                    await asyncio.sleep(1.0)     # logged by the session; do not spin on a broken database
        finally:
            if self._workers.get(device) is asyncio.current_task():
                del self._workers[device]
            session = self.find_session(device)
            if session is None or not session.channel_open:
                for ann in [a for a in self._unsettled.values() if a.device_id == device]:
                    self._settle(ann, QUEUED)        # the device left first: next connection

    async def _until_ready(self, session: AnnounceTarget) -> bool:
        """Wait until the device may be spoken to (a "now" announcement does not wait)."""
        device = session.device_id
        while session.channel_open and self._queued.get(device):
            if device in self._urgent or session.ready_for_announcement():
                return True
            await asyncio.sleep(READY_POLL)
        return False

    async def _drain(self, session: AnnounceTarget) -> None:
        """Speak the device's queued announcements in order (runs as the session's turn)."""
        device = session.device_id
        self._urgent.discard(device)
        while True:
            rows = [a for a in await self.queue.for_device(device) if a.seq not in self._busy]
            if not rows:
                return
            ann = rows[0]
            if ann.expires_at <= self.clock():
                await asyncio.shield(self._finish(ann, EXPIRED))
                continue
            self._busy.add(ann.seq)
            try:
                spoken = await session.speak_text(late_note(ann, self.clock()))
            except BaseException as err:
                self._busy.discard(ann.seq)
                if not session.channel_open or isinstance(err, (ConnectionError, TimeoutError)):
                    self._settle(ann, QUEUED)     # the device left: its next connection hears it
                elif isinstance(err, asyncio.CancelledError):   # the user stopped it: it was heard
                    self._track(self._finish(ann, SPOKEN, interrupted=True))
                else:
                    self._track(self._finish(ann, FAILED))
                raise
            self._busy.discard(ann.seq)
            await asyncio.shield(self._finish(ann, SPOKEN if spoken else FAILED))

    # -- outcomes ----------------------------------------------------------------------------------------
    async def _finish(self, ann: Announcement, status: str, **extra: Any) -> None:
        if await self.queue.delete([ann.seq]):
            self._count(ann.device_id, -1)
        self._settle(ann, status, **extra)

    def _count(self, device_id: str, delta: int) -> None:
        n = self._queued.get(device_id, 0) + delta
        if n > 0:
            self._queued[device_id] = n
        else:
            self._queued.pop(device_id, None)

    def queued_count(self, device_id: str) -> int:
        """Announcements stored for the device (waiting, or being spoken)."""
        return self._queued.get(device_id, 0)

    def _settle(self, ann: Announcement, status: str, **extra: Any) -> None:
        """Publish an outcome and answer whoever waits for it (a final one, or queued for later)."""
        self._unsettled.pop(ann.seq, None)
        self._publish(ann, status, **extra)
        for fut in self._waiters.pop(ann.seq, []):
            if not fut.done():
                fut.set_result(status)

    def _publish(self, ann: Announcement, status: str, **extra: Any) -> None:
        log.info("announcement %s on %s: %s", ann.id, ann.device_id, status)
        self.live.bus.publish(EventType.ANNOUNCEMENT, ann.device_id, id=ann.id, status=status, text=ann.text,
                              **extra)

    def _track(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- expiry ------------------------------------------------------------------------------------------
    async def expire_due(self) -> list[Announcement]:
        """Expire the rows whose ttl has passed (not those being spoken); returns them."""
        expired = await self.queue.take_expired(self.clock(), self._busy)
        for ann in expired:
            self._count(ann.device_id, -1)
            self._settle(ann, EXPIRED)
        return expired

    async def _expiry_loop(self) -> None:
        while True:
            try:
                await self.expire_due()
                nxt = await self.queue.next_expiry()
                delay = 3600.0 if nxt is None else min(3600.0, max(1.0, nxt - self.clock()))
            except Exception:     # a database hiccup must not end expiry for good
                log.exception("announcement expiry failed; retrying")
                delay = 5.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
