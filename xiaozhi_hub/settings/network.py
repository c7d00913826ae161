"""Settings of the hub's listeners and who may use them: ``server``, ``auth``, ``ota``, ``mdns``.

Each section is a frozen dataclass plus a schema with the same keys and defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import voluptuous as vol

from .validators import non_negative, opt_str, port, positive, str_list

DEFAULT_WS_PORT = 8000
DEFAULT_HTTP_PORT = 8003
WS_PATH = "/xiaozhi/v1/"

@dataclass(frozen=True)
class ServerSettings:
    host: str = "0.0.0.0"
    ws_port: int = DEFAULT_WS_PORT
    http_port: int = DEFAULT_HTTP_PORT
    ws_path: str = WS_PATH
    # The address devices are told to use (OTA reply, status page). None = this machine's LAN IP.
    public_ws_url: str | None = None
    public_http_url: str | None = None
    max_frame_bytes: int = 65536          # devices never send more than 65,535 bytes per frame
    max_frames_per_second: int = 200      # stock firmware sends ~17 audio frames/s
    flood_grace_seconds: float = 2.0      # how long a device may exceed the rate before it is closed
    send_queue_frames: int = 64           # bounded per-connection outbound queue (frames)
    shutdown_grace: float = 3.0


SERVER_SCHEMA = vol.Schema({
    vol.Optional("host", default="0.0.0.0"): vol.Coerce(str),
    vol.Optional("ws_port", default=DEFAULT_WS_PORT): port,
    vol.Optional("http_port", default=DEFAULT_HTTP_PORT): port,
    vol.Optional("ws_path", default=WS_PATH): vol.All(vol.Coerce(str), vol.Match(r"^/", msg="must start with /")),
    vol.Optional("public_ws_url", default=None): vol.Any(None, vol.Match(r"^wss?://", msg="must start with ws:// or wss://")),
    vol.Optional("public_http_url", default=None): vol.Any(None, vol.Match(r"^https?://", msg="must start with http:// or https://")),
    vol.Optional("max_frame_bytes", default=65536): vol.All(vol.Coerce(int), vol.Range(min=1024, max=16 * 1024 * 1024)),
    vol.Optional("max_frames_per_second", default=200): vol.All(vol.Coerce(int), vol.Range(min=20)),
    vol.Optional("flood_grace_seconds", default=2.0): positive(),
    vol.Optional("send_queue_frames", default=64): vol.All(vol.Coerce(int), vol.Range(min=8)),
    vol.Optional("shutdown_grace", default=3.0): non_negative(),
})


@dataclass(frozen=True)
class AuthSettings:
    enabled: bool = False
    tokens: tuple[str, ...] = field(default=(), repr=False)    # static tokens accepted as "Bearer <token>"
    allowed_devices: tuple[str, ...] = ()   # device ids admitted without a token
    secret: str | None = field(default=None, repr=False)      # HMAC key of per-device tokens; None = generated
    token_ttl: int = 30 * 24 * 3600


AUTH_SCHEMA = vol.Schema({
    vol.Optional("enabled", default=False): vol.Boolean(),
    vol.Optional("tokens", default=[]): str_list,
    vol.Optional("allowed_devices", default=[]): vol.All(str_list, lambda t: tuple(s.lower() for s in t)),
    vol.Optional("secret", default=None): vol.Any(None, vol.All(vol.Coerce(str), vol.Length(min=8, msg="must be at least 8 characters"))),
    vol.Optional("token_ttl", default=30 * 24 * 3600): vol.All(vol.Coerce(int), vol.Range(min=60)),
})


@dataclass(frozen=True)
class OTASettings:
    enabled: bool = True
    timezone_offset_minutes: int | None = None   # None = this machine's local offset
    activation: bool = False                     # unknown devices must be approved with a code
    max_body_bytes: int = 64 * 1024
    rate_limit_per_minute: int = 60              # per client IP, OTA and activation


OTA_SCHEMA = vol.Schema({
    vol.Optional("enabled", default=True): vol.Boolean(),
    vol.Optional("timezone_offset_minutes", default=None): vol.Any(None, vol.All(vol.Coerce(int), vol.Range(min=-720, max=840))),
    vol.Optional("activation", default=False): vol.Boolean(),
    vol.Optional("max_body_bytes", default=64 * 1024): vol.All(vol.Coerce(int), vol.Range(min=1024)),
    vol.Optional("rate_limit_per_minute", default=60): vol.All(vol.Coerce(int), vol.Range(min=1)),
})


@dataclass(frozen=True)
class MDNSSettings:
    enabled: bool = True
    name: str | None = None          # instance name; None = "xiaozhi-hub-<host>"
    interfaces: tuple[str, ...] = ()  # IPv4 addresses to advertise on (and advertise); () = all, LAN address


MDNS_SCHEMA = vol.Schema({
    vol.Optional("enabled", default=True): vol.Boolean(),
    vol.Optional("name", default=None): opt_str,
    vol.Optional("interfaces", default=[]): vol.All(
        vol.Any(None, [vol.All(vol.Coerce(str), vol.Match(r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$",
                                                          msg="must be IPv4 addresses such as 192.168.1.10"))]),
        lambda v: tuple(v or ())),
})
