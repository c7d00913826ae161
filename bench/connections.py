"""1,000 idle connections held after the hello: hub RSS per connection, handshake p50/p99.

The handshake is timed like a device feels it: TCP connect + WebSocket upgrade + device hello →
server hello. Connections are opened 50 at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import aiohttp

from .common import hub_process, pct

HELLO = json.dumps({"type": "hello", "version": 1, "features": {"mcp": True}, "transport": "websocket",
                    "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}})


async def _open(session: aiohttp.ClientSession, url: str, i: int) -> tuple[aiohttp.ClientWebSocketResponse, float]:
    t0 = time.monotonic()
    ws = await session.ws_connect(url, headers={"Device-Id": f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                                                "Client-Id": f"bench-{i}", "Protocol-Version": "1"},
                                  heartbeat=None, autoping=True, compress=0)
    await ws.send_str(HELLO)
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type is aiohttp.WSMsgType.TEXT and json.loads(msg.data).get("type") == "hello":
            return ws, time.monotonic() - t0
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"connection {i} closed during hello: {msg}")


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Read and ignore what the hub sends (MCP initialize); like a device that has no MCP tools."""
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def run(n: int = 1000, batch: int = 50) -> list[tuple[str, str, str]]:
    config = {"asr": {"provider": "fake"}, "llm": {"provider": "fake"}, "tts": {"provider": "fake"},
              "session": {"idle_timeout": 3600, "mcp_enabled": False}}
    with hub_process(config) as hub:
        await asyncio.sleep(1.0)
        rss0 = hub.rss_kb()
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            sockets: list[aiohttp.ClientWebSocketResponse] = []
            times: list[float] = []
            for start in range(0, n, batch):
                results = await asyncio.gather(*(_open(session, hub.ws_url, i) for i in range(start, min(n, start + batch))))
                for ws, dt in results:
                    sockets.append(ws)
                    times.append(dt)
            readers = [asyncio.create_task(_drain(ws)) for ws in sockets]
            await asyncio.sleep(2.0)
            rss1 = hub.rss_kb()
            async with session.get(f"http://127.0.0.1:{hub.http_port}/health") as r:
                held = (await r.json())["sessions"]
            for ws in sockets:
                await ws.close()
            for t in readers:
                t.cancel()
        per_conn = (rss1 - rss0) * 1024 / n
    return [
        ("connections held (hello done)", f"{held}", f"{n}"),
        ("hub RSS before / with connections", f"{rss0 / 1024:.1f} MB / {rss1 / 1024:.1f} MB", ""),
        ("hub RSS per connection", f"{per_conn / 1024:.1f} KB", "<= 30 KB"),
        ("handshake p50 (connect+upgrade+hello)", f"{pct(times, 50)} ms", ""),
        ("handshake p99", f"{pct(times, 99)} ms", ""),
    ]
