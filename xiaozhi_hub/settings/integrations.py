"""Settings of the hub's doors to Home Assistant: the Wyoming service and the add-on environment."""

from __future__ import annotations

from dataclasses import dataclass

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
