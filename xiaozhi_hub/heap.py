"""The process's native heap (glibc malloc): few arenas, and free memory handed back to the system.

The engines allocate from C and C++ on several threads (CTranslate2 for Whisper, ONNX Runtime for
Piper, llama.cpp, Opus). glibc gives each thread that meets a locked arena an arena of its own, up
to eight per core, and an arena keeps the memory freed inside it: in a 30-minute household run
(``python -m bench soak``) the hub's RSS rose from 630 MB at "ready" to 925 MB, 300 MB of it in
a dozen 64 MB arenas, and it went on growing (~35 MB per 10 minutes) as each arena's high-water mark
crept up. Two measures, both no-ops where the C library is not glibc:

- :func:`limit_arenas` caps the arenas at ``ARENAS`` (set at start-up, before the engines start
  their threads): the threads share them, so their free memory is reused instead of kept apart.
- :func:`trim_when_quiet` calls ``malloc_trim(0)`` every ``TRIM_PERIOD_S`` when no engine is working,
  which returns the free pages inside every arena to the system. One trim takes a few milliseconds,
  on a compute thread; the time it took and what it released are on ``/metrics`` (``heap_trim``).

Measured figures: docs/design.md, Memory.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .compute import ComputePool
    from .metrics import Metrics

log = logging.getLogger(__name__)

ARENAS = 2             # malloc arenas for the whole process
TRIM_PERIOD_S = 20.0   # how often free memory is handed back (when the engines are idle)
MAX_DELAY = 3          # periods a trim may wait for idle engines
_M_ARENA_MAX = -8      # mallopt parameter number (glibc malloc.h)
_ENGINES = ("asr", "llm", "tts")


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim     # glibc only (musl has neither)
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return libc


_LIBC = _libc()


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas (call it before threads start allocating); False if not glibc."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Hand the free pages of every arena back to the system; True if some memory was released."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))


def rss_kb() -> int:
    """This process's resident set size (kB), 0 where ``/proc`` is missing."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024     # 16 KiB pages on a Raspberry Pi 5 kernel


def _engines_idle(compute: "ComputePool") -> bool:
    return all(compute.limit(kind).active == 0 for kind in _ENGINES)


async def trim_when_quiet(compute: "ComputePool", metrics: "Metrics", period: float = TRIM_PERIOD_S,
                          poll: float = 2.0) -> None:
    """Trim the heap every ``period`` seconds, at a moment no engine is working (looked for every
    ``poll`` seconds); under load that never pauses, after ``MAX_DELAY`` periods regardless."""
    if _LIBC is None:
        return
    last = time.monotonic()
    while True:
        await asyncio.sleep(poll)
        since = time.monotonic() - last
        if since < period or (not _engines_idle(compute) and since < MAX_DELAY * period):
            continue
        last = time.monotonic()
        before = rss_kb()
        try:
            await compute.run("heap", trim)
        except Exception as err:      # the pool is shutting down: nothing to hand back then
            log.debug("heap trim skipped: %s", err)
            continue
        metrics.observe("heap_trim", time.monotonic() - last)
        after = rss_kb()
        metrics.inc("heap_trim_released_kb", max(0, before - after))
        metrics.gauges["rss_mb"] = round(after / 1024, 1)
