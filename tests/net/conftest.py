"""Fixtures for the OTA / firmware / device / mDNS tests: a real hub HTTP app on 127.0.0.1 with a real
SQLite database in tmp_path, built the way app.py composes components, plus a firmware image maker."""

from __future__ import annotations

import importlib
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from xiaozhi_hub.auth import Authenticator
from xiaozhi_hub.context import HubContext
from xiaozhi_hub.settings import Settings, from_mapping
from xiaozhi_hub.store.db import Database

COMPONENTS = ("xiaozhi_hub.net.devices", "xiaozhi_hub.net.ota", "xiaozhi_hub.net.firmware", "xiaozhi_hub.net.mdns")
WS_PORT = 18000
SECRET = "test-secret-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"
DEVICE_ID = "a1:b2:c3:d4:e5:f6"
CLIENT_ID = "6b0a6c0e-6b0a-4c0e-8b0a-6c0e6b0a6c0e"
BOARD = "bread-compact-wifi"


def make_image(version: str, payload: int = 6000, chip_id: int = 9, seed: int = 1) -> bytes:
    """A minimal ESP-IDF app image: header (magic 0xE9), one segment header, esp_app_desc_t, filler."""
    header = bytearray(24)
    header[0] = 0xE9
    header[1] = 1
    struct.pack_into("<H", header, 12, chip_id)
    segment = bytes(8)
    desc = bytearray(256)
    struct.pack_into("<I", desc, 0, 0xABCD5432)
    desc[16:16 + len(version)] = version.encode()
    desc[48:55] = b"xiaozhi"
    desc[112:118] = b"v5.4.1"
    filler = bytes((i * 31 + seed * 7) % 251 for i in range(payload))
    return bytes(header) + segment + bytes(desc) + filler


def system_info(version: str = "1.7.6", board: str = BOARD, mac: str = DEVICE_ID) -> dict[str, Any]:
    """A body shaped like PROTOCOL.md 5.1 (as a Wi-Fi board sends it)."""
    return {
        "version": 2,
        "language": "en-US",
        "flash_size": 16777216,
        "minimum_free_heap_size": "7265024",
        "mac_address": mac,
        "uuid": CLIENT_ID,
        "chip_model_name": "esp32s3",
        "chip_info": {"model": 9, "cores": 2, "revision": 2, "features": 18},
        "application": {"name": "xiaozhi", "version": version, "compile_time": "Aug  8 2026T10:00:00Z",
                        "idf_version": "v5.4.1", "elf_sha256": "ab" * 32},
        "partition_table": [{"label": "nvs", "type": 1, "subtype": 2, "address": 36864, "size": 16384},
                            {"label": "ota_0", "type": 0, "subtype": 16, "address": 1048576, "size": 6291456}],
        "ota": {"label": "ota_0"},
        "display": {"monochrome": False, "width": 240, "height": 240},
        "board": {"type": board, "name": "bread-compact-wifi", "manufacturer": "xiaozhi", "ssid": "home",
                  "rssi": -52, "channel": 6, "ip": "192.168.1.50", "mac": mac},
    }


def device_headers(mac: str = DEVICE_ID, client: str = CLIENT_ID, version: str = "1.7.6") -> dict[str, str]:
    return {"Activation-Version": "1", "Device-Id": mac, "Client-Id": client,
            "User-Agent": f"bread-compact-wifi/{version}", "Accept-Language": "en-US",
            "Content-Type": "application/json"}


class StubRegistry:
    """The live-session registry, with no sessions."""

    def by_device(self, device_id: str) -> None:
        return None


@dataclass
class Hub:
    ctx: HubContext
    base: str
    session: aiohttp.ClientSession
    data_dir: Path
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    async def ota(self, body: Any = None, headers: dict[str, str] | None = None, **kw: Any) -> aiohttp.ClientResponse:
        body = system_info(**kw) if body is None else body
        async with self.session.post(f"{self.base}/xiaozhi/ota/", json=body,
                                     headers=headers or device_headers(version=kw.get("version", "1.7.6"))) as r:
            await r.read()
            return r

    async def ota_json(self, **kw: Any) -> dict[str, Any]:
        resp = await self.ota(**kw)
        assert resp.status == 200, await resp.text()
        return await resp.json()

    async def api(self, method: str, path: str, body: Any = None, token: str | None = ADMIN_TOKEN
                  ) -> tuple[int, Any]:
        """Call the JSON API as an admin; returns (status, parsed body)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, f"{self.base}{path}", json=body, headers=headers) as r:
            return r.status, await r.json()

    def cli(self, *argv: str) -> int:
        from xiaozhi_hub.__main__ import main
        return main([*argv, "--data-dir", str(self.data_dir)])


def make_settings(data_dir: Path, **sections: dict[str, Any]) -> Settings:
    raw: dict[str, Any] = {
        "data_dir": str(data_dir),
        "server": {"ws_port": WS_PORT},
        "auth": {"enabled": True, "secret": SECRET, "tokens": [ADMIN_TOKEN]},
        "ota": {"timezone_offset_minutes": 480},
        "mdns": {"enabled": False},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return from_mapping(raw)


@pytest.fixture
async def make_hub(tmp_path: Path):
    """Factory: start a hub's HTTP side with the given settings sections; everything is torn down after."""
    hubs: list[tuple[Hub, web.AppRunner, Database]] = []

    async def factory(data_dir: Path | None = None, **sections: dict[str, Any]) -> Hub:
        data_dir = data_dir or tmp_path / f"data{len(hubs)}"
        settings = make_settings(data_dir, **sections)
        db = await Database(data_dir / "hub.db").open()
        ctx = HubContext(settings=settings, db=db, auth=Authenticator(settings.auth, SECRET),
                         compute=None, registry=StubRegistry(), providers=None,  # type: ignore[arg-type]
                         hub_id="0f3c2d1e-hub-test", host_ip="127.0.0.1")
        ctx.ws_port = WS_PORT
        app = web.Application()
        closers = []
        modules = [importlib.import_module(name) for name in COMPONENTS]
        # The composition order of app.py: routes, listeners (bound ports known), then start().
        for module in modules:
            if hasattr(module, "setup_http"):
                module.setup_http(app, ctx)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        ctx.http_port = port
        for module in modules:
            if hasattr(module, "start"):
                closer = await module.start(ctx)
                if closer is not None:
                    closers.append(closer)
        session = aiohttp.ClientSession()
        hub = Hub(ctx=ctx, base=f"http://127.0.0.1:{port}", session=session, data_dir=data_dir, closers=closers)
        hubs.append((hub, runner, db))
        return hub

    yield factory
    for hub, runner, db in hubs:
        await hub.session.close()
        await runner.cleanup()
        for closer in reversed(hub.closers):
            await closer()
        await db.close()


@pytest.fixture
async def hub(make_hub) -> Hub:
    return await make_hub()


@pytest.fixture
def image_file(tmp_path: Path) -> Callable[..., Path]:
    def write(version: str, name: str | None = None, **kw: Any) -> Path:
        path = tmp_path / (name or f"fw-{version}-{os.urandom(3).hex()}.bin")
        path.write_bytes(make_image(version, **kw))
        return path
    return write
