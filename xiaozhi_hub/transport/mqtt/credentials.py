"""Per-device MQTT credentials: minted in the OTA reply, checked at CONNECT, revoked like tokens.

Nothing secret is stored. The password is a device token of :mod:`xiaozhi_hub.auth` signed over the
MQTT client id instead of the device's UUID (``HMAC(secret, "<client id>|<device id>|<ts>").<ts>``),
so the same rules hold: it expires after ``auth.token_ttl``, and ``xiaozhi-hub devices revoke`` (which
moves the device's "tokens not before" time) refuses every password minted before, while the device
gets a fresh one at its next OTA check. A WebSocket token is not a valid MQTT password and the other
way round (they sign different client ids).

The client id names the device: ``GID_xiaozhi@@@<mac with _>@@@<device UUID>`` (the shape the
reference stack uses); the user name is the device id. CONNECT is admitted only when the client id,
the user name and the password agree (:func:`check_connect`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ...auth import Authenticator, mint_token
from ...store.devices import Device, token_time

CLIENT_ID_PREFIX = "GID_xiaozhi"
SEPARATOR = "@@@"
_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_UUID_RE = re.compile(r"[0-9A-Za-z_.\-]{0,64}")


def mac12(device_id: str) -> str:
    return device_id.replace(":", "").lower()


def client_id_for(device_id: str, client_uuid: str) -> str:
    return SEPARATOR.join((CLIENT_ID_PREFIX, device_id.replace(":", "_"), client_uuid))


def publish_topic(device_id: str) -> str:
    """Where the device publishes (every message it sends)."""
    return f"xiaozhi/{mac12(device_id)}/up"


def subscribe_topic(device_id: str) -> str:
    """The topic name the hub's messages to the device carry (stock firmware never subscribes)."""
    return f"xiaozhi/{mac12(device_id)}/down"


@dataclass(frozen=True)
class Identity:
    """Who a CONNECT claims to be."""

    device_id: str
    client_uuid: str
    client_id: str


def parse_client_id(client_id: str) -> Identity | None:
    parts = client_id.split(SEPARATOR)
    if len(parts) != 3 or parts[0] != CLIENT_ID_PREFIX:
        return None
    device_id = parts[1].replace("_", ":").lower()
    if not _MAC_RE.fullmatch(device_id) or not _UUID_RE.fullmatch(parts[2]):
        return None
    return Identity(device_id, parts[2], client_id)


def mint_credentials(secret: str, device: Device, client_uuid: str, now: float) -> dict[str, str]:
    client_id = client_id_for(device.device_id, client_uuid)
    password = mint_token(secret, client_id, device.device_id, now=token_time(device, now))
    return {"client_id": client_id, "username": device.device_id, "password": password}


def check_connect(auth: Authenticator, client_id: str, username: str | None,
                  password: bytes | None) -> tuple[Identity | None, str]:
    """(identity, "") when admitted, else (None, reason). Blocking is checked by the caller."""
    identity = parse_client_id(client_id)
    if identity is None:
        return None, "client id is not one the hub issued"
    if username is None or username.lower() != identity.device_id:
        return None, "user name does not match the client id"
    if not password:
        return None, "missing password"
    try:
        token = password.decode("ascii")
    except UnicodeDecodeError:
        return None, "malformed password"
    result = auth.verify_device_token(token, client_id, identity.device_id)
    if not result.ok:
        return None, result.reason.replace("token", "password")
    return identity, ""


def ota_section(secret: str, device: Device, client_uuid: str, now: float, endpoint: str,
                keepalive: int) -> dict[str, Any]:
    """The OTA reply's ``mqtt`` object. Every string and number in it is stored on the device."""
    return {"endpoint": endpoint, **mint_credentials(secret, device, client_uuid, now), "keepalive": keepalive,
            "publish_topic": publish_topic(device.device_id), "subscribe_topic": subscribe_topic(device.device_id)}
