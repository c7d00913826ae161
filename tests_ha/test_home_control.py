"""The hub's assistant controls Home Assistant through the component: a spoken (fake-ASR) "turn on the
kitchen light" switches the exposed light and never the unexposed one; names, aliases and exposure
changes reach the hub; conversation-first goes through Home Assistant's own agent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component

from .helpers import state_is, wait_state

KITCHEN = "light.kitchen_light"
GARAGE = "light.garage_light"


def _template_light(name: str, switch: str) -> dict[str, Any]:
    target = {"entity_id": f"input_boolean.{switch}"}
    return {"unique_id": f"{switch}_light", "friendly_name": name,
            "value_template": f"{{{{ is_state('input_boolean.{switch}', 'on') }}}}",
            "turn_on": {"action": "input_boolean.turn_on", "target": target},
            "turn_off": {"action": "input_boolean.turn_off", "target": target}}


async def _home(hass: HomeAssistant) -> None:
    """Two real lights (template lights on input booleans); only the kitchen one is exposed to Assist."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "input_boolean", {"input_boolean": {
        "kitchen": {"name": "Kitchen power"}, "garage": {"name": "Garage power"}}})
    assert await async_setup_component(hass, "input_number", {"input_number": {
        "oven": {"name": "Oven temperature", "min": 0, "max": 250, "step": 1}}})
    assert await async_setup_component(hass, "light", {"light": [{"platform": "template", "lights": {
        "kitchen_light": _template_light("Kitchen light", "kitchen"),
        "garage_light": _template_light("Garage light", "garage")}}]})
    await hass.async_block_till_done()
    for eid, exposed in ((KITCHEN, True), (GARAGE, False), ("input_boolean.kitchen", False),
                         ("input_boolean.garage", False), ("input_number.oven", True)):
        async_expose_entity(hass, "conversation", eid, exposed)
    er.async_get(hass).async_update_entity(KITCHEN, aliases={"cooking light"})
    assert hass.states.get(KITCHEN).state == "off" and hass.states.get(GARAGE).state == "off"


async def _wait_sent(bridge: Any, pred: Callable[[list[str]], bool], timeout: float = 15.0) -> None:
    """Wait until the entity list the hub last received satisfies ``pred``."""
    sent = asyncio.Event()
    original = bridge.async_send_entities

    async def spy() -> None:
        await original()
        sent.set()

    bridge.async_send_entities = spy
    try:
        async with asyncio.timeout(timeout):
            while not pred(bridge.sent):
                sent.clear()
                await sent.wait()
    finally:
        bridge.async_send_entities = original


async def test_spoken_command_switches_the_exposed_light_only(hass: HomeAssistant, setup_entry, sims) -> None:
    await _home(hass)
    entry = await setup_entry()
    bridge = entry.runtime_data.home
    await _wait_sent(bridge, lambda sent: KITCHEN in sent)
    assert GARAGE not in bridge.sent
    sim = await sims()

    turn = await sim.turn()   # the fake ASR hears "turn on the kitchen light"
    assert turn["stt"] == "turn on the kitchen light"
    await wait_state(hass, KITCHEN, state_is("on"), timeout=15)

    turn = await sim.turn(text="turn on the garage light")
    assert turn["sentences"], turn
    await hass.async_block_till_done()
    assert hass.states.get(GARAGE).state == "off"
    assert hass.states.get("input_boolean.garage").state == "off"


async def test_aliases_and_exposure_changes_reach_the_hub(hass: HomeAssistant, setup_entry, sims) -> None:
    await _home(hass)
    entry = await setup_entry()
    bridge = entry.runtime_data.home
    await _wait_sent(bridge, lambda sent: KITCHEN in sent)
    sim = await sims()
    await sim.turn(text="turn on the cooking light")            # an alias of the kitchen light
    await wait_state(hass, KITCHEN, state_is("on"), timeout=15)

    async_expose_entity(hass, "conversation", GARAGE, True)     # exposed now: sent again
    await _wait_sent(bridge, lambda sent: GARAGE in sent)
    await sim.turn(text="turn on the garage light")
    await wait_state(hass, GARAGE, state_is("on"), timeout=15)


