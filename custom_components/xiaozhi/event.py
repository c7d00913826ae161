"""Voice events of a device: the wake word was heard, a turn (question and answer) finished."""

from __future__ import annotations

from typing import Any

from homeassistant.components.event import EventEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import HubDevice
from .const import EVENT_TURN_FINISHED, EVENT_WAKE
from .entity import XiaozhiEntity, async_setup_device_entities
from .hub import XiaozhiConfigEntry, XiaozhiHub

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: XiaozhiConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_setup_device_entities(entry, async_add_entities, lambda h, d: [VoiceEvent(h, d)])


class VoiceEvent(XiaozhiEntity, EventEntity):
    _attr_translation_key = "voice"

    def __init__(self, hub: XiaozhiHub, device: HubDevice) -> None:
        super().__init__(hub, device, "voice")
        self._attr_event_types = [EVENT_WAKE, EVENT_TURN_FINISHED]

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self.hub.async_add_event_listener(self.device_id, self._handle_event))

    @callback
    def _handle_event(self, event_type: str, data: dict[str, Any]) -> None:
        if event_type not in self._attr_event_types:
            return
        self._trigger_event(event_type, data)
        self.async_write_ha_state()
