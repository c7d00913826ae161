"""URL downloads against a local server: complete, resumed, corrupted, missing and offline."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from xiaozhi_hub.models.download import DownloadError, download, part_path

from .conftest import FileServer, sha

DATA = os.urandom(300_000)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_download_verifies_reports_progress_and_renames_atomically(file_server: FileServer, tmp_path: Path):
    file_server.files["m.bin"] = DATA
    seen: list[tuple[int, int | None]] = []
    dest = tmp_path / "m.bin"
    digest = await download(file_server.url("m.bin"), dest, sha256=sha(DATA), size=len(DATA),
                            progress=lambda d, t: seen.append((d, t)))
    assert digest == sha(DATA)
    assert dest.read_bytes() == DATA
    assert not part_path(dest).exists()
    assert seen[-1] == (len(DATA), len(DATA))
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


async def test_connection_cut_midway_is_resumed_with_a_range_request(file_server: FileServer, tmp_path: Path):
    file_server.files["m.bin"] = DATA
    file_server.cut_first.add("m.bin")
    dest = tmp_path / "m.bin"
    await download(file_server.url("m.bin"), dest, sha256=sha(DATA), size=len(DATA))
    assert dest.read_bytes() == DATA
    ranges = [r for _, r in file_server.requests]
    assert ranges[0] is None
    assert ranges[1] is not None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"


async def test_leftover_part_file_from_an_earlier_run_is_continued(file_server: FileServer, tmp_path: Path):
    file_server.files["m.bin"] = DATA
    dest = tmp_path / "m.bin"
    part_path(dest).write_bytes(DATA[:120_000])
    await download(file_server.url("m.bin"), dest, sha256=sha(DATA), size=len(DATA))
    assert dest.read_bytes() == DATA
    assert file_server.requests == [("m.bin", "bytes=120000-")]


async def test_server_without_range_support_restarts_cleanly(file_server: FileServer, tmp_path: Path):
    file_server.files["m.bin"] = DATA
    file_server.ignore_range = True
    dest = tmp_path / "m.bin"
    part_path(dest).write_bytes(b"garbage that must not stay in front")
    await download(file_server.url("m.bin"), dest, sha256=sha(DATA), size=None)
    assert dest.read_bytes() == DATA


async def test_hash_mismatch_deletes_the_part_file_and_names_both_hashes(file_server: FileServer, tmp_path: Path):
    file_server.files["m.bin"] = DATA
    dest = tmp_path / "m.bin"
    with pytest.raises(DownloadError, match="sha256 mismatch") as info:
        await download(file_server.url("m.bin"), dest, sha256="0" * 64, size=len(DATA))
    assert sha(DATA) in str(info.value)
    assert not dest.exists() and not part_path(dest).exists()


async def test_404_is_reported_with_the_status(file_server: FileServer, tmp_path: Path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        await download(file_server.url("nope.bin"), tmp_path / "x", sha256=None, size=None)


async def test_offline_is_a_clear_error(tmp_path: Path):
    url = f"http://127.0.0.1:{closed_port()}/m.bin"
    with pytest.raises(DownloadError, match="cannot reach 127.0.0.1"):
        await download(url, tmp_path / "m.bin", sha256=None, size=None, connect_timeout=2)


async def test_existing_verified_file_is_not_downloaded_again(file_server: FileServer, tmp_path: Path):
    dest = tmp_path / "m.bin"
    dest.write_bytes(DATA)
    assert await download(file_server.url("m.bin"), dest, sha256=sha(DATA), size=len(DATA)) == sha(DATA)
    assert file_server.requests == []


async def test_a_server_that_never_answers_fails_after_the_connect_timeout_without_retries(blackhole: str,
                                                                                          tmp_path: Path):
    """Where the internet is blocked by dropped packets, the installer's fallback must come quickly:
    one connect attempt, bounded by ``connect_timeout``, not RETRIES of them."""
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=rf"cannot reach {blackhole}: no answer within 1 s") as info:
        await download(f"http://{blackhole}/m.bin", tmp_path / "m.bin", sha256=None, size=None, connect_timeout=1.0)
    elapsed = time.monotonic() - t0
    assert not info.value.resumable
    # Retrying would take at least 4 x 1 s plus the back-off (5.4 s); one attempt takes about 1 s.
    assert elapsed < 5.0, elapsed
