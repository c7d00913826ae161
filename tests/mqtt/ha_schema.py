"""Checks of a device-based discovery payload, written from Home Assistant's MQTT documentation
(integrations/mqtt "Device discovery payload", and the pages of the platforms used: notify, number,
button, sensor, binary_sensor, event). HA ignores unknown keys, so a misspelt option would silently do
nothing: every key must be a documented option of its platform. ``object_id`` is deprecated (HA
2025.10 warns, 2026.4 drops it): ``default_entity_id`` (``<platform>.<object>``) instead."""

from __future__ import annotations

import re
from typing import Any

ROOT_KEYS = {"device", "origin", "components", "availability", "availability_mode", "availability_topic", "qos",
             "state_topic", "command_topic", "encoding"}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "model_id", "hw_version", "sw_version",
               "serial_number", "suggested_area", "configuration_url", "via_device"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
ENTITY_KEYS = {"platform", "unique_id", "default_entity_id", "name", "icon", "availability", "availability_mode",
               "availability_topic", "availability_template", "payload_available", "payload_not_available",
               "enabled_by_default", "entity_category", "entity_picture", "json_attributes_topic",
               "json_attributes_template", "qos", "encoding"}
PLATFORM_KEYS = {
    "notify": {"command_topic", "command_template", "retain"},
    "number": {"command_topic", "command_template", "state_topic", "value_template", "min", "max", "step", "mode",
               "unit_of_measurement", "device_class", "optimistic", "retain", "payload_reset"},
    "button": {"command_topic", "command_template", "payload_press", "device_class", "retain"},
    "sensor": {"state_topic", "value_template", "device_class", "options", "state_class", "unit_of_measurement",
               "expire_after", "force_update", "suggested_display_precision", "last_reset_value_template"},
    "binary_sensor": {"state_topic", "value_template", "device_class", "payload_on", "payload_off", "expire_after",
                      "force_update", "off_delay"},
    "event": {"state_topic", "value_template", "event_types", "device_class"},
}
REQUIRED = {"notify": {"command_topic"}, "number": {"command_topic"}, "button": {"command_topic"},
            "sensor": {"state_topic"}, "binary_sensor": {"state_topic"}, "event": {"state_topic", "event_types"}}
