"""Per-device dialogue in SQLite: one row per user or assistant message, plus a rolling summary.

Every message is written in its own transaction the moment it is complete (the user's words when
the turn starts, the assistant's answer when it has been generated or was cut off), so a crash or a
``kill -9`` loses at most the message being produced; WAL with ``synchronous=NORMAL`` keeps every
committed row. Only text is stored, never audio.

The summary row says which messages it already covers (``upto_id``); the context window is the
summary plus the newest uncovered messages, so the prompt stays bounded however long the
conversation runs, and it is rebuilt identically after a restart.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from ..settings import MemorySettings
from ..store.db import Database, migration

migration("memory.dialogue.v1", """
CREATE TABLE IF NOT EXISTS dialogue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    created_at REAL NOT NULL,
    interrupted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS dialogue_device_id ON dialogue (device_id, id);
CREATE INDEX IF NOT EXISTS dialogue_created_at ON dialogue (created_at);
CREATE TABLE IF NOT EXISTS dialogue_summary (
    device_id TEXT PRIMARY KEY,
    summary TEXT NOT NULL,
    upto_id INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
""")

ROLES = ("user", "assistant")


@dataclass(frozen=True)
class DialogueMessage:
    id: int
    device_id: str
    role: str
    content: str
    created_at: float
    interrupted: bool = False

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "DialogueMessage":
        return cls(row["id"], row["device_id"], row["role"], row["content"], row["created_at"],
                   bool(row["interrupted"]))


@dataclass(frozen=True)
class ContextWindow:
    """What the LLM is given about the past: the rolling summary and the newest messages."""

    summary: str
    messages: tuple[DialogueMessage, ...]


@dataclass(frozen=True)
class SummaryJob:
    """Messages to fold into the summary (oldest first) and the summary they extend."""

    previous: str
    messages: tuple[DialogueMessage, ...]

    @property
    def upto_id(self) -> int:
        return self.messages[-1].id


class DialogueStore:
    def __init__(self, db: Database, settings: MemorySettings, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    async def append(self, device_id: str, role: str, content: str, interrupted: bool = False) -> int:
        """Commit one message now (its own transaction); returns its id."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        return await self.db.execute(
            "INSERT INTO dialogue (device_id, role, content, created_at, interrupted) VALUES (?, ?, ?, ?, ?)",
            (device_id, role, content, self.clock(), int(interrupted)))

    async def mark_interrupted(self, message_id: int, content: str | None = None) -> None:
        """An answer stored whole was cut off while it was spoken: flag it, keep only what was said."""
        await self.db.execute("UPDATE dialogue SET interrupted = 1, content = COALESCE(?, content) WHERE id = ?",
                              (content or None, message_id))

    async def messages(self, device_id: str, limit: int | None = None) -> list[DialogueMessage]:
        """All stored messages of a device, oldest first (the newest ``limit`` when given)."""
        if limit is None:
            rows = await self.db.fetchall("SELECT * FROM dialogue WHERE device_id = ? ORDER BY id", (device_id,))
        else:
            rows = await self.db.fetchall(
                "SELECT * FROM (SELECT * FROM dialogue WHERE device_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
                (device_id, limit))
        return [DialogueMessage.from_row(r) for r in rows]

    async def summary(self, device_id: str) -> tuple[str, int]:
        row = await self.db.fetchone("SELECT summary, upto_id FROM dialogue_summary WHERE device_id = ?", (device_id,))
        return (row["summary"], row["upto_id"]) if row else ("", 0)

    def _window_sync(self, conn: sqlite3.Connection, device_id: str) -> ContextWindow:
        row = conn.execute("SELECT summary, upto_id FROM dialogue_summary WHERE device_id = ?", (device_id,)).fetchone()
        summary, upto = (row["summary"], row["upto_id"]) if row else ("", 0)
        rows = conn.execute(
            "SELECT * FROM dialogue WHERE device_id = ? AND id > ? ORDER BY id DESC LIMIT ?",
            (device_id, upto, self.settings.window_messages)).fetchall()
        budget = self.settings.max_context_chars
        kept: list[DialogueMessage] = []
        for r in rows:  # newest first: the newest messages matter most
            m = DialogueMessage.from_row(r)
            budget -= len(m.content)
            if budget < 0 and kept:
                break
            kept.append(m)
        kept.reverse()
        # The window must not start with an assistant message cut from its question.
        while kept and kept[0].role == "assistant" and len(kept) > 1:
            kept.pop(0)
        return ContextWindow(summary, tuple(kept))

    async def window(self, device_id: str) -> ContextWindow:
        """The summary plus the newest uncovered messages, bounded by count and characters."""
        # One transaction, so the summary and the messages after it are read consistently.
        return await self.db.transaction(lambda conn: self._window_sync(conn, device_id))

    def _summary_job_sync(self, conn: sqlite3.Connection, device_id: str) -> SummaryJob | None:
        row = conn.execute("SELECT summary, upto_id FROM dialogue_summary WHERE device_id = ?",
                           (device_id,)).fetchone()
        summary, upto = (row["summary"], row["upto_id"]) if row else ("", 0)
        rows = conn.execute("SELECT * FROM dialogue WHERE device_id = ? AND id > ? ORDER BY id",
                            (device_id, upto)).fetchall()
        window = self.settings.window_messages
        if len(rows) <= window:
            return None
        # Fold all but the newest half window, so the summary is rewritten every window/2 messages
        # rather than on every turn (an LLM summary costs as much as an answer).
        fold = rows[:len(rows) - window // 2]
        # Never end the folded part between a question and its answer.
        if fold and fold[-1]["role"] == "user" and len(fold) > 1:
            fold = fold[:-1]
        return SummaryJob(summary, tuple(DialogueMessage.from_row(r) for r in fold))

    async def summary_job(self, device_id: str) -> SummaryJob | None:
        """What to summarise when the uncovered messages overflow the window (else None)."""
        return await self.db.transaction(lambda conn: self._summary_job_sync(conn, device_id))

    async def save_summary(self, device_id: str, summary: str, upto_id: int) -> bool:
        """Store a new summary covering messages up to ``upto_id``; False when they were forgotten
        meanwhile (a "forget" during summarisation must not leave a summary behind)."""
        now = self.clock()

        def write(conn: sqlite3.Connection) -> bool:
            alive = conn.execute("SELECT 1 FROM dialogue WHERE device_id = ? AND id = ?", (device_id, upto_id)).fetchone()
            if alive is None:
                return False
            conn.execute(
                "INSERT INTO dialogue_summary (device_id, summary, upto_id, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(device_id) DO UPDATE SET summary = excluded.summary, upto_id = excluded.upto_id, "
                "updated_at = excluded.updated_at WHERE excluded.upto_id > dialogue_summary.upto_id",
                (device_id, summary, upto_id, now))
            return True

        return await self.db.transaction(write)

    async def forget(self, device_id: str) -> int:
        """Delete a device's whole dialogue and summary; returns the number of messages deleted."""
        def write(conn: sqlite3.Connection) -> int:
            n = conn.execute("DELETE FROM dialogue WHERE device_id = ?", (device_id,)).rowcount
            conn.execute("DELETE FROM dialogue_summary WHERE device_id = ?", (device_id,))
            return n

        return await self.db.transaction(write)

    async def prune(self, now: float | None = None) -> int:
        """Delete messages (and stale summaries) older than ``retention_days``; 0 days keeps all."""
        days = self.settings.retention_days
        if days <= 0:
            return 0
        cutoff = (self.clock() if now is None else now) - days * 86400

        def write(conn: sqlite3.Connection) -> int:
            n = conn.execute("DELETE FROM dialogue WHERE created_at < ?", (cutoff,)).rowcount
            conn.execute("DELETE FROM dialogue_summary WHERE updated_at < ?", (cutoff,))
            return n

        return await self.db.transaction(write)

    async def devices(self) -> Sequence[str]:
        rows = await self.db.fetchall("SELECT DISTINCT device_id FROM dialogue ORDER BY device_id")
        return [r[0] for r in rows]
