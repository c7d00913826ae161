"""Speaker volume (0–100), set through the device's own MCP volume tool by the hub."""

from __future__ import annotations

from homeassistant.components.number import NumberEntity, NumberMode
from homeassistant.const import PERCENTAGE
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .announce import async_hub_call
from .api import HubDevice
from .entity import XiaozhiEntity, async_setup_device_entities
from .hub import XiaozhiConfigEntry, XiaozhiHub

PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant, entry: XiaozhiConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_setup_device_entities(entry, async_add_entities, lambda h, d: [Volume(h, d)])


class Volume(XiaozhiEntity, NumberEntity):
    _attr_translation_key = "volume"
    _attr_native_min_value = 0
    _attr_native_max_value = 100
    _attr_native_step = 1
    _attr_native_unit_of_measurement = PERCENTAGE
    _attr_mode = NumberMode.SLIDER

    def __init__(self, hub: XiaozhiHub, device: HubDevice) -> None:
        super().__init__(hub, device, "volume")

    @property
    def native_value(self) -> float | None:
        device = self.device
        return device.volume if device is not None else None

    async def async_set_native_value(self, value: float) -> None:
        volume = round(value)
        result = await async_hub_call(self.hub.api.set_volume(self.device_id, volume), self.device_id)
        if (device := self.device) is not None:
            device.update({"volume": result.get("volume", volume)})
        self.async_write_ha_state()
