"""Device records and the hub's device store without HTTP: id rules, token times, activation codes,
the HMAC check, and the cached store's shut-out notices, on a real SQLite file."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from pathlib import Path

import pytest

from xiaozhi_hub.store import devices as dev
from xiaozhi_hub.store.activation import (CODE_TTL_SECONDS, approve_code, check_activation_hmac,
                                          ensure_activation_code)
from xiaozhi_hub.store.db import Database
from xiaozhi_hub.store.device_store import (REASON_BLOCKED, REASON_PENDING, REASON_REVOKED, REASON_UNKNOWN,
                                            DeviceStore)

from .conftest import DEVICE_ID

def test_device_ids_are_normalised_and_checked() -> None:
    assert dev.normalize_device_id(" A1:B2:C3:D4:E5:F6 ") == "a1:b2:c3:d4:e5:f6"
    for bad in ("", "a|b", "x" * 65, "a b", "a/b"):
        try:
            dev.normalize_device_id(bad)
        except dev.InvalidValue:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_token_time_never_precedes_the_cutoff() -> None:
    assert dev.token_time(None, 100.5) == 100.5
    device = dev.Device(device_id=DEVICE_ID, client_id="", name=None, board=None, board_name=None, chip=None,
                        firmware_version=None, language=None, serial_number=None, ip=None, info={},
                        blocked=False, activated=True, activated_at=None, activation_code=None,
                        activation_challenge=None, code_issued_at=None, tokens_not_before=101.0,
                        hmac_key=None, first_seen=0, last_seen=0, last_ota=None)
    assert dev.token_time(device, 100.5) == 101.0     # revoked at 100.5 -> cutoff 101, new token at 101


def test_activation_code_is_stable_until_it_expires(sync_db: Database) -> None:
    sync_db.transaction_sync(lambda c: dev.touch_device(c, DEVICE_ID, "", 1000.0, approve_new=False))
    first = sync_db.transaction_sync(lambda c: ensure_activation_code(c, DEVICE_ID, 1000.0))
    again = sync_db.transaction_sync(lambda c: ensure_activation_code(c, DEVICE_ID, 1000.0 + CODE_TTL_SECONDS - 1))
    assert first.activation_code and len(first.activation_code) == 6 and first.activation_challenge
    assert (again.activation_code, again.activation_challenge) == (first.activation_code, first.activation_challenge)
    late = 1000.0 + CODE_TTL_SECONDS
    with pytest.raises(dev.DeviceNotFound, match="expired"):
        sync_db.transaction_sync(lambda c: approve_code(c, str(first.activation_code), late))
    renewed = sync_db.transaction_sync(lambda c: ensure_activation_code(c, DEVICE_ID, late))
    assert renewed.activation_challenge != first.activation_challenge
    with pytest.raises(dev.InvalidValue):
        sync_db.transaction_sync(lambda c: approve_code(c, "12345", late))
    approved = sync_db.transaction_sync(lambda c: approve_code(c, str(renewed.activation_code), late))
    assert approved.activated and approved.activation_code is None and approved.activated_at == late


def test_activation_hmac_is_checked_only_against_a_registered_key(sync_db: Database) -> None:
    key = "ab" * 32
    sync_db.transaction_sync(lambda c: dev.touch_device(c, DEVICE_ID, "", 1000.0, approve_new=False))
    device = sync_db.transaction_sync(lambda c: ensure_activation_code(c, DEVICE_ID, 1000.0))
    challenge = str(device.activation_challenge)
    good = hmac.new(bytes.fromhex(key), challenge.encode(), hashlib.sha256).hexdigest()
    assert check_activation_hmac(device, {"challenge": challenge, "hmac": good}) is None     # no key on file
    device = sync_db.transaction_sync(lambda c: dev.set_hmac_key(c, DEVICE_ID, key.upper()))
    assert check_activation_hmac(device, {}) is None                                         # nothing to check
    assert check_activation_hmac(device, {"challenge": challenge, "hmac": good.upper()}) is True
    assert check_activation_hmac(device, {"challenge": challenge, "hmac": "00" * 32}) is False
    assert check_activation_hmac(device, {"challenge": "other", "hmac": good}) is False
    assert check_activation_hmac(device, {"challenge": "\u00e9", "hmac": good}) is False     # non-ASCII: no crash
    assert check_activation_hmac(device, {"challenge": challenge, "hmac": 5}) is False


def test_activation_hmac_vectors_for_both_key_readings() -> None:
    """Fixed keys and challenge; the expected HMACs are computed here, independently of the hub's code."""
    challenge = "5f1b2c3d4e5f60718293a4b5c6d7e8f9"
    raw_key = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    text_key = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"     # sha256(b"test"), hex
    base = dev.Device(device_id=DEVICE_ID, client_id="", name=None, board=None, board_name=None, chip=None,
                      firmware_version=None, language=None, serial_number=None, ip=None, info={},
                      blocked=False, activated=False, activated_at=None, activation_code="123456",
                      activation_challenge=challenge, code_issued_at=0.0, tokens_not_before=None,
                      hmac_key=None, first_seen=0, last_seen=0, last_ota=None)
    stock = dataclasses.replace(base, hmac_key=raw_key.hex())
    stock_hmac = hmac.new(raw_key, challenge.encode(), hashlib.sha256).hexdigest()          # eFuse: raw bytes
    assert check_activation_hmac(stock, {"challenge": challenge, "hmac": stock_hmac}) is True
    py = dataclasses.replace(base, hmac_key=text_key)
    py_hmac = hmac.new(text_key.encode("ascii"), challenge.encode(), hashlib.sha256).hexdigest()  # py-xiaozhi
    assert check_activation_hmac(py, {"challenge": challenge, "hmac": py_hmac}) is True
    # Each HMAC belongs to its key: the readings of one key do not vouch for another key.
    assert check_activation_hmac(stock, {"challenge": challenge, "hmac": py_hmac}) is False
    assert check_activation_hmac(py, {"challenge": challenge, "hmac": stock_hmac}) is False
    assert py_hmac != hmac.new(bytes.fromhex(text_key), challenge.encode(), hashlib.sha256).hexdigest()


