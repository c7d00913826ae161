"""Local firmware store: images under ``<data_dir>/firmware/`` and their index in SQLite.

Why it is shaped this way:

* **The database is the only way in.** A download names a record (``<board>_<version>.bin`` or its
  numeric id); the file behind it has a name the hub chose (``<sha256>.bin``). No part of a request
  path is ever joined onto a file-system path, so ``..`` or absolute paths cannot reach other files.
* **Content-addressed, atomic writes.** An upload is copied to a temporary file in the same folder,
  fsynced, renamed to ``<sha256>.bin`` and the folder fsynced, and only then indexed. A crash leaves
  either the old state or an unindexed file, which the next start removes; it never leaves an index
  entry pointing at a half-written image. The same image added for two boards is stored once.
* **Versions the firmware can compare.** Only plain dotted numbers are accepted (``stoi`` on the
  device throws on anything else, see :mod:`xiaozhi_hub.versions`). An ESP32 app image carries its
  own version in ``esp_app_desc_t``; it must equal the version it is filed under, because the device
  reports the embedded one after the upgrade: filed higher than it really is, the image would be
  offered and installed again on every boot.
* **Per-board latest, per-device pins.** A device is offered the newest image for its ``board.type``
  unless it is pinned to a version, in which case it is offered only that one. The device installs
  only versions newer than its own and the hub never sends ``force``, so a pin holds a device back or
  moves it to a chosen newer release; it cannot downgrade.


The download routes are in :mod:`xiaozhi_hub.net.firmware`; image inspection and copying in are in
:mod:`xiaozhi_hub.store.firmware_files`.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import re
import secrets
import sqlite3
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

from ..versions import InvalidVersion, is_newer, parse_strict
from .db import Database, migration
from .devices import Device, InvalidValue, resolve_device
from .firmware_files import (Copied, FirmwareError, FirmwareNotFound, ImageInfo, check_source, copy_to, fsync_dir,
                             inspect_image)

_LOGGER = logging.getLogger(__name__)

DOWNLOAD_PREFIX = "/xiaozhi/ota/download/"
ORPHAN_MIN_AGE = 3600.0                   # never sweep a file an upload in another process may still index
BOARD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+\-]{0,63}")
_STORED_NAME_RE = re.compile(r"[0-9a-f]{64}\.bin")
_DOWNLOAD_NAME_RE = re.compile(r"(?P<board>[A-Za-z0-9][A-Za-z0-9_.+\-]{0,63})_(?P<version>[0-9]+(?:\.[0-9]+)*)\.bin")
_TMP_PREFIX = ".upload-"

# The migration keeps the name it was first applied under (databases record it by name).
migration("net.firmware.v1", """
CREATE TABLE IF NOT EXISTS firmware (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    board         TEXT NOT NULL,
    version       TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    file_name     TEXT NOT NULL,
    original_name TEXT,
    chip          TEXT,
    added_at      REAL NOT NULL,
    UNIQUE(board, version)
);
CREATE TABLE IF NOT EXISTS firmware_pins (
    device_id TEXT PRIMARY KEY,
    version   TEXT NOT NULL,
    pinned_at REAL NOT NULL
);
""")



# ---------------------------------------------------------------------------- records

@dataclass(frozen=True)
class FirmwareRecord:
    id: int
    board: str
    version: str
    sha256: str
    size: int
    file_name: str
    original_name: str | None
    chip: str | None
    added_at: float

    @property
    def download_name(self) -> str:
        """The last path segment of the download URL (``<board>_<version>.bin``)."""
        return f"{self.board}_{self.version}.bin"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "board": self.board, "version": self.version, "sha256": self.sha256,
                "size": self.size, "chip": self.chip, "original_name": self.original_name,
                "added_at": self.added_at, "download": DOWNLOAD_PREFIX + self.download_name}


def _row(row: sqlite3.Row) -> FirmwareRecord:
    return FirmwareRecord(id=row["id"], board=row["board"], version=row["version"], sha256=row["sha256"],
                          size=row["size"], file_name=row["file_name"], original_name=row["original_name"],
                          chip=row["chip"], added_at=row["added_at"])


def check_board(board: str) -> str:
    if not BOARD_RE.fullmatch(board):
        raise InvalidValue(f"{board!r} is not a board type (the firmware's board.type, e.g. bread-compact-wifi; "
                           "letters, digits and _ . + - only)")
    return board


def check_version(version: str) -> str:
    try:
        parse_strict(version)
    except InvalidVersion as err:
        raise InvalidValue(str(err)) from None
    return version


# ---------------------------------------------------------------------------- queries (sync, on a connection)

def list_firmware(conn: sqlite3.Connection) -> list[FirmwareRecord]:
    rows = conn.execute("SELECT * FROM firmware").fetchall()
    return sorted((_row(r) for r in rows), key=lambda r: (r.board, parse_strict(r.version)))


def get_firmware(conn: sqlite3.Connection, board: str, version: str) -> FirmwareRecord | None:
    row = conn.execute("SELECT * FROM firmware WHERE board = ? AND version = ?", (board, version)).fetchone()
    return _row(row) if row else None


def latest_firmware(conn: sqlite3.Connection, board: str) -> FirmwareRecord | None:
    rows = conn.execute("SELECT * FROM firmware WHERE board = ?", (board,)).fetchall()
    records = [_row(r) for r in rows]
    return max(records, key=lambda r: parse_strict(r.version)) if records else None


def get_pin(conn: sqlite3.Connection, device_id: str) -> str | None:
    row = conn.execute("SELECT version FROM firmware_pins WHERE device_id = ?", (device_id,)).fetchone()
    return row["version"] if row else None


def list_pins(conn: sqlite3.Connection) -> dict[str, str]:
    return {r["device_id"]: r["version"] for r in conn.execute("SELECT device_id, version FROM firmware_pins")}


def lookup_download(conn: sqlite3.Connection, name: str) -> FirmwareRecord | None:
    """Map the last URL segment to a record: a numeric id or ``<board>_<version>.bin``."""
    if name.isdigit() and name.isascii():
        row = conn.execute("SELECT * FROM firmware WHERE id = ?", (int(name),)).fetchone()
        return _row(row) if row else None
    m = _DOWNLOAD_NAME_RE.fullmatch(name)
    if m is None:
        return None
    return get_firmware(conn, m["board"], m["version"])


def choose_offer(conn: sqlite3.Connection, device: Device) -> FirmwareRecord | None:
    """The image to offer ``device``: its pinned version, else its board's newest; only if newer than its own."""
    if not device.board or not device.firmware_version:
        return None
    pinned = get_pin(conn, device.device_id)
    record = get_firmware(conn, device.board, pinned) if pinned else latest_firmware(conn, device.board)
    if record is None:
        if pinned:
            _LOGGER.warning("device %s is pinned to %s, which is not stored for board %s",
                            device.device_id, pinned, device.board)
        return None
    try:
        return record if is_newer(record.version, device.firmware_version) else None
    except InvalidVersion:
        # The device's own version would make its stoi throw; offering anything cannot help it.
        return None


