"""The ground the protocol messages stand on: the error for a bad frame, the enums of the wire, the
field readers every ``from_wire`` uses, and :class:`Message` with its generic field-driven codec.

Pure: no asyncio and no providers (the simulator and the Home Assistant component import this).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping


class ProtocolError(ValueError):
    """A frame that does not follow the protocol. ``kind`` is a short machine-readable reason."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Direction(enum.Enum):
    FROM_DEVICE = "from_device"
    TO_DEVICE = "to_device"


class ListenState(str, enum.Enum):
    START = "start"
    STOP = "stop"
    DETECT = "detect"


class ListenMode(str, enum.Enum):
    AUTO = "auto"
    MANUAL = "manual"
    REALTIME = "realtime"


class TtsState(str, enum.Enum):
    START = "start"
    STOP = "stop"
    SENTENCE_START = "sentence_start"
    SENTENCE_END = "sentence_end"


# ---------------------------------------------------------------------------- field helpers

def required(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], msg_type: str) -> Any:
    if key not in obj:
        raise ProtocolError("missing_field", f"{msg_type}.{key} is required")
    return typed(obj[key], key, kind, msg_type)


def optional(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], msg_type: str, default: Any = None) -> Any:
    if key not in obj or obj[key] is None:
        return default
    return typed(obj[key], key, kind, msg_type)


def typed(value: Any, key: str, kind: type | tuple[type, ...], msg_type: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if bool not in kinds and isinstance(value, bool) and (int in kinds or float in kinds):
        raise ProtocolError("bad_field", f"{msg_type}.{key} must be a number, not a boolean")
    if not isinstance(value, kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise ProtocolError("bad_field", f"{msg_type}.{key} must be {names}")
    return value


def enum_value(value: Any, enum_cls: type[enum.Enum], key: str, msg_type: str) -> Any:
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(e.value for e in enum_cls)
        raise ProtocolError("bad_field", f"{msg_type}.{key} must be one of {allowed}") from None


def with_session(d: dict[str, Any], session_id: str | None) -> dict[str, Any]:
    if session_id is not None:
        return {"session_id": session_id, **d}
    return d


# ---------------------------------------------------------------------------- base


# Field annotations the generic codec understands: annotation -> (JSON type, enum to convert to).
_PLAIN_FIELDS: dict[str, tuple[type, type[enum.Enum] | None]] = {
    "str": (str, None), "str | None": (str, None), "Mapping[str, Any]": (dict, None),
    "TtsState": (str, TtsState), "ListenState": (str, ListenState), "ListenMode | None": (str, ListenMode),
}


@dataclass(frozen=True)
class Message:
    """Base of every message. Messages whose fields are plain strings, objects and enums use the
    generic codec below (field name = JSON key, required = no default, ``session_id`` first on the
    wire as the firmware writes it); messages with nested or validated fields override both methods."""

    TYPE: ClassVar[str] = ""
    DIRECTION: ClassVar[Direction]

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.TYPE}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "session_id" or value is None:
                continue
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, Mapping):
                value = dict(value)
            d[f.name] = value
        return with_session(d, getattr(self, "session_id", None))

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "Message":
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            kind, enum_cls = _PLAIN_FIELDS[str(f.type)]
            needed = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            value = required(obj, f.name, kind, cls.TYPE) if needed else optional(obj, f.name, kind, cls.TYPE)
            if enum_cls is not None and value is not None:
                value = enum_value(value, enum_cls, f.name, cls.TYPE)
            kwargs[f.name] = value
        return cls(**kwargs)
