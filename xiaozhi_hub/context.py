"""The hub's shared services, handed to every component (WebSocket, HTTP, MQTT, tools).

Built once by :mod:`xiaozhi_hub.app`; components receive this object, never raw config dicts.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .auth import Authenticator, mint_vision_token
from .compute import ComputePool
from .metrics import Metrics
from .services.events import EventBus
from .services.live import LiveDevices
from .settings import Settings
from .store.db import Database
from .tools.home_assistant import HomeControl, NoHomeControl
from .vision import EXPLAIN_PATH, VisionModel

if TYPE_CHECKING:
    from .mqtt import MqttBridge
    from .net.mdns import HubAdvertiser
    from .net.ota import OTAEndpoint
    from .net.wyoming import WyomingServer
    from .pipeline.agent import Agent
    from .pipeline.speaker import PhraseCache
    from .providers.base import Providers
    from .services.admin_token import AdminToken
    from .services.announce import Announcements
    from .services.component import ComponentLink
    from .store.device_store import DeviceStore
    from .store.firmware import FirmwareStore
    from .supervisor import SupervisorLink
    from .transport.mqtt.service import MqttUdpTransport
    from .transport.registry import SessionRegistry


def lan_ip() -> str:
    """This machine's address on the LAN (the one a UDP socket would use to leave it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent for a UDP connect
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


@dataclass
class HubContext:
    """Everything a component may use. Services the hub always has are plain fields, built by
    :class:`xiaozhi_hub.app.Hub` before the context; the agent needs the context, so the hub sets it
    right after, before anything is served; services that may be switched off are ``Optional``."""

    settings: Settings
    db: Database
    auth: Authenticator
    compute: ComputePool
    registry: "SessionRegistry"
    providers: "Providers"
    hub_id: str
    devices: "DeviceStore"
    firmware: "FirmwareStore"
    phrases: "PhraseCache"
    host_ip: str = field(default_factory=lan_ip)
    started_at: float = field(default_factory=time.time)
    # Bound ports (differ from settings when a port of 0 was asked for).
    ws_port: int = 0
    http_port: int = 0
    metrics: Metrics = field(default_factory=Metrics)
    startup_seconds: float = 0.0
    # What the agent controls in the home; a bridge (Home Assistant) replaces the no-op default.
    home_control: HomeControl = field(default_factory=NoHomeControl)
    # Always present once the hub has started (built from the context, so set right after it).
    agent: "Agent" = field(init=False)
    # Switched off by settings (ota.enabled, mdns.enabled, wyoming.enabled, device_mqtt.enabled; mqtt and
    # vision only when mqtt.host / vision.base_url are set).
    ota: "OTAEndpoint | None" = None
    mdns: "HubAdvertiser | None" = None
    wyoming: "WyomingServer | None" = None
    mqtt: "MqttBridge | None" = None               # only when mqtt.host is set
    supervisor: "SupervisorLink | None" = None     # only inside the Home Assistant add-on
    vision: VisionModel | None = None
    mqtt_udp: "MqttUdpTransport | None" = None     # the device MQTT endpoint and UDP audio (device_mqtt.enabled)
    # What happens on the hub, and each device's live state (sessions report through ``live``).
    events: EventBus = field(default_factory=EventBus)
    live: LiveDevices = field(init=False)
    # The admin token of /api/, "say this", and the connected Home Assistant component (set by the app).
    admin: "AdminToken" = field(init=False)
    announcements: "Announcements" = field(init=False)
    component: "ComponentLink" = field(init=False)

    def __post_init__(self) -> None:
        self.live = LiveDevices(self.events)

    def ws_url(self, host: str | None = None) -> str:
        """The WebSocket URL devices are told to use."""
        if self.settings.server.public_ws_url:
            return self.settings.server.public_ws_url
        port = self.ws_port or self.settings.server.ws_port
        return f"ws://{host or self.host_ip}:{port}{self.settings.server.ws_path}"

    def http_url(self, host: str | None = None) -> str:
        """Base URL of the HTTP API (no trailing slash)."""
        if self.settings.server.public_http_url:
            return self.settings.server.public_http_url.rstrip("/")
        port = self.http_port or self.settings.server.http_port
        return f"http://{host or self.host_ip}:{port}"

    def vision_capability(self, device_id: str) -> dict[str, str] | None:
        """What MCP ``initialize`` offers a device as ``capabilities.vision``: where its camera uploads
        photos and the token it sends (docs/protocol.md, MCP); None while no vision model is configured."""
        if self.vision is None:
            return None
        return {"url": f"{self.http_url()}{EXPLAIN_PATH}", "token": mint_vision_token(self.auth.secret, device_id)}
