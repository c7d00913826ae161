"""Device records: what the hub knows about each ESP32, activation codes, blocking, token revocation.

A device is identified by its ``Device-Id`` (the Wi-Fi MAC, lowercase, PROTOCOL.md 1.2). It is
recorded on its first OTA check (with board, firmware version and a few diagnostics from the
system-info body) or on its first WebSocket connection, whichever comes first.

Activation (``ota.activation: true``): an unknown device gets a 6-digit code, which it shows and
speaks, and stays "pending" until someone approves that code (``xiaozhi-hub devices approve CODE`` or
``POST /api/devices/approve``). With activation off, devices are approved on sight; turning it on
later only affects devices the hub has not seen yet.

Revocation: ``revoke`` stores a per-device "tokens issued before T are invalid" time. The
:class:`~xiaozhi_hub.auth.Authenticator` asks :meth:`DeviceStore.revoked_before` on every WebSocket
connection, so that call is synchronous and answered from an in-memory cache. The command-line tool
changes the database from another process; the cache notices through SQLite's ``data_version`` (a
cheap counter that moves when another connection commits) and reloads within
:data:`REFRESH_SECONDS`. Whichever process blocks a device or revokes its tokens, a live session of
that device is then closed with the code the WebSocket server uses to refuse it.

All database work is written once as plain functions on a ``sqlite3.Connection``; the hub runs them
on the database thread (``db.transaction``), the CLI runs them directly (``db.transaction_sync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

from aiohttp import web

from ..auth import strip_bearer
from ..store.db import Database, migration
from .ratelimit import BadRequest, json_error, read_json_object

if TYPE_CHECKING:
    from ..context import HubContext

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

REFRESH_SECONDS = 2.0            # how soon a CLI change (revoke, block) reaches the running hub
CODE_TTL_SECONDS = 24 * 3600     # an unapproved code is replaced after this long
MAX_ID_LENGTH = 64
MAX_NAME_LENGTH = 64
_ID_RE = re.compile(r"[0-9A-Za-z:_.\-]{1,64}")     # no '|' (the token signs "client|device|ts")
_CODE_RE = re.compile(r"[0-9]{6}")
_HEX_KEY_RE = re.compile(r"(?:[0-9a-fA-F]{2}){16,64}")

migration("net.devices.v1", """
CREATE TABLE IF NOT EXISTS devices (
    device_id            TEXT PRIMARY KEY,
    client_id            TEXT NOT NULL DEFAULT '',
    name                 TEXT,
    board                TEXT,
    board_name           TEXT,
    chip                 TEXT,
    firmware_version     TEXT,
    language             TEXT,
    serial_number        TEXT,
    ip                   TEXT,
    info                 TEXT,
    blocked              INTEGER NOT NULL DEFAULT 0,
    activated            INTEGER NOT NULL DEFAULT 0,
    activated_at         REAL,
    activation_code      TEXT UNIQUE,
    activation_challenge TEXT,
    code_issued_at       REAL,
    tokens_not_before    REAL,
    hmac_key             TEXT,
    first_seen           REAL NOT NULL,
    last_seen            REAL NOT NULL,
    last_ota             REAL
);
CREATE INDEX IF NOT EXISTS devices_name ON devices(name);
""")


# ---------------------------------------------------------------------------- errors and records

class DeviceError(Exception):
    """A device operation that cannot be done; the message is meant for the user."""

    status = 400


class DeviceNotFound(DeviceError):
    status = 404


class InvalidValue(DeviceError):
    status = 400


def normalize_device_id(value: str) -> str:
    """Devices send lowercase colon-separated MACs; people type them in any case."""
    device_id = value.strip().lower()
    if not _ID_RE.fullmatch(device_id):
        raise InvalidValue(f"{value!r} is not a device id (expected a MAC such as a1:b2:c3:d4:e5:f6)")
    return device_id


def valid_client_id(value: str) -> bool:
    return value == "" or bool(_ID_RE.fullmatch(value))


@dataclass(frozen=True)
class Device:
    device_id: str
    client_id: str
    name: str | None
    board: str | None
    board_name: str | None
    chip: str | None
    firmware_version: str | None
    language: str | None
    serial_number: str | None
    ip: str | None
    info: dict[str, Any]
    blocked: bool
    activated: bool
    activated_at: float | None
    activation_code: str | None
    activation_challenge: str | None
    code_issued_at: float | None
    tokens_not_before: float | None
    hmac_key: str | None
    first_seen: float
    last_seen: float
    last_ota: float | None

    @property
    def pending(self) -> bool:
        """Waiting for approval (only meaningful while activation is required)."""
        return not self.activated

    @property
    def label(self) -> str:
        return f"{self.name} ({self.device_id})" if self.name else self.device_id

    def to_json(self, online: bool | None = None) -> dict[str, Any]:
        """The public view (API, CLI --json): no code, challenge or key."""
        out: dict[str, Any] = {
            "device_id": self.device_id,
            "client_id": self.client_id,
            "name": self.name,
            "board": self.board,
            "board_name": self.board_name,
            "chip": self.chip,
            "firmware_version": self.firmware_version,
            "language": self.language,
            "ip": self.ip,
            "blocked": self.blocked,
            "activated": self.activated,
            "activated_at": self.activated_at,
            "has_key": self.hmac_key is not None,
            "tokens_not_before": self.tokens_not_before,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "last_ota": self.last_ota,
            "info": self.info,
        }
        if online is not None:
            out["online"] = online
        return out


def _row_to_device(row: sqlite3.Row) -> Device:
    try:
        info = json.loads(row["info"]) if row["info"] else {}
    except ValueError:
        info = {}
    return Device(
        device_id=row["device_id"], client_id=row["client_id"] or "", name=row["name"], board=row["board"],
        board_name=row["board_name"], chip=row["chip"], firmware_version=row["firmware_version"],
        language=row["language"], serial_number=row["serial_number"], ip=row["ip"],
        info=info if isinstance(info, dict) else {}, blocked=bool(row["blocked"]),
        activated=bool(row["activated"]), activated_at=row["activated_at"],
        activation_code=row["activation_code"], activation_challenge=row["activation_challenge"],
        code_issued_at=row["code_issued_at"], tokens_not_before=row["tokens_not_before"],
        hmac_key=row["hmac_key"], first_seen=row["first_seen"], last_seen=row["last_seen"],
        last_ota=row["last_ota"])


@dataclass(frozen=True)
class DeviceReport:
    """What an OTA check tells us about a device (already validated by the OTA handler)."""

    device_id: str
    client_id: str = ""
    board: str | None = None
    board_name: str | None = None
    chip: str | None = None
    firmware_version: str | None = None
    language: str | None = None
    serial_number: str | None = None
    ip: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- operations (sync, on a connection)
# Each runs inside one transaction; the caller supplies "now" so tests can control time.

def get_device(conn: sqlite3.Connection, device_id: str) -> Device | None:
    row = conn.execute("SELECT * FROM devices WHERE device_id = ?", (device_id,)).fetchone()
    return _row_to_device(row) if row else None


def list_devices(conn: sqlite3.Connection) -> list[Device]:
    rows = conn.execute("SELECT * FROM devices ORDER BY COALESCE(name, device_id)").fetchall()
    return [_row_to_device(r) for r in rows]


def resolve_device(conn: sqlite3.Connection, ref: str) -> Device:
    """Find a device by id (any case) or by its unique name."""
    ref = ref.strip()
    if _ID_RE.fullmatch(ref.lower()):
        device = get_device(conn, ref.lower())
        if device:
            return device
    rows = conn.execute("SELECT * FROM devices WHERE name = ?", (ref,)).fetchall()
    if len(rows) == 1:
        return _row_to_device(rows[0])
    if len(rows) > 1:
        raise InvalidValue(f"{len(rows)} devices are named {ref!r}; use the device id instead")
    raise DeviceNotFound(f"no device {ref!r} (see `xiaozhi-hub devices list`)")


def record_report(conn: sqlite3.Connection, report: DeviceReport, now: float, approve_new: bool) -> Device:
    """Insert or refresh a device from an OTA check; new devices are approved at once if ``approve_new``."""
    info = json.dumps(report.info, separators=(",", ":"), ensure_ascii=False) if report.info else None
    conn.execute(
        """INSERT INTO devices (device_id, client_id, board, board_name, chip, firmware_version, language,
                                serial_number, ip, info, activated, activated_at, first_seen, last_seen, last_ota)
           VALUES (:device_id, :client_id, :board, :board_name, :chip, :firmware_version, :language,
                   :serial_number, :ip, :info, :activated, :activated_at, :now, :now, :now)
           ON CONFLICT(device_id) DO UPDATE SET
               client_id = CASE WHEN excluded.client_id != '' THEN excluded.client_id ELSE devices.client_id END,
               board = COALESCE(excluded.board, devices.board),
               board_name = COALESCE(excluded.board_name, devices.board_name),
               chip = COALESCE(excluded.chip, devices.chip),
               firmware_version = COALESCE(excluded.firmware_version, devices.firmware_version),
               language = COALESCE(excluded.language, devices.language),
               serial_number = COALESCE(excluded.serial_number, devices.serial_number),
               ip = COALESCE(excluded.ip, devices.ip),
               info = COALESCE(excluded.info, devices.info),
               last_seen = excluded.last_seen,
               last_ota = excluded.last_ota""",
        {"device_id": report.device_id, "client_id": report.client_id, "board": report.board,
         "board_name": report.board_name, "chip": report.chip, "firmware_version": report.firmware_version,
         "language": report.language, "serial_number": report.serial_number, "ip": report.ip, "info": info,
         "activated": 1 if approve_new else 0, "activated_at": now if approve_new else None, "now": now})
    device = get_device(conn, report.device_id)
    assert device is not None
    return device


def touch_device(conn: sqlite3.Connection, device_id: str, client_id: str, now: float, approve_new: bool) -> Device:
    """Record a WebSocket connection (devices on old firmware may never call the OTA endpoint)."""
    conn.execute(
        """INSERT INTO devices (device_id, client_id, activated, activated_at, first_seen, last_seen)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT(device_id) DO UPDATE SET
               client_id = CASE WHEN excluded.client_id != '' THEN excluded.client_id ELSE devices.client_id END,
               last_seen = excluded.last_seen""",
        (device_id, client_id, 1 if approve_new else 0, now if approve_new else None, now, now))
    device = get_device(conn, device_id)
    assert device is not None
    return device


def ensure_activation_code(conn: sqlite3.Connection, device_id: str, now: float) -> Device:
    """Give a pending device a code and challenge, keeping the current ones while they are fresh.

    The code stays the same across OTA checks so the number the user reads does not keep changing.
    """
    device = get_device(conn, device_id)
    if device is None:
        raise DeviceNotFound(f"no device {device_id!r}")
    if device.activated:
        return device
    fresh = (device.activation_code and device.activation_challenge and device.code_issued_at is not None
             and now - device.code_issued_at < CODE_TTL_SECONDS)
    if fresh:
        return device
    for _ in range(50):
        code = f"{secrets.randbelow(10**6):06d}"
        if conn.execute("SELECT 1 FROM devices WHERE activation_code = ?", (code,)).fetchone() is None:
            break
    else:  # pragma: no cover - a million pending devices
        raise DeviceError("could not allocate a free activation code")
    conn.execute("UPDATE devices SET activation_code = ?, activation_challenge = ?, code_issued_at = ? "
                 "WHERE device_id = ?", (code, secrets.token_hex(16), now, device_id))
    device = get_device(conn, device_id)
    assert device is not None
    return device


def approve_code(conn: sqlite3.Connection, code: str, now: float) -> Device:
    """Approve the pending device showing ``code``."""
    code = code.strip()
    if not _CODE_RE.fullmatch(code):
        raise InvalidValue(f"{code!r} is not an activation code (6 digits, as shown on the device)")
    row = conn.execute("SELECT * FROM devices WHERE activation_code = ?", (code,)).fetchone()
    if row is None:
        raise DeviceNotFound(f"no device is waiting with code {code} (codes are shown on the device screen "
                             "and spoken after its OTA check)")
    device = _row_to_device(row)
    if device.code_issued_at is not None and now - device.code_issued_at >= CODE_TTL_SECONDS:
        raise DeviceNotFound(f"code {code} has expired; the device shows a new one after its next check")
    conn.execute("UPDATE devices SET activated = 1, activated_at = ?, activation_code = NULL, "
                 "activation_challenge = NULL, code_issued_at = NULL WHERE device_id = ?",
                 (now, device.device_id))
    approved = get_device(conn, device.device_id)
    assert approved is not None
    return approved


def approve_device(conn: sqlite3.Connection, device_id: str, now: float) -> Device:
    """Approve a pending device directly (it proved itself with an HMAC from a registered key)."""
    conn.execute("UPDATE devices SET activated = 1, activated_at = ?, activation_code = NULL, "
                 "activation_challenge = NULL, code_issued_at = NULL WHERE device_id = ? AND activated = 0",
                 (now, device_id))
    device = get_device(conn, device_id)
    if device is None:
        raise DeviceNotFound(f"no device {device_id!r}")
    return device


def _update(conn: sqlite3.Connection, ref: str, sql: str, params: tuple[Any, ...]) -> Device:
    device = resolve_device(conn, ref)
    conn.execute(sql, (*params, device.device_id))
    updated = get_device(conn, device.device_id)
    assert updated is not None
    return updated


def rename_device(conn: sqlite3.Connection, ref: str, name: str) -> Device:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or any(ord(c) < 32 for c in name):
        raise InvalidValue(f"a device name must be 1-{MAX_NAME_LENGTH} printable characters")
    return _update(conn, ref, "UPDATE devices SET name = ? WHERE device_id = ?", (name,))


def set_blocked(conn: sqlite3.Connection, ref: str, blocked: bool) -> Device:
    return _update(conn, ref, "UPDATE devices SET blocked = ? WHERE device_id = ?", (1 if blocked else 0,))


def revoke_tokens(conn: sqlite3.Connection, ref: str, now: float) -> Device:
    """Invalidate every token issued so far; the device gets a fresh one at its next OTA check.

    The cutoff is rounded up to a whole second (tokens carry whole-second timestamps), so a token
    minted earlier in the same second is refused too; :func:`token_time` mints at the cutoff.
    """
    return _update(conn, ref, "UPDATE devices SET tokens_not_before = ? WHERE device_id = ?",
                   (float(math.ceil(now)),))


def set_hmac_key(conn: sqlite3.Connection, ref: str, key_hex: str | None) -> Device:
    """Store the device's eFuse HMAC key (hex) so its activation HMAC can be checked; None clears it."""
    if key_hex is not None:
        key_hex = key_hex.strip().lower()
        if not _HEX_KEY_RE.fullmatch(key_hex):
            raise InvalidValue("the HMAC key must be 16-64 bytes written as hex")
    return _update(conn, ref, "UPDATE devices SET hmac_key = ? WHERE device_id = ?", (key_hex,))


