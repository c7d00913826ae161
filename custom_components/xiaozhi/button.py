"""Stop button: the device stops what it is saying."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity
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
    async_setup_device_entities(entry, async_add_entities, lambda h, d: [Stop(h, d)])


class Stop(XiaozhiEntity, ButtonEntity):
    _attr_translation_key = "stop"

    def __init__(self, hub: XiaozhiHub, device: HubDevice) -> None:
        super().__init__(hub, device, "stop")

    async def async_press(self) -> None:
        await async_hub_call(self.hub.api.stop(self.device_id), self.device_id)
