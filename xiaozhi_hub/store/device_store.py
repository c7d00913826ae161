"""The hub's view of the devices table: async operations plus the cached checks made on every connection.

The :class:`~xiaozhi_hub.auth.Authenticator` asks :meth:`DeviceStore.revoked_before` and
:meth:`DeviceStore.not_admitted` on every WebSocket connection, so those calls are synchronous and
answered from an in-memory cache. The
command-line tool changes the database from another process; the cache notices through SQLite's
``data_version`` (a cheap counter that moves when another connection commits) and reloads within
:data:`REFRESH_SECONDS`. Whichever process blocks a device or revokes its tokens, the store then
calls ``on_shut_out(device_id, reason)`` so the hub can close a live session of that device.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

from .activation import approve_code, approve_device, ensure_activation_code
from .db import Database
from .devices import (Device, DeviceReport, InvalidValue, count_with_transport, get_device, list_devices,
                      normalize_device_id, record_report, remove_device, rename_device, resolve_device, revoke_tokens,
                      set_blocked, set_hmac_key, set_transport, touch_device, valid_client_id)

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

REFRESH_SECONDS = 2.0            # how soon a CLI change (revoke, block) reaches the running hub
REASON_BLOCKED = "device blocked"
REASON_REVOKED = "device tokens revoked"
REASON_PENDING = ("this device waits for approval: approve the code it shows with "
                  "`xiaozhi-hub devices approve CODE` (or POST /api/devices/approve)")
REASON_UNKNOWN = "this device is unknown to the hub: it must make an OTA check first (activation is required)"


@dataclass(frozen=True)
class _CacheEntry:
    blocked: bool
    not_before: float | None
    activated: bool = True


class DeviceStore:
    """Async access to the devices table plus the synchronous, cached checks the WebSocket server needs."""

    def __init__(self, db: Database, *, approve_new: bool, clock: Callable[[], float] = time.time,
                 on_shut_out: Callable[[str, str], Awaitable[object]] | None = None) -> None:
        self.db = db
        self.approve_new = approve_new      # activation off: new devices are approved on sight
        self._clock = clock
        # Called with (device_id, reason) when a device gets blocked or its tokens revoked, whichever
        # process made the change, so a live session does not outlast the decision.
        self.on_shut_out = on_shut_out
        # Called with ("added" | "renamed" | "removed", record JSON) after such a change by this process.
        self.on_change: Callable[[str, dict[str, Any]], None] | None = None
        self._cache: dict[str, _CacheEntry] = {}
        self._data_version: int | None = None
        self._refresh_task: asyncio.Task[None] | None = None

    # -- sync checks (called on every WebSocket connection) -----------------------------------
    def revoked_before(self, device_id: str) -> float | None:
        """Tokens for ``device_id`` issued before this Unix time are refused (None = no cutoff)."""
        entry = self._cache.get(device_id.lower())
        return entry.not_before if entry else None

    def is_blocked(self, device_id: str) -> bool:
        entry = self._cache.get(device_id.lower())
        return bool(entry and entry.blocked)

    def not_admitted(self, device_id: str) -> str | None:
        """Why a device with a valid token may not open the socket yet (None: it may).

        While activation is required (``ota.activation``) only approved devices are admitted; the OTA
        reply hands a pending device its token already, and the token works from the moment of approval.
        """
        if self.approve_new:
            return None
        entry = self._cache.get(device_id.lower())
        if entry is None:
            return REASON_UNKNOWN
        return None if entry.activated else REASON_PENDING

    # -- cache ------------------------------------------------------------------------------------
    @staticmethod
    def _shut_out_reason(old: _CacheEntry | None, new: _CacheEntry) -> str | None:
        if new.blocked and not (old and old.blocked):
            return REASON_BLOCKED
        if new.not_before is not None and (old is None or old.not_before is None or new.not_before > old.not_before):
            return REASON_REVOKED
        return None

    async def _notify(self, changes: list[tuple[str, str]]) -> None:
        if self.on_shut_out is None:
            return
        for device_id, reason in changes:
            try:
                await self.on_shut_out(device_id, reason)
            except Exception:
                _LOGGER.exception("could not end the session of %s", device_id)

    async def _remember(self, device: Device) -> Device:
        if device.device_id not in self._cache and self.on_change is not None:
            self.on_change("added", device.to_json())
        entry = _CacheEntry(device.blocked, device.tokens_not_before, device.activated)
        reason = self._shut_out_reason(self._cache.get(device.device_id), entry)
        self._cache[device.device_id] = entry
        if reason:
            await self._notify([(device.device_id, reason)])
        return device

    async def load(self) -> None:
        """Fill the cache from the database (at start, and whenever another process changed it)."""
        def read(conn: sqlite3.Connection) -> tuple[int, list[sqlite3.Row]]:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            rows = conn.execute("SELECT device_id, blocked, tokens_not_before, activated FROM devices").fetchall()
            return version, rows
        version, rows = await self.db.transaction(read)
        first = self._data_version is None
        cache = {r["device_id"]: _CacheEntry(bool(r["blocked"]), r["tokens_not_before"], bool(r["activated"]))
                 for r in rows}
        changes = [] if first else [(did, reason) for did, entry in cache.items()
                                    if (reason := self._shut_out_reason(self._cache.get(did), entry))]
        self._cache = cache
        self._data_version = version
        await self._notify(changes)

    async def refresh_if_changed(self) -> bool:
        """Reload the cache if another connection (the CLI) committed since the last look."""
        row = await self.db.fetchone("PRAGMA data_version")
        if row is None or row[0] == self._data_version:
            return False
        await self.load()
        return True

    async def _refresh_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh_if_changed()
            except Exception:  # a transient DB error must not end revocation updates for good
                _LOGGER.exception("could not refresh the device cache")

    def start_refresh(self, interval: float = REFRESH_SECONDS) -> None:
        if self._refresh_task is None:
            self._refresh_task = asyncio.create_task(self._refresh_loop(interval), name="devices-refresh")

    async def close(self) -> None:
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh_task
            self._refresh_task = None

    # -- operations -------------------------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.db.transaction(lambda conn: fn(conn, *args))

    async def _write(self, fn: Callable[..., Device], *args: Any) -> Device:
        return await self._remember(await self._run(fn, *args))

    async def seen(self, device_id: str, client_id: str | None = None) -> None:
        """Record a WebSocket connection. Never raises: bookkeeping must not cost a device its session."""
        try:
            did = normalize_device_id(device_id)
        except InvalidValue:
            return
        cid = client_id if client_id and valid_client_id(client_id) else ""
        try:
            await self._write(touch_device, did, cid, self._clock(), self.approve_new)
        except Exception:
            _LOGGER.exception("could not record connection of device %s", did)

    async def get(self, device_id: str) -> Device | None:
        return await self._run(get_device, device_id.lower())

    async def reload(self, device_id: str) -> Device | None:
        """Read a record and bring its cached checks up to date at once (not at the next refresh):
        a device approved from the command line may connect right after its activation poll says so."""
        device = await self.get(device_id)
        return None if device is None else await self._remember(device)

    async def resolve(self, ref: str) -> Device:
        return await self._run(resolve_device, ref)

    async def list_all(self) -> list[Device]:
        return await self._run(list_devices)

    async def record_report(self, report: DeviceReport) -> Device:
        return await self._write(record_report, report, self._clock(), self.approve_new)

    async def ensure_activation_code(self, device_id: str) -> Device:
        return await self._write(ensure_activation_code, device_id, self._clock())

    async def approve(self, code: str) -> Device:
        return await self._write(approve_code, code, self._clock())

    async def approve_device(self, device_id: str) -> Device:
        return await self._write(approve_device, device_id, self._clock())

    async def rename(self, ref: str, name: str) -> Device:
        device = await self._write(rename_device, ref, name)
        if self.on_change is not None:
            self.on_change("renamed", device.to_json())
        return device

    async def remove(self, ref: str) -> Device:
        device = await self._run(remove_device, ref)
        self._cache.pop(device.device_id, None)
        if self.on_change is not None:
            self.on_change("removed", device.to_json())
        return device

    async def set_blocked(self, ref: str, blocked: bool) -> Device:
        return await self._write(set_blocked, ref, blocked)

    async def revoke(self, ref: str) -> Device:
        return await self._write(revoke_tokens, ref, self._clock())

    async def set_transport(self, ref: str, transport: str | None) -> Device:
        return await self._write(set_transport, ref, transport)

    async def count_with_transport(self, transport: str) -> int:
        return await self._run(count_with_transport, transport)

    async def set_hmac_key(self, ref: str, key_hex: str | None) -> Device:
        return await self._write(set_hmac_key, ref, key_hex)
