"""Update offers in OTA replies, downloads and the firmware index, against a running HTTP app and a
real SQLite DB (the store without HTTP is tested in tests/store/test_firmware.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from .conftest import BOARD, DEVICE_ID, Hub


async def _add(hub: Hub, image_file, version: str, board: str = BOARD, **kw) -> Path:
    path = image_file(version, **kw)
    assert hub.cli("firmware", "add", str(path), "--board", board, "--version", version) == 0
    return path


# ---------------------------------------------------------------------------- offers

async def test_newer_firmware_is_offered_older_or_equal_is_not(hub: Hub, image_file) -> None:
    await _add(hub, image_file, "1.8.0")
    await _add(hub, image_file, "1.7.9")

    reply = await hub.ota_json(version="1.7.6")
    assert reply["firmware"]["version"] == "1.8.0"
    url = reply["firmware"]["url"]
    assert url == f"{hub.base}/xiaozhi/ota/download/{BOARD}_1.8.0.bin"
    assert "force" not in reply["firmware"]
    assert reply["websocket"]["token"]                       # an update offer still carries the transport

    for running in ("1.8.0", "1.8.1", "2.0"):                 # equal or older store image: nothing to do
        reply = await hub.ota_json(version=running)
        assert reply["firmware"] == {"version": running, "url": ""}, running

    reply = await hub.ota_json(version="1.10.0")              # 1.10 > 1.8 numerically
    assert reply["firmware"]["url"] == ""


async def test_offer_is_per_board(hub: Hub, image_file) -> None:
    await _add(hub, image_file, "9.0.0", board="esp-box-3")
    reply = await hub.ota_json(version="1.7.6")              # a bread-compact-wifi device
    assert reply["firmware"] == {"version": "1.7.6", "url": ""}
    reply = await hub.ota_json(version="1.7.6", board="esp-box-3")
    assert reply["firmware"]["version"] == "9.0.0"


async def test_pin_holds_a_device_at_a_version(hub: Hub, image_file) -> None:
    await _add(hub, image_file, "1.8.0")
    await _add(hub, image_file, "1.7.9")
    await hub.ota_json(version="1.7.6")                      # the hub learns the device's board
    assert hub.cli("firmware", "pin", DEVICE_ID, "1.7.9") == 0
    reply = await hub.ota_json(version="1.7.6")
    assert reply["firmware"]["version"] == "1.7.9"
    reply = await hub.ota_json(version="1.7.9")
    assert reply["firmware"] == {"version": "1.7.9", "url": ""}   # held: 1.8.0 is not offered
    assert hub.cli("firmware", "unpin", DEVICE_ID) == 0
    reply = await hub.ota_json(version="1.7.9")
    assert reply["firmware"]["version"] == "1.8.0"


async def test_pin_needs_a_known_device_and_a_stored_version(hub: Hub, image_file, capsys) -> None:
    await _add(hub, image_file, "1.8.0")
    assert hub.cli("firmware", "pin", DEVICE_ID, "1.8.0") == 1          # device never seen
    await hub.ota_json(version="1.7.6")
    assert hub.cli("firmware", "pin", DEVICE_ID, "1.9.0") == 1          # not stored for its board
    assert "add it first" in capsys.readouterr().err
    assert hub.cli("firmware", "pin", DEVICE_ID, "v1.8") == 2           # malformed version
    assert hub.cli("firmware", "unpin", DEVICE_ID) == 1                 # not pinned


async def test_missing_file_is_not_offered(hub: Hub, image_file) -> None:
    await _add(hub, image_file, "1.8.0")
    for f in (hub.data_dir / "firmware").glob("*.bin"):
        f.unlink()
    reply = await hub.ota_json(version="1.7.6")
    assert reply["firmware"]["url"] == ""


# ---------------------------------------------------------------------------- downloads

async def test_download_is_byte_identical_with_length_and_sha256(hub: Hub, image_file) -> None:
    path = await _add(hub, image_file, "1.8.0", payload=300_000)
    data = path.read_bytes()
    url = (await hub.ota_json(version="1.7.6"))["firmware"]["url"]
    async with aiohttp.ClientSession(auto_decompress=False) as plain:   # like the device: a plain GET
        async with plain.get(url, headers={"Accept-Encoding": "identity"}) as r:
            assert r.status == 200
            assert int(r.headers["Content-Length"]) == len(data)
            assert "chunked" not in r.headers.get("Transfer-Encoding", "")
            assert r.headers["X-Firmware-SHA256"] == hashlib.sha256(data).hexdigest()
            assert r.headers["Content-Type"] == "application/octet-stream"
            body = await r.read()
    assert body == data


async def test_download_by_id_and_head(hub: Hub, image_file) -> None:
    path = await _add(hub, image_file, "1.8.0")
    [record] = await hub.ctx.firmware.list()
    async with hub.session.get(f"{hub.base}/xiaozhi/ota/download/{record.id}") as r:
        assert r.status == 200 and await r.read() == path.read_bytes()
    async with hub.session.head(f"{hub.base}/xiaozhi/ota/download/{record.download_name}") as r:
        assert r.status == 200 and int(r.headers["Content-Length"]) == record.size


async def test_range_requests(hub: Hub, image_file) -> None:
    path = await _add(hub, image_file, "1.8.0", payload=50_000)
    data = path.read_bytes()
    url = f"{hub.base}/xiaozhi/ota/download/{BOARD}_1.8.0.bin"
    async with hub.session.get(url, headers={"Range": "bytes=100-199"}) as r:
        assert r.status == 206
        assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
        assert int(r.headers["Content-Length"]) == 100
        assert await r.read() == data[100:200]
    async with hub.session.get(url, headers={"Range": f"bytes={len(data) - 10}-"}) as r:
        assert r.status == 206 and await r.read() == data[-10:]
    async with hub.session.get(url, headers={"Range": f"bytes={len(data) + 10}-{len(data) + 20}"}) as r:
        assert r.status == 416


@pytest.mark.parametrize("raw_path, expected", [
    ("/xiaozhi/ota/download/../../hub.db", 404),                # normalised away before routing
    ("/xiaozhi/ota/download//etc/passwd", 404),
    ("/xiaozhi/ota/download/..%2F..%2Fhub.db", 400),           # these reach the handler decoded...
    ("/xiaozhi/ota/download/%2E%2E%2Fhub.db", 400),
    ("/xiaozhi/ota/download/..", 400),
    ("/xiaozhi/ota/download/%2Fetc%2Fpasswd", 400),
    ("/xiaozhi/ota/download/..%5C..%5Chub.db", 400),
    ("/xiaozhi/ota/download/firmware%2F..%2Fhub.db", 400),
    ("/xiaozhi/ota/download/.upload-x", 400),
    ("/xiaozhi/ota/download/%00hub.db", 400),
])
async def test_path_traversal_is_impossible(hub: Hub, image_file, raw_path: str, expected: int) -> None:
    await _add(hub, image_file, "1.8.0")
    secret_bytes = (hub.data_dir / "hub.db").read_bytes()[:64]
    async with hub.session.get(URL(f"{hub.base}{raw_path}", encoded=True)) as r:
        body = await r.read()
        assert r.status == expected, (raw_path, r.status, body[:80])
        assert secret_bytes not in body and b"root:" not in body


async def test_stored_file_names_are_hub_chosen(hub: Hub, image_file) -> None:
    """Even the real file name on disk is not downloadable: only index entries are."""
    await _add(hub, image_file, "1.8.0")
    [record] = await hub.ctx.firmware.list()
    async with hub.session.get(f"{hub.base}/xiaozhi/ota/download/{record.file_name}") as r:
        assert r.status == 404
    assert record.file_name == f"{record.sha256}.bin"


async def test_unknown_firmware_is_404(hub: Hub) -> None:
    async with hub.session.get(f"{hub.base}/xiaozhi/ota/download/{BOARD}_9.9.9.bin") as r:
        assert r.status == 404
        assert "error" in await r.json()


async def test_firmware_index_api(hub: Hub, image_file) -> None:
    await _add(hub, image_file, "1.8.0")
    status, body = await hub.api("GET", "/api/firmware")
    assert status == 200
    [entry] = body["firmware"]
    assert entry["board"] == BOARD and entry["version"] == "1.8.0" and entry["download"].endswith("_1.8.0.bin")
    status, _ = await hub.api("GET", "/api/firmware", token=None)
    assert status == 401
