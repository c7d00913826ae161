"""Firmware image files: what an ESP-IDF app image says about itself, and copying one into the store.

An ESP32 app image carries its own version in ``esp_app_desc_t``; the store checks it against the
version the image is filed under (see :mod:`xiaozhi_hub.store.firmware`). Copying in is atomic: the
bytes go to a temporary file in the store's folder, are fsynced, and only then renamed to
``<sha256>.bin`` (the caller does the rename and indexes the record).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from .devices import DeviceError

MAX_IMAGE_BYTES = 32 * 1024 * 1024       # larger than any ESP32 OTA partition

# ESP-IDF image layout: esp_image_header_t (24 bytes), the first esp_image_segment_header_t (8 bytes),
# then esp_app_desc_t (256 bytes) whose version field the device reports after booting the image.
ESP_IMAGE_MAGIC = 0xE9
APP_DESC_OFFSET = 24 + 8
APP_DESC_MAGIC = 0xABCD5432
APP_DESC_SIZE = 256
IMAGE_HEAD_BYTES = APP_DESC_OFFSET + APP_DESC_SIZE
CHIP_IDS = {0: "esp32", 2: "esp32s2", 5: "esp32c3", 9: "esp32s3", 12: "esp32c2", 13: "esp32c6",
            16: "esp32h2", 18: "esp32p4", 20: "esp32c61", 23: "esp32c5"}


class FirmwareError(DeviceError):
    """A firmware operation that cannot be done; the message is meant for the user."""


class FirmwareNotFound(FirmwareError):
    status = 404


# ---------------------------------------------------------------------------- image inspection

@dataclass(frozen=True)
class ImageInfo:
    """What an ESP-IDF app image says about itself."""

    version: str
    project_name: str
    idf_version: str
    chip: str | None


def _c_string(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def inspect_image(head: bytes) -> ImageInfo:
    """Read the image header and app description; raises :class:`FirmwareError` if it is not an app image."""
    if len(head) < IMAGE_HEAD_BYTES:
        raise FirmwareError(f"file is too small to be an ESP32 app image ({len(head)} bytes)")
    if head[0] != ESP_IMAGE_MAGIC:
        raise FirmwareError(f"not an ESP32 app image: first byte is 0x{head[0]:02X}, expected 0xE9 "
                            "(use the app binary, e.g. build/xiaozhi.bin, not merged-binary.bin or a zip)")
    (desc_magic,) = struct.unpack_from("<I", head, APP_DESC_OFFSET)
    if desc_magic != APP_DESC_MAGIC:
        raise FirmwareError("not an ESP32 app image: no esp_app_desc_t at offset 0x20 "
                            "(a bootloader or partition table?)")
    (chip_id,) = struct.unpack_from("<H", head, 12)
    d = APP_DESC_OFFSET
    return ImageInfo(version=_c_string(head[d + 16:d + 48]), project_name=_c_string(head[d + 48:d + 80]),
                     idf_version=_c_string(head[d + 112:d + 144]), chip=CHIP_IDS.get(chip_id))


# ---------------------------------------------------------------------------- copying in

def check_source(src: Path) -> None:
    """Refuse what cannot be an image before copying anything (missing, not a file, empty, too large)."""
    try:
        size = src.stat().st_size
    except OSError as err:
        raise FirmwareError(f"cannot read {src}: {err.strerror}") from None
    if not src.is_file():
        raise FirmwareError(f"{src} is not a file")
    if size == 0:
        raise FirmwareError(f"{src} is empty")
    if size > MAX_IMAGE_BYTES:
        raise FirmwareError(f"{src} is {size} bytes; larger than any ESP32 firmware ({MAX_IMAGE_BYTES} max)")


@dataclass(frozen=True)
class Copied:
    """A source copied to a temporary file: its SHA-256, its size and its first bytes (for inspection)."""

    sha256: str
    size: int
    head: bytes


def copy_to(src: Path, tmp: Path) -> Copied:
    """Copy ``src`` to the new file ``tmp`` and fsync it; refuses a source that grows past the limit."""
    digest = hashlib.sha256()
    head = b""
    written = 0
    with open(src, "rb") as fin, open(tmp, "xb") as fout:
        while chunk := fin.read(1 << 20):
            if len(head) < IMAGE_HEAD_BYTES:
                head += chunk[:IMAGE_HEAD_BYTES - len(head)]
            digest.update(chunk)
            fout.write(chunk)
            written += len(chunk)
            if written > MAX_IMAGE_BYTES:
                raise FirmwareError(f"{src} grew past {MAX_IMAGE_BYTES} bytes while being copied")
        fout.flush()
        os.fsync(fout.fileno())
    return Copied(digest.hexdigest(), written, head)


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):   # not every file system lets a directory be opened for fsync
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