def token_time(device: Device | None, now: float) -> float:
    """Issue time for a new token: now, but never before the device's revocation cutoff."""
    if device is not None and device.tokens_not_before is not None:
        return max(now, device.tokens_not_before)
    return now


def check_activation_hmac(device: Device, body: dict[str, Any]) -> bool | None:
    """Check an ``hmac-sha256`` activation body against the device's known key.

    Returns None when there is nothing to check (no key on file, or a device without a serial number
    sent ``{}``): such devices are approved by code like any other. True/False is the HMAC verdict.
    """
    if device.hmac_key is None or "hmac" not in body:
        return None
    challenge = body.get("challenge")
    given = body.get("hmac")
    if not isinstance(challenge, str) or not isinstance(given, str):
        return False
    # Compare bytes: compare_digest refuses non-ASCII str, and these strings come from the client.
    if device.activation_challenge is None or not hmac.compare_digest(challenge.encode(),
                                                                       device.activation_challenge.encode()):
        return False
    expected = hmac.new(bytes.fromhex(device.hmac_key), challenge.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.lower().encode(), expected.encode())


# ---------------------------------------------------------------------------- the hub-side store

@dataclass(frozen=True)
class _CacheEntry:
    blocked: bool
    not_before: float | None


class DeviceStore:
    """Async access to the devices table plus the synchronous, cached checks the WebSocket server needs."""

    def __init__(self, db: Database, *, approve_new: bool, clock: Callable[[], float] = time.time,
                 on_shut_out: Callable[[str, str], Awaitable[None]] | None = None) -> None:
        self.db = db
        self.approve_new = approve_new      # activation off: new devices are approved on sight
        self._clock = clock
        # Called with (device_id, reason) when a device gets blocked or its tokens revoked, whichever
        # process made the change, so a live session does not outlast the decision.
        self.on_shut_out = on_shut_out
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
        entry = _CacheEntry(device.blocked, device.tokens_not_before)
        reason = self._shut_out_reason(self._cache.get(device.device_id), entry)
        self._cache[device.device_id] = entry
        if reason:
            await self._notify([(device.device_id, reason)])
        return device

    async def load(self) -> None:
        """Fill the cache from the database (at start, and whenever another process changed it)."""
        def read(conn: sqlite3.Connection) -> tuple[int, list[sqlite3.Row]]:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            rows = conn.execute("SELECT device_id, blocked, tokens_not_before FROM devices").fetchall()
            return version, rows
        version, rows = await self.db.transaction(read)
        first = self._data_version is None
        cache = {r["device_id"]: _CacheEntry(bool(r["blocked"]), r["tokens_not_before"]) for r in rows}
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
        return await self._write(rename_device, ref, name)

    async def set_blocked(self, ref: str, blocked: bool) -> Device:
        return await self._write(set_blocked, ref, blocked)

    async def revoke(self, ref: str) -> Device:
        return await self._write(revoke_tokens, ref, self._clock())

    async def set_hmac_key(self, ref: str, key_hex: str | None) -> Device:
        return await self._write(set_hmac_key, ref, key_hex)


