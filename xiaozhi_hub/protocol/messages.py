"""Typed JSON messages of the device protocol (docs/protocol.md, Messages and errors), both
directions.

Every message is a frozen dataclass with a wire ``TYPE``, a ``DIRECTION`` (who sends it),
``to_wire()`` returning the JSON object and ``from_wire(obj)`` building it back (raising
:class:`ProtocolError` on bad fields). Plain messages use the generic codec of :class:`Message`
(:mod:`.base`); the hello, audio parameters and IoT messages read their nested fields themselves.
The codec in :mod:`.codec` is the only place that turns text into these and back. Field names and
required fields follow what stock firmware parses: e.g. the server hello always carries
``transport``, ``tts`` always carries ``state`` and ``alert`` carries all three strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from .base import (Direction, ListenMode, ListenState, Message, ProtocolError, TtsState, optional, required,
                   with_session)

@dataclass(frozen=True)
class AudioParams:
    format: str = "opus"
    sample_rate: int = 16000
    channels: int = 1
    frame_duration: int = 60

    def to_wire(self) -> dict[str, Any]:
        return {"format": self.format, "sample_rate": self.sample_rate,
                "channels": self.channels, "frame_duration": self.frame_duration}

    @classmethod
    def from_wire(cls, obj: Any, msg_type: str) -> "AudioParams":
        if not isinstance(obj, Mapping):
            raise ProtocolError("bad_field", f"{msg_type}.audio_params must be an object")
        return cls(
            format=optional(obj, "format", str, msg_type, "opus"),
            sample_rate=optional(obj, "sample_rate", int, msg_type, 16000),
            channels=optional(obj, "channels", int, msg_type, 1),
            frame_duration=optional(obj, "frame_duration", int, msg_type, 60),
        )


# ---------------------------------------------------------------------------- device -> hub


@dataclass(frozen=True)
class DeviceHello(Message):
    TYPE: ClassVar[str] = "hello"
    DIRECTION: ClassVar[Direction] = Direction.FROM_DEVICE

    version: int = 1
    transport: str = "websocket"
    features: Mapping[str, Any] = field(default_factory=dict)
    audio_params: AudioParams = field(default_factory=AudioParams)
    text_font: Mapping[str, Any] | None = None

    @property
    def mcp(self) -> bool:
        return bool(self.features.get("mcp"))

    @property
    def aec(self) -> bool:
        return bool(self.features.get("aec"))

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.TYPE, "version": self.version, "transport": self.transport}
        if self.features:
            d["features"] = dict(self.features)
        if self.text_font is not None:
            d["text_font"] = dict(self.text_font)
        d["audio_params"] = self.audio_params.to_wire()
        return d

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "DeviceHello":
        t = "hello"
        features = optional(obj, "features", dict, t, {})
        audio = AudioParams.from_wire(obj["audio_params"], t) if "audio_params" in obj else AudioParams()
        version = optional(obj, "version", int, t, 1)
        if version not in (1, 2, 3):
            raise ProtocolError("bad_field", "hello.version must be 1, 2 or 3")
        return cls(version=version, transport=optional(obj, "transport", str, t, "websocket"),
                   features=features, audio_params=audio, text_font=optional(obj, "text_font", dict, t))


@dataclass(frozen=True)
class Listen(Message):
    TYPE: ClassVar[str] = "listen"
    DIRECTION: ClassVar[Direction] = Direction.FROM_DEVICE

    state: ListenState
    mode: ListenMode | None = None
    text: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class Abort(Message):
    TYPE: ClassVar[str] = "abort"
    DIRECTION: ClassVar[Direction] = Direction.FROM_DEVICE

    reason: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class DeviceMcp(Message):
    """An MCP JSON-RPC message from the device (replies to the hub's requests)."""

    TYPE: ClassVar[str] = "mcp"
    DIRECTION: ClassVar[Direction] = Direction.FROM_DEVICE

    payload: Mapping[str, Any]
    session_id: str | None = None


@dataclass(frozen=True)
class DeviceGoodbye(Message):
    TYPE: ClassVar[str] = "goodbye"
    DIRECTION: ClassVar[Direction] = Direction.FROM_DEVICE

    session_id: str | None = None


@dataclass(frozen=True)
class IotUpdate(Message):
    """Legacy IoT (firmware < 1.8): thing descriptors and/or states (docs/protocol.md, Legacy IoT)."""

    TYPE: ClassVar[str] = "iot"
    DIRECTION: ClassVar[Direction] = Direction.FROM_DEVICE

    descriptors: tuple[Mapping[str, Any], ...] = ()
    states: tuple[Mapping[str, Any], ...] = ()
    update: bool = True
    session_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.TYPE, "update": self.update}
        if self.descriptors:
            d["descriptors"] = [dict(x) for x in self.descriptors]
        if self.states:
            d["states"] = [dict(x) for x in self.states]
        return with_session(d, self.session_id)

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "IotUpdate":
        t = "iot"
        descriptors = optional(obj, "descriptors", list, t, [])
        states = optional(obj, "states", list, t, [])
        for item in (*descriptors, *states):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ProtocolError("bad_field", "iot descriptors/states must be objects with a name")
        return cls(descriptors=tuple(descriptors), states=tuple(states),
                   update=bool(optional(obj, "update", bool, t, True)), session_id=optional(obj, "session_id", str, t))


