"""Devices and entities against a real hub process and the hub's device simulator: created when a
device first connects, state pushed, unavailable without the hub, removal, unload, diagnostics."""

from __future__ import annotations

import asyncio
import json

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry

from custom_components.xiaozhi.const import DOMAIN
from custom_components.xiaozhi.devices import hub_identifier

from .conftest import hub_info
from .helpers import KEYS, entity_id, state_is, wait_for_entity, wait_state
from .hubproc import HubProcess

PLATFORM_KEYS = [(platform, key) for platform, key in KEYS.items()] + [
    ("sensor", "state"), ("sensor", "last_heard"), ("sensor", "last_reply")]
PUSH_LIMIT = 1.0  # seconds: the acceptance bound for a pushed state change


async def _all_entities(hass: HomeAssistant, device_id: str) -> list[str]:
    return [await wait_for_entity(hass, platform, device_id, key) for platform, key in PLATFORM_KEYS]


async def test_a_new_device_gets_an_ha_device_and_its_entities(hass: HomeAssistant, setup_entry, sims) -> None:
    entry = await setup_entry()
    sim = await sims()
    eids = await _all_entities(hass, sim.device_id)

    dev_reg = dr.async_get(hass)
    hub_device = dev_reg.async_get_device(identifiers={hub_identifier(entry.unique_id)})
    device = dev_reg.async_get_device(identifiers={(DOMAIN, sim.device_id)})
    assert hub_device is not None and device is not None
    assert device.via_device_id == hub_device.id
    assert (dr.CONNECTION_NETWORK_MAC, sim.device_id) in device.connections
    assert entry.entry_id in device.config_entries
    ent_reg = er.async_get(hass)
    for eid in eids:
        reg = ent_reg.async_get(eid)
        assert reg is not None and reg.device_id == device.id and reg.has_entity_name
        assert hass.states.get(eid).state != STATE_UNAVAILABLE, eid
    assert ent_reg.async_get(eids[0]).unique_id == f"{sim.device_id}-satellite"
    # Names come from translations: "<device> Volume", "<device> State"…
    assert hass.states.get(entity_id(hass, "number", sim.device_id)).name.endswith(" Volume")
    assert hass.states.get(entity_id(hass, "sensor", sim.device_id, "state")).state == "idle"
    assert hass.states.get(entity_id(hass, "binary_sensor", sim.device_id)).state == "on"


async def test_connectivity_and_state_are_pushed_within_a_second(hass: HomeAssistant, setup_entry, sims) -> None:
    await setup_entry()
    sim = await sims()
    conn = await wait_for_entity(hass, "binary_sensor", sim.device_id)
    _, seen = await wait_state(hass, conn, state_is("on"))
    assert seen - sim.connected_at < PUSH_LIMIT, f"connected after {seen - sim.connected_at:.3f} s"

    state_eid = entity_id(hass, "sensor", sim.device_id, "state")
    turn = hass.async_create_task(sim.turn())
    _, speaking_seen = await wait_state(hass, state_eid, state_is("speaking"))
    await turn
    tts_start = next(e for e in sim.events if e["event"] == "message"
                     and e["data"].get("type") == "tts" and e["data"].get("state") == "start")
    assert speaking_seen - tts_start["t"] < PUSH_LIMIT, f"speaking after {speaking_seen - tts_start['t']:.3f} s"

    closed_at = await sim.close()
    _, off_seen = await wait_state(hass, conn, state_is("off"))
    assert off_seen - closed_at < PUSH_LIMIT, f"disconnected after {off_seen - closed_at:.3f} s"
    print(f"pushed: connected {1000 * (seen - sim.connected_at):.0f} ms, speaking "
          f"{1000 * (speaking_seen - tts_start['t']):.0f} ms, disconnected {1000 * (off_seen - closed_at):.0f} ms")
    assert hass.states.get(state_eid).state == "offline"


async def test_a_turn_updates_last_heard_last_reply_and_fires_events(hass: HomeAssistant, setup_entry, sims) -> None:
    await setup_entry()
    sim = await sims()
    event_eid = await wait_for_entity(hass, "event", sim.device_id)
    record = await sim.turn()
    assert record["stt"] == "turn on the kitchen light"
    heard = entity_id(hass, "sensor", sim.device_id, "last_heard")
    await wait_state(hass, heard, state_is("turn on the kitchen light"))
    reply_state, _ = await wait_state(hass, entity_id(hass, "sensor", sim.device_id, "last_reply"),
                                      lambda s: s.state not in ("unknown", STATE_UNAVAILABLE))
    assert reply_state.state == " ".join(record["sentences"])
    event, _ = await wait_state(hass, event_eid, lambda s: s.attributes.get("event_type") == "turn_finished")
    assert event.attributes["heard"] == "turn on the kitchen light"
    assert event.attributes["reply"] == reply_state.state
    assert event.attributes["interrupted"] is False


