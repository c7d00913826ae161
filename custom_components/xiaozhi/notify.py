"""Notify entity: ``notify.send_message`` makes the device say the message."""

from __future__ import annotations

from homeassistant.components.notify import NotifyEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .announce import async_say
from .api import HubDevice
from .entity import XiaozhiEntity, async_setup_device_entities
from .hub import XiaozhiConfigEntry, XiaozhiHub

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: XiaozhiConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_setup_device_entities(entry, async_add_entities, lambda h, d: [Speak(h, d)])


class Speak(XiaozhiEntity, NotifyEntity):
    _attr_translation_key = "speak"

    def __init__(self, hub: XiaozhiHub, device: HubDevice) -> None:
        super().__init__(hub, device, "speak")

    async def async_send_message(self, message: str, title: str | None = None) -> None:
        text = f"{title}. {message}" if title else message
        await async_say(self.hub, self.device_id, text)
