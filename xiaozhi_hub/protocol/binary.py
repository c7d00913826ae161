"""Binary audio frame headers (docs/protocol.md, Binary frames).

v1: the frame is one Opus packet. v2: 16-byte header ``version u16 | type u16 | reserved u32 |
timestamp u32 | payload_size u32``. v3: 4-byte header ``type u8 | reserved u8 | payload_size u16``.
All big-endian. The device trusts ``payload_size`` when it receives; the hub checks it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .messages import ProtocolError

_V2 = struct.Struct(">HHIII")
_V3 = struct.Struct(">BBH")
V2_HEADER = _V2.size
V3_HEADER = _V3.size


@dataclass(frozen=True, slots=True)
class AudioFrame:
    payload: bytes
    timestamp: int = 0


def encode_audio(payload: bytes, version: int = 1, timestamp: int = 0) -> bytes:
    if version == 1:
        return payload
    if version == 2:
        return _V2.pack(2, 0, 0, timestamp & 0xFFFFFFFF, len(payload)) + payload
    if version == 3:
        if len(payload) > 0xFFFF:
            raise ProtocolError("too_large", "v3 payload is limited to 65535 bytes")
        return _V3.pack(0, 0, len(payload)) + payload
    raise ProtocolError("bad_version", f"binary protocol version {version} is not 1, 2 or 3")


def decode_audio(frame: bytes, version: int = 1) -> AudioFrame:
    if version == 1:
        return AudioFrame(bytes(frame))
    if version == 2:
        if len(frame) < V2_HEADER:
            raise ProtocolError("short_frame", f"v2 frame shorter than its {V2_HEADER}-byte header")
        _ver, type_, _res, ts, size = _V2.unpack_from(frame)
        if type_ != 0:
            raise ProtocolError("bad_field", f"v2 frame type {type_} is not audio (0)")
        if size > len(frame) - V2_HEADER:
            raise ProtocolError("bad_length", f"v2 payload_size {size} exceeds the frame")
        return AudioFrame(bytes(frame[V2_HEADER:V2_HEADER + size]), ts)
    if version == 3:
        if len(frame) < V3_HEADER:
            raise ProtocolError("short_frame", f"v3 frame shorter than its {V3_HEADER}-byte header")
        type_, _res, size = _V3.unpack_from(frame)
        if type_ != 0:
            raise ProtocolError("bad_field", f"v3 frame type {type_} is not audio (0)")
        if size > len(frame) - V3_HEADER:
            raise ProtocolError("bad_length", f"v3 payload_size {size} exceeds the frame")
        return AudioFrame(bytes(frame[V3_HEADER:V3_HEADER + size]))
    raise ProtocolError("bad_version", f"binary protocol version {version} is not 1, 2 or 3")
