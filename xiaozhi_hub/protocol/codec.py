"""The one place that turns wire frames into typed messages and back.

Text frames carry JSON objects (:mod:`.messages`); binary frames carry Opus packets, bare (v1) or
behind a 16-byte (v2) or 4-byte (v3) big-endian header (:mod:`.binary`).
"""

from __future__ import annotations

import json
from typing import Any

from .messages import Direction, Message, ProtocolError, all_message_classes

_REGISTRY: dict[tuple[Direction, str], type[Message]] = {
    (cls.DIRECTION, cls.TYPE): cls for cls in all_message_classes()
}


def message_class(direction: Direction, type_: str) -> type[Message] | None:
    return _REGISTRY.get((direction, type_))


def parse_json_object(text: str | bytes) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise ProtocolError("not_json", f"text frame is not JSON ({err.__class__.__name__})") from None
    if not isinstance(obj, dict):
        raise ProtocolError("not_object", "text frame must be a JSON object")
    return obj


def decode(text: str | bytes, direction: Direction = Direction.FROM_DEVICE) -> Message:
    """Parse one text frame sent in ``direction``; raises :class:`ProtocolError`."""
    obj = parse_json_object(text)
    type_ = obj.get("type")
    if not isinstance(type_, str):
        raise ProtocolError("missing_type", "message has no string 'type'")
    cls = _REGISTRY.get((direction, type_))
    if cls is None:
        raise ProtocolError("unknown_type", f"unknown message type {type_!r}")
    return cls.from_wire(obj)


def encode(message: Message) -> str:
    """Serialise a message to a compact JSON text frame (UTF-8 kept, not escaped)."""
    return json.dumps(message.to_wire(), ensure_ascii=False, separators=(",", ":"))
