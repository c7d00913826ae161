"""Secrets in device records: py-xiaozhi sends its HMAC key as ``application.elf_sha256``; the hub never
stores it, returns it (API, ``devices list --json``) or logs it, even at debug level (real SQLite, HTTP on
127.0.0.1)."""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest

from .conftest import CLIENT_ID, DEVICE_ID, Hub

PY_KEY = hashlib.sha256(b"laptop||a1:b2:c3:d4:e5:f6||4c4c4544-0031-3510-8048-b4c04f4d3332").hexdigest()


def py_xiaozhi_ota() -> tuple[dict, dict[str, str]]:
    """py-xiaozhi 2.1.1's OTA check, as it builds it (no Serial-Number, no system details)."""
    body = {"application": {"version": "2.1.1", "elf_sha256": PY_KEY},
            "board": {"type": "bread-compact-wifi", "name": "py-xiaozhi", "ip": "192.168.1.77", "mac": DEVICE_ID}}
    headers = {"Device-Id": DEVICE_ID, "Client-Id": CLIENT_ID, "Content-Type": "application/json",
               "User-Agent": "bread-compact-wifi/py-xiaozhi-2.1.1", "Accept-Language": "zh-CN"}
    return body, headers


async def test_py_xiaozhi_key_is_never_stored_returned_or_logged(make_hub, caplog: pytest.LogCaptureFixture,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    hub: Hub = await make_hub(ota={"activation": True})
    body, headers = py_xiaozhi_ota()
    reply = await hub.ota_json(body=body, headers=headers)
    challenge = reply["activation"]["challenge"]
    poll = {"Payload": {"algorithm": "hmac-sha256", "serial_number": "SN-1A2B3C4D-a1b2c3d4e5f6", "challenge": challenge,
                        "hmac": hmac.new(PY_KEY.encode(), challenge.encode(), hashlib.sha256).hexdigest()}}
    async with hub.session.post(f"{hub.base}/xiaozhi/ota/activate", json=poll, headers=headers) as r:
        assert r.status == 202

    row = await hub.ctx.db.fetchone("SELECT * FROM devices WHERE device_id = ?", (DEVICE_ID,))
    assert row is not None and PY_KEY not in " ".join(str(v) for v in tuple(row))
    status, shown = await hub.api("GET", f"/api/devices/{DEVICE_ID}")
    assert status == 200 and shown["device"]["firmware_version"] == "2.1.1"
    assert shown["device"]["info"].get("board.ip") == "192.168.1.77"          # the harmless fields stay
    assert PY_KEY not in str(shown)
    status, listed = await hub.api("GET", "/api/devices")
    assert status == 200 and PY_KEY not in str(listed)
    capsys.readouterr()
    assert hub.cli("devices", "list", "--json") == 0
    assert hub.cli("devices", "list") == 0
    printed = capsys.readouterr()
    assert DEVICE_ID in printed.out and PY_KEY not in printed.out + printed.err
    assert PY_KEY not in caplog.text and PY_KEY[:16] not in caplog.text


async def test_stock_diagnostics_are_kept(hub: Hub) -> None:
    await hub.ota_json()                                          # the stock system-info body (conftest)
    status, shown = await hub.api("GET", f"/api/devices/{DEVICE_ID}")
    info = shown["device"]["info"]
    assert status == 200
    assert info["chip_model_name"] == "esp32s3" and info["board.rssi"] == -52 and info["board.ssid"] == "home"
    assert info["application.idf_version"] == "v5.4.1" and info["minimum_free_heap_size"] == "7265024"
    assert "application.elf_sha256" not in info                   # may be a key; never kept (docs/ota.md)
