"""The Wyoming service on mDNS: a zeroconf browser (as Home Assistant's zeroconf discovery runs it,
limited to loopback) finds ``_wyoming._tcp`` on the Wyoming port next to the hub's own services."""

from __future__ import annotations

import uuid

from xiaozhi_hub import __version__
from xiaozhi_hub.net.mdns import HTTP_TYPE, WYOMING_TYPE, XIAOZHI_TYPE, HubAdvertiser

from ..net.test_mdns import LOOPBACK, Browser, _txt
from .conftest import WyomingClient, wyoming_port


async def test_wyoming_is_advertised_on_its_port(wyoming_hub):
    instance = f"hub-wyoming-{uuid.uuid4().hex[:8]}"
    hub = await wyoming_hub(mdns={"enabled": True, "name": instance, "interfaces": LOOPBACK})
    browser = Browser()
    try:
        name = await browser.find(browser.browse(WYOMING_TYPE), instance)
        info = await browser.resolve(WYOMING_TYPE, name)
    finally:
        await browser.close()
    assert info.port == wyoming_port(hub) and "127.0.0.1" in info.parsed_addresses()
    assert _txt(info) == {"hub_id": hub.ctx.hub_id, "version": __version__}
    async with WyomingClient(info.port, host=info.parsed_addresses()[0]) as c:
        assert (await c.describe())[0].asr                        # what was advertised answers


async def test_no_wyoming_record_when_it_is_off(start_hub):
    hub = await start_hub(wyoming={"enabled": False})
    assert hub.ctx.wyoming is None
    advertiser = HubAdvertiser(hub.ctx, interfaces=LOOPBACK)      # built, not started: only its records
    types = [info.type for info in advertiser.build_infos(advertiser._current())]
    assert types == [XIAOZHI_TYPE, HTTP_TYPE]
