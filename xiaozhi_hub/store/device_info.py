"""What the hub keeps of a device's system information: a fixed list of known, non-secret fields.

The OTA check body is the client's to fill, and clients put keys in it: py-xiaozhi sends the HMAC key
it signs its activation with as ``application.elf_sha256`` (stock firmware sends the SHA-256 of its
image there; the two cannot be told apart). The rule, applied when a report is stored and again
whenever a record is read (so rows written by older versions are clean too):

* only the fields in :data:`INFO_FIELDS` are kept, each a scalar, strings cut to 128 characters;
  ``application.elf_sha256`` is not among them: it may be a key, and the firmware version says more;
* a kept string that looks like key material (:func:`looks_like_key`: a run of 32 or more hex digits,
  or 32 or more characters of base64 alphabet without a space) is dropped, whatever its field.

So nothing the hub stores, returns from its API or prints in ``devices list`` can be a client's key.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

MAX_STR = 128

# Scalar diagnostics kept from the system-info body (for the device list, the API and HA).
INFO_FIELDS: tuple[tuple[str, ...], ...] = (
    ("chip_model_name",), ("flash_size",), ("minimum_free_heap_size",),
    ("application", "name"), ("application", "compile_time"), ("application", "idf_version"),
    ("ota", "label"),
    ("board", "ssid"), ("board", "rssi"), ("board", "channel"), ("board", "ip"),
    ("board", "carrier"), ("board", "csq"), ("board", "imei"), ("board", "iccid"),
    ("display", "width"), ("display", "height"), ("display", "monochrome"),
)
INFO_KEYS = frozenset(".".join(path) for path in INFO_FIELDS)

_HEX_RUN = re.compile(r"[0-9a-fA-F]{32,}")
_TOKEN_RUN = re.compile(r"[A-Za-z0-9+/=_\-]{32,}")


def looks_like_key(value: str) -> bool:
    """True for text that could be a secret: a long hex run (a 128-bit key or more) or a long token."""
    return bool(_HEX_RUN.search(value) or _TOKEN_RUN.search(value))


def _keep(value: Any) -> Any | None:
    """The value as stored, or None when it is dropped (not a scalar, not finite, possibly a key)."""
    if isinstance(value, str):
        value = value[:MAX_STR]
        return None if looks_like_key(value) else value
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def collect_info(body: Mapping[str, Any]) -> dict[str, Any]:
    """The kept diagnostics of an OTA system-info body, keyed by dotted path (``board.rssi``)."""
    info: dict[str, Any] = {}
    for path in INFO_FIELDS:
        node: Any = body
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        kept = _keep(node)
        if kept is not None:
            info[".".join(path)] = kept
    return info


def clean_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """A stored info mapping with everything the rule does not keep removed (rows from older versions)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key in INFO_KEYS and (kept := _keep(value)) is not None:
            out[key] = kept
    return out