async def test_store_reports_each_shut_out_once_whichever_connection_made_it(tmp_path: Path) -> None:
    notices: list[tuple[str, str]] = []

    async def shut_out(device_id: str, reason: str) -> None:
        notices.append((device_id, reason))

    db = await Database(tmp_path / "hub.db").open()
    cli = Database(tmp_path / "hub.db").open_sync()          # another connection, as the CLI process has
    try:
        store = DeviceStore(db, approve_new=True, clock=lambda: 1000.5, on_shut_out=shut_out)
        await store.load()
        await store.seen(DEVICE_ID.upper(), "client")
        assert not store.is_blocked(DEVICE_ID) and store.revoked_before(DEVICE_ID) is None
        await store.set_blocked(DEVICE_ID, True)
        await store.set_blocked(DEVICE_ID, True)                 # no change, no second notice
        assert store.is_blocked(DEVICE_ID.upper()) and notices == [(DEVICE_ID, REASON_BLOCKED)]
        assert not await store.refresh_if_changed()              # nothing committed elsewhere
        cli.transaction_sync(lambda c: dev.revoke_tokens(c, DEVICE_ID, 2000.2))
        assert await store.refresh_if_changed()
        assert store.revoked_before(DEVICE_ID) == 2001.0
        assert notices[-1] == (DEVICE_ID, REASON_REVOKED) and len(notices) == 2
    finally:
        cli.conn.close()
        await db.close()


async def test_store_admits_only_approved_devices_while_activation_is_required(tmp_path: Path) -> None:
    db = await Database(tmp_path / "hub.db").open()
    cli = Database(tmp_path / "hub.db").open_sync()
    try:
        store = DeviceStore(db, approve_new=False, clock=lambda: 1000.0)
        await store.load()
        assert store.not_admitted(DEVICE_ID) == REASON_UNKNOWN
        await store.record_report(dev.DeviceReport(device_id=DEVICE_ID, client_id="c"))
        assert store.not_admitted(DEVICE_ID.upper()) == REASON_PENDING
        code = (await store.ensure_activation_code(DEVICE_ID)).activation_code
        cli.transaction_sync(lambda c: approve_code(c, str(code), 1001.0))         # the CLI, another connection
        assert store.not_admitted(DEVICE_ID) == REASON_PENDING                     # not seen yet ...
        assert (await store.reload(DEVICE_ID)).activated                            # ... until read through reload
        assert store.not_admitted(DEVICE_ID) is None
        assert await store.reload("00:00:00:00:00:00") is None
        open_store = DeviceStore(db, approve_new=True)                              # activation off
        await open_store.load()
        assert open_store.not_admitted("00:00:00:00:00:00") is None
    finally:
        cli.conn.close()
        await db.close()
