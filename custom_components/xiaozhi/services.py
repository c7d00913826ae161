"""The ``xiaozhi.say`` action: make one or more devices say a message.

Targets are Home Assistant devices of this integration (or their entities, or areas). The action
answers (optionally) with each device's outcome: ``spoken``, or ``queued`` for a device that is not
connected (it speaks the message when it comes back).
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_AREA_ID, ATTR_DEVICE_ID, ATTR_ENTITY_ID, ENTITY_MATCH_NONE
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr, entity_registry as er
from homeassistant.util.json import JsonValueType

from .announce import MAX_TEXT, async_say
from .const import ATTR_MESSAGE, ATTR_PRIORITY, ATTR_TTL, DOMAIN, SERVICE_SAY
from .hub import XiaozhiHub

SAY_SCHEMA = cv.make_entity_service_schema({
    vol.Required(ATTR_MESSAGE): vol.All(cv.string, vol.Length(min=1, max=MAX_TEXT)),
    vol.Optional(ATTR_PRIORITY): vol.In(["normal", "now"]),
    vol.Optional(ATTR_TTL): vol.All(vol.Coerce(int), vol.Range(min=1, max=30 * 24 * 3600)),
})


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions (once, in async_setup)."""

    async def say(call: ServiceCall) -> ServiceResponse:
        targets = _targets(hass, call)
        results: list[JsonValueType] = []
        for hub, device_id, ha_device_id in targets:
            result = await async_say(hub, device_id, call.data[ATTR_MESSAGE],
                                     priority=call.data.get(ATTR_PRIORITY), ttl=call.data.get(ATTR_TTL))
            results.append({"device_id": ha_device_id, "hub_device_id": device_id,
                            "status": result.get("status")})
        return {"results": results} if call.return_response else None

    hass.services.async_register(DOMAIN, SERVICE_SAY, say, schema=SAY_SCHEMA,
                                 supports_response=SupportsResponse.OPTIONAL)


def _ids(value: Any) -> set[str]:
    """A target field (str, list, or "none") as a set of ids."""
    if value is None or value == ENTITY_MATCH_NONE:
        return set()
    return {value} if isinstance(value, str) else {v for v in value if isinstance(v, str)}


def _referenced_devices(hass: HomeAssistant, call: ServiceCall) -> set[str]:
    """Registry ids of the devices a call targets: by device, by entity, or by area.

    Resolved here rather than with Home Assistant's target helpers, whose home and signature changed
    between the releases this integration supports (2025.4 to current).
    """
    dev_reg, ent_reg = dr.async_get(hass), er.async_get(hass)
    devices = _ids(call.data.get(ATTR_DEVICE_ID))
    for entity_id in _ids(call.data.get(ATTR_ENTITY_ID)):
        entry = ent_reg.async_get(entity_id)
        if entry is not None and entry.platform == DOMAIN and entry.device_id:
            devices.add(entry.device_id)
    for area_id in _ids(call.data.get(ATTR_AREA_ID)):
        devices.update(d.id for d in dr.async_entries_for_area(dev_reg, area_id))
        devices.update(e.device_id for e in er.async_entries_for_area(ent_reg, area_id)
                       if e.platform == DOMAIN and e.device_id)
    return devices


def _targets(hass: HomeAssistant, call: ServiceCall) -> list[tuple[XiaozhiHub, str, str]]:
    """(hub, hub device id, HA device id) for every xiaozhi device the call targets."""
    dev_reg = dr.async_get(hass)
    targets: list[tuple[XiaozhiHub, str, str]] = []
    for ha_device_id in sorted(_referenced_devices(hass, call)):
        device = dev_reg.async_get(ha_device_id)
        if device is None:
            continue
        for entry_id in device.config_entries:
            config_entry = hass.config_entries.async_get_entry(entry_id)
            if config_entry is None or config_entry.domain != DOMAIN:
                continue
            if config_entry.state is not ConfigEntryState.LOADED:
                raise ServiceValidationError(translation_domain=DOMAIN, translation_key="not_loaded",
                                             translation_placeholders={"hub": config_entry.title})
            hub: XiaozhiHub = config_entry.runtime_data
            if (device_id := hub.device_for_ha_device(device)) is not None:
                targets.append((hub, device_id, ha_device_id))
    if not targets:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_target")
    return targets
