"""Making a device speak: one place for the say call, its errors and the "queued" notice.

The hub decides what happens to a message (docs/api.md): a connected device speaks it and the call
returns once it was spoken; a device that is not connected gets it queued and speaks it when it comes
back (unless it expires). A queued message is not an error: the call returns at once, and the user is
told so in the log and in one persistent notification per device, which is dismissed when the hub
reports the outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from homeassistant.components import persistent_notification
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .api import CannotConnect, HubRequestError, InvalidAuth
from .const import CONF_ANNOUNCEMENTS, DOMAIN

if TYPE_CHECKING:
    from .hub import XiaozhiHub

_LOGGER = logging.getLogger(__name__)

STATUS_SPOKEN = "spoken"
STATUS_QUEUED = "queued"
FINAL_STATUSES = frozenset({"spoken", "expired", "dropped", "failed"})
MAX_TEXT = 1000   # what the hub accepts (docs/api.md, say)
T = TypeVar("T")


def notification_id(device_id: str) -> str:
    return f"{DOMAIN}_queued_{device_id.replace(':', '')}"


async def async_say(hub: XiaozhiHub, device_id: str, text: str, *, priority: str | None = None,
                    ttl: int | None = None) -> dict[str, Any]:
    """Say ``text`` on a device; returns the hub's answer (``status`` spoken or queued)."""
    if not hub.option(CONF_ANNOUNCEMENTS):
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="announcements_off")
    text = text.strip()
    if not text:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="empty_message")
    if len(text) > MAX_TEXT:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="message_too_long",
                                     translation_placeholders={"max": str(MAX_TEXT)})
    result = await async_hub_call(hub.api.say(device_id, text, priority=priority, ttl=ttl), device_id,
                                  device_call=False)
    status = str(result.get("status") or "")
    name = hub.devices[device_id].display_name if device_id in hub.devices else device_id
    if status == STATUS_QUEUED:
        _LOGGER.info("%s is not connected: the message was queued and is spoken when it reconnects", name)
        persistent_notification.async_create(
            hub.hass,
            f"{name} is not connected. The message “{text[:200]}” was queued on the hub and will be "
            "spoken when the device reconnects (unless it expires first).",
            title="Xiaozhi: message queued", notification_id=notification_id(device_id))
    elif status != STATUS_SPOKEN:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="say_failed",
                                 translation_placeholders={"device": name, "status": status or "unknown"})
    return result


def async_outcome(hass: HomeAssistant, device_id: str, status: Any) -> None:
    """The hub reported what became of a message: the "queued" notice has done its job."""
    if status in FINAL_STATUSES:
        persistent_notification.async_dismiss(hass, notification_id(device_id))


def _request_error(err: HubRequestError, device_id: str) -> HomeAssistantError:
    if err.status == 404:
        return ServiceValidationError(translation_domain=DOMAIN, translation_key="unknown_device",
                                      translation_placeholders={"device": device_id})
    if err.status == 400:
        return ServiceValidationError(translation_domain=DOMAIN, translation_key="bad_request",
                                      translation_placeholders={"reason": err.reason})
    return HomeAssistantError(translation_domain=DOMAIN, translation_key="hub_error",
                              translation_placeholders={"status": str(err.status), "reason": err.reason})


async def async_hub_call(call: Awaitable[T], device_id: str, *, device_call: bool = True) -> T:
    """Await one hub API call; its failures become the errors Home Assistant shows the user.
    ``device_call`` (volume, stop): a 409 means the device is not connected or cannot do it."""
    try:
        return await call
    except CannotConnect as err:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="hub_unreachable") from err
    except InvalidAuth as err:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="invalid_auth") from err
    except HubRequestError as err:
        raise (request_error(err, device_id) if device_call else _request_error(err, device_id)) from err


def request_error(err: HubRequestError, device_id: str) -> HomeAssistantError:
    """The mapping for volume/stop calls (409: the device is not connected or cannot do it)."""
    if err.status == 409:
        return HomeAssistantError(translation_domain=DOMAIN, translation_key="device_not_ready",
                                  translation_placeholders={"reason": err.reason})
    return _request_error(err, device_id)
