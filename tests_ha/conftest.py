"""Fixtures: Home Assistant (phacc), a real hub process on 127.0.0.1, simulated devices."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import custom_components.xiaozhi  # noqa: F401 - imported early, or HA reports "Integration not found"
from custom_components.xiaozhi.api import HubInfo, XiaozhiApi
from custom_components.xiaozhi.const import CONF_HUB_ID, DEFAULT_OPTIONS, DOMAIN
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .hubproc import HubProcess, Sim


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Every test may load custom_components/xiaozhi."""


@pytest.fixture
def hub_process(tmp_path: Path, socket_enabled: None) -> Iterator[HubProcess]:
    """A running hub with fake providers (ASR hears "turn on the kitchen light")."""
    hub = HubProcess(tmp_path)
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
async def sims(hub_process: HubProcess) -> AsyncIterator[Callable[..., Any]]:
    """``sim = await sims()`` connects a simulated device; all are closed after the test."""
    started: list[Sim] = []

    async def connect(device_id: str | None = None) -> Sim:
        sim = await Sim.connect(hub_process.ws_url, device_id)
        started.append(sim)
        return sim

    yield connect
    for sim in started:
        await sim.close()


async def hub_info(hass: HomeAssistant, hub: HubProcess) -> HubInfo:
    """``GET /api/hub`` through the component's own client."""
    return await XiaozhiApi(async_get_clientsession(hass), hub.host, hub.http_port, hub.token).get_hub()


@pytest.fixture
async def setup_entry(hass: HomeAssistant, hub_process: HubProcess) -> AsyncIterator[Callable[..., Any]]:
    """``entry = await setup_entry(options={...})``: a loaded config entry for the test hub."""
    entries: list[MockConfigEntry] = []

    async def setup(options: dict[str, Any] | None = None) -> MockConfigEntry:
        assert await async_setup_component(hass, "homeassistant", {})
        info = await hub_info(hass, hub_process)
        entry = MockConfigEntry(
            domain=DOMAIN, title=info.name, unique_id=info.hub_id,
            data={CONF_HOST: hub_process.host, CONF_PORT: hub_process.http_port,
                  CONF_TOKEN: hub_process.token, CONF_HUB_ID: info.hub_id},
            options={**DEFAULT_OPTIONS, **(options or {})})
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED
        entries.append(entry)
        return entry

    yield setup
    for entry in entries:
        if entry.state is ConfigEntryState.LOADED:
            assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
