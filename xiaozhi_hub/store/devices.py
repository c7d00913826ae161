"""Device records: what the hub knows about each ESP32, and the SQL that reads and changes them.

A device is identified by its ``Device-Id`` (the Wi-Fi MAC, lowercase; docs/protocol.md, Connection
and headers). It is recorded on its first OTA check (with board, firmware version and a few
diagnostics from the system-info body, kept by the rule of :mod:`.device_info`) or on its first
WebSocket connection, whichever comes first.

Blocking refuses a device's OTA checks and connections. Revocation stores a per-device "tokens
issued before T are invalid" time (see :func:`revoke_tokens` and :func:`token_time`). Activation
codes and approval are in :mod:`xiaozhi_hub.store.activation`; the hub's cached, async view of this
table is :class:`xiaozhi_hub.store.device_store.DeviceStore`.

All database work is written once as plain functions on a ``sqlite3.Connection``; the hub runs them
on the database thread (``db.transaction``), the CLI runs them directly (``db.transaction_sync``).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from .db import migration
from .device_info import clean_info

MAX_ID_LENGTH = 64
MAX_NAME_LENGTH = 64
_ID_RE = re.compile(r"[0-9A-Za-z:_.\-]{1,64}")     # no '|' (the token signs "client|device|ts")
_HEX_KEY_RE = re.compile(r"(?:[0-9a-fA-F]{2}){16,64}")
_HEX12_RE = re.compile(r"[0-9a-fA-F]{12}")

# The migration keeps the name it was first applied under (databases record it by name).
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
# Older versions kept application.elf_sha256, where py-xiaozhi sends its HMAC key (see device_info).
migration("store.devices.v2-no-elf-sha256", """
UPDATE devices SET info = json_remove(info, '$."application.elf_sha256"')
 WHERE info IS NOT NULL AND json_valid(info);
""")
# The transport the OTA reply hands this device (NULL: the devices.transport setting).
migration("store.devices.transport.v1", "ALTER TABLE devices ADD COLUMN transport TEXT;")
TRANSPORTS = ("websocket", "mqtt")



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
    transport: str | None = None          # per-device override of devices.transport (None: the setting)

    def transport_or(self, default: str) -> str:
        """The transport this device is told to use."""
        return self.transport or default

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
            "transport_override": self.transport,
            "info": self.info,
        }
        if online is not None:
            out["online"] = online
        return out


def row_to_device(row: sqlite3.Row) -> Device:
    try:
        info = json.loads(row["info"]) if row["info"] else {}
    except ValueError:
        info = {}
    return Device(
        device_id=row["device_id"], client_id=row["client_id"] or "", name=row["name"], board=row["board"],
        board_name=row["board_name"], chip=row["chip"], firmware_version=row["firmware_version"],
        language=row["language"], serial_number=row["serial_number"], ip=row["ip"],
        info=clean_info(info) if isinstance(info, dict) else {}, blocked=bool(row["blocked"]),
        activated=bool(row["activated"]), activated_at=row["activated_at"],
        activation_code=row["activation_code"], activation_challenge=row["activation_challenge"],
        code_issued_at=row["code_issued_at"], tokens_not_before=row["tokens_not_before"],
        hmac_key=row["hmac_key"], first_seen=row["first_seen"], last_seen=row["last_seen"],
        last_ota=row["last_ota"], transport=row["transport"])


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
    return row_to_device(row) if row else None


def list_devices(conn: sqlite3.Connection) -> list[Device]:
    rows = conn.execute("SELECT * FROM devices ORDER BY COALESCE(name, device_id)").fetchall()
    return [row_to_device(r) for r in rows]


def resolve_device(conn: sqlite3.Connection, ref: str) -> Device:
    """Find a device by id (any case) or by its unique name."""
    ref = ref.strip()
    if _HEX12_RE.fullmatch(ref):     # MQTT topics and URLs may spell the MAC without colons
        ref = ":".join(ref[i:i + 2] for i in range(0, 12, 2))
    if _ID_RE.fullmatch(ref.lower()):
        device = get_device(conn, ref.lower())
        if device:
            return device
    rows = conn.execute("SELECT * FROM devices WHERE name = ?", (ref,)).fetchall()
    if len(rows) == 1:
        return row_to_device(rows[0])
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


def remove_device(conn: sqlite3.Connection, ref: str) -> Device:
    """Forget a device record (it is recorded again if it ever checks in)."""
    device = resolve_device(conn, ref)
    conn.execute("DELETE FROM devices WHERE device_id = ?", (device.device_id,))
    return device


def set_blocked(conn: sqlite3.Connection, ref: str, blocked: bool) -> Device:
    return _update(conn, ref, "UPDATE devices SET blocked = ? WHERE device_id = ?", (1 if blocked else 0,))


def set_transport(conn: sqlite3.Connection, ref: str, transport: str | None) -> Device:
    """Which transport the device's OTA replies name from now on (None: follow ``devices.transport``)."""
    if transport is not None and transport not in TRANSPORTS:
        raise InvalidValue(f"transport must be one of {', '.join(TRANSPORTS)} (or default), not {transport!r}")
    return _update(conn, ref, "UPDATE devices SET transport = ? WHERE device_id = ?", (transport,))


def count_with_transport(conn: sqlite3.Connection, transport: str) -> int:
    """How many devices have their own setting ``transport``."""
    return int(conn.execute("SELECT COUNT(*) FROM devices WHERE transport = ?", (transport,)).fetchone()[0])


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

