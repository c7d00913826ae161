"""Home Assistant MQTT discovery payloads (docs/mqtt.md, Home Assistant).

One device-based discovery message per xiaozhi device, ``<prefix>/device/xiaozhi_<id>/config``
(retained), with an ``origin`` block and the hub as ``via_device``; and one for the hub itself. Keys
are HA's full option names (no abbreviations); entity ids are suggested with ``default_entity_id``
(``object_id`` is deprecated in HA).

Every entity is available while the hub is (``<base>/hub/availability``), not only while the device
has a channel: a stock device is connected only during a conversation, and "say this" to a device
that is not connected is the common case (it is queued and spoken on its next connection). Whether the
device has a channel now is its own entity, the connectivity binary sensor.
"""

from __future__ import annotations

import re
from typing import Any

from .. import __version__
from ..services.live import ONLINE_STATES, OFFLINE
from ..store.devices import Device
from .topics import ALL, OFFLINE as PAYLOAD_OFF, ONLINE as PAYLOAD_ON, SAY, STOP, VOLUME_SET, Topics

ORIGIN = {"name": "xiaozhi-hub", "sw_version": __version__}
STATES = [*sorted(ONLINE_STATES), OFFLINE]
# The device's events that the HA event entity fires (the event topic carries more types).
HA_EVENT_TYPES = ["wake", "turn_finished", "announcement"]
SENSOR_MAX = 255             # HA refuses a sensor state longer than this
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

_EVENT_TEMPLATE = ("{% if value_json.type in " + repr(HA_EVENT_TYPES) + " %}"
                   "{{ {'event_type': value_json.type, 'text': value_json.text | default(''),"
                   " 'status': value_json.status | default(''), 'id': value_json.id | default('')} | to_json }}"
                   "{% endif %}")


def device_object_id(tid: str) -> str:
    return f"xiaozhi_{tid}"


def hub_object_id(hub_id: str) -> str:
    return f"xiaozhi_hub_{hub_id}"


def _entity(platform: str, object_id: str, key: str, name: str | None, **options: Any) -> dict[str, Any]:
    # qos per entity: Home Assistant does not pass a device payload's root qos on to its components.
    return {"platform": platform, "unique_id": f"{object_id}_{key}", "default_entity_id": f"{platform}.{object_id}_{key}",
            "name": name, "qos": 1, **options}


def _device_block(device: Device, object_id: str, hub_id: str, configuration_url: str | None) -> dict[str, Any]:
    block: dict[str, Any] = {"identifiers": [object_id], "name": device.name or f"xiaozhi {device.device_id}",
                             "manufacturer": "xiaozhi-esp32", "via_device": hub_object_id(hub_id)}
    if _MAC.match(device.device_id):
        block["connections"] = [["mac", device.device_id]]
    if device.board_name or device.board:
        block["model"] = device.board_name or device.board
    if device.firmware_version:
        block["sw_version"] = device.firmware_version
    if configuration_url:
        block["configuration_url"] = configuration_url
    return block


def _device_components(topics: Topics, tid: str, object_id: str) -> dict[str, dict[str, Any]]:
    t = lambda leaf: topics.device(tid, leaf)    # noqa: E731
    return {
        "say": _entity("notify", object_id, "say", "Say", command_topic=t(SAY), icon="mdi:bullhorn"),
        "volume": _entity("number", object_id, "volume", "Volume", command_topic=t(VOLUME_SET), state_topic=t("volume"),
                          min=0, max=100, step=1, mode="slider", unit_of_measurement="%", icon="mdi:volume-high"),
        "stop": _entity("button", object_id, "stop", "Stop speaking", command_topic=t(STOP), payload_press="stop",
                        icon="mdi:stop"),
        "state": _entity("sensor", object_id, "state", "State", state_topic=t("state"), device_class="enum",
                         options=STATES, icon="mdi:account-voice"),
        "last_heard": _entity("sensor", object_id, "last_heard", "Last heard", state_topic=t("last_heard"),
                              value_template=f"{{{{ value[:{SENSOR_MAX}] }}}}", icon="mdi:microphone-message"),
        "last_reply": _entity("sensor", object_id, "last_reply", "Last reply", state_topic=t("last_reply"),
                              value_template=f"{{{{ value[:{SENSOR_MAX}] }}}}", icon="mdi:message-reply-text"),
        "events": _entity("event", object_id, "events", "Voice event", state_topic=t("event"),
                          event_types=HA_EVENT_TYPES, value_template=_EVENT_TEMPLATE),
        "connectivity": _entity("binary_sensor", object_id, "connectivity", "Connected", state_topic=t("availability"),
                                device_class="connectivity", payload_on=PAYLOAD_ON, payload_off=PAYLOAD_OFF,
                                entity_category="diagnostic"),
    }


def device_config(topics: Topics, device: Device, tid: str, hub_id: str,
                  configuration_url: str | None = None) -> dict[str, Any]:
    """The device-based discovery payload of one xiaozhi device."""
    object_id = device_object_id(tid)
    return {
        "device": _device_block(device, object_id, hub_id, configuration_url),
        "origin": ORIGIN,
        "availability": [{"topic": topics.hub_availability}],
        "qos": 1,
        "components": _device_components(topics, tid, object_id),
    }


def hub_config(topics: Topics, hub_id: str, name: str, configuration_url: str | None = None) -> dict[str, Any]:
    """The hub itself: how many devices are connected, and "say this on every device"."""
    object_id = hub_object_id(hub_id)
    device: dict[str, Any] = {"identifiers": [object_id], "name": name, "manufacturer": "xiaozhi-hub",
                              "model": "xiaozhi-hub", "sw_version": __version__}
    if configuration_url:
        device["configuration_url"] = configuration_url
    return {
        "device": device,
        "origin": ORIGIN,
        "availability": [{"topic": topics.hub_availability}],
        "qos": 1,
        "components": {
            "connected": _entity("sensor", object_id, "connected", "Connected devices", state_topic=topics.hub_connected,
                                 state_class="measurement", icon="mdi:access-point-network"),
            "say_all": _entity("notify", object_id, "say_all", "Say on every device",
                               command_topic=topics.device(ALL, SAY), icon="mdi:bullhorn"),
        },
    }
