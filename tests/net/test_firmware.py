"""Firmware store, update offers and downloads, against a running HTTP app and a real SQLite DB."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from xiaozhi_hub.net import firmware as fw
from xiaozhi_hub.net.devices import DeviceReport, record_report
from xiaozhi_hub.store.db import Database

from .conftest import BOARD, DEVICE_ID, Hub, make_image


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


# ---------------------------------------------------------------------------- the store itself

@pytest.fixture
def store(tmp_path: Path):
    db = Database(tmp_path / "hub.db").open_sync()
    yield fw.FirmwareStore(tmp_path / "firmware", db)
    db.conn.close()


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
