"""Resumable, verified downloads of model files over HTTP(S).

A model file is hundreds of megabytes on a home connection, so an interrupted download must not
start over: bytes go to ``<name>.part`` and a later attempt asks for the rest with an HTTP ``Range``
request. Nothing reaches its final name before its size and sha256 are checked, and the final
rename is atomic, so a half-written model can never be loaded by the hub.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Callable, TextIO
from urllib.parse import urlsplit

import aiohttp

ProgressFn = Callable[[int, "int | None"], None]

CHUNK = 1 << 16
RETRIES = 3          # automatic resumes after a dropped connection, per file
# Reaching the server (DNS, TCP and TLS) must not take longer than this. Short on purpose: where the
# internet is blocked by dropping packets, `models install --defaults` falls back to the registry
# model after this long instead of hanging; a reachable server answers well within it.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0  # silence from a connected server (per read) before the transfer counts as dropped

# aiohttp >= 3.10 tells a connect timeout from a read timeout; on older versions none is caught here.
_ConnectTimeout: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(aiohttp, "ConnectionTimeoutError", None),) if t is not None)


class DownloadError(Exception):
    """A download failed; ``resumable`` is True when a later run continues from the ``.part`` file."""

    def __init__(self, message: str, *, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200" -> 100
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


async def _fetch_once(session: aiohttp.ClientSession, url: str, part: Path, size: int | None,
                      progress: ProgressFn | None) -> None:
    """One HTTP request: append the missing bytes to ``part`` (or restart it when the server ignores Range)."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size:
        return
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    async with session.get(url, headers=headers) as resp:
        if resp.status == 416 and offset:
            return  # we already have every byte the server has; verification decides
        if resp.status not in (200, 206):
            raise DownloadError(f"HTTP {resp.status} from {url}")
        mode = "ab"
        if resp.status == 200 or _content_range_start(resp.headers.get("Content-Range")) != offset:
            offset, mode = 0, "wb"   # no (usable) range support: start over
        total = size
        if total is None and resp.content_length is not None:
            total = offset + resp.content_length
        done = offset
        # Only the installer's download runs on this event loop (a CLI command), so blocking writes
        # delay nothing else; the hub never downloads.
        with open(part, mode) as f:  # noqa: ASYNC230
            async for block in resp.content.iter_chunked(CHUNK):
                f.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if resp.content_length is not None and done - offset < resp.content_length:
            raise aiohttp.ClientPayloadError(f"connection closed after {done} bytes")


async def download(url: str, dest: Path, *, sha256: str | None, size: int | None,
                   progress: ProgressFn | None = None, session: aiohttp.ClientSession | None = None,
                   connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT) -> str:
    """Download ``url`` to ``dest``; returns the sha256 of the file.

    Resumes from ``dest.part`` when present, retries a dropped connection a few times (an
    unreachable server is not retried: it fails after ``connect_timeout``), verifies size and
    sha256 (when given) and renames atomically. A wrong hash deletes the ``.part`` file.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        digest = sha256_file(dest)
        if sha256 is None or digest == sha256:
            return digest
        dest.unlink()
    part = part_path(dest)
    own = session is None
    if own:
        timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_connect=connect_timeout,
                                        sock_read=read_timeout)
        session = aiohttp.ClientSession(timeout=timeout)
    assert session is not None
    try:
        for attempt in range(RETRIES + 1):
            try:
                await _fetch_once(session, url, part, size, progress)
                break
            except _ConnectTimeout:
                raise DownloadError(f"cannot reach {urlsplit(url).netloc}: no answer within {connect_timeout:g} s (offline?)",
                                    resumable=part.exists()) from None
            except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as err:
                if attempt == RETRIES:
                    have = part.stat().st_size if part.exists() else 0
                    raise DownloadError(f"connection lost after {have} bytes ({err.__class__.__name__}); "
                                        "run the same command again to resume", resumable=True) from None
                await asyncio.sleep(min(2.0, 0.2 * 2 ** attempt))
            except aiohttp.ClientConnectorError as err:
                raise DownloadError(f"cannot reach {err.host}:{err.port} (offline?)",
                                    resumable=part.exists()) from None
            except aiohttp.ClientError as err:
                raise DownloadError(f"{err.__class__.__name__}: {err}", resumable=part.exists()) from None
    finally:
        if own:
            await session.close()
    if not part.exists():
        raise DownloadError(f"nothing received from {url}")
    got_size = part.stat().st_size
    if size is not None and got_size != size:
        part.unlink()
        raise DownloadError(f"size mismatch: expected {size} bytes, got {got_size}")
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise DownloadError(f"sha256 mismatch: expected {sha256}, got {digest}")
    os.replace(part, dest)
    return digest


class ConsoleProgress:
    """Progress for a terminal (one updating line) or a log (a line every 10%)."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._t0 = time.monotonic()
        self._last_step = -1
        self._last_draw = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        rate = done / max(now - self._t0, 1e-6)
        if total:
            pct = 100.0 * done / total
            text = f"{self.label}: {pct:5.1f}% {done / 1e6:7.1f}/{total / 1e6:.1f} MB {rate / 1e6:5.1f} MB/s"
            step = int(pct // 10)
        else:
            text = f"{self.label}: {done / 1e6:7.1f} MB {rate / 1e6:5.1f} MB/s"
            step = int(done // 50e6)
        if self.tty:
            if now - self._last_draw >= 0.1 or (total and done >= total):
                self._last_draw = now
                self.stream.write("\r" + text)
                self.stream.flush()
        elif step != self._last_step:
            self._last_step = step
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
