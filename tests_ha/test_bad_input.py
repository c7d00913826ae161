"""Bad input from the hub side loses nothing: malformed devices and events are skipped, the stream
stays open, a malformed home_call gets a clear refusal, and a dropped stream is reconnected.

The real hub never sends such messages, so these tests use a scripted hub: a small aiohttp server on
127.0.0.1 that speaks the API's wire format and sends exactly the bad input under test. Everything
the acceptance names (flows, entities, announcements, home control) is tested against the real hub.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSMsgType, web
import pytest

from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.xiaozhi.const import CONF_HUB_ID, DOMAIN

from .helpers import entity_id, state_is, wait_for_entity, wait_state

DEVICE = {"device_id": "aa:bb:cc:dd:ee:01", "name": "Kitchen", "board": "bread-compact-wifi",
          "firmware_version": "2.4.2", "online": True, "state": "idle", "volume": 70,
          "last_heard": None, "last_reply": None, "transport": "websocket"}


class ScriptedHub:
    """Serves /api/hub and /api/events; ``script`` is sent after the hello on each connection."""

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.connections = 0
        self.sockets: list[web.WebSocketResponse] = []
        self.port = 0

    async def hub(self, request: web.Request) -> web.Response:
        return web.json_response({"hub_id": "scripted", "version": "0.1.0", "name": "scripted hub"})

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        self.sockets.append(ws)
        await ws.send_json({"type": "hello", "hub_id": "scripted", "version": "0.1.0",
                            "devices": [DEVICE, {"device_id": 5}, "junk", {"name": "no id"}]})
        for item in self.script:
            await (ws.send_str(item) if isinstance(item, str) else ws.send_json(item))
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await self.received.put(msg.json())
        return ws

    async def next_received(self, type_: str) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                msg = await self.received.get()
                if msg.get("type") == type_:
                    return msg


@pytest.fixture
async def scripted(socket_enabled: None) -> AsyncIterator[ScriptedHub]:
    hub = ScriptedHub()
    app = web.Application()
    app.router.add_get("/api/hub", hub.hub)
    app.router.add_get("/api/events", hub.events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hub.port = runner.addresses[0][1]
    yield hub
    for ws in hub.sockets:
        await ws.close()
    await runner.cleanup()


async def _setup(hass: HomeAssistant, hub: ScriptedHub) -> MockConfigEntry:
    assert await async_setup_component(hass, "homeassistant", {})
    entry = MockConfigEntry(domain=DOMAIN, unique_id="scripted", data={
        CONF_HOST: "127.0.0.1", CONF_PORT: hub.port, CONF_TOKEN: "t", CONF_HUB_ID: "scripted"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_malformed_devices_and_events_are_skipped(hass: HomeAssistant, scripted: ScriptedHub) -> None:
    dev = DEVICE["device_id"]
    scripted.script = [
        "not json", "[1, 2]", {"type": 5}, {"no": "type"},
        {"type": "state", "device_id": 7, "state": "speaking"},
        {"type": "device_added", "device": {"oops": 1}},
        {"type": "volume", "device_id": dev, "volume": "loud"},
        {"type": "state", "device_id": "ff:ff:ff:ff:ff:ff", "state": "speaking"},  # never announced
        {"type": "something_new", "device_id": dev},
        {"type": "stt", "device_id": dev, "text": None},
        {"type": "state", "device_id": dev, "state": "no-such-state"},
        {"type": "state", "device_id": dev, "state": "thinking"},
    ]
    entry = await _setup(hass, scripted)
    state = await wait_for_entity(hass, "sensor", dev, "state")
    await wait_state(hass, state, state_is("thinking"))
    assert set(entry.runtime_data.devices) == {dev}
    volume = hass.states.get(entity_id(hass, "number", dev))
    assert float(volume.state) == 70  # "loud" is not a volume: ignored, the last one kept
    assert entry.runtime_data.connected and scripted.connections == 1
    register = await scripted.next_received("register")
    assert register["mqtt_discovery"] is False
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_malformed_home_call_gets_a_clear_refusal(hass: HomeAssistant, scripted: ScriptedHub) -> None:
    scripted.script = [{"type": "home_call", "call_id": "c1", "action": "turn_on"},
                       {"type": "home_call", "call_id": "c2", "entity_id": 42, "action": "turn_on"},
                       {"type": "conversation", "call_id": "c3", "text": 12}]
    entry = await _setup(hass, scripted)
    first = await scripted.next_received("home_result")
    second = await scripted.next_received("home_result")
    assert {first["call_id"], second["call_id"]} == {"c1", "c2"}
    assert first["ok"] is False and second["ok"] is False and first["speech"]
    conversation = await scripted.next_received("conversation_result")
    assert conversation == {"type": "conversation_result", "call_id": "c3", "handled": False, "speech": ""}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_dropped_stream_is_reconnected(hass: HomeAssistant, scripted: ScriptedHub) -> None:
    entry = await _setup(hass, scripted)
    conn = await wait_for_entity(hass, "binary_sensor", DEVICE["device_id"])
    await scripted.sockets[0].close()
    await wait_state(hass, conn, state_is(STATE_UNAVAILABLE))
    await wait_state(hass, conn, state_is("on"), timeout=30)
    assert scripted.connections == 2
    assert await hass.config_entries.async_unload(entry.entry_id)
