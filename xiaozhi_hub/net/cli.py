"""``xiaozhi-hub devices ...`` and ``xiaozhi-hub firmware ...``: manage devices and firmware offline.

The commands work on ``<data_dir>/hub.db`` directly, so they need no running hub and are safe while
one runs (SQLite WAL; the hub notices changes within a couple of seconds, see
:mod:`xiaozhi_hub.store.device_store`).

Exit codes: 0 done, 1 the operation was refused (unknown device or code, duplicate image, ...),
2 an argument is malformed (bad version string, board name, key).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from ..settings import Settings, add_common_flags
from ..store import devices as dev
from ..store.activation import approve_code
from ..store.db import Database
from ..store.firmware import FirmwareStore
from ..versions import InvalidVersion, is_newer

DB_NAME = "hub.db"
Action = Callable[[Database, argparse.Namespace, Settings], int]


def db_path(settings: Settings) -> Path:
    return settings.data_path / DB_NAME


def _open(settings: Settings) -> Database:
    return Database(db_path(settings)).open_sync()


def _close(db: Database) -> None:
    db.conn.close()


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _table(headers: list[str], rows: Iterable[list[str]]) -> str:
    rows = list(rows)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(line.rstrip() for line in [fmt.format(*headers), *(fmt.format(*r) for r in rows)])


def _run(action: Action, create: bool = False) -> Callable[[argparse.Namespace, Settings], int]:
    """Open the database, run the action, map refusals to exit codes with a one-line message.

    Only commands that store something (``firmware add``) create a missing database; the others
    report it, since a missing one almost always means a wrong ``--data-dir``.
    """
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        if not create and not db_path(settings).is_file():
            print(f"xiaozhi-hub: no hub database at {db_path(settings)} (wrong --data-dir, or the hub never ran)",
                  file=sys.stderr)
            return 1
        db = _open(settings)
        try:
            return action(db, args, settings)
        except (dev.InvalidValue, InvalidVersion) as err:
            print(f"xiaozhi-hub: {err}", file=sys.stderr)
            return 2
        except dev.DeviceError as err:
            print(f"xiaozhi-hub: {err}", file=sys.stderr)
            return 1
        finally:
            _close(db)
    return handler


# ---------------------------------------------------------------------------- devices

def _device_state(d: dev.Device, activation: bool) -> str:
    if d.blocked:
        return "blocked"
    if activation and not d.activated:
        return "waiting for approval"
    return "approved"


def _devices_list(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    devices = db.transaction_sync(dev.list_devices)
    if args.json:
        print(json.dumps([d.to_json() for d in devices], indent=2, ensure_ascii=False))
        return 0
    if not devices:
        print("no devices yet (a device is recorded on its first OTA check or connection)")
        return 0
    rows = [[d.device_id, d.name or "-", d.board or "-", d.firmware_version or "-",
             _device_state(d, settings.ota.activation), d.transport_or(settings.devices.transport),
             _when(d.last_seen)] for d in devices]
    print(_table(["DEVICE", "NAME", "BOARD", "FIRMWARE", "STATE", "TRANSPORT", "LAST SEEN"], rows))
    return 0


def _devices_approve(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    device = db.transaction_sync(lambda c: approve_code(c, args.code, time.time()))
    print(f"approved {device.label}; it finishes activation at its next poll (within seconds)")
    if not settings.ota.activation:
        print("note: ota.activation is off, so devices are admitted without approval anyway")
    return 0


def _devices_rename(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    device = db.transaction_sync(lambda c: dev.rename_device(c, args.device, args.name))
    print(f"{device.device_id} is now named {device.name!r}")
    return 0


def _devices_block(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    device = db.transaction_sync(lambda c: dev.set_blocked(c, args.device, True))
    print(f"blocked {device.label}: its OTA checks and new connections are refused")
    return 0


def _devices_unblock(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    device = db.transaction_sync(lambda c: dev.set_blocked(c, args.device, False))
    print(f"unblocked {device.label}")
    return 0


def _devices_revoke(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    device = db.transaction_sync(lambda c: dev.revoke_tokens(c, args.device, time.time()))
    print(f"revoked all tokens of {device.label}; it gets a new one at its next OTA check (reboot it)")
    if not settings.auth.enabled:
        print("note: auth.enabled is off, so the WebSocket does not check tokens at all")
    return 0


def _devices_key(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    key = None if args.clear else args.key
    if key is None and not args.clear:
        print("xiaozhi-hub: give the key as hex, or --clear", file=sys.stderr)
        return 2
    device = db.transaction_sync(lambda c: dev.set_hmac_key(c, args.device, key))
    print(f"{'cleared the' if key is None else 'stored the'} activation HMAC key of {device.label}")
    return 0


def _devices_transport(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    value = None if args.transport == "default" else args.transport
    device = db.transaction_sync(lambda c: dev.set_transport(c, args.device, value))
    effective = device.transport_or(settings.devices.transport)
    print(f"{device.label} is told {effective}" + (" (devices.transport)" if value is None else "")
          + " at its next OTA check; it switches when it boots next (restart it to switch now)")
    if effective == "mqtt" and not settings.device_mqtt.enabled:
        print("note: device_mqtt.enabled is false, so the hub keeps telling it websocket")
    return 0


# ---------------------------------------------------------------------------- firmware

def _store(db: Database, settings: Settings) -> FirmwareStore:
    return FirmwareStore(settings.data_path / "firmware", db)


def _firmware_add(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    record = _store(db, settings).add_sync(args.file, args.board, args.version, verify=not args.no_verify)
    print(f"stored {record.board} {record.version} ({record.size} bytes, sha256 {record.sha256})")
    print(f"devices of board {record.board} running an older version are offered it at their next OTA check")
    return 0


def _firmware_list(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    store = _store(db, settings)
    records = store.list_sync()
    pins = store.pins_sync()
    if args.json:
        print(json.dumps({"firmware": [r.to_json() for r in records], "pins": pins}, indent=2))
        return 0
    if not records:
        print("no firmware stored (add one: xiaozhi-hub firmware add FILE --board BOARD --version X.Y.Z)")
    else:
        print(_table(["BOARD", "VERSION", "SIZE", "SHA256", "ADDED"],
                     [[r.board, r.version, str(r.size), r.sha256[:16], _when(r.added_at)] for r in records]))
    if pins:
        print()
        print(_table(["PINNED DEVICE", "VERSION"], [[d, v] for d, v in sorted(pins.items())]))
    return 0


def _firmware_remove(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    record = _store(db, settings).remove_sync(args.board, args.version)
    print(f"removed {record.board} {record.version}")
    return 0


def _firmware_pin(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    device, record = _store(db, settings).pin_sync(args.device, args.version)
    print(f"pinned {device.label} to {record.board} {record.version}")
    current = device.firmware_version
    try:
        behind = current is None or is_newer(record.version, current)
    except InvalidVersion:
        behind = False
    if not behind:
        print(f"note: the device runs {current}; devices only install newer versions, so it stays on "
              f"{current} and is simply not offered anything newer until you unpin it")
    return 0


def _firmware_unpin(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    device = _store(db, settings).unpin_sync(args.device)
    print(f"unpinned {device.label}; it follows the newest firmware for its board again")
    return 0


# ---------------------------------------------------------------------------- argparse

def register(subparsers: Any) -> None:
    """Add ``devices`` and ``firmware`` with their subcommands."""
    _register_devices(subparsers)
    _register_firmware(subparsers)


def _leaf(group: Any, name: str, help_: str, action: Action, create: bool = False) -> argparse.ArgumentParser:
    p = group.add_parser(name, help=help_, description=help_)
    add_common_flags(p, suppress=True)
    p.set_defaults(func=_run(action, create))
    return p


def _group(subparsers: Any, name: str, help_: str, description: str) -> Any:
    """A command whose actions are subcommands; without one it prints its help and exits 2."""
    parser = subparsers.add_parser(name, help=help_, description=description)
    add_common_flags(parser, suppress=True)

    def show(args: argparse.Namespace, settings: Settings) -> int:
        parser.print_help(sys.stderr)
        return 2
    parser.set_defaults(func=show)
    return parser.add_subparsers(dest=f"{name}_command", metavar="ACTION")


def _register_devices(subparsers: Any) -> None:
    dsub = _group(subparsers, "devices", "list, approve, rename, block devices; revoke their tokens",
                  "Manage the devices known to the hub (works with or without a running hub).")
    p = _leaf(dsub, "list", "list known devices", _devices_list)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = _leaf(dsub, "approve", "approve the device showing this 6-digit activation code", _devices_approve)
    p.add_argument("code", metavar="CODE")
    p = _leaf(dsub, "rename", "give a device a name (usable instead of its id in other commands)", _devices_rename)
    p.add_argument("device", metavar="ID")
    p.add_argument("name", metavar="NAME")
    p = _leaf(dsub, "block", "refuse a device's OTA checks and connections", _devices_block)
    p.add_argument("device", metavar="ID")
    p = _leaf(dsub, "unblock", "admit a blocked device again", _devices_unblock)
    p.add_argument("device", metavar="ID")
    p = _leaf(dsub, "revoke", "invalidate every token issued to a device so far", _devices_revoke)
    p.add_argument("device", metavar="ID")
    p = _leaf(dsub, "key", "register (or --clear) a device's eFuse HMAC key, so its activation HMAC is checked "
                           "and a valid one approves it without a code", _devices_key)
    p.add_argument("device", metavar="ID")
    p.add_argument("key", metavar="HEX", nargs="?")
    p.add_argument("--clear", action="store_true", help="forget the key")
    p = _leaf(dsub, "transport", "choose the transport a device's OTA reply names (websocket, mqtt, or default: "
                                 "devices.transport)", _devices_transport)
    p.add_argument("device", metavar="ID")
    p.add_argument("transport", choices=("websocket", "mqtt", "default"))


def _register_firmware(subparsers: Any) -> None:
    fsub = _group(subparsers, "firmware", "add, list, remove firmware images; pin devices to a version",
                  "Manage the local firmware store offered to devices over OTA.")
    p = _leaf(fsub, "add", "store an ESP32 app image for a board", _firmware_add, create=True)
    p.add_argument("file", metavar="FILE", help="the app binary (e.g. build/xiaozhi.bin)")
    p.add_argument("--board", required=True, help="the board type devices report (board.type, e.g. bread-compact-wifi)")
    p.add_argument("--version", dest="version", metavar="X.Y.Z",
                   help="dotted-number version; must equal the one inside the image (taken from it if omitted)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the ESP32 image checks (the version must then be given)")
    p = _leaf(fsub, "list", "list stored images and pins", _firmware_list)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = _leaf(fsub, "remove", "delete a stored image", _firmware_remove)
    p.add_argument("board", metavar="BOARD")
    p.add_argument("version", metavar="VERSION")
    p = _leaf(fsub, "pin", "offer a device only this version (of its board) from now on", _firmware_pin)
    p.add_argument("device", metavar="DEVICE")
    p.add_argument("version", metavar="VERSION")
    p = _leaf(fsub, "unpin", "let a pinned device follow its board's newest image again", _firmware_unpin)
    p.add_argument("device", metavar="DEVICE")
