"""Connectivity: whether the ESP32 is connected to the hub right now."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import HubDevice
from .entity import XiaozhiEntity, async_setup_device_entities
from .hub import XiaozhiConfigEntry, XiaozhiHub

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: XiaozhiConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_setup_device_entities(entry, async_add_entities, lambda h, d: [Connectivity(h, d)])


class Connectivity(XiaozhiEntity, BinarySensorEntity):
    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_translation_key = "connectivity"

    def __init__(self, hub: XiaozhiHub, device: HubDevice) -> None:
        super().__init__(hub, device, "connectivity")

    @property
    def is_on(self) -> bool | None:
        device = self.device
        return device.online if device is not None else None