# ---------------------------------------------------------------------------- component hooks

async def start(ctx: "HubContext") -> Callable[[], Awaitable[None]]:
    """Open the device store, hook revocation into the authenticator, keep the cache fresh."""
    await ctx.db.migrate()      # in case this module was imported after the database was opened
    async def shut_out(device_id: str, reason: str) -> None:
        await disconnect(ctx, device_id, reason)

    store = DeviceStore(ctx.db, approve_new=not ctx.settings.ota.activation, on_shut_out=shut_out)
    await store.load()
    store.start_refresh()
    ctx.devices = store
    ctx.auth.revoked_before = store.revoked_before
    return store.close


def api_allowed(request: web.Request, ctx: "HubContext") -> bool:
    """Who may use the device API: anyone on the LAN while auth is off (as for the WebSocket), else
    only holders of one of the static ``auth.tokens`` (per-device tokens do not count)."""
    if not ctx.settings.auth.enabled:
        return True
    token = strip_bearer(request.headers.get("Authorization"))
    if token is None:
        return False
    return any(hmac.compare_digest(token.encode(), t.encode()) for t in ctx.settings.auth.tokens)


def _is_online(ctx: "HubContext", device_id: str) -> bool | None:
    registry = ctx.registry
    if registry is None or not hasattr(registry, "by_device"):
        return None
    try:
        return registry.by_device(device_id) is not None
    except Exception:  # pragma: no cover - the registry is another component's code
        return None


