"""MQTT 3.1.1 packets, as much as a device-only endpoint needs (docs/mqtt-udp.md, The MQTT endpoint).

Pure: bytes in, dataclasses out, and back; no asyncio, no settings. The hub's endpoint and the
simulator's client both use it. :func:`read_packet` reads one packet from anything with an async
``readexactly`` (an ``asyncio.StreamReader``) and refuses a packet longer than the caller's limit
*before* reading its body, so a huge length field costs nothing.

Supported: CONNECT/CONNACK, PUBLISH with QoS 0 and 1 (PUBACK), SUBSCRIBE/SUBACK and
UNSUBSCRIBE/UNSUBACK (accepted and answered; delivery does not depend on them), PINGREQ/PINGRESP,
DISCONNECT. QoS 2, MQTT 5 and malformed packets raise :class:`MqttError`.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Protocol

MAX_REMAINING_LENGTH = 268_435_455      # the largest a 4-byte length can say


class MqttError(ValueError):
    """A packet that breaks the protocol (the connection is closed)."""


class UnsupportedProtocol(MqttError):
    """A CONNECT for another protocol level (MQTT 5, say): answered with CONNACK 1, then closed."""

    def __init__(self, level: int) -> None:
        super().__init__(f"MQTT protocol level {level} is not supported (3.1.1 is)")
        self.level = level


class PacketType(enum.IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ConnackCode(enum.IntEnum):
    ACCEPTED = 0
    BAD_PROTOCOL = 1           # unacceptable protocol version
    ID_REJECTED = 2
    UNAVAILABLE = 3
    BAD_CREDENTIALS = 4        # bad user name or password
    NOT_AUTHORIZED = 5


@dataclass(frozen=True)
class RawPacket:
    type: PacketType
    flags: int
    body: bytes


@dataclass(frozen=True)
class Connect:
    protocol_level: int
    client_id: str
    username: str | None
    password: bytes | None
    keepalive: int               # seconds; 0 = none
    clean_session: bool
    will: bool


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    packet_id: int | None = None
    retain: bool = False
    dup: bool = False


class ByteReader(Protocol):
    async def readexactly(self, n: int, /) -> bytes: ...


# ---------------------------------------------------------------------------- reading

async def read_packet(reader: ByteReader, max_bytes: int) -> RawPacket:
    """One packet; raises :class:`MqttError` when its body would exceed ``max_bytes``, and
    ``asyncio.IncompleteReadError`` (an ``EOFError``) when the peer closes mid-packet."""
    first = (await reader.readexactly(1))[0]
    length = 0
    for shift in (0, 7, 14, 21):
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    else:
        raise MqttError("remaining length longer than 4 bytes")
    if length > max_bytes:
        raise MqttError(f"packet of {length} bytes is over the limit of {max_bytes}")
    kind = first >> 4
    if not 1 <= kind <= 14:
        raise MqttError(f"packet type {kind} does not exist in MQTT 3.1.1")
    body = await reader.readexactly(length) if length else b""
    return RawPacket(PacketType(kind), first & 0x0F, body)


class _Cursor:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MqttError("packet ends early")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        raw = self.binary()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MqttError("string is not UTF-8") from None
        if "\x00" in text:
            raise MqttError("string contains U+0000")
        return text

    def rest(self) -> bytes:
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


def parse_connect(body: bytes) -> Connect:
    c = _Cursor(body)
    name = c.string()
    if name not in ("MQTT", "MQIsdp"):
        raise MqttError(f"not an MQTT CONNECT (protocol name {name[:16]!r})")
    level = c.u8()
    if level not in (3, 4):
        raise UnsupportedProtocol(level)
    flags = c.u8()
    if flags & 0x01:
        raise MqttError("CONNECT reserved flag is set")
    keepalive = c.u16()
    client_id = c.string()
    will = bool(flags & 0x04)
    if will:
        c.string()          # will topic
        c.binary()          # will message (the hub publishes nothing on a client's behalf)
    username = c.string() if flags & 0x80 else None
    password = c.binary() if flags & 0x40 else None
    if not c.done:
        raise MqttError("CONNECT has trailing bytes")
    return Connect(level, client_id, username, password, keepalive, bool(flags & 0x02), will)


def parse_publish(flags: int, body: bytes) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MqttError("PUBLISH with QoS 3")
    c = _Cursor(body)
    topic = c.string()
    packet_id = c.u16() if qos else None
    return Publish(topic, c.rest(), qos, packet_id, bool(flags & 0x01), bool(flags & 0x08))


def parse_subscribe(body: bytes) -> tuple[int, list[tuple[str, int]]]:
    c = _Cursor(body)
    packet_id = c.u16()
    filters: list[tuple[str, int]] = []
    while not c.done:
        topic = c.string()
        filters.append((topic, c.u8() & 0x03))
    if not filters:
        raise MqttError("SUBSCRIBE without a topic filter")
    return packet_id, filters


def parse_unsubscribe(body: bytes) -> tuple[int, list[str]]:
    c = _Cursor(body)
    packet_id = c.u16()
    topics: list[str] = []
    while not c.done:
        topics.append(c.string())
    return packet_id, topics


def parse_packet_id(body: bytes) -> int:
    """PUBACK (and the other acknowledgements): just the packet id."""
    return _Cursor(body).u16()


def parse_connack(body: bytes) -> tuple[bool, int]:
    """(session present, return code)."""
    c = _Cursor(body)
    return bool(c.u8() & 0x01), c.u8()


# ---------------------------------------------------------------------------- writing

def _length(n: int) -> bytes:
    if n > MAX_REMAINING_LENGTH:
        raise MqttError("packet too long for MQTT")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(kind: PacketType, flags: int, body: bytes) -> bytes:
    return bytes([(kind << 4) | flags]) + _length(len(body)) + body


def _str(text: str) -> bytes:
    return _bin(text.encode("utf-8"))


def _bin(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise MqttError("string longer than 65535 bytes")
    return struct.pack(">H", len(data)) + data


def connect(client_id: str, username: str | None = None, password: str | bytes | None = None,
            keepalive: int = 240, clean_session: bool = True) -> bytes:
    flags = (0x02 if clean_session else 0) | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _str("MQTT") + bytes([4, flags]) + struct.pack(">H", keepalive) + _str(client_id)
    if username is not None:
        body += _str(username)
    if password is not None:
        body += _bin(password.encode() if isinstance(password, str) else password)
    return _packet(PacketType.CONNECT, 0, body)


def connack(code: ConnackCode, session_present: bool = False) -> bytes:
    return _packet(PacketType.CONNACK, 0, bytes([1 if session_present else 0, int(code)]))


def publish(topic: str, payload: bytes, qos: int = 0, packet_id: int | None = None, retain: bool = False) -> bytes:
    if qos not in (0, 1):
        raise MqttError("only QoS 0 and 1 are supported")
    body = _str(topic)
    if qos:
        if packet_id is None:
            raise MqttError("QoS 1 needs a packet id")
        body += struct.pack(">H", packet_id)
    return _packet(PacketType.PUBLISH, (qos << 1) | (1 if retain else 0), body + payload)


def puback(packet_id: int) -> bytes:
    return _packet(PacketType.PUBACK, 0, struct.pack(">H", packet_id))


def subscribe(packet_id: int, topic: str, qos: int = 0) -> bytes:
    return _packet(PacketType.SUBSCRIBE, 0x02, struct.pack(">H", packet_id) + _str(topic) + bytes([qos]))


def suback(packet_id: int, codes: list[int]) -> bytes:
    return _packet(PacketType.SUBACK, 0, struct.pack(">H", packet_id) + bytes(codes))


def unsuback(packet_id: int) -> bytes:
    return _packet(PacketType.UNSUBACK, 0, struct.pack(">H", packet_id))


PINGREQ = _packet(PacketType.PINGREQ, 0, b"")
PINGRESP = _packet(PacketType.PINGRESP, 0, b"")
DISCONNECT = _packet(PacketType.DISCONNECT, 0, b"")
