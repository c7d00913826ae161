"""The announcement queue in SQLite: every "say this" is a row until it has been spoken, expired,
dropped or failed.

A row is written (and committed) before anything is spoken, so an announcement survives a hub
restart or ``kill -9`` (WAL with ``synchronous=NORMAL`` keeps every committed row) and is delivered on
the device's next connection. Rows are bounded per device: inserting beyond the bound deletes the
oldest rows, which the service reports as ``dropped``. The rules around the queue (when to speak,
what the outcomes mean) are in :mod:`xiaozhi_hub.services.announce`.

Each function runs inside one transaction on a ``sqlite3.Connection`` (the hub runs them on the
database thread).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Collection, Sequence

from .db import Database, migration

migration("store.announcements.v1", """
CREATE TABLE IF NOT EXISTS announcements (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    text       TEXT NOT NULL,
    priority   TEXT NOT NULL CHECK (priority IN ('normal', 'now')),
    source     TEXT NOT NULL DEFAULT '',
    lang       TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS announcements_device_id ON announcements (device_id, id);
CREATE INDEX IF NOT EXISTS announcements_device_seq ON announcements (device_id, seq);
CREATE INDEX IF NOT EXISTS announcements_expires_at ON announcements (expires_at);
""")


@dataclass(frozen=True)
class Announcement:
    seq: int              # queue order (0 until stored)
    id: str               # the caller's id, echoed in every outcome
    device_id: str
    text: str
    priority: str         # "normal" | "now"
    source: str           # who asked: "api", "mqtt", "timer", ...
    lang: str | None      # set: when delivered late, say how late in this language ("en"/"zh")
    created_at: float
    expires_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Announcement":
        return cls(row["seq"], row["id"], row["device_id"], row["text"], row["priority"], row["source"],
                   row["lang"], row["created_at"], row["expires_at"])


def _marks(values: Collection[object]) -> str:
    return ",".join("?" * len(values))


def enqueue(conn: sqlite3.Connection, ann: Announcement, max_queued: int,
            busy: Collection[int] = ()) -> tuple[Announcement, bool, list[Announcement]]:
    """Store ``ann`` (a repeated (device, id) pair keeps the row already queued) and trim the device's
    waiting rows to ``max_queued``, oldest first; the rows in ``busy`` (being spoken) are not waiting
    and are never dropped. Returns the stored row, whether it is new, and the rows dropped to make room."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO announcements (id, device_id, text, priority, source, lang, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (ann.id, ann.device_id, ann.text, ann.priority, ann.source, ann.lang, ann.created_at, ann.expires_at))
    row = conn.execute("SELECT * FROM announcements WHERE device_id = ? AND id = ?", (ann.device_id, ann.id)).fetchone()
    stored = Announcement.from_row(row)
    waiting = [Announcement.from_row(r) for r in conn.execute(
        "SELECT * FROM announcements WHERE device_id = ? ORDER BY seq", (ann.device_id,)) if r["seq"] not in busy]
    dropped = waiting[:max(0, len(waiting) - max(1, max_queued))]
    if dropped:
        seqs = [r.seq for r in dropped]
        conn.execute(f"DELETE FROM announcements WHERE seq IN ({_marks(seqs)})", seqs)
    return stored, cur.rowcount == 1, dropped


def take_expired(conn: sqlite3.Connection, now: float, busy: Collection[int] = ()) -> list[Announcement]:
    """Delete and return the rows whose time is up (except those in ``busy``)."""
    rows = [Announcement.from_row(r) for r in conn.execute(
        "SELECT * FROM announcements WHERE expires_at <= ? ORDER BY seq", (now,))]
    rows = [r for r in rows if r.seq not in busy]
    if rows:
        seqs = [r.seq for r in rows]
        conn.execute(f"DELETE FROM announcements WHERE seq IN ({_marks(seqs)})", seqs)
    return rows


class AnnouncementQueue:
    """Async access to the ``announcements`` table (each call is its own transaction)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def enqueue(self, ann: Announcement, max_queued: int,
                      busy: Collection[int] = ()) -> tuple[Announcement, bool, list[Announcement]]:
        busy = frozenset(busy)
        return await self.db.transaction(lambda conn: enqueue(conn, ann, max_queued, busy))

    async def for_device(self, device_id: str) -> list[Announcement]:
        rows = await self.db.fetchall("SELECT * FROM announcements WHERE device_id = ? ORDER BY seq", (device_id,))
        return [Announcement.from_row(r) for r in rows]

    async def get(self, seq: int) -> Announcement | None:
        row = await self.db.fetchone("SELECT * FROM announcements WHERE seq = ?", (seq,))
        return Announcement.from_row(row) if row is not None else None

    async def delete(self, seqs: Sequence[int]) -> int:
        """Delete rows; returns how many existed (``Database.execute`` would report a lastrowid)."""
        if not seqs:
            return 0
        values = tuple(seqs)
        return await self.db.transaction(
            lambda conn: conn.execute(f"DELETE FROM announcements WHERE seq IN ({_marks(values)})", values).rowcount)

    async def take_expired(self, now: float, busy: Collection[int] = ()) -> list[Announcement]:
        busy = frozenset(busy)
        return await self.db.transaction(lambda conn: take_expired(conn, now, busy))

    async def next_expiry(self) -> float | None:
        row = await self.db.fetchone("SELECT MIN(expires_at) FROM announcements")
        return row[0] if row is not None and row[0] is not None else None

    async def counts(self) -> dict[str, int]:
        rows = await self.db.fetchall("SELECT device_id, COUNT(*) FROM announcements GROUP BY device_id")
        return {r[0]: int(r[1]) for r in rows}
