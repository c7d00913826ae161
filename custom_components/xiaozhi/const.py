"""Constants shared by the xiaozhi integration."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "xiaozhi"
MANUFACTURER: Final = "xiaozhi"

DEFAULT_PORT: Final = 8003  # the hub's HTTP port (API, OTA, status page)
ZEROCONF_TYPE: Final = "_xiaozhi._tcp.local."

CONF_HUB_ID: Final = "hub_id"

# Options (features the user can switch on and off).
CONF_ANNOUNCEMENTS: Final = "announcements"
CONF_HOME_CONTROL: Final = "home_control"
CONF_CONVERSATION_FIRST: Final = "conversation_first"
DEFAULT_OPTIONS: Final = {
    CONF_ANNOUNCEMENTS: True,
    CONF_HOME_CONTROL: True,
    CONF_CONVERSATION_FIRST: False,
}

# What the hub reports as a device's state (docs/api.md).
DEVICE_STATES: Final = ["idle", "listening", "thinking", "speaking", "offline"]
# Types of the per-device event entity.
EVENT_WAKE: Final = "wake"
EVENT_TURN_FINISHED: Final = "turn_finished"

SERVICE_SAY: Final = "say"
ATTR_MESSAGE: Final = "message"
ATTR_PRIORITY: Final = "priority"
ATTR_TTL: Final = "ttl"
