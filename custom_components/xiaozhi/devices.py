"""Home Assistant devices of a hub: the hub itself, and one device per ESP32 linked to it.

The link is set by registry id (``via_device_id``), which every Home Assistant version since 2025.4
supports; ``DeviceInfo["via_device"]`` is deprecated in newer ones. Entities only carry the device's
identifier, so the registry entry written here is the one they attach to.
"""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from .api import HubDevice, HubInfo
from .const import DOMAIN, MANUFACTURER

HUB_PREFIX = "hub_"


def hub_identifier(hub_id: str) -> tuple[str, str]:
    return (DOMAIN, f"{HUB_PREFIX}{hub_id}")


def register_hub_device(hass: HomeAssistant, entry: ConfigEntry, info: HubInfo, url: str) -> str:
    """Create or update the hub's device; returns its registry id."""
    hub_device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={hub_identifier(info.hub_id)}, manufacturer=MANUFACTURER,
        model="xiaozhi-hub", name=info.name, sw_version=info.version or None, configuration_url=f"{url}/")
    return hub_device.id


def ensure_device(hass: HomeAssistant, entry: ConfigEntry, device: HubDevice, hub_device_id: str | None) -> None:
    """Create or update an ESP32's device (name, board, firmware) and link it to the hub."""
    registry = dr.async_get(hass)
    connections = {(dr.CONNECTION_NETWORK_MAC, device.device_id)} if _is_mac(device.device_id) else set()
    ha_device = registry.async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, device.device_id)}, connections=connections,
        manufacturer=MANUFACTURER, model=device.board or None, name=device.display_name,
        sw_version=device.firmware_version or None)
    if hub_device_id is not None and ha_device.via_device_id != hub_device_id:
        registry.async_update_device(ha_device.id, via_device_id=hub_device_id)


def remove_device(hass: HomeAssistant, entry: ConfigEntry, device_id: str) -> None:
    """The hub forgot this ESP32: its device (and so its entities) leave this entry."""
    registry = dr.async_get(hass)
    if (ha_device := registry.async_get_device(identifiers={(DOMAIN, device_id)})) is not None:
        registry.async_update_device(ha_device.id, remove_config_entry_id=entry.entry_id)


def remove_stale_devices(hass: HomeAssistant, entry: ConfigEntry, hub_id: str, keep: set[str]) -> None:
    """Remove every ESP32 device of the entry that the hub no longer lists."""
    registry = dr.async_get(hass)
    for ha_device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        if hub_identifier(hub_id) in ha_device.identifiers:
            continue
        device_id = hub_device_of(ha_device)
        if device_id is not None and device_id not in keep:
            registry.async_update_device(ha_device.id, remove_config_entry_id=entry.entry_id)


def hub_device_of(ha_device: dr.DeviceEntry) -> str | None:
    """The hub's device id behind a Home Assistant device (None for the hub itself or a foreign one)."""
    for domain, ident in ha_device.identifiers:
        if domain == DOMAIN and not ident.startswith(HUB_PREFIX):
            return ident
    return None


def ha_device_id(hass: HomeAssistant, device_id: str) -> str | None:
    ha_device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, device_id)})
    return ha_device.id if ha_device else None


def _is_mac(device_id: str) -> bool:
    return len(device_id) == 17 and device_id.count(":") == 5
