"""mDNS: a real zeroconf browser on the loopback interface resolves the hub's services and TXT records."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from zeroconf import ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from xiaozhi_hub import __version__
from xiaozhi_hub.net import mdns
from xiaozhi_hub.net.mdns import HTTP_TYPE, XIAOZHI_TYPE, HubAdvertiser

from .conftest import WS_PORT, Hub

LOOPBACK = ["127.0.0.1"]


class Browser:
    """A zeroconf client, as Home Assistant or a setup tool would run it, limited to loopback."""

    def __init__(self) -> None:
        self.zc = AsyncZeroconf(interfaces=LOOPBACK)
        self.names: dict[str, asyncio.Queue[str]] = {}
        self._browsers: list[AsyncServiceBrowser] = []

    def browse(self, service_type: str) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()

        def on_change(zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange) -> None:
            if state_change is not ServiceStateChange.Removed:
                queue.put_nowait(name)
        self._browsers.append(AsyncServiceBrowser(self.zc.zeroconf, [service_type], handlers=[on_change]))
        return queue

    async def find(self, queue: asyncio.Queue[str], instance: str, timeout: float = 10.0) -> str:
        async def wait() -> str:
            while True:
                name = await queue.get()
                if name.startswith(instance + "."):
                    return name
        return await asyncio.wait_for(wait(), timeout)

    async def resolve(self, service_type: str, name: str) -> AsyncServiceInfo:
        info = AsyncServiceInfo(service_type, name)
        assert await info.async_request(self.zc.zeroconf, 3000), f"could not resolve {name}"
        return info

    async def close(self) -> None:
        for b in self._browsers:
            await b.async_cancel()
        await self.zc.async_close()


@pytest.fixture
async def browser():
    b = Browser()
    yield b
    await b.close()


def _txt(info: AsyncServiceInfo) -> dict[str, str]:
    return {k.decode(): (v or b"").decode() for k, v in info.properties.items()}


async def test_browser_resolves_the_hub_with_its_txt_records(make_hub, browser: Browser) -> None:
    instance = f"hub-test-{uuid.uuid4().hex[:8]}"
    hub: Hub = await make_hub(mdns={"enabled": True, "name": instance, "interfaces": LOOPBACK})
    assert isinstance(hub.ctx.mdns, HubAdvertiser)             # started by app.serve_http
    xiaozhi = browser.browse(XIAOZHI_TYPE)
    http = browser.browse(HTTP_TYPE)

    name = await browser.find(xiaozhi, instance)
    info = await browser.resolve(XIAOZHI_TYPE, name)
    assert info.port == WS_PORT
    assert "127.0.0.1" in info.parsed_addresses()
    assert _txt(info) == {
        "ws_path": "/xiaozhi/v1/",
        "ota_url": f"http://127.0.0.1:{hub.ctx.http_port}/xiaozhi/ota/",
        "hub_id": hub.ctx.hub_id,
        "version": __version__,
    }

    name = await browser.find(http, instance)
    info = await browser.resolve(HTTP_TYPE, name)
    assert info.port == hub.ctx.http_port
    assert _txt(info)["hub_id"] == hub.ctx.hub_id and _txt(info)["path"] == "/"

    async with hub.session.get(_txt(await browser.resolve(XIAOZHI_TYPE, f"{instance}.{XIAOZHI_TYPE}"))["ota_url"]) as r:
        assert r.status == 200                                             # the advertised OTA URL works


async def test_address_and_port_changes_are_re_announced(make_hub, browser: Browser) -> None:
    instance = f"hub-move-{uuid.uuid4().hex[:8]}"
    hub: Hub = await make_hub()                                           # mDNS off; we drive an advertiser
    addresses = ["127.0.0.1"]
    advertiser = HubAdvertiser(hub.ctx, interfaces=LOOPBACK, address_source=lambda: list(addresses),
                               poll_interval=0.1)
    advertiser.name = instance
    await advertiser.start()
    try:
        queue = browser.browse(XIAOZHI_TYPE)
        name = await browser.find(queue, instance)
        assert (await browser.resolve(XIAOZHI_TYPE, name)).parsed_addresses() == ["127.0.0.1"]

        addresses[:] = ["127.0.0.2"]                                      # the LAN address moved
        hub.ctx.ws_port = WS_PORT + 1                                     # and the bound port is now known
        async def moved() -> AsyncServiceInfo:
            while True:
                info = await browser.resolve(XIAOZHI_TYPE, name)
                if info.parsed_addresses() == ["127.0.0.2"] and info.port == WS_PORT + 1:   # old one withdrawn
                    return info
                await asyncio.sleep(0.1)
        info = await asyncio.wait_for(moved(), 10)
        assert _txt(info)["ota_url"] == f"http://127.0.0.2:{hub.ctx.http_port}/xiaozhi/ota/"
        assert not await advertiser.refresh()                             # nothing changed since
    finally:
        await advertiser.close()


async def test_disabled_means_nothing_is_started(hub: Hub) -> None:
    assert not hub.settings.mdns.enabled                      # as make_settings has it
    assert hub.ctx.mdns is None
    assert hub.closers == [hub.ctx.devices.close, hub.ctx.announcements.close]   # serve_http added no advertiser


def test_instance_names_are_valid_labels() -> None:
    assert mdns.instance_name(None, "kitchen-pi.lan") == "xiaozhi-hub-kitchen-pi"
    assert mdns.instance_name("My.Hub") == "My-Hub"
    assert len(mdns.instance_name("x" * 100).encode()) == 63
    assert mdns.server_name("0F3C2D1E-hub test") == "xiaozhi-hub-0f3c2d1e-hub.local."