async def test_the_wake_word_fires_a_wake_event(hass: HomeAssistant, setup_entry, sims) -> None:
    await setup_entry()
    sim = await sims()
    event_eid = await wait_for_entity(hass, "event", sim.device_id)
    await sim.send(cmd="detect", text="你好小智")
    event, _ = await wait_state(hass, event_eid, lambda s: s.attributes.get("event_type") == "wake")
    assert event.attributes["text"] == "你好小智"


async def test_entities_are_unavailable_while_the_hub_is_gone(
        hass: HomeAssistant, setup_entry, sims, hub_process: HubProcess) -> None:
    entry = await setup_entry()
    sim = await sims()
    eids = await _all_entities(hass, sim.device_id)
    await sim.close()
    await hass.async_add_executor_job(hub_process.stop)
    for eid in eids:
        await wait_state(hass, eid, state_is(STATE_UNAVAILABLE))
    assert not entry.runtime_data.connected

    await hass.async_add_executor_job(hub_process.start)  # same ports, same data folder
    for eid in eids:
        await wait_state(hass, eid, lambda s: s.state != STATE_UNAVAILABLE, timeout=90)
    assert hass.states.get(entity_id(hass, "binary_sensor", sim.device_id)).state == "off"
    again = await sims(sim.device_id)
    await wait_state(hass, entity_id(hass, "binary_sensor", again.device_id), state_is("on"))


async def test_a_device_can_be_removed_only_when_it_is_not_connected(
        hass: HomeAssistant, hass_ws_client, setup_entry, sims) -> None:
    entry = await setup_entry()
    assert await async_setup_component(hass, "config", {})
    sim = await sims()
    await _all_entities(hass, sim.device_id)
    dev_reg = dr.async_get(hass)
    device = dev_reg.async_get_device(identifiers={(DOMAIN, sim.device_id)})
    hub_device = dev_reg.async_get_device(identifiers={hub_identifier(entry.unique_id)})
    client = await hass_ws_client(hass)

    assert not (await client.remove_device(device.id, entry.entry_id))["success"]
    assert not (await client.remove_device(hub_device.id, entry.entry_id))["success"]
    await sim.close()
    await wait_state(hass, entity_id(hass, "binary_sensor", sim.device_id), state_is("off"))
    assert (await client.remove_device(device.id, entry.entry_id))["success"]
    await hass.async_block_till_done()
    assert dev_reg.async_get_device(identifiers={(DOMAIN, sim.device_id)}) is None
    assert entity_id(hass, "sensor", sim.device_id, "state") is None
    # The hub forgot it too, so the next snapshot does not bring it back.
    assert sim.device_id not in [d.device_id for d in await entry.runtime_data.api.get_devices()]

    # It connects again: it is a new device for Home Assistant, with new entities.
    back = await sims(sim.device_id)
    await _all_entities(hass, back.device_id)
    assert dev_reg.async_get_device(identifiers={(DOMAIN, sim.device_id)}) is not None


async def test_unload_is_clean_and_setup_works_again(hass: HomeAssistant, setup_entry, sims) -> None:
    entry = await setup_entry()
    sim = await sims()
    eids = await _all_entities(hass, sim.device_id)
    hub = entry.runtime_data
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    for eid in eids:
        state = hass.states.get(eid)
        assert state is None or state.state == STATE_UNAVAILABLE, state
    assert hass.services.has_service(DOMAIN, "say")  # registered in async_setup, not per entry
    # Nothing of the entry keeps running (phacc also fails the test on a lingering task or timer).
    assert hub._task is None and hub._ws is None and not hub.connected

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_state(hass, entity_id(hass, "binary_sensor", sim.device_id), state_is("on"))


async def test_diagnostics_redact_the_token(hass: HomeAssistant, hass_client, setup_entry, sims,
                                             hub_process: HubProcess) -> None:
    entry = await setup_entry()
    sim = await sims()
    await sim.turn()
    await wait_state(hass, entity_id(hass, "sensor", sim.device_id, "last_heard"),
                     state_is("turn on the kitchen light"))
    assert await async_setup_component(hass, "diagnostics", {})
    diag = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(diag)
    assert hub_process.token not in text
    assert diag["entry"]["data"]["token"] == "**REDACTED**"
    assert "turn on the kitchen light" not in text   # what people said stays private
    assert diag["connection"]["connected"] is True
    assert [d["device_id"] for d in diag["devices"]] == [sim.device_id]
    assert diag["hub"]["hub_id"] == entry.unique_id


async def test_the_hub_publishes_no_mqtt_discovery_while_the_integration_is_connected(
        hass: HomeAssistant, setup_entry, hub_process: HubProcess) -> None:
    async def hub_says(discovery: bool) -> None:
        # The hub applies the register/close a moment later; its flag is only visible over HTTP.
        async with asyncio.timeout(10):
            while (await hub_info(hass, hub_process)).mqtt_discovery is not discovery:  # noqa: ASYNC110
                await asyncio.sleep(0.1)

    assert (await hub_info(hass, hub_process)).mqtt_discovery is True
    entry = await setup_entry()
    await hub_says(False)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hub_says(True)
