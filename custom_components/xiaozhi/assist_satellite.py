"""Assist satellite entity with the ANNOUNCE feature.

``assist_satellite.announce`` with a message makes the device say it with the hub's own voice (the
hub synthesizes speech itself), so no text-to-speech engine is needed in Home Assistant. Xiaozhi
devices cannot play arbitrary media, so an announcement of only a ``media_id`` is refused. The
satellite's state mirrors the device's (listening, processing while the hub thinks, responding
while it speaks). Voice pipelines stay on the hub; this entity does not run Home Assistant's.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.assist_pipeline import PipelineEvent
from homeassistant.components.assist_satellite import (
    AssistSatelliteAnnouncement,
    AssistSatelliteConfiguration,
    AssistSatelliteEntity,
    AssistSatelliteEntityFeature,
)
from homeassistant.components.assist_satellite.entity import AssistSatelliteState
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .announce import async_say
from .api import HubDevice
from .const import DOMAIN
from .entity import XiaozhiEntity, async_setup_device_entities
from .hub import XiaozhiConfigEntry, XiaozhiHub

PARALLEL_UPDATES = 0

_STATE_MAP = {
    "idle": AssistSatelliteState.IDLE,
    "offline": AssistSatelliteState.IDLE,
    "listening": AssistSatelliteState.LISTENING,
    "thinking": AssistSatelliteState.PROCESSING,
    "speaking": AssistSatelliteState.RESPONDING,
}


async def async_setup_entry(
    hass: HomeAssistant, entry: XiaozhiConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    async_setup_device_entities(entry, async_add_entities, lambda h, d: [XiaozhiSatellite(h, d)])


class XiaozhiSatellite(XiaozhiEntity, AssistSatelliteEntity):
    """The device as an Assist satellite (the device's main entity, named after it)."""

    _attr_name = None
    _attr_supported_features = AssistSatelliteEntityFeature.ANNOUNCE

    def __init__(self, hub: XiaozhiHub, device: HubDevice) -> None:
        super().__init__(hub, device, "satellite")

    @callback
    def _handle_hub_update(self) -> None:
        device = self.device
        state = _STATE_MAP.get(device.state, AssistSatelliteState.IDLE) if device else AssistSatelliteState.IDLE
        if state != self.state:
            self._set_state(state)  # also writes the state
        else:
            self.async_write_ha_state()

    async def async_internal_announce(self, message: str | None = None, media_id: str | None = None,
                                      *args: Any, **kwargs: Any) -> None:
        """Speak ``message`` on the hub; only a media-only announcement goes through the base class
        (which needs a TTS engine in Home Assistant, and is then refused in async_announce)."""
        if media_id or not message:
            await super().async_internal_announce(message, media_id, *args, **kwargs)
            return
        announcement = AssistSatelliteAnnouncement(
            message=message, media_id="", original_media_id="", tts_token=None, media_id_source="tts")
        await self.async_announce(announcement)

    async def async_announce(self, announcement: AssistSatelliteAnnouncement) -> None:
        """Returns once the device has said it, or at once when it was queued for a device that is
        not connected (the log and a notification say so)."""
        if not announcement.message:
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="media_not_supported")
        await async_say(self.hub, self.device_id, announcement.message)

    @callback
    def async_get_configuration(self) -> AssistSatelliteConfiguration:
        # Wake words are set on the device (ESP-SR models in its firmware); the hub cannot change them.
        return AssistSatelliteConfiguration(available_wake_words=[], active_wake_words=[], max_active_wake_words=0)

    async def async_set_configuration(self, config: AssistSatelliteConfiguration) -> None:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="wake_words_on_device")

    def on_pipeline_event(self, event: PipelineEvent) -> None:
        """No Home Assistant pipeline runs on this satellite (the hub runs the voice pipeline)."""
