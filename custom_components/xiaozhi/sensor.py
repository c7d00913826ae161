"""Sensors: what a device is doing, what it last heard and what it last answered."""

from __future__ import annotations

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import HubDevice
from .const import DEVICE_STATES
from .entity import XiaozhiEntity, async_setup_device_entities
from .hub import XiaozhiConfigEntry, XiaozhiHub

PARALLEL_UPDATES = 0
MAX_STATE_LENGTH = 255  # Home Assistant refuses longer states


async def async_setup_entry(
    hass: HomeAssistant, entry: XiaozhiConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_setup_device_entities(entry, async_add_entities, lambda h, d: [
        StateSensor(h, d), TextSensor(h, d, "last_heard"), TextSensor(h, d, "last_reply")])


class StateSensor(XiaozhiEntity, SensorEntity):
    """idle / listening / thinking / speaking / offline."""

    _attr_device_class = SensorDeviceClass.ENUM
    _attr_options = DEVICE_STATES
    _attr_translation_key = "state"

    def __init__(self, hub: XiaozhiHub, device: HubDevice) -> None:
        super().__init__(hub, device, "state")

    @property
    def native_value(self) -> str | None:
        device = self.device
        if device is None:
            return None
        return device.state if device.state in DEVICE_STATES else None


class TextSensor(XiaozhiEntity, SensorEntity):
    """The last recognised utterance or the last full reply."""

    def __init__(self, hub: XiaozhiHub, device: HubDevice, key: str) -> None:
        super().__init__(hub, device, key)
        self._attr_translation_key = key
        self._key = key

    @property
    def native_value(self) -> str | None:
        device = self.device
        text = getattr(device, self._key, None) if device is not None else None
        if not text:
            return None
        return text if len(text) <= MAX_STATE_LENGTH else text[: MAX_STATE_LENGTH - 1] + "…"