BINARY_SENSOR_CLASSES = {"connectivity", "problem", "running", "presence", "occupancy", "motion", "sound", "update"}
SENSOR_STATE_CLASSES = {"measurement", "total", "total_increasing", "measurement_angle"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
OBJECT = re.compile(r"^[a-z0-9_]+$")
TOPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


class Invalid(AssertionError):
    pass


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise Invalid(what)


def _topic(value: Any, what: str) -> None:
    _check(isinstance(value, str) and value and "+" not in value and "#" not in value, f"{what}: not a topic: {value!r}")


def _strings(value: Any, what: str, nonempty: bool = True) -> None:
    _check(isinstance(value, list) and (value or not nonempty) and all(isinstance(v, str) and v for v in value),
           f"{what}: must be a list of strings: {value!r}")


def _availability(value: Any, what: str) -> None:
    _check(isinstance(value, list) and value, f"{what}.availability must be a non-empty list")
    for item in value:
        _check(isinstance(item, dict) and set(item) <= {"topic", "payload_available", "payload_not_available",
                                                         "value_template"}, f"{what}.availability: bad item {item!r}")
        _topic(item.get("topic"), f"{what}.availability.topic")


def _no_object_id(node: Any, path: str = "") -> None:
    if isinstance(node, dict):
        _check("object_id" not in node and "obj_id" not in node, f"{path or 'payload'} uses object_id")
        for k, v in node.items():
            _no_object_id(v, f"{path}.{k}")
    elif isinstance(node, list):
        for v in node:
            _no_object_id(v, path)


def _platform_rules(name: str, platform: str, c: dict[str, Any]) -> None:
    if platform == "number":
        for k in ("min", "max", "step"):
            _check(isinstance(c.get(k, 1), (int, float)) and not isinstance(c.get(k), bool), f"{name}.{k} must be a number")
        _check(c.get("min", 1) < c.get("max", 100), f"{name}: min must be below max")
        _check(c.get("mode", "auto") in ("auto", "box", "slider"), f"{name}.mode")
    if platform == "sensor" and c.get("device_class") == "enum":
        _strings(c.get("options"), f"{name}.options")
        _check("unit_of_measurement" not in c and "state_class" not in c, f"{name}: an enum sensor has no unit/state_class")
    if platform == "sensor" and "state_class" in c:
        _check(c["state_class"] in SENSOR_STATE_CLASSES, f"{name}.state_class {c['state_class']!r}")
    if platform == "binary_sensor" and "device_class" in c:
        _check(c["device_class"] in BINARY_SENSOR_CLASSES, f"{name}.device_class {c['device_class']!r}")
    if platform == "event":
        _strings(c.get("event_types"), f"{name}.event_types")


def _component(name: str, c: Any, object_ids: set[str]) -> None:
    _check(isinstance(c, dict), f"components.{name} must be an object")
    platform = c.get("platform")
    _check(platform in PLATFORM_KEYS, f"components.{name}.platform {platform!r} is not a platform used here")
    unknown = set(c) - ENTITY_KEYS - PLATFORM_KEYS[platform]
    _check(not unknown, f"components.{name}: keys HA does not document for {platform}: {sorted(unknown)}")
    missing = REQUIRED[platform] - set(c)
    _check(not missing, f"components.{name}: missing {sorted(missing)}")
    _check(isinstance(c.get("unique_id"), str) and c["unique_id"], f"components.{name}: unique_id is required")
    entity_id = c.get("default_entity_id", "")
    domain, _, obj = entity_id.partition(".")
    _check(domain == platform and OBJECT.match(obj) is not None, f"components.{name}.default_entity_id {entity_id!r}")
    _check(entity_id not in object_ids, f"default_entity_id {entity_id} used twice")
    object_ids.add(entity_id)
    _check(c.get("name") is None or isinstance(c["name"], str), f"components.{name}.name")
    _check(c.get("entity_category", "config") in ENTITY_CATEGORIES, f"components.{name}.entity_category")
    for key in ("command_topic", "state_topic", "json_attributes_topic"):
        if key in c:
            _topic(c[key], f"components.{name}.{key}")
    if "availability" in c:
        _availability(c["availability"], f"components.{name}")
    _platform_rules(f"components.{name}", platform, c)


def validate_device_discovery(topic: str, payload: dict[str, Any], prefix: str = "homeassistant") -> None:
    """Raise :class:`Invalid` with the first problem found."""
    parts = topic.split("/")
    _check(len(parts) == 4 and parts[0] == prefix and parts[1] == "device" and parts[3] == "config"
           and TOPIC_ID.match(parts[2]) is not None, f"discovery topic {topic!r}")
    _check(isinstance(payload, dict), "payload must be a JSON object")
    _check(not set(payload) - ROOT_KEYS, f"root keys not documented: {sorted(set(payload) - ROOT_KEYS)}")
    _no_object_id(payload)
    device, origin = payload.get("device"), payload.get("origin")
    _check(isinstance(device, dict) and not set(device) - DEVICE_KEYS, f"device block {device!r}")
    _check(bool(device.get("identifiers") or device.get("connections")), "device needs identifiers or connections")
    if "identifiers" in device:
        _strings(device["identifiers"], "device.identifiers")
    for conn in device.get("connections", []):
        _check(isinstance(conn, list) and len(conn) == 2 and all(isinstance(x, str) for x in conn), f"connection {conn!r}")
    _check(isinstance(origin, dict) and isinstance(origin.get("name"), str) and not set(origin) - ORIGIN_KEYS,
           f"origin block {origin!r} (mandatory, with a name)")
    if "availability" in payload:
        _availability(payload["availability"], "root")
    _check(payload.get("qos", 0) in (0, 1, 2), "qos")
    components = payload.get("components")
    _check(isinstance(components, dict) and components, "components must be a non-empty object")
    object_ids: set[str] = set()
    for name, c in components.items():
        _component(name, c, object_ids)
    uids = [c["unique_id"] for c in components.values()]
    _check(len(uids) == len(set(uids)), "unique_id repeated")
