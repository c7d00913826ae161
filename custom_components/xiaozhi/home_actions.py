"""What a ``home_call`` means in Home Assistant services, and the sentence the device says back.

A short, curated set (what a small local model can use well): turn on/off, set a value
(brightness, temperature, position, fan speed, volume, number), and state queries.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import voluptuous as vol

from homeassistant.const import ATTR_ENTITY_ID, ATTR_UNIT_OF_MEASUREMENT, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import Context, HomeAssistant, State
from homeassistant.exceptions import HomeAssistantError, ServiceNotFound

_LOGGER = logging.getLogger(__name__)

SERVICE_TIMEOUT = 15.0

# domain -> (service for "on", service for "off"); None: the domain cannot do it.
_ON_OFF: dict[str, tuple[str | None, str | None]] = {
    "cover": ("open_cover", "close_cover"),
    "valve": ("open_valve", "close_valve"),
    "lock": ("lock", "unlock"),
    "scene": ("turn_on", None),
    "script": ("turn_on", "turn_off"),
    "button": ("press", None),
    "input_button": ("press", None),
    "vacuum": ("start", "return_to_base"),
}
# attribute -> (domain, service, data key); the default attribute of each domain follows.
_SETTERS: dict[str, tuple[str, str, str]] = {
    "brightness": ("light", "turn_on", "brightness_pct"),
    "temperature": ("climate", "set_temperature", "temperature"),
    "position": ("cover", "set_cover_position", "position"),
    "percentage": ("fan", "set_percentage", "percentage"),
}
_DEFAULT_ATTRIBUTE = {"light": "brightness", "climate": "temperature", "cover": "position", "fan": "percentage"}
_PERCENT_ATTRIBUTES = frozenset({"brightness", "position", "percentage"})


def entity_name(state: State) -> str:
    """The name people see (and say): the friendly name."""
    return state.name or state.entity_id


async def async_execute(hass: HomeAssistant, state: State, msg: dict[str, Any], context: Context) -> dict[str, Any]:
    """Run the call on an exposed entity; ``{"ok", "speech"}``."""
    action = msg.get("action")
    name = entity_name(state)
    if action == "query":
        return {"ok": True, "speech": describe_state(state)}
    try:
        if action in ("turn_on", "turn_off"):
            domain, service, data = _on_off_call(state, action == "turn_on")
            done = f"Turned {'on' if action == 'turn_on' else 'off'} {name}."
        elif action == "set":
            domain, service, data, done = _set_call(state, msg.get("attribute"), msg.get("value"))
        else:
            return {"ok": False, "speech": f"I can't do “{action}” with {name}."}
    except ValueError as err:
        return {"ok": False, "speech": str(err)}
    if not hass.services.has_service(domain, service):
        return {"ok": False, "speech": f"{name} can't do that."}
    try:
        async with asyncio.timeout(SERVICE_TIMEOUT):
            await hass.services.async_call(domain, service, {ATTR_ENTITY_ID: state.entity_id, **data},
                                           blocking=True, context=context)
    except TimeoutError:
        return {"ok": False, "speech": f"{name} did not answer in time."}
    except (HomeAssistantError, ServiceNotFound, vol.Invalid) as err:
        _LOGGER.info("%s.%s on %s failed: %s", domain, service, state.entity_id, err)
        return {"ok": False, "speech": f"Sorry, that did not work for {name}: {err}"}
    return {"ok": True, "speech": done}


def _on_off_call(state: State, on: bool) -> tuple[str, str, dict[str, Any]]:
    name = entity_name(state)
    services = _ON_OFF.get(state.domain, ("turn_on", "turn_off"))
    service = services[0] if on else services[1]
    if service is None:
        raise ValueError(f"{name} can't be turned {'on' if on else 'off'}.")
    return state.domain, service, {}


def _set_call(state: State, attribute: Any, value: Any) -> tuple[str, str, dict[str, Any], str]:
    name = entity_name(state)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"I need a number to set {name}.")
    if state.domain in ("number", "input_number"):
        return state.domain, "set_value", {"value": value}, f"Set {name} to {value:g}."
    if state.domain == "media_player":
        level = min(max(float(value), 0.0), 100.0) / 100.0
        return "media_player", "volume_set", {"volume_level": level}, f"Set the volume of {name} to {value:g}%."
    attr = attribute if isinstance(attribute, str) else _DEFAULT_ATTRIBUTE.get(state.domain)
    setter = _SETTERS.get(attr or "")
    if setter is None or setter[0] != state.domain:
        raise ValueError(f"I can't set the {attr or 'value'} of {name}.")
    domain, service, key = setter
    if attr in _PERCENT_ATTRIBUTES:
        value = round(min(max(float(value), 0.0), 100.0))
        return domain, service, {key: value}, f"Set {name} to {value}%."
    return domain, service, {key: value}, f"Set {name} to {value:g}."


def describe_state(state: State) -> str:
    """A sentence for a state query: "Kitchen light is on.", "Outside temperature is 21.5 °C."."""
    name = entity_name(state)
    if state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        return f"I don't know the state of {name} right now."
    unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
    value = f"{state.state} {unit}" if unit else state.state
    extra = ""
    if state.domain == "light" and state.state == "on" and isinstance(state.attributes.get("brightness"), int):
        extra = f", at {round(state.attributes['brightness'] * 100 / 255)}% brightness"
    elif state.domain == "climate" and state.attributes.get("current_temperature") is not None:
        extra = f", the temperature is {state.attributes['current_temperature']}"
    return f"{name} is {value}{extra}."
