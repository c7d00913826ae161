"""The native heap: glibc's free memory really goes back to the system, and trims wait for quiet engines."""

import asyncio
import ctypes
import platform

import pytest

from xiaozhi_hub import heap
from xiaozhi_hub.compute import ComputePool
from xiaozhi_hub.metrics import Metrics

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim and mallopt are glibc's")


@glibc
def test_trim_returns_freed_memory_that_malloc_keeps():
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    heap.trim()
    before = heap.rss_kb()
    blocks = []
    for _ in range(16384):                       # 64 MiB in 4 KiB blocks, below the mmap threshold
        p = libc.malloc(4096)
        ctypes.memset(p, 1, 4096)                # touched: resident
        blocks.append(p)
    for i, p in enumerate(blocks):
        if i % 64:                               # every 64th block stays: the free space is fragmented,
            libc.free(p)                         # so free() alone cannot shrink the heap's top
    kept = heap.rss_kb()
    assert kept - before > 48 * 1024, "the freed blocks stay resident inside malloc's heap"
    assert heap.trim() is True
    trimmed = heap.rss_kb()
    for i, p in enumerate(blocks):
        if i % 64 == 0:
            libc.free(p)
    assert kept - trimmed > 40 * 1024, f"malloc_trim released only {kept - trimmed} kB"


@glibc
def test_arena_cap_is_accepted():
    assert heap.limit_arenas(heap.ARENAS) is True


async def test_trims_wait_for_idle_engines_then_report():
    pool = ComputePool(workers=2)
    pool.set_limit("llm", 1)
    metrics = Metrics()
    task = asyncio.create_task(heap.trim_when_quiet(pool, metrics, period=0.05, poll=0.01))
    try:
        async with pool.slot("llm"):             # a generation runs: no trim yet
            await asyncio.sleep(0.1)             # past one period, before MAX_DELAY periods
            assert metrics.summary("heap_trim")["count"] == 0
        for _ in range(200):                     # the engine is idle now: the next poll trims
            if metrics.summary("heap_trim")["count"]:
                break
            await asyncio.sleep(0.01)
        if heap._LIBC is None:
            assert metrics.summary("heap_trim")["count"] == 0
        else:
            assert metrics.summary("heap_trim")["count"] >= 1
            assert metrics.gauges["rss_mb"] > 0
    finally:
        task.cancel()
        pool.shutdown()


async def test_a_busy_engine_delays_a_trim_at_most_max_delay_periods():
    if heap._LIBC is None:
        pytest.skip("no glibc: nothing to trim")
    pool = ComputePool(workers=2)
    pool.set_limit("llm", 1)
    metrics = Metrics()
    task = asyncio.create_task(heap.trim_when_quiet(pool, metrics, period=0.05, poll=0.01))
    try:
        async with pool.slot("llm"):             # never idle
            for _ in range(300):
                if metrics.summary("heap_trim")["count"]:
                    break
                await asyncio.sleep(0.01)
            assert metrics.summary("heap_trim")["count"] >= 1
    finally:
        task.cancel()
        pool.shutdown()
