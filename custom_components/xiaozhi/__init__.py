"""Xiaozhi Voice Hub: every ESP32 of a local xiaozhi-hub as a Home Assistant device.

The integration talks to the hub over its HTTP API and one WebSocket event stream (the hub's
docs/api.md); it never imports the hub's code. See README.md, section "Home Assistant".
"""

from __future__ import annotations

import logging

from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryError, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr, entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType

from .api import CannotConnect, HubRequestError, InvalidAuth, XiaozhiApi
from .const import CONF_ANNOUNCEMENTS, DOMAIN
from .home import HomeBridge
from .hub import XiaozhiConfigEntry, XiaozhiHub
from .services import async_setup_services

_LOGGER = logging.getLogger(__name__)

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

ANNOUNCE_PLATFORMS = [Platform.ASSIST_SATELLITE, Platform.NOTIFY]
BASE_PLATFORMS = [Platform.BINARY_SENSOR, Platform.BUTTON, Platform.EVENT, Platform.NUMBER, Platform.SENSOR]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    async_setup_services(hass)
    return True


def _platforms(entry: XiaozhiConfigEntry) -> list[Platform]:
    if entry.options.get(CONF_ANNOUNCEMENTS, True):
        return [*ANNOUNCE_PLATFORMS, *BASE_PLATFORMS]
    return list(BASE_PLATFORMS)


async def async_setup_entry(hass: HomeAssistant, entry: XiaozhiConfigEntry) -> bool:
    api = XiaozhiApi(async_get_clientsession(hass), entry.data[CONF_HOST], entry.data[CONF_PORT],
                     entry.data[CONF_TOKEN])
    try:
        info = await api.get_hub()
    except (InvalidAuth, CannotConnect) as err:
        raise _setup_error(err, api) from err
    if entry.unique_id is not None and info.hub_id != entry.unique_id:
        raise ConfigEntryError(translation_domain=DOMAIN, translation_key="wrong_hub",
                               translation_placeholders={"url": api.base_url})
    hub = XiaozhiHub(hass, entry, api, info)
    hub.home = bridge = HomeBridge(hass, hub)
    bridge.async_start()
    try:
        await hub.async_start()
    except (InvalidAuth, CannotConnect) as err:
        bridge.async_stop()
        await hub.async_stop()
        raise _setup_error(err, api) from err
    hub.platforms = _platforms(entry)
    _remove_switched_off_entities(hass, entry, hub.platforms)
    entry.runtime_data = hub
    entry.async_on_unload(bridge.async_stop)
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    await hass.config_entries.async_forward_entry_setups(entry, hub.platforms)
    return True


def _remove_switched_off_entities(hass: HomeAssistant, entry: XiaozhiConfigEntry, platforms: list[Platform]) -> None:
    """Entities of a feature switched off in the options are removed, not left behind unavailable."""
    registry = er.async_get(hass)
    for reg_entry in er.async_entries_for_config_entry(registry, entry.entry_id):
        if reg_entry.domain not in platforms:
            registry.async_remove(reg_entry.entity_id)


def _setup_error(err: Exception, api: XiaozhiApi) -> Exception:
    """Bad token: ask the user again (reauth); hub unreachable: Home Assistant retries later."""
    if isinstance(err, InvalidAuth):
        return ConfigEntryAuthFailed(translation_domain=DOMAIN, translation_key="invalid_auth")
    return ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="cannot_connect",
                               translation_placeholders={"url": api.base_url, "error": str(err)})


async def _async_options_updated(hass: HomeAssistant, entry: XiaozhiConfigEntry) -> None:
    """Features were switched on or off: set the entry up again with them."""
    await hass.config_entries.async_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: XiaozhiConfigEntry) -> bool:
    unloaded = await hass.config_entries.async_unload_platforms(entry, entry.runtime_data.platforms)
    if unloaded:
        await entry.runtime_data.async_stop()
    return unloaded


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: XiaozhiConfigEntry, device_entry: dr.DeviceEntry
) -> bool:
    """A device that is not connected can be removed; the hub forgets it too, so it does not come
    back with the next snapshot (it does come back if it connects to the hub again)."""
    hub = entry.runtime_data
    device_id = hub.device_for_ha_device(device_entry)
    if device_id is None:
        return False  # the hub device goes with the config entry
    device = hub.devices.get(device_id)
    if device is not None and device.online:
        return False
    hub.removing.add(device_id)
    try:
        await hub.api.delete_device(device_id)
    except HubRequestError as err:
        if err.status != 404:      # 404: the hub had already forgotten it
            _LOGGER.warning("The hub did not remove %s: %s", device_id, err)
            return False
    except (CannotConnect, InvalidAuth) as err:
        _LOGGER.warning("Cannot remove %s while the hub is unreachable: %s", device_id, err)
        return False
    finally:
        hub.removing.discard(device_id)
    hub.async_forget(device_id)
    return True
