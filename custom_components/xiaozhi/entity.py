"""Base class of every xiaozhi entity: one ESP32, pushed updates, unavailable without the hub."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import HubDevice
from .const import DOMAIN
from .hub import XiaozhiConfigEntry, XiaozhiHub


def async_setup_device_entities(
    entry: XiaozhiConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback,
    make: Callable[[XiaozhiHub, HubDevice], Iterable[Entity]],
) -> None:
    """A platform's setup: ``make`` the entities of each device the hub knows now and of each new one."""
    hub = entry.runtime_data

    @callback
    def add(device: HubDevice) -> None:
        async_add_entities(list(make(hub, device)))

    entry.async_on_unload(hub.async_add_platform(add))


class XiaozhiEntity(Entity):
    """An entity of one device of one hub."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, hub: XiaozhiHub, device: HubDevice, key: str) -> None:
        self.hub = hub
        self.device_id = device.device_id
        self._attr_unique_id = f"{device.device_id}-{key}"
        # The device itself (name, model, link to the hub) is kept in the registry by the hub runtime.
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, device.device_id)})

    @property
    def device(self) -> HubDevice | None:
        return self.hub.devices.get(self.device_id)

    @property
    def available(self) -> bool:
        return self.hub.connected and self.device_id in self.hub.devices

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self.hub.async_add_device_listener(self.device_id, self._handle_hub_update))

    @callback
    def _handle_hub_update(self) -> None:
        self.async_write_ha_state()
