"""Validate device-based discovery payloads with Home Assistant's own MQTT schemas.

Run by tests/mqtt/test_ha_schema.py with the Python of the Home Assistant test venv (``make ha-venv``),
not the hub's: reads ``[[topic, payload], ...]`` as JSON on stdin, does what HA's MQTT discovery does
with a device payload (the device schema, then each component merged with the shared options and
validated by its platform's DISCOVERY_SCHEMA) and prints one JSON line per component:
``{"topic", "component", "error"}`` (``error`` null when valid) plus ``dropped``: the keys HA's schema
removed as unknown (a misspelt option would be silently ignored).
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import json
import sys
import tempfile

import voluptuous as vol
from homeassistant.components.mqtt.schemas import DEVICE_DISCOVERY_SCHEMA, SHARED_OPTIONS
from homeassistant.core import HomeAssistant
from homeassistant.helpers import frame


def check(topic: str, payload: dict) -> list[dict]:
    out = []
    try:
        DEVICE_DISCOVERY_SCHEMA(copy.deepcopy(payload))
    except vol.Invalid as err:
        return [{"topic": topic, "component": None, "error": str(err), "dropped": []}]
    for name, comp in payload["components"].items():
        conf = copy.deepcopy(comp)
        platform = conf.pop("platform")
        conf["device"] = payload["device"]
        conf["origin"] = payload.get("origin")
        for option in SHARED_OPTIONS:
            if option in payload and option not in conf:
                conf[option] = payload[option]
        schema = importlib.import_module(f"homeassistant.components.mqtt.{platform}").DISCOVERY_SCHEMA
        try:
            valid = schema(copy.deepcopy(conf))
            out.append({"topic": topic, "component": name, "error": None,
                        "dropped": sorted(set(conf) - set(valid))})
        except vol.Invalid as err:
            out.append({"topic": topic, "component": name, "error": str(err), "dropped": []})
    return out


async def main() -> None:
    items = json.load(sys.stdin)
    # Templates are validated against a running Home Assistant (its frame helper must be set up).
    hass = HomeAssistant(tempfile.mkdtemp(prefix="ha-check-"))
    frame.async_setup(hass)
    for topic, payload in items:
        for line in check(topic, payload):
            print(json.dumps(line))
    await hass.async_stop(force=True)


if __name__ == "__main__":
    asyncio.run(main())
