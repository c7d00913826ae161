"""The simulated board's camera: a real image, uploaded the way stock firmware uploads its photos.

Stock firmware (``Esp32Camera::Explain``) POSTs to the URL from MCP ``initialize``
(``capabilities.vision.url``) with ``Device-Id``, ``Client-Id``, ``Authorization: Bearer <token>``
(only when a token was given), ``Content-Type: multipart/form-data; boundary=----ESP32_CAMERA_BOUNDARY``
and ``Transfer-Encoding: chunked``; the parts are ``question``, then ``file`` (``camera.jpg``). The
answer's body becomes the tool result as it is; any status but 200 is the error "Failed to upload photo".

The simulator has no sensor and no JPEG encoder, so its photo is a small PNG test card (colour bars),
encoded here with zlib; the part says what it really is (``camera.png``, ``image/png``).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, AsyncIterator, Callable, Mapping

import aiohttp

BOUNDARY = "----ESP32_CAMERA_BOUNDARY"
BARS = ((255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0), (255, 0, 255), (255, 0, 0), (0, 0, 255))


def png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int]]) -> bytes:
    """An RGB PNG (8 bits per channel, no filter) of ``pixel(x, y)``."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def colour_bars(width: int = 70, height: int = 40) -> bytes:
    """Seven vertical colour bars, as a PNG."""
    return png(width, height, lambda x, _y: BARS[x * len(BARS) // width])


def multipart_body(question: str, image: bytes, filename: str = "camera.png", mime: str = "image/png") -> bytes:
    """The request body the firmware writes, part by part."""
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"question\"\r\n\r\n{question}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {mime}\r\n\r\n").encode() + image + f"\r\n--{BOUNDARY}--\r\n".encode()


async def _chunks(body: bytes, size: int = 512) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):       # the firmware writes 512-byte JPEG chunks
        yield body[i:i + size]


async def upload_photo(session: aiohttp.ClientSession, url: str, token: str, device_id: str, client_id: str,
                       question: str, image: bytes | None = None, *, body: bytes | None = None) -> tuple[int, str]:
    """POST a photo as the firmware does (chunked multipart); returns (status, response text).

    ``body`` replaces the multipart body (tests send malformed ones the same way)."""
    headers = {"Device-Id": device_id, "Client-Id": client_id,
               "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body if body is not None else multipart_body(question, image if image is not None else colour_bars())
    async with session.post(url, data=_chunks(data), headers=headers) as resp:
        return resp.status, await resp.text()


NO_URL = "Image explain URL or token is not set"       # FW: what Explain() throws without a URL
UPLOAD_FAILED = "Failed to upload photo"                # FW: any status but 200


async def take_photo(session: aiohttp.ClientSession, vision: Mapping[str, Any] | None, device_id: str,
                     client_id: str, question: str, image: bytes | None = None) -> tuple[bool, str]:
    """What the firmware's camera tool does: (True, the explain endpoint's body) or (False, its error)."""
    url = str((vision or {}).get("url") or "")
    if not url:
        return False, NO_URL
    try:
        status, body = await upload_photo(session, url, str((vision or {}).get("token") or ""), device_id,
                                          client_id, question, image)
    except aiohttp.ClientError:
        return False, "Failed to connect to explain URL"
    return (True, body) if status == 200 else (False, UPLOAD_FAILED)