@dataclass(frozen=True)
class Ping(Message):
    """Not sent by stock firmware; test clients use it. Answered with :class:`Pong`."""

    TYPE: ClassVar[str] = "ping"
    DIRECTION: ClassVar[Direction] = Direction.FROM_DEVICE

    session_id: str | None = None


@dataclass(frozen=True)
class ServerHello(Message):
    TYPE: ClassVar[str] = "hello"
    DIRECTION: ClassVar[Direction] = Direction.TO_DEVICE

    session_id: str
    transport: str = "websocket"
    version: int = 1
    audio_params: AudioParams = field(default_factory=lambda: AudioParams(sample_rate=24000))
    udp: Mapping[str, Any] | None = None  # MQTT+UDP only

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.TYPE, "version": self.version, "transport": self.transport,
                             "session_id": self.session_id, "audio_params": self.audio_params.to_wire()}
        if self.udp is not None:
            d["udp"] = dict(self.udp)
        return d

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "ServerHello":
        t = "hello"
        audio = (AudioParams.from_wire(obj["audio_params"], t) if "audio_params" in obj
                 else AudioParams(sample_rate=24000))
        return cls(session_id=optional(obj, "session_id", str, t, ""), transport=required(obj, "transport", str, t),
                   version=optional(obj, "version", int, t, 1), audio_params=audio, udp=optional(obj, "udp", dict, t))


@dataclass(frozen=True)
class Stt(Message):
    TYPE: ClassVar[str] = "stt"
    DIRECTION: ClassVar[Direction] = Direction.TO_DEVICE

    text: str
    session_id: str | None = None


@dataclass(frozen=True)
class Llm(Message):
    TYPE: ClassVar[str] = "llm"
    DIRECTION: ClassVar[Direction] = Direction.TO_DEVICE

    emotion: str
    text: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class Tts(Message):
    TYPE: ClassVar[str] = "tts"
    DIRECTION: ClassVar[Direction] = Direction.TO_DEVICE

    state: TtsState
    text: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class HubMcp(Message):
    """An MCP JSON-RPC message from the hub to the device (requests)."""

    TYPE: ClassVar[str] = "mcp"
    DIRECTION: ClassVar[Direction] = Direction.TO_DEVICE

    payload: Mapping[str, Any]
    session_id: str | None = None


@dataclass(frozen=True)
class System(Message):
    TYPE: ClassVar[str] = "system"
    DIRECTION: ClassVar[Direction] = Direction.TO_DEVICE

    command: str
    session_id: str | None = None


@dataclass(frozen=True)
class Alert(Message):
    TYPE: ClassVar[str] = "alert"
    DIRECTION: ClassVar[Direction] = Direction.TO_DEVICE

    status: str
    message: str
    emotion: str
    session_id: str | None = None


@dataclass(frozen=True)
class Custom(Message):
    TYPE: ClassVar[str] = "custom"
    DIRECTION: ClassVar[Direction] = Direction.TO_DEVICE

    payload: Mapping[str, Any]
    session_id: str | None = None


@dataclass(frozen=True)
class HubGoodbye(Message):
    """MQTT transport only; on WebSocket the hub closes the socket instead."""

    TYPE: ClassVar[str] = "goodbye"
    DIRECTION: ClassVar[Direction] = Direction.TO_DEVICE

    session_id: str


@dataclass(frozen=True)
class IotCommand(Message):
    """Legacy IoT command list sent to the device (docs/protocol.md, Legacy IoT); the device does not
    reply."""

    TYPE: ClassVar[str] = "iot"
    DIRECTION: ClassVar[Direction] = Direction.TO_DEVICE

    commands: tuple[Mapping[str, Any], ...]
    session_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return with_session({"type": self.TYPE, "commands": [dict(c) for c in self.commands]}, self.session_id)

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> "IotCommand":
        commands = required(obj, "commands", list, "iot")
        for c in commands:
            if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not isinstance(c.get("method"), str):
                raise ProtocolError("bad_field", "iot.commands items need name and method strings")
        return cls(commands=tuple(commands), session_id=optional(obj, "session_id", str, "iot"))


@dataclass(frozen=True)
class Pong(Message):
    TYPE: ClassVar[str] = "pong"
    DIRECTION: ClassVar[Direction] = Direction.TO_DEVICE

    timestamp: str
    session_id: str | None = None


@dataclass(frozen=True)
class Error(Message):
    """The hub's JSON error reply for bad input (not a stock message; firmware logs and ignores it)."""

    TYPE: ClassVar[str] = "error"
    DIRECTION: ClassVar[Direction] = Direction.TO_DEVICE

    code: str
    message: str
    session_id: str | None = None


def all_message_classes() -> list[type[Message]]:
    """Every concrete message class (the round-trip test walks this and the module)."""
    return [c for c in globals().values()
            if isinstance(c, type) and issubclass(c, Message) and c is not Message]
