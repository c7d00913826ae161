"""A fake Home Assistant Supervisor on 127.0.0.1: the services and discovery endpoints the hub uses,
checking the bearer token and recording every request."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
ADDON = ROOT / "addon"
TOKEN = "supervisor-token-0123456789abcdef"
MQTT = {"addon": "core_mosquitto", "host": "core-mosquitto", "port": 1883, "ssl": False,
        "username": "addons", "password": "mqtt-secret-password-42", "protocol": "3.1.1"}


@dataclass
class FakeSupervisor:
    url: str = ""
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    mqtt: dict[str, Any] | None = field(default_factory=lambda: dict(MQTT))
    fail_discovery: int = 0             # answer this many discovery posts with HTTP 503 first

    def discoveries(self) -> dict[str, dict[str, Any]]:
        return {body["service"]: body["config"] for method, path, body in self.requests
                if method == "POST" and path == "/discovery" and body is not None and "config" in body}


def _ok(data: Any) -> web.Response:
    return web.json_response({"result": "ok", "data": data})


@pytest.fixture
async def supervisor():
    fake = FakeSupervisor()

    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        body = json.loads(await request.text()) if request.can_read_body else None
        fake.requests.append((request.method, request.path, body))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"result": "error", "message": "Unauthorized"}, status=401)
        return await handler(request)

    async def services_mqtt(request: web.Request) -> web.Response:
        if fake.mqtt is None:
            return web.json_response({"result": "error", "message": "No MQTT service available"}, status=400)
        return _ok(fake.mqtt)

    async def discovery(request: web.Request) -> web.Response:
        if fake.fail_discovery > 0:
            fake.fail_discovery -= 1
            return web.json_response({"result": "error", "message": "busy"}, status=503)
        body = await request.json()
        return _ok({"uuid": f"uuid-{body['service']}"})

    app = web.Application(middlewares=[auth])
    app.router.add_get("/services/mqtt", services_mqtt)
    app.router.add_post("/discovery", discovery)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()