class FirmwareStore:
    """Firmware files plus their index.

    Methods ending in ``_sync`` touch the database directly and are for the command-line tool (a
    process with no event loop using this :class:`Database`); the hub uses the ``async`` ones,
    which run on the database thread.
    """

    def __init__(self, root: Path, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.db = db
        self._clock = clock

    def path_of(self, record: FirmwareRecord) -> Path:
        """Where the image lives; the name is checked again so a tampered index cannot point elsewhere."""
        if not _STORED_NAME_RE.fullmatch(record.file_name):
            raise FirmwareError(f"firmware record {record.id} has an unexpected file name; refusing to use it")
        return self.root / record.file_name

    # -- writing (CLI) ---------------------------------------------------------------------------
    def add_sync(self, source: str | os.PathLike[str], board: str, version: str | None = None, *,
                 verify: bool = True) -> FirmwareRecord:
        """Copy ``source`` into the store as ``board`` ``version`` and index it.

        With ``verify`` (the default) the file must be an ESP32 app image and its embedded version
        must equal ``version`` (which may then be omitted). Raises :class:`FirmwareError`/:class:`InvalidValue`.
        """
        check_board(board)
        if version is not None:
            given = check_version(version)
            if self.db.transaction_sync(lambda c: get_firmware(c, board, given)) is not None:
                raise FirmwareError(f"{board} {version} is already stored; remove it first: "
                                    f"xiaozhi-hub firmware remove {board} {version}")
        src = Path(source)
        check_source(src)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"{_TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            copied = copy_to(src, tmp)
            version, chip = _filed_version(copied.head, version) if verify else (_given_version(version), None)
            final = self.root / f"{copied.sha256}.bin"
            created = not final.exists()
            if created:
                os.replace(tmp, final)
                fsync_dir(self.root)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return self._index(board, version, copied, final, src.name, chip, created)

    def _index(self, board: str, version: str, copied: Copied, final: Path, original_name: str,
               chip: str | None, created: bool) -> FirmwareRecord:
        """Add the record for a stored file; a new file is removed again if indexing fails."""
        def insert(conn: sqlite3.Connection) -> FirmwareRecord:
            existing = get_firmware(conn, board, version)
            if existing is not None:
                raise FirmwareError(f"{board} {version} is already stored (sha256 {existing.sha256[:12]}…); "
                                    f"remove it first: xiaozhi-hub firmware remove {board} {version}")
            conn.execute("INSERT INTO firmware (board, version, sha256, size, file_name, original_name, chip, added_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (board, version, copied.sha256, copied.size, final.name, original_name, chip, self._clock()))
            record = get_firmware(conn, board, version)
            assert record is not None
            return record

        try:
            return self.db.transaction_sync(insert)
        except BaseException:
            if created and not self._referenced_sync(final.name):
                with contextlib.suppress(FileNotFoundError):
                    final.unlink()
            raise

    def _referenced_sync(self, file_name: str) -> bool:
        return self.db.fetchone_sync("SELECT 1 FROM firmware WHERE file_name = ?", (file_name,)) is not None

    def remove_sync(self, board: str, version: str) -> FirmwareRecord:
        """Drop an image from the index, then its file unless another board uses the same bytes."""
        def delete(conn: sqlite3.Connection) -> FirmwareRecord:
            record = get_firmware(conn, board, version)
            if record is None:
                raise FirmwareNotFound(f"no firmware {version} stored for board {board} (see `xiaozhi-hub firmware list`)")
            conn.execute("DELETE FROM firmware WHERE id = ?", (record.id,))
            return record
        record = self.db.transaction_sync(delete)
        if not self._referenced_sync(record.file_name):
            with contextlib.suppress(FileNotFoundError):
                self.path_of(record).unlink()
            fsync_dir(self.root)
        return record

    def list_sync(self) -> list[FirmwareRecord]:
        return self.db.transaction_sync(list_firmware)

    def pins_sync(self) -> dict[str, str]:
        return self.db.transaction_sync(list_pins)

    def pin_sync(self, device_ref: str, version: str) -> tuple[Device, FirmwareRecord]:
        """Hold ``device_ref`` at ``version`` (which must be stored for the device's board)."""
        check_version(version)

        def pin(conn: sqlite3.Connection) -> tuple[Device, FirmwareRecord]:
            device = resolve_device(conn, device_ref)
            if not device.board:
                raise FirmwareError(f"{device.label} has not reported its board yet (it does on its next OTA check)")
            record = get_firmware(conn, device.board, version)
            if record is None:
                raise FirmwareNotFound(f"no firmware {version} stored for board {device.board}; add it first: "
                                       f"xiaozhi-hub firmware add FILE --board {device.board} --version {version}")
            conn.execute("INSERT INTO firmware_pins (device_id, version, pinned_at) VALUES (?, ?, ?) "
                         "ON CONFLICT(device_id) DO UPDATE SET version = excluded.version, pinned_at = excluded.pinned_at",
                         (device.device_id, version, self._clock()))
            return device, record
        return self.db.transaction_sync(pin)

    def unpin_sync(self, device_ref: str) -> Device:
        def unpin(conn: sqlite3.Connection) -> Device:
            device = resolve_device(conn, device_ref)
            if conn.execute("DELETE FROM firmware_pins WHERE device_id = ?", (device.device_id,)).rowcount == 0:
                raise FirmwareNotFound(f"{device.label} is not pinned")
            return device
        return self.db.transaction_sync(unpin)

    # -- housekeeping ------------------------------------------------------------------------------
    def sweep(self, referenced: set[str], min_age: float = ORPHAN_MIN_AGE) -> list[Path]:
        """Delete leftovers of interrupted uploads and unindexed images older than ``min_age`` seconds."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        now = time.time()
        for path in self.root.iterdir():
            name = path.name
            stray = name.startswith(_TMP_PREFIX) or (_STORED_NAME_RE.fullmatch(name) and name not in referenced)
            if not stray:
                continue
            try:
                if now - path.stat().st_mtime >= min_age:
                    path.unlink()
                    removed.append(path)
            except OSError:
                continue
        return removed

    # -- reading (hub) ---------------------------------------------------------------------------
    async def list(self) -> builtins.list[FirmwareRecord]:
        return await self.db.transaction(list_firmware)

    async def lookup_download(self, name: str) -> FirmwareRecord | None:
        return await self.db.transaction(lambda c: lookup_download(c, name))

    async def offer_for(self, device: Device) -> FirmwareRecord | None:
        record = await self.db.transaction(lambda c: choose_offer(c, device))
        if record is not None and not self.path_of(record).is_file():
            _LOGGER.error("firmware %s %s is indexed but %s is missing; not offering it",
                          record.board, record.version, self.path_of(record))
            return None
        return record

    async def sweep_async(self, min_age: float = ORPHAN_MIN_AGE) -> builtins.list[Path]:
        rows = await self.db.fetchall("SELECT file_name FROM firmware")
        return self.sweep({r["file_name"] for r in rows}, min_age)


def _filed_version(head: bytes, version: str | None) -> tuple[str, str | None]:
    """The version to file a verified image under (the given one must equal the embedded one), and its chip."""
    info: ImageInfo = inspect_image(head)
    if version is None:
        version = check_version(info.version) if info.version else None
        if version is None:
            raise FirmwareError("the image carries no version; pass --version")
    elif info.version != version:
        raise FirmwareError(
            f"the image says it is version {info.version!r}, not {version!r}; a device would report "
            f"{info.version!r} after installing it and be offered it again on every boot "
            "(file it under its real version, or --no-verify if you are sure)")
    return version, info.chip


def _given_version(version: str | None) -> str:
    if version is None:
        raise FirmwareError("--version is required with --no-verify")
    return version


__all__ = ["DOWNLOAD_PREFIX", "FirmwareStore", "FirmwareRecord", "FirmwareError", "FirmwareNotFound", "ImageInfo",
           "inspect_image", "choose_offer"]
