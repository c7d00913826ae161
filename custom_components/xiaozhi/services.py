"""The ``xiaozhi.say`` action: make one or more devices say a message.

Targets are Home Assistant devices of this integration (or their entities, or an area). The action
answers (optionally) with each device's outcome: ``spoken``, or ``queued`` for a device that is not
connected (it speaks the message when it comes back).
"""

from __future__ import annotations

import voluptuous as vol

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr, entity_registry as er
from homeassistant.helpers.service import async_extract_referenced_entity_ids
from homeassistant.util.json import JsonValueType

from .announce import async_say
from .const import ATTR_MESSAGE, ATTR_PRIORITY, ATTR_TTL, DOMAIN, SERVICE_SAY
from .hub import XiaozhiHub

SAY_SCHEMA = cv.make_entity_service_schema({
    vol.Required(ATTR_MESSAGE): vol.All(cv.string, vol.Length(min=1, max=2000)),
    vol.Optional(ATTR_PRIORITY): vol.In(["normal", "now"]),
    vol.Optional(ATTR_TTL): vol.All(vol.Coerce(int), vol.Range(min=1, max=7 * 24 * 3600)),
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


def _targets(hass: HomeAssistant, call: ServiceCall) -> list[tuple[XiaozhiHub, str, str]]:
    """(hub, hub device id, HA device id) for every xiaozhi device the call targets."""
    selected = async_extract_referenced_entity_ids(hass, call, expand_group=False)
    ha_devices = set(selected.referenced_devices)
    ent_reg = er.async_get(hass)
    for entity_id in selected.referenced | selected.indirectly_referenced:
        entry = ent_reg.async_get(entity_id)
        if entry is not None and entry.platform == DOMAIN and entry.device_id:
            ha_devices.add(entry.device_id)
    dev_reg = dr.async_get(hass)
    targets: list[tuple[XiaozhiHub, str, str]] = []
    for ha_device_id in sorted(ha_devices):
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
