"""The hub's shared services, handed to every component (WebSocket, HTTP, MQTT, tools).

Built once by :mod:`xiaozhi_hub.app`; components receive this object, never raw config dicts.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .auth import Authenticator
from .compute import ComputePool
from .settings import Settings
from .store.db import Database

if TYPE_CHECKING:
    from .providers.base import Providers
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
    settings: Settings
    db: Database
    auth: Authenticator
    compute: ComputePool
    registry: "SessionRegistry"
    providers: "Providers"
    hub_id: str
    host_ip: str = field(default_factory=lan_ip)
    started_at: float = field(default_factory=time.time)
    # Bound ports (differ from settings when a port of 0 was asked for).
    ws_port: int = 0
    http_port: int = 0
    extras: dict[str, Any] = field(default_factory=dict)  # services registered by optional components

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