REASON_BLOCKED = "device blocked"
REASON_REVOKED = "device tokens revoked"


def _close_code(reason: str) -> int:
    """The close code the WebSocket server uses when it refuses such a device at connect time."""
    try:
        from ..session.session import CLOSE_AUTH, CLOSE_BLOCKED
    except ImportError:  # pragma: no cover - the session package is another component
        return 1008
    return CLOSE_BLOCKED if reason == REASON_BLOCKED else CLOSE_AUTH


async def disconnect(ctx: "HubContext", device_id: str, reason: str) -> bool:
    """End the live session of a device that was just blocked or revoked (True if there was one)."""
    registry = ctx.registry
    session = registry.by_device(device_id) if registry is not None and hasattr(registry, "by_device") else None
    close = getattr(session, "close", None)
    if close is None:
        return False
    _LOGGER.info("closing the session of %s: %s", device_id, reason)
    try:
        await close(_close_code(reason), reason)
    except Exception:
        _LOGGER.exception("could not close the session of device %s", device_id)
    return True


def setup_http(app: web.Application, ctx: "HubContext") -> None:
    """``/api/devices`` JSON API (list, show, approve, rename, block, unblock, revoke) for HA and tools."""
    limit = ctx.settings.ota.max_body_bytes

    def api(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not api_allowed(request, ctx):
                return json_error(401, "this API needs 'Authorization: Bearer <token>' with one of auth.tokens")
            try:
                return await handler(request)
            except BadRequest as err:
                return err.response()
            except DeviceError as err:
                return json_error(err.status, str(err))
        return wrapped

    def reply(device: Device) -> web.Response:
        return web.json_response({"device": device.to_json(_is_online(ctx, device.device_id))})

    async def list_(request: web.Request) -> web.StreamResponse:
        devices = await ctx.devices.list_all()
        return web.json_response({"devices": [d.to_json(_is_online(ctx, d.device_id)) for d in devices]})

    async def show(request: web.Request) -> web.StreamResponse:
        return reply(await ctx.devices.resolve(request.match_info["device"]))

    async def approve(request: web.Request) -> web.StreamResponse:
        body = await read_json_object(request, limit)
        code = body.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            code = f"{code:06d}"
        if not isinstance(code, str):
            raise BadRequest(400, "expected {\"code\": \"123456\"}")
        return reply(await ctx.devices.approve(code))

    async def rename(request: web.Request) -> web.StreamResponse:
        body = await read_json_object(request, limit)
        name = body.get("name")
        if not isinstance(name, str):
            raise BadRequest(400, "expected {\"name\": \"Kitchen\"}")
        return reply(await ctx.devices.rename(request.match_info["device"], name))

    async def block(request: web.Request) -> web.StreamResponse:
        return reply(await ctx.devices.set_blocked(request.match_info["device"], True))

    async def unblock(request: web.Request) -> web.StreamResponse:
        return reply(await ctx.devices.set_blocked(request.match_info["device"], False))

    async def revoke(request: web.Request) -> web.StreamResponse:
        return reply(await ctx.devices.revoke(request.match_info["device"]))

    app.router.add_get("/api/devices", api(list_))
    app.router.add_post("/api/devices/approve", api(approve))
    app.router.add_get("/api/devices/{device}", api(show))
    app.router.add_post("/api/devices/{device}/rename", api(rename))
    app.router.add_post("/api/devices/{device}/block", api(block))
    app.router.add_post("/api/devices/{device}/unblock", api(unblock))
    app.router.add_post("/api/devices/{device}/revoke", api(revoke))
