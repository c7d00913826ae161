"""The rule for what the hub keeps of a device's system information (store/device_info.py): known,
non-secret fields only, nothing that looks like key material; old rows are cleaned on disk and on read."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

from xiaozhi_hub.store import devices as dev
from xiaozhi_hub.store.db import Database
from xiaozhi_hub.store.device_info import clean_info, collect_info, looks_like_key

from .conftest import DEVICE_ID


def test_looks_like_key() -> None:
    assert looks_like_key(hashlib.sha256(b"x").hexdigest())                   # 64 hex (py-xiaozhi's key)
    assert looks_like_key(secrets.token_hex(16))                              # 128-bit key in hex
    assert looks_like_key("key=" + secrets.token_urlsafe(32))                 # a token inside text
    for harmless in ("esp32s3", "v5.4.1", "Aug  8 2026T10:00:00Z", "192.168.1.77", "89860012345678901234",
                     "My Home Wi-Fi", "py-xiaozhi", "-52"):
        assert not looks_like_key(harmless), harmless


def test_collect_info_keeps_known_fields_only() -> None:
    body = {"chip_model_name": "esp32s3", "flash_size": 16777216, "minimum_free_heap_size": "7265024",
            "application": {"name": "xiaozhi", "idf_version": "v5.4.1", "elf_sha256": "ab" * 32, "secret": "x"},
            "board": {"ssid": "home", "rssi": -52, "ip": "192.168.1.50", "imei": "86" + "0" * 13,
                      "password": "hunter2"},
            "display": {"width": 240, "monochrome": False, "height": float("nan")},
            "uuid": "6b0a6c0e-6b0a-4c0e-8b0a-6c0e6b0a6c0e", "extra": {"nested": {"deep": 1}}}
    assert collect_info(body) == {
        "chip_model_name": "esp32s3", "flash_size": 16777216, "minimum_free_heap_size": "7265024",
        "application.name": "xiaozhi", "application.idf_version": "v5.4.1",
        "board.ssid": "home", "board.rssi": -52, "board.ip": "192.168.1.50", "board.imei": "86" + "0" * 13,
        "display.width": 240, "display.monochrome": False}


def test_a_key_in_a_known_field_is_dropped() -> None:
    key = secrets.token_hex(32)
    assert collect_info({"board": {"ssid": key, "ip": "10.0.0.2"}, "application": {"name": [key]}}) == \
        {"board.ip": "10.0.0.2"}
    assert clean_info({"board.ssid": key, "application.elf_sha256": key, "board.ip": "10.0.0.2", "other": 1}) == \
        {"board.ip": "10.0.0.2"}


def test_rows_from_older_versions_are_cleaned_on_disk_and_on_read(tmp_path: Path) -> None:
    key = hashlib.sha256(b"py-xiaozhi key").hexdigest()
    db = Database(tmp_path / "hub.db").open_sync()
    try:
        dirty = {"application.elf_sha256": key, "board.ip": "10.0.0.2", "board.ssid": "x" * 8 + key}
        db.transaction_sync(lambda c: dev.touch_device(c, DEVICE_ID, "", 1000.0, approve_new=True))
        db.execute_sync("UPDATE devices SET info = ? WHERE device_id = ?", (json.dumps(dirty), DEVICE_ID))
        device = db.transaction_sync(lambda c: dev.get_device(c, DEVICE_ID))
        assert device is not None and device.info == {"board.ip": "10.0.0.2"}          # read: cleaned
        assert key not in json.dumps(device.to_json())
        # As a database written before the rule: the migration removes elf_sha256 from the stored rows.
        db.execute_sync("DELETE FROM schema_migrations WHERE name = 'store.devices.v2-no-elf-sha256'")
    finally:
        db.conn.close()
    reopened = Database(tmp_path / "hub.db").open_sync()
    try:
        stored = json.loads(reopened.fetchone_sync("SELECT info FROM devices WHERE device_id = ?", (DEVICE_ID,))[0])
        assert "application.elf_sha256" not in stored and stored["board.ip"] == "10.0.0.2"
    finally:
        reopened.conn.close()
