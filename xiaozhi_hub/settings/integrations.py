"""Settings of the hub's doors to Home Assistant: the Wyoming service, the MQTT bridge and the add-on environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import voluptuous as vol

from .validators import opt_str, port, positive


@dataclass(frozen=True)
class WyomingSettings:
    """The hub's ASR and TTS as a Wyoming service for Home Assistant's Assist (net/wyoming/)."""

    enabled: bool = True
    host: str | None = None          # None = the same address as server.host
    port: int = 10300
    max_clients: int = 16            # connections served at once; more are told "busy" and closed
    max_event_bytes: int = 65536     # JSON header + data of one event
    max_payload_bytes: int = 1 << 20  # binary payload of one event (an audio chunk)
    max_audio_seconds: float = 60.0  # audio in one transcription
    max_text_chars: int = 5000       # text in one synthesis
    idle_timeout: float = 60.0       # a connection with no event for this long is closed


WYOMING_SCHEMA = vol.Schema({
    vol.Optional("enabled", default=True): vol.Boolean(),
    vol.Optional("host", default=None): opt_str,
    vol.Optional("port", default=10300): port,
    vol.Optional("max_clients", default=16): vol.All(vol.Coerce(int), vol.Range(min=1, max=1024)),
    vol.Optional("max_event_bytes", default=65536): vol.All(vol.Coerce(int), vol.Range(min=1024, max=16 << 20)),
    vol.Optional("max_payload_bytes", default=1 << 20): vol.All(vol.Coerce(int), vol.Range(min=1024, max=64 << 20)),
    vol.Optional("max_audio_seconds", default=60.0): vol.All(vol.Coerce(float), vol.Range(min=1, max=3600)),
    vol.Optional("max_text_chars", default=5000): vol.All(vol.Coerce(int), vol.Range(min=10, max=1_000_000)),
    vol.Optional("idle_timeout", default=60.0): positive(),
})


def _topic_root(v: Any) -> str:
    """An MQTT topic prefix: not empty, no wildcards, no leading or trailing ``/``."""
    s = str(v).strip()
    if not s or any(c in s for c in "+#\0") or s.startswith("/") or s.endswith("/") or "//" in s:
        raise vol.Invalid("must be a topic prefix without wildcards (+, #) or leading/trailing '/'")
    return s


@dataclass(frozen=True)
class MqttSettings:
    """The MQTT bridge (xiaozhi_hub/mqtt/): commands, events and Home Assistant MQTT discovery."""

    host: str = ""                   # the broker; empty = MQTT off
    port: int = 1883
    username: str = ""
    password: str = field(default="", repr=False)   # secrets stay out of reprs (and so out of logs)
    tls: bool = False                # TLS with the system's CA certificates (port 8883 usually)
    base_topic: str = "xiaozhi"
    discovery: bool = True           # publish Home Assistant MQTT discovery
    discovery_prefix: str = "homeassistant"

    @property
    def enabled(self) -> bool:
        return bool(self.host)


MQTT_SCHEMA = vol.Schema({
    vol.Optional("host", default=""): vol.All(vol.Any(None, vol.Coerce(str)), lambda v: (v or "").strip()),
    vol.Optional("port", default=1883): vol.All(port, vol.Range(min=1, msg="must be a port number 1-65535")),
    vol.Optional("username", default=""): vol.All(vol.Any(None, vol.Coerce(str)), lambda v: v or ""),
    vol.Optional("password", default=""): vol.All(vol.Any(None, vol.Coerce(str)), lambda v: v or ""),
    vol.Optional("tls", default=False): vol.Boolean(),
    vol.Optional("base_topic", default="xiaozhi"): _topic_root,
    vol.Optional("discovery", default=True): vol.Boolean(),
    vol.Optional("discovery_prefix", default="homeassistant"): _topic_root,
})


@dataclass(frozen=True)
class AddonSettings:
    """Inside the Home Assistant add-on (detected by SUPERVISOR_TOKEN in the environment; supervisor.py)."""

    supervisor_url: str = "http://supervisor"
    discovery: bool = True           # announce xiaozhi and wyoming to Home Assistant
    announce_host: str | None = None  # address Home Assistant uses to reach the hub; None = the LAN address


ADDON_SCHEMA = vol.Schema({
    vol.Optional("supervisor_url", default="http://supervisor"): vol.All(
        vol.Coerce(str), vol.Match(r"^https?://", msg="must start with http:// or https://")),
    vol.Optional("discovery", default=True): vol.Boolean(),
    vol.Optional("announce_host", default=None): opt_str,
})
