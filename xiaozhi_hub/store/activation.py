"""Activation: the 6-digit code a new device shows, its challenge, approval by code or by HMAC.

With ``ota.activation: true`` an unknown device gets a 6-digit code, which it shows and speaks, and
stays "pending" until someone approves that code (``xiaozhi-hub devices approve CODE`` or
``POST /api/devices/approve``). With activation off, devices are approved on sight; turning it on
later only affects devices the hub has not seen yet. A device with an eFuse key may instead prove
itself with an HMAC of the challenge (:func:`check_activation_hmac`), made with its key as raw bytes
(stock firmware, eFuse) or as the ASCII of its hex string (py-xiaozhi).

Plain functions on a ``sqlite3.Connection``, like :mod:`xiaozhi_hub.store.devices`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from typing import Any

from .devices import Device, DeviceError, DeviceNotFound, InvalidValue, get_device, row_to_device

CODE_TTL_SECONDS = 24 * 3600     # an unapproved code is replaced after this long
_CODE_RE = re.compile(r"[0-9]{6}")


def ensure_activation_code(conn: sqlite3.Connection, device_id: str, now: float) -> Device:
    """Give a pending device a code and challenge, keeping the current ones while they are fresh.

    The code stays the same across OTA checks so the number the user reads does not keep changing.
    """
    device = get_device(conn, device_id)
    if device is None:
        raise DeviceNotFound(f"no device {device_id!r}")
    if device.activated:
        return device
    fresh = (device.activation_code and device.activation_challenge and device.code_issued_at is not None
             and now - device.code_issued_at < CODE_TTL_SECONDS)
    if fresh:
        return device
    for _ in range(50):
        code = f"{secrets.randbelow(10**6):06d}"
        if conn.execute("SELECT 1 FROM devices WHERE activation_code = ?", (code,)).fetchone() is None:
            break
    else:  # pragma: no cover - a million pending devices
        raise DeviceError("could not allocate a free activation code")
    conn.execute("UPDATE devices SET activation_code = ?, activation_challenge = ?, code_issued_at = ? "
                 "WHERE device_id = ?", (code, secrets.token_hex(16), now, device_id))
    device = get_device(conn, device_id)
    assert device is not None
    return device


def approve_code(conn: sqlite3.Connection, code: str, now: float) -> Device:
    """Approve the pending device showing ``code``."""
    code = code.strip()
    if not _CODE_RE.fullmatch(code):
        raise InvalidValue(f"{code!r} is not an activation code (6 digits, as shown on the device)")
    row = conn.execute("SELECT * FROM devices WHERE activation_code = ?", (code,)).fetchone()
    if row is None:
        raise DeviceNotFound(f"no device is waiting with code {code} (codes are shown on the device screen "
                             "and spoken after its OTA check)")
    device = row_to_device(row)
    if device.code_issued_at is not None and now - device.code_issued_at >= CODE_TTL_SECONDS:
        raise DeviceNotFound(f"code {code} has expired; the device shows a new one after its next check")
    conn.execute("UPDATE devices SET activated = 1, activated_at = ?, activation_code = NULL, "
                 "activation_challenge = NULL, code_issued_at = NULL WHERE device_id = ?",
                 (now, device.device_id))
    approved = get_device(conn, device.device_id)
    assert approved is not None
    return approved


def approve_device(conn: sqlite3.Connection, device_id: str, now: float) -> Device:
    """Approve a pending device directly (it proved itself with an HMAC from a registered key)."""
    conn.execute("UPDATE devices SET activated = 1, activated_at = ?, activation_code = NULL, "
                 "activation_challenge = NULL, code_issued_at = NULL WHERE device_id = ? AND activated = 0",
                 (now, device_id))
    device = get_device(conn, device_id)
    if device is None:
        raise DeviceNotFound(f"no device {device_id!r}")
    return device


def activation_keys(key_hex: str) -> tuple[bytes, bytes]:
    """The two ways clients read a registered key: stock firmware signs with the raw key bytes (its eFuse
    key, registered as hex); py-xiaozhi signs with the ASCII text of its hex key string."""
    return bytes.fromhex(key_hex), key_hex.encode("ascii")


def check_activation_hmac(device: Device, proof: dict[str, Any]) -> bool | None:
    """Check an ``hmac-sha256`` activation proof (the body's fields, unwrapped) against the device's key.

    Returns None when there is nothing to check (no key on file, or a device without a serial number
    sent ``{}``): such devices are approved by code like any other. True/False is the HMAC verdict;
    an HMAC made with either reading of the key (:func:`activation_keys`) is accepted.
    """
    if device.hmac_key is None or "hmac" not in proof:
        return None
    challenge = proof.get("challenge")
    given = proof.get("hmac")
    if not isinstance(challenge, str) or not isinstance(given, str):
        return False
    # Compare bytes: compare_digest refuses non-ASCII str, and these strings come from the client.
    if device.activation_challenge is None or not hmac.compare_digest(challenge.encode(),
                                                                       device.activation_challenge.encode()):
        return False
    given_bytes = given.lower().encode()
    matches = [hmac.compare_digest(given_bytes, hmac.new(key, challenge.encode(), hashlib.sha256).hexdigest().encode())
               for key in activation_keys(device.hmac_key)]
    return any(matches)
