"""Diagnostics: the hub, its devices and the connection, with the token (and what people said) redacted."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant

from .hub import XiaozhiConfigEntry

# What people said and heard is private; the token is a secret.
TO_REDACT = {CONF_TOKEN, "last_heard", "last_reply", "token", "authorization"}


async def async_get_config_entry_diagnostics(hass: HomeAssistant, entry: XiaozhiConfigEntry) -> dict[str, Any]:
    hub = entry.runtime_data
    return async_redact_data(
        {
            "entry": {"data": dict(entry.data), "options": dict(entry.options), "unique_id": entry.unique_id},
            "hub": asdict(hub.info),
            "connection": {"connected": hub.connected, "url": hub.api.base_url, "last_error": hub.last_error},
            "devices": [asdict(device) for device in hub.devices.values()],
        },
        TO_REDACT,
    )
