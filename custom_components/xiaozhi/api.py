"""HTTP/WebSocket client for the hub's API (the hub's docs/api.md).

This module knows the wire format and nothing about Home Assistant entities, so the config flow and
the runtime share it. It never imports the hub's own package: the two talk only over the network.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp

REQUEST_TIMEOUT = 10.0
# A "say" to a connected device waits until it was spoken (the hub gives up after about 60 s).
SAY_TIMEOUT = 75.0


class XiaozhiError(Exception):
    """Base class for hub API errors."""


class CannotConnect(XiaozhiError):
    """The hub did not answer (down, wrong host/port, not a xiaozhi hub)."""


class InvalidAuth(XiaozhiError):
    """The hub refused the admin token."""


class HubRequestError(XiaozhiError):
    """The hub answered a request with an error (400, 404, 409, 503…)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"hub answered {status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass
class HubInfo:
    """``GET /api/hub``."""

    hub_id: str
    version: str
    name: str
    mqtt_discovery: bool | None = None


@dataclass
class HubDevice:
    """One ESP32 as the hub reports it (only the fields the integration uses)."""

    device_id: str
    name: str = ""
    board: str | None = None
    firmware_version: str | None = None
    online: bool = False
    state: str = "offline"
    volume: int | None = None
    last_heard: str | None = None
    last_reply: str | None = None
    transport: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, raw: Any) -> HubDevice:
        """Parse a device object; raises ``ValueError`` on a malformed one."""
        if not isinstance(raw, dict) or not isinstance(raw.get("device_id"), str) or not raw["device_id"]:
            raise ValueError(f"not a device object: {raw!r}")
        dev = cls(device_id=normalize_device_id(raw["device_id"]))
        dev.update(raw)
        return dev

    def update(self, raw: dict[str, Any]) -> None:
        """Take the known fields of ``raw`` (a full or partial device object, or an event)."""
        for key in ("name", "board", "firmware_version", "last_heard", "last_reply", "transport"):
            if key in raw and (raw[key] is None or isinstance(raw[key], str)):
                setattr(self, key, raw[key])
        if isinstance(raw.get("online"), bool):
            self.online = raw["online"]
        if isinstance(raw.get("state"), str):
            self.state = raw["state"]
        vol = raw.get("volume", False)
        if vol is None:
            self.volume = None           # the hub does not know it
        elif isinstance(vol, (int, float)) and not isinstance(vol, bool) and 0 <= vol <= 100:
            self.volume = int(vol)       # anything else is not a volume and is ignored
        self.extra = {k: v for k, v in raw.items() if k not in _KNOWN_FIELDS}

    @property
    def display_name(self) -> str:
        return self.name or f"xiaozhi {self.device_id[-8:]}"


_KNOWN_FIELDS = frozenset({"device_id", "name", "board", "firmware_version", "online", "state", "volume",
                           "last_heard", "last_reply", "transport"})


def normalize_device_id(device_id: str) -> str:
    """``AABBCCDDEE01`` or ``aa:bb:cc:dd:ee:01`` → ``aa:bb:cc:dd:ee:01`` (other ids lowercased)."""
    s = device_id.strip().lower()
    hexes = s.replace(":", "").replace("-", "")
    if len(hexes) == 12 and all(c in "0123456789abcdef" for c in hexes):
        return ":".join(hexes[i:i + 2] for i in range(0, 12, 2))
    return s


def url_device_id(device_id: str) -> str:
    """The form used in URLs: 12 hex digits for a MAC (no characters that need quoting)."""
    return normalize_device_id(device_id).replace(":", "")


class XiaozhiApi:
    """One hub, addressed by host, port and admin token."""

    def __init__(self, session: aiohttp.ClientSession, host: str, port: int, token: str) -> None:
        self._session = session
        self.host = host
        self.port = port
        self._token = token

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{host}:{self.port}"

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                       timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            async with asyncio.timeout(timeout):
                async with self._session.request(method, url, json=body, headers=self._headers) as resp:
                    data = await _json_or_none(resp)
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise CannotConnect(f"{method} {path}: {err or type(err).__name__}") from err
        if resp.status == 401:
            raise InvalidAuth("the hub refused the admin token")
        if resp.status >= 400:
            reason = data.get("error") if isinstance(data, dict) else None
            raise HubRequestError(resp.status, str(reason or resp.reason or "error"))
        if not isinstance(data, dict):
            raise CannotConnect(f"{method} {path}: the answer is not a JSON object (is this a xiaozhi hub?)")
        return data

    async def get_hub(self) -> HubInfo:
        data = await self._request("GET", "/api/hub")
        hub_id = data.get("hub_id")
        if not isinstance(hub_id, str) or not hub_id:
            raise CannotConnect("/api/hub has no hub_id (is this a xiaozhi hub?)")
        mqtt = data.get("mqtt_discovery")
        return HubInfo(hub_id=hub_id, version=str(data.get("version") or ""),
                       name=str(data.get("name") or "xiaozhi-hub"),
                       mqtt_discovery=mqtt if isinstance(mqtt, bool) else None)

    async def get_devices(self) -> list[HubDevice]:
        data = await self._request("GET", "/api/devices")
        return parse_devices(data.get("devices"))

    async def say(self, device_id: str, text: str, *, priority: str | None = None, ttl: int | None = None,
                  wait: bool = True) -> dict[str, Any]:
        """Speak ``text`` on one device; the hub queues it if the device is not connected."""
        body: dict[str, Any] = {"text": text, "wait": wait}
        if priority is not None:
            body["priority"] = priority
        if ttl is not None:
            body["ttl"] = ttl
        return await self._request("POST", f"/api/devices/{url_device_id(device_id)}/say", body,
                                   timeout=SAY_TIMEOUT if wait else REQUEST_TIMEOUT)

    async def set_volume(self, device_id: str, volume: int) -> dict[str, Any]:
        return await self._request("POST", f"/api/devices/{url_device_id(device_id)}/volume", {"volume": volume})

    async def stop(self, device_id: str) -> dict[str, Any]:
        return await self._request("POST", f"/api/devices/{url_device_id(device_id)}/stop", {})

    async def delete_device(self, device_id: str) -> dict[str, Any]:
        """Forget a device that is not connected (409 while it is; it is recorded again if it checks in)."""
        return await self._request("DELETE", f"/api/devices/{url_device_id(device_id)}")

    async def connect_events(self) -> aiohttp.ClientWebSocketResponse:
        """Open the event stream (``/api/events``). The caller reads the hello first."""
        try:
            return await self._session.ws_connect(
                f"{self.base_url}/api/events", headers=self._headers, heartbeat=30.0,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0), max_msg_size=16 * 1024 * 1024)
        except aiohttp.WSServerHandshakeError as err:
            if err.status == 401:
                raise InvalidAuth("the hub refused the admin token") from err
            raise CannotConnect(f"/api/events: {err.status} {err.message}") from err
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise CannotConnect(f"/api/events: {err or type(err).__name__}") from err


def parse_devices(raw: Any) -> list[HubDevice]:
    """Device objects from a list, skipping malformed ones (one bad record must not hide the rest)."""
    if not isinstance(raw, list):
        return []
    out: list[HubDevice] = []
    for item in raw:
        try:
            out.append(HubDevice.from_api(item))
        except ValueError:
            continue
    return out


async def _json_or_none(resp: aiohttp.ClientResponse) -> Any:
    try:
        return await resp.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return None
