"""Device authentication (docs/protocol.md, Authentication).

Per-device tokens follow the reference server's scheme, so tokens minted by either work:
``<sig>.<ts>`` where ``sig`` is base64url (no padding) of HMAC-SHA256(secret, "<client-id>|<device-id>|<ts>")
and ``ts`` is Unix seconds at issue. Static tokens and allowed device ids come from ``auth`` settings.
Revocation: a device id may carry a "not before" time; tokens issued earlier are refused.

A per-device token says who the device is, not that it may talk: the OTA reply carries one even while
activation is pending (a client that never repeats its OTA check still holds a usable token once it is
approved), so a well-signed token is admitted only when the device store has no objection
(``not_admitted``: activation pending, unknown device while activation is required).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .settings import AuthSettings


def load_or_create_secret(data_dir: Path) -> str:
    """The hub's HMAC secret, generated once and kept in the data folder (mode 0600)."""
    path = data_dir / "auth_secret"
    try:
        value = path.read_text().strip()
        if len(value) >= 16:
            return value
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value)
    tmp.chmod(0o600)
    tmp.replace(path)
    return value


def _sign(secret: str, client_id: str, device_id: str, ts: int) -> str:
    msg = f"{client_id}|{device_id}|{ts}".encode()
    digest = hmac.new(secret.encode(), msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint_token(secret: str, client_id: str, device_id: str, now: float | None = None) -> str:
    ts = int(time.time() if now is None else now)
    return f"{_sign(secret, client_id, device_id, ts)}.{ts}"


# Vision tokens (the camera's upload credential, sent in MCP initialize) are signed with a key derived
# from the secret, so one can never pass for a WebSocket token or the other way round.
VISION_TOKEN_TTL = 24 * 3600      # a new one comes with every session's initialize


def _sign_vision(secret: str, device_id: str, ts: int) -> str:
    key = hmac.new(secret.encode(), b"xiaozhi-hub vision token", hashlib.sha256).digest()
    digest = hmac.new(key, f"{device_id}|{ts}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint_vision_token(secret: str, device_id: str, now: float | None = None) -> str:
    ts = int(time.time() if now is None else now)
    return f"{_sign_vision(secret, device_id, ts)}.{ts}"


def strip_bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    value = authorization.strip()
    if value.lower() == "bearer":
        return None
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value or None


AUTH_FAILED = "auth_failed"                  # the refusal's error code on the socket (docs/protocol.md)
ACTIVATION_PENDING = "activation_pending"


@dataclass
class AuthResult:
    ok: bool
    reason: str = ""
    code: str = AUTH_FAILED


@dataclass
class Authenticator:
    settings: AuthSettings
    secret: str
    # device_id -> unix time before which tokens are refused (revocation); filled by the device store.
    revoked_before: Callable[[str], float | None] = field(default=lambda _device_id: None)
    # device_id -> why a device holding a valid token may not connect yet (None = it may); the device store.
    not_admitted: Callable[[str], str | None] = field(default=lambda _device_id: None)

    def verify_device_token(self, token: str, client_id: str, device_id: str,
                            now: float | None = None) -> AuthResult:
        """A per-device WebSocket token (the OTA reply's), for this client and device."""
        return self._verify(token, device_id, self.settings.token_ttl, now,
                            lambda ts: _sign(self.secret, client_id, device_id, ts))

    def verify_vision_token(self, token: str, device_id: str, now: float | None = None) -> AuthResult:
        """A vision token (MCP ``initialize``), for the device whose ``Device-Id`` uploads the photo."""
        return self._verify(token, device_id, VISION_TOKEN_TTL, now,
                            lambda ts: _sign_vision(self.secret, device_id, ts))

    def _verify(self, token: str, device_id: str, ttl: float, now: float | None,
                signature: Callable[[int], str]) -> AuthResult:
        sig, dot, ts_text = token.rpartition(".")
        if not dot or not ts_text.isdigit():
            return AuthResult(False, "malformed token")
        ts = int(ts_text)
        now = time.time() if now is None else now
        if ts > now + 300:
            return AuthResult(False, "token issued in the future")
        if now - ts > ttl:
            return AuthResult(False, "token expired")
        # Bytes: compare_digest refuses non-ASCII str, and the signature comes from the client.
        if not hmac.compare_digest(sig.encode(), signature(ts).encode()):
            return AuthResult(False, "bad token signature")
        cutoff = self.revoked_before(device_id)
        if cutoff is not None and ts < cutoff:
            return AuthResult(False, "token revoked")
        return AuthResult(True)

    def check(self, device_id: str | None, client_id: str | None, authorization: str | None) -> AuthResult:
        """Decide whether a WebSocket connection is admitted."""
        if not self.settings.enabled:
            return AuthResult(True)
        device_id = (device_id or "").lower()
        if device_id and device_id in self.settings.allowed_devices:
            return AuthResult(True)
        token = strip_bearer(authorization)
        if token is None:
            return AuthResult(False, "missing token")
        for static in self.settings.tokens:
            if hmac.compare_digest(token.encode(), static.encode()):
                return AuthResult(True)
        if not device_id:
            return AuthResult(False, "missing Device-Id")
        result = self.verify_device_token(token, client_id or "", device_id)
        if result.ok and (why := self.not_admitted(device_id)) is not None:
            return AuthResult(False, why, ACTIVATION_PENDING)
        return result
