"""Fixtures for the OTA / firmware / device / mDNS tests: the hub's HTTP side alone (built by the same
functions app.py uses) on 127.0.0.1 with a real SQLite database in tmp_path, plus a firmware image maker."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from xiaozhi_hub.app import device_authenticator, open_api_services, open_stores, open_vision, serve_http
from xiaozhi_hub.context import HubContext
from xiaozhi_hub.settings import Settings, from_mapping
from xiaozhi_hub.store.db import Database
from xiaozhi_hub.transport.registry import SessionRegistry

from ..store.images import image_writer

WS_PORT = 18000
SECRET = "test-secret-0123456789"
ADMIN_TOKEN = "admin-token-0123456789-abcdefgh"
DEVICE_ID = "a1:b2:c3:d4:e5:f6"
CLIENT_ID = "6b0a6c0e-6b0a-4c0e-8b0a-6c0e6b0a6c0e"
BOARD = "bread-compact-wifi"


def system_info(version: str = "1.7.6", board: str = BOARD, mac: str = DEVICE_ID) -> dict[str, Any]:
    """A body shaped like docs/protocol.md, OTA check (as a Wi-Fi board sends it)."""
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
    """Factory: start a hub's HTTP side with the given settings sections; everything is torn down after.

    No engines (compute pool, providers, phrases, agent) and no WebSocket listener: the device-facing
    WebSocket URL in OTA replies names ``WS_PORT``."""
    hubs: list[tuple[Hub, list[web.AppRunner], Database]] = []

    async def factory(data_dir: Path | None = None, **sections: dict[str, Any]) -> Hub:
        data_dir = data_dir or tmp_path / f"data{len(hubs)}"
        settings = make_settings(data_dir, **sections)
        db = await Database(data_dir / "hub.db").open()
        runners: list[web.AppRunner] = []
        closers: list[Callable[[], Awaitable[None]]] = []
        registry = SessionRegistry()
        stores = await open_stores(settings, db, registry, closers)
        ctx = HubContext(settings=settings, db=db, compute=None, providers=None, phrases=None,  # type: ignore[arg-type]
                         auth=device_authenticator(settings, SECRET, stores.devices),
                         registry=registry, devices=stores.devices, firmware=stores.firmware,
                         hub_id="0f3c2d1e-hub-test", host_ip="127.0.0.1")
        ctx.ws_port = WS_PORT
        ctx.vision = open_vision(settings, closers)
        await open_api_services(ctx, closers)        # admin token, component link, announcements
        ctx.admin.set(ADMIN_TOKEN)

        async def listen(app: web.Application) -> int:
            runner = web.AppRunner(app)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            return int(runner.addresses[0][1])

        await serve_http(ctx, listen, closers)
        session = aiohttp.ClientSession()
        hub = Hub(ctx=ctx, base=f"http://127.0.0.1:{ctx.http_port}", session=session, data_dir=data_dir,
                  closers=closers)
        hubs.append((hub, runners, db))
        return hub

    yield factory
    for hub, runners, db in hubs:
        await hub.session.close()
        for runner in runners:
            await runner.cleanup()
        for closer in reversed(hub.closers):
            await closer()
        await db.close()


@pytest.fixture
async def hub(make_hub) -> Hub:
    return await make_hub()


@pytest.fixture
def image_file(tmp_path: Path) -> Callable[..., Path]:
    return image_writer(tmp_path)
