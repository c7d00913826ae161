"""The HTTP app on the HTTP port (default 8003): status page, health, metrics, session API.

:func:`create_http_app` also adds the routes of the other HTTP modules: the device API
(:mod:`.devices`), OTA and activation (:mod:`.ota`, when enabled), firmware (:mod:`.firmware`), the
camera's photo uploads (:mod:`.vision`), and the hub API with its admin-token gate and event stream
(:mod:`.api`).
"""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import __version__
from . import api, devices, firmware, ota, vision

if TYPE_CHECKING:
    from ..context import HubContext

CTX_KEY: web.AppKey["HubContext"] = web.AppKey("ctx")


def session_info(ctx: "HubContext") -> list[dict[str, Any]]:
    now = time.monotonic()
    out = []
    for s in ctx.registry:
        out.append({
            "device_id": s.device_id, "session_id": s.id, "state": s.state.value, "mode": s.mode.value,
            "protocol_version": s.protocol_version, "remote": s.conn.remote,
            "connected_seconds": round(now - s.connected_at, 1),
            "mcp_tools": [t.name for t in s.link.device_tools()],
        })
    return out


def provider_names(ctx: "HubContext") -> dict[str, str]:
    p = ctx.providers
    # The VAD Protocol declares no name (the others do); the WebRTC VAD has one all the same.
    vad = getattr(p.vad, "name", type(p.vad).__name__)
    return {"vad": vad, "asr": p.asr.name, "llm": p.llm.name, "tts": p.tts.name}


async def health(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    return web.json_response({"status": "ok", "version": __version__, "hub_id": ctx.hub_id,
                              "uptime_seconds": round(time.time() - ctx.started_at, 1),
                              "sessions": len(ctx.registry)})


async def api_status(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    m = ctx.metrics
    return web.json_response({
        "version": __version__, "hub_id": ctx.hub_id, "ws_url": ctx.ws_url(request.host.split(":")[0]),
        "sessions": session_info(ctx),
        "providers": provider_names(ctx),
        "latency": {name: m.summary(name) for name in ("asr_final", "first_token", "first_sentence", "first_synth", "first_audio")},
        "counters": dict(m.counters),
    })


async def metrics(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    return web.Response(text=ctx.metrics.prometheus(), content_type="text/plain")


async def status_page(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    host = request.host.split(":")[0]
    m = ctx.metrics.summary("first_audio")
    rows = "".join(
        f"<tr><td>{html.escape(s['device_id'])}</td><td>{s['state']}</td><td>{s['mode']}</td>"
        f"<td>{s['connected_seconds']}</td></tr>" for s in session_info(ctx)) or "<tr><td colspan=4>none</td></tr>"
    latency = (f"{m['p50'] * 1000:.0f} ms median, {m['p95'] * 1000:.0f} ms p95 over {m['count']} turns"
               if m.get("count") else "no turns yet")
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>xiaozhi-hub</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:50em}}td,th{{padding:.2em 1em;text-align:left}}</style></head>
<body><h1>xiaozhi-hub {__version__}</h1>
<p>Give devices this OTA URL: <code>{html.escape(ctx.http_url(host))}/xiaozhi/ota/</code><br>
WebSocket URL: <code>{html.escape(ctx.ws_url(host))}</code></p>
<p>End of speech &rarr; first audio: {latency}</p>
<h2>Connected devices</h2><table><tr><th>device</th><th>state</th><th>mode</th><th>connected (s)</th></tr>{rows}</table>
<p><a href="/api/status">/api/status</a> &middot; <a href="/metrics">/metrics</a> &middot; <a href="/health">/health</a></p>
</body></html>"""
    return web.Response(text=body, content_type="text/html")


def create_http_app(ctx: "HubContext") -> web.Application:
    """Every HTTP route of the hub; OTA and activation only while ``ctx.ota`` is set (``ota.enabled``)."""
    app = web.Application(client_max_size=1024 ** 2)
    app[CTX_KEY] = ctx
    app.router.add_get("/", status_page)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/status", api_status)
    devices.add_routes(app, ctx)
    if ctx.ota is not None:
        ota.add_routes(app, ctx.ota)
    firmware.add_routes(app, ctx)
    vision.add_routes(app, ctx)
    api.add_routes(app, ctx)
    return app
