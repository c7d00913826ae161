"""The firmware store without HTTP: image checks, content-addressed atomic writes, crash safety,
per-board ordering and the offer rule, on a real SQLite file and real files in tmp_path."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from xiaozhi_hub.store import firmware as fw
from xiaozhi_hub.store.devices import DeviceReport, record_report

from .conftest import BOARD, DEVICE_ID
from .images import make_image


def test_inspect_image_reads_the_app_description() -> None:
    info = fw.inspect_image(make_image("1.8.0", chip_id=9))
    assert info.version == "1.8.0" and info.project_name == "xiaozhi" and info.chip == "esp32s3"
    assert info.idf_version == "v5.4.1"
    with pytest.raises(fw.FirmwareError, match="0xE9"):
        fw.inspect_image(b"PK\x03\x04" + bytes(400))                 # a zip
    bootloader_like = bytearray(make_image("1.0"))
    bootloader_like[32:36] = b"\0\0\0\0"
    with pytest.raises(fw.FirmwareError, match="esp_app_desc_t"):
        fw.inspect_image(bytes(bootloader_like))


def test_add_checks_the_embedded_version(store, image_file) -> None:
    path = image_file("1.8.0")
    with pytest.raises(fw.FirmwareError, match="every boot"):
        store.add_sync(path, BOARD, "1.9.0")
    record = store.add_sync(path, BOARD)                              # version taken from the image
    assert record.version == "1.8.0" and record.chip == "esp32s3"
    assert record.size == path.stat().st_size
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (store.root / record.file_name).read_bytes() == path.read_bytes()


def test_add_refuses_bad_input(store, image_file, tmp_path: Path) -> None:
    path = image_file("1.8.0")
    with pytest.raises(fw.InvalidValue):
        store.add_sync(path, BOARD, "1.8.0-beta")
    with pytest.raises(fw.InvalidValue):
        store.add_sync(path, "../boards", "1.8.0")
    with pytest.raises(fw.FirmwareError, match="not an ESP32 app image"):
        junk = tmp_path / "junk.bin"
        junk.write_bytes(os.urandom(1000))
        store.add_sync(junk, BOARD, "1.8.0")
    with pytest.raises(fw.FirmwareError, match="cannot read"):
        store.add_sync(tmp_path / "missing.bin", BOARD, "1.8.0")
    store.add_sync(path, BOARD, "1.8.0")
    with pytest.raises(fw.FirmwareError, match="already stored"):
        store.add_sync(image_file("1.8.0", seed=2), BOARD, "1.8.0")
    assert [r.version for r in store.list_sync()] == ["1.8.0"]
    assert sorted(p.name for p in store.root.iterdir()) == [store.list_sync()[0].file_name]


def test_no_verify_stores_any_file_but_still_needs_a_plain_version(store, tmp_path: Path) -> None:
    blob = tmp_path / "custom.bin"
    blob.write_bytes(b"custom build" * 10)
    with pytest.raises(fw.FirmwareError, match="--version is required"):
        store.add_sync(blob, BOARD, None, verify=False)
    with pytest.raises(fw.InvalidValue):
        store.add_sync(blob, BOARD, "v2", verify=False)
    assert store.add_sync(blob, BOARD, "2.0.0", verify=False).version == "2.0.0"


def test_same_image_for_two_boards_is_stored_once_and_removed_last(store, image_file) -> None:
    path = image_file("1.8.0")
    a = store.add_sync(path, "board-a")
    b = store.add_sync(path, "board-b")
    assert a.file_name == b.file_name
    assert len(list(store.root.glob("*.bin"))) == 1
    store.remove_sync("board-a", "1.8.0")
    assert (store.root / b.file_name).exists()                       # still used by board-b
    store.remove_sync("board-b", "1.8.0")
    assert not list(store.root.glob("*.bin"))
    with pytest.raises(fw.FirmwareNotFound):
        store.remove_sync("board-b", "1.8.0")


def test_latest_per_board_uses_firmware_ordering(store, image_file) -> None:
    for v in ("1.9.0", "1.10.0", "1.2"):
        store.add_sync(image_file(v), BOARD)
    assert [r.version for r in store.list_sync()] == ["1.2", "1.9.0", "1.10.0"]
    assert store.db.transaction_sync(lambda c: fw.latest_firmware(c, BOARD)).version == "1.10.0"


def test_crash_during_add_leaves_no_index_entry_and_no_partial_file(store, image_file, monkeypatch) -> None:
    path = image_file("1.8.0")

    def crash(*args, **kwargs):
        raise OSError("simulated power cut before the rename")
    monkeypatch.setattr(fw.os, "replace", crash)
    with pytest.raises(OSError):
        store.add_sync(path, BOARD)
    monkeypatch.undo()
    assert store.list_sync() == []
    assert list(store.root.iterdir()) == []                          # the temp file was cleaned up too
    assert store.add_sync(path, BOARD).version == "1.8.0"            # and the next attempt works


def test_failed_index_write_removes_the_new_file(store, image_file, monkeypatch) -> None:
    path = image_file("1.8.0")
    original = store.db.transaction_sync

    def failing(fn):
        raise RuntimeError("database went away")
    monkeypatch.setattr(store.db, "transaction_sync", failing)
    monkeypatch.setattr(store.db, "fetchone_sync", lambda *a: None)
    with pytest.raises(RuntimeError):
        store.add_sync(path, BOARD)
    monkeypatch.setattr(store.db, "transaction_sync", original)
    assert not list(store.root.glob("*.bin"))


def test_sweep_removes_only_old_leftovers(store, image_file) -> None:
    kept = store.add_sync(image_file("1.8.0"), BOARD)
    orphan = store.root / ("0" * 64 + ".bin")
    orphan.write_bytes(b"left by a crash between rename and index")
    partial = store.root / ".upload-deadbeef"
    partial.write_bytes(b"half an upload")
    fresh = store.root / ("1" * 64 + ".bin")
    fresh.write_bytes(b"an upload in another process, about to be indexed")
    old = os.stat(orphan).st_mtime - 7200
    os.utime(orphan, (old, old))
    os.utime(partial, (old, old))
    referenced = {r.file_name for r in store.list_sync()}
    removed = store.sweep(referenced)
    assert sorted(p.name for p in removed) == sorted([orphan.name, partial.name])
    assert (store.root / kept.file_name).exists() and fresh.exists()


def test_path_of_refuses_a_tampered_record(store, image_file) -> None:
    record = store.add_sync(image_file("1.8.0"), BOARD)
    store.db.execute_sync("UPDATE firmware SET file_name = '../hub.db'")
    [tampered] = store.list_sync()
    with pytest.raises(fw.FirmwareError):
        store.path_of(tampered)
    assert record.file_name != tampered.file_name


def test_offer_choice_without_http(store, image_file) -> None:
    store.add_sync(image_file("1.8.0"), BOARD)
    device = store.db.transaction_sync(lambda c: record_report(
        c, DeviceReport(device_id=DEVICE_ID, board=BOARD, firmware_version="1.7.6"), 1000.0, True))
    assert store.db.transaction_sync(lambda c: fw.choose_offer(c, device)).version == "1.8.0"
    weird = store.db.transaction_sync(lambda c: record_report(
        c, DeviceReport(device_id=DEVICE_ID, firmware_version="v1"), 1001.0, True))
    assert store.db.transaction_sync(lambda c: fw.choose_offer(c, weird)) is None   # stoi would throw anyway
