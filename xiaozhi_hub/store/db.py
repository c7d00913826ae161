"""One SQLite database in WAL mode, used from the event loop through one dedicated thread.

SQLite connections belong to the thread that made them, and writes are serialised anyway, so the hub
keeps a single connection on a single worker thread (not one per device). Modules declare their
tables as numbered migrations with :func:`migration`; :meth:`Database.open` applies the missing ones
in order inside a transaction and records them in ``schema_migrations``.

``synchronous=NORMAL`` with WAL means a committed transaction survives a process crash (``kill -9``);
only a power loss can drop the last transactions.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")

# (name, sql) in registration order; the name is the migration's identity.
_MIGRATIONS: list[tuple[str, str]] = []


def migration(name: str, sql: str) -> None:
    """Register a schema migration (call at import time of the module that owns the tables)."""
    if any(n == name for n, _ in _MIGRATIONS):
        return
    _MIGRATIONS.append((name, sql))


class Database:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    # -- lifecycle -----------------------------------------------------------------
    def _open_sync(self) -> None:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        self._conn = conn
        self._migrate_sync()

    def _migrate_sync(self) -> None:
        assert self._conn is not None
        done = {r[0] for r in self._conn.execute("SELECT name FROM schema_migrations")}
        for name, sql in list(_MIGRATIONS):
            if name in done:
                continue
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(sql):
                    self._conn.execute(statement)
                self._conn.execute("INSERT INTO schema_migrations VALUES (?, strftime('%s','now'))", (name,))
                self._conn.execute("COMMIT")
            except Exception:
                self._conn.execute("ROLLBACK")
                raise

    async def open(self) -> "Database":
        await self._call(self._open_sync)
        return self

    def open_sync(self) -> "Database":
        """For command-line tools that run without an event loop."""
        self._open_sync()
        return self

    async def migrate(self) -> None:
        """Apply migrations registered after open (modules imported late)."""
        await self._call(self._migrate_sync)

    async def close(self) -> None:
        if self._conn is not None:
            await self._call(self._close_sync)
        self._executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._conn.close()
                self._conn = None

    # -- queries ----------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return self._conn

    def execute_sync(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one statement in its own transaction; returns lastrowid (or rowcount for UPDATE/DELETE)."""
        cur = self.conn.execute(sql, params)
        return cur.lastrowid if cur.lastrowid else cur.rowcount

    def fetchall_sync(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def fetchone_sync(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def transaction_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` inside BEGIN IMMEDIATE ... COMMIT (rolled back on error)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        return await self._call(self.execute_sync, sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return await self._call(self.fetchall_sync, sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        return await self._call(self.fetchone_sync, sql, params)

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(self.transaction_sync, fn)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        await self.transaction(lambda c: c.executemany(sql, rows))


def _split_sql(sql: str) -> list[str]:
    """Split a migration into statements (sqlite3 ``execute`` takes one at a time)."""
    out: list[str] = []
    buf = ""
    for part in sql.split(";"):
        buf += part
        if sqlite3.complete_statement(buf + ";"):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
        else:
            buf += ";"
    if buf.strip():
        out.append(buf.strip())
    return out
