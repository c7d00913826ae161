"""The UDP audio packet of MQTT+UDP and its AES-128-CTR encryption (docs/protocol.md, MQTT and UDP).

Every datagram, both ways::

    type u8 (0x01) | flags u8 | payload_len u16 | ssrc u32 | timestamp u32 | sequence u32 | payload

big-endian, then ``payload_len`` bytes of Opus encrypted with AES-128-CTR under the channel's key,
with the 16 header bytes themselves as the initial counter block (the whole block counts up, as in
the firmware's PSA/mbedTLS CTR and OpenSSL's). CTR has no integrity check: a forged packet decrypts
to noise, which the Opus decoder rejects or plays as a click, so the receiver's real defences are
the header checks (type, length, ssrc, the peer's address) and the strictly increasing sequence.

The hub hands the device a ``nonce`` that *is* such a header with length, timestamp and sequence
zero: the firmware keeps its bytes 0, 1 and 4-7 (type, flags, ssrc) in every packet it sends and
writes its own length, timestamp and a sequence starting at 1. Pure: no sockets, no asyncio; the
simulator uses the same code for the device side.

Counter blocks must never repeat under one key. The sequence sits in the block's low 32 bits, so
packet *n*'s second block equals packet *n+1*'s first when both have the same length and timestamp
(the firmware's uplink does that; the hub cannot change it). The hub's own packets avoid it: they set
:data:`DOWNLINK_FLAGS` (the device ignores byte 1), so no downlink block equals an uplink one, and
each carries a distinct timestamp (the play position in ms, never 0), so no two downlink blocks meet.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

HEADER = struct.Struct(">BBHIII")
HEADER_BYTES = HEADER.size            # 16
AUDIO_TYPE = 0x01
MAX_SEQUENCE = 0xFFFFFFFF
DOWNLINK_FLAGS = 0x80                 # set on the hub's packets: keeps its counter blocks apart from the device's


class PacketError(ValueError):
    """A datagram that is not a valid audio packet; ``kind`` names the check it failed (a counter)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass(frozen=True)
class Header:
    flags: int
    payload_len: int
    ssrc: int
    timestamp: int
    sequence: int

    def pack(self) -> bytes:
        return HEADER.pack(AUDIO_TYPE, self.flags, self.payload_len, self.ssrc, self.timestamp, self.sequence)


@dataclass(frozen=True)
class ChannelKeys:
    """One audio channel's secrets: a random key, and the nonce (a header template carrying the ssrc)."""

    key: bytes
    ssrc: int

    @classmethod
    def new(cls, ssrc: int | None = None) -> "ChannelKeys":
        return cls(os.urandom(16), int.from_bytes(os.urandom(4), "big") if ssrc is None else ssrc)

    @property
    def nonce(self) -> bytes:
        return Header(0, 0, self.ssrc, 0, 0).pack()

    def hello_fields(self) -> dict[str, str]:
        """``key`` and ``nonce`` as the hub hello carries them: 32 hex digits each."""
        return {"key": self.key.hex(), "nonce": self.nonce.hex()}


def _ctr(key: bytes, counter_block: bytes, data: bytes) -> bytes:
    crypt = Cipher(algorithms.AES(key), modes.CTR(counter_block)).encryptor()
    return crypt.update(data) + crypt.finalize()


def seal(key: bytes, ssrc: int, sequence: int, payload: bytes, timestamp: int = 0, flags: int = 0) -> bytes:
    """One datagram: header + payload encrypted with the header as counter block."""
    if len(payload) > 0xFFFF:
        raise ValueError("payload longer than 65535 bytes")
    header = Header(flags, len(payload), ssrc, timestamp & 0xFFFFFFFF, sequence).pack()
    return header + _ctr(key, header, payload)


def peek(datagram: bytes, max_bytes: int) -> Header:
    """Check the clear-text header of a datagram (before any key is looked up)."""
    if len(datagram) > max_bytes:
        raise PacketError("oversized", f"datagram of {len(datagram)} bytes (limit {max_bytes})")
    if len(datagram) < HEADER_BYTES:
        raise PacketError("short", f"datagram of {len(datagram)} bytes is shorter than the header")
    kind, flags, length, ssrc, timestamp, sequence = HEADER.unpack_from(datagram)
    if kind != AUDIO_TYPE:
        raise PacketError("bad_type", f"packet type {kind:#04x} (expected 0x01)")
    if len(datagram) != HEADER_BYTES + length:
        raise PacketError("bad_length", f"header says {length} payload bytes, datagram has {len(datagram) - HEADER_BYTES}")
    return Header(flags, length, ssrc, timestamp, sequence)


def open_payload(key: bytes, datagram: bytes) -> bytes:
    """The decrypted payload of a datagram whose header :func:`peek` accepted."""
    return _ctr(key, datagram[:HEADER_BYTES], datagram[HEADER_BYTES:])
