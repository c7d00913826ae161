"""Firmware image bytes for the store and HTTP tests (no real firmware is needed to test the store)."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, Callable


def make_image(version: str, payload: int = 6000, chip_id: int = 9, seed: int = 1) -> bytes:
    """A minimal ESP-IDF app image: header (magic 0xE9), one segment header, esp_app_desc_t, filler."""
    header = bytearray(24)
    header[0] = 0xE9
    header[1] = 1
    struct.pack_into("<H", header, 12, chip_id)
    segment = bytes(8)
    desc = bytearray(256)
    struct.pack_into("<I", desc, 0, 0xABCD5432)
    desc[16:16 + len(version)] = version.encode()
    desc[48:55] = b"xiaozhi"
    desc[112:118] = b"v5.4.1"
    filler = bytes((i * 31 + seed * 7) % 251 for i in range(payload))
    return bytes(header) + segment + bytes(desc) + filler


def image_writer(folder: Path) -> Callable[..., Path]:
    """``write(version, name=None, **make_image_kw)`` stores an image file in ``folder`` and returns its path."""
    def write(version: str, name: str | None = None, **kw: Any) -> Path:
        path = folder / (name or f"fw-{version}-{os.urandom(3).hex()}.bin")
        path.write_bytes(make_image(version, **kw))
        return path
    return write
