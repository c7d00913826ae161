"""Reading Wyoming events with limits; writing them with the library's own codec.

A Wyoming event is one JSON header line (``type``, optional ``data``, ``data_length``,
``payload_length``), then ``data_length`` bytes of extra JSON data, then ``payload_length`` bytes of
binary payload. The library's ``async_read_event`` trusts both lengths (a header announcing a 10 GB
payload makes it try to read 10 GB) and turns every malformed frame into "end of stream", so a bad
client looks like a clean disconnect. :func:`read_event` checks every length against the limits in
``wyoming.*`` settings before reading and raises :class:`FrameError` naming the problem; the
connection answers it with an ``error`` event and closes (after a framing error the stream cannot be
resynchronised).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.event import Event, async_write_event

__all__ = ["FrameError", "read_event", "write_event"]


class FrameError(Exception):
    """The byte stream is not a well-formed Wyoming event within the limits."""

    def __init__(self, message: str, code: str = "bad-event") -> None:
        super().__init__(message)
        self.code = code


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FrameError(f"{key} must be a non-negative integer, got {value!r}")
    if value > limit:
        raise FrameError(f"{key} {value} is over the limit of {limit} bytes", code="too-large")
    return value


async def read_event(reader: asyncio.StreamReader, *, max_event_bytes: int, max_payload_bytes: int) -> Event | None:
    """The next event, or None when the peer closed the stream between events.

    The reader must have been created with ``limit=max_event_bytes`` (``asyncio.start_server(limit=...)``)
    so an endless header line is refused after that many bytes instead of being buffered.
    """
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as err:
        if err.partial.strip():
            raise FrameError("the connection closed in the middle of an event header") from None
        return None
    except asyncio.LimitOverrunError:
        raise FrameError(f"event header longer than {max_event_bytes} bytes", code="too-large") from None
    try:
        header = json.loads(line)
    except ValueError:
        raise FrameError("event header is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str) or not header["type"]:
        raise FrameError('event header must be a JSON object with a "type" string')
    data = header.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FrameError('"data" must be a JSON object')
    data_length = _length(header, "data_length", max_event_bytes)
    payload_length = _length(header, "payload_length", max_payload_bytes)
    try:
        if data_length:
            try:
                extra = json.loads(await reader.readexactly(data_length))
            except ValueError:
                raise FrameError("event data is not JSON") from None
            if not isinstance(extra, dict):
                raise FrameError("event data must be a JSON object")
            data.update(extra)
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        raise FrameError("the connection closed in the middle of an event") from None
    return Event(type=header["type"], data=data, payload=payload)


async def write_event(event: Event, writer: asyncio.StreamWriter) -> None:
    """Write one event and wait until the socket buffer has room again (backpressure)."""
    await async_write_event(event, writer)