async def test_what_the_hub_is_told_about_the_home(hass: HomeAssistant, setup_entry) -> None:
    await _home(hass)
    entry = await setup_entry()
    entities = {e["entity_id"]: e for e in entry.runtime_data.home.exposed_entities()}
    assert KITCHEN in entities and "input_number.oven" in entities
    assert GARAGE not in entities and "input_boolean.garage" not in entities
    assert entities[KITCHEN] == {"entity_id": KITCHEN, "name": "Kitchen light", "aliases": ["cooking light"],
                                 "domain": "light", "state": "off", "area": None}
    # The integration's own entities are not offered to the hub as things to control.
    assert not [eid for eid in entities if "xiaozhi" in eid]


async def test_a_call_for_an_unexposed_entity_is_refused(hass: HomeAssistant, setup_entry) -> None:
    await _home(hass)
    entry = await setup_entry()
    bridge = entry.runtime_data.home
    result = await bridge.async_handle_home_call({"call_id": "1", "entity_id": GARAGE, "action": "turn_on"})
    assert result["ok"] is False and "not exposed" in result["speech"]
    result = await bridge.async_handle_home_call({"call_id": "2", "entity_id": "light.nowhere", "action": "turn_on"})
    assert result["ok"] is False
    await hass.async_block_till_done()
    assert hass.states.get(GARAGE).state == "off"


async def test_home_calls_set_values_and_answer_queries(hass: HomeAssistant, setup_entry) -> None:
    await _home(hass)
    entry = await setup_entry()
    bridge = entry.runtime_data.home
    result = await bridge.async_handle_home_call(
        {"call_id": "1", "entity_id": "input_number.oven", "action": "set", "value": 180})
    assert result == {"ok": True, "speech": "Set Oven temperature to 180."}
    assert float(hass.states.get("input_number.oven").state) == 180
    result = await bridge.async_handle_home_call({"call_id": "2", "entity_id": KITCHEN, "action": "turn_on"})
    assert result == {"ok": True, "speech": "Turned on Kitchen light."}
    await wait_state(hass, KITCHEN, state_is("on"))   # a template light follows its switch a moment later
    result = await bridge.async_handle_home_call({"call_id": "3", "entity_id": KITCHEN, "action": "query"})
    assert result == {"ok": True, "speech": "Kitchen light is on."}
    result = await bridge.async_handle_home_call({"call_id": "4", "entity_id": KITCHEN, "action": "explode"})
    assert result["ok"] is False
    result = await bridge.async_handle_home_call(
        {"call_id": "5", "entity_id": "input_number.oven", "action": "set", "value": "hot"})
    assert result["ok"] is False


async def test_home_control_switched_off(hass: HomeAssistant, setup_entry, sims) -> None:
    await _home(hass)
    entry = await setup_entry(options={"home_control": False})
    bridge = entry.runtime_data.home
    assert bridge.exposed_entities() == []
    result = await bridge.async_handle_home_call({"call_id": "1", "entity_id": KITCHEN, "action": "turn_on"})
    assert result["ok"] is False
    sim = await sims()
    await sim.turn()
    await hass.async_block_till_done()
    assert hass.states.get(KITCHEN).state == "off"


async def test_conversation_first_uses_home_assistants_agent(hass: HomeAssistant, setup_entry, sims) -> None:
    await _home(hass)
    assert await async_setup_component(hass, "conversation", {})
    entry = await setup_entry(options={"conversation_first": True})
    bridge = entry.runtime_data.home

    not_understood = await bridge.async_handle_conversation(
        {"call_id": "1", "text": "what is the meaning of life", "language": "en"})
    assert not_understood["handled"] is False
    understood = await bridge.async_handle_conversation(
        {"call_id": "2", "text": "turn on the kitchen light", "language": "en"})
    assert understood["handled"] is True and understood["speech"]
    await wait_state(hass, KITCHEN, state_is("on"))
    # Home Assistant's agent also refuses an unexposed entity.
    refused = await bridge.async_handle_conversation(
        {"call_id": "3", "text": "turn on the garage light", "language": "en"})
    assert refused["handled"] is False
    assert hass.states.get(GARAGE).state == "off"

    await hass.services.async_call("light", "turn_off", target={"entity_id": KITCHEN}, blocking=True)
    sim = await sims()
    turn = await sim.turn()   # the hub offers the text to Home Assistant first
    await wait_state(hass, KITCHEN, state_is("on"), timeout=15)
    assert " ".join(turn["sentences"]) == understood["speech"]
