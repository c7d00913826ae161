"""Stop button: the device stops what it is saying."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .announce import request_error
from .api import CannotConnect, HubDevice, HubRequestError, InvalidAuth
from .const import DOMAIN
from .entity import XiaozhiEntity
from .hub import XiaozhiConfigEntry, XiaozhiHub

PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant, entry: XiaozhiConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    hub = entry.runtime_data

    @callback
    def add(device: HubDevice) -> None:
        async_add_entities([Stop(hub, device)])

    entry.async_on_unload(hub.async_add_platform(add))


class Stop(XiaozhiEntity, ButtonEntity):
    _attr_translation_key = "stop"

    def __init__(self, hub: XiaozhiHub, device: HubDevice) -> None:
        super().__init__(hub, device, "stop")

    async def async_press(self) -> None:
        try:
            await self.hub.api.stop(self.device_id)
        except CannotConnect as err:
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="hub_unreachable") from err
        except InvalidAuth as err:
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="invalid_auth") from err
        except HubRequestError as err:
            raise request_error(err, self.device_id) from err
