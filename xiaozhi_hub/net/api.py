"""The hub API for Home Assistant and other clients (docs/api.md): every path under ``/api/`` needs
the admin token; this module adds the gate and the routes that act on devices.

Routes added here: ``GET /api/hub``, ``POST /api/devices/{id}/say``, ``POST /api/say``,
``POST /api/devices/{id}/volume``, ``POST /api/devices/{id}/stop``, ``DELETE /api/devices/{id}`` and
the ``GET /api/events`` WebSocket (:mod:`.api_events`). The device records themselves
(``GET /api/devices``, rename, block, ...) are served by :mod:`.devices`, with the live state merged in.

Every body is a JSON object whose keys are checked (unknown keys are a 400, so a typo is not silently
ignored); errors are ``{"error": "<reason>"}`` with 400, 401, 404 (unknown device) or 409/503.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

from .. import __version__
from ..services import control
from ..services.announce import AnnounceError
from .api_events import events_handler
from ..store.devices import Device, DeviceError
from .httputil import API_REFUSED, BadRequest, api_allowed, json_error, read_json_object

if TYPE_CHECKING:
    from ..context import HubContext
    from ..session.session import Session

API_PREFIX = "/api/"
MAX_BODY = 16 * 1024
SAY_KEYS = frozenset({"text", "ttl", "priority", "id", "wait"})
_HEX12 = re.compile(r"[0-9a-fA-F]{12}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def canonical_device_id(ref: str) -> str:
    """``aabbccddee01`` (as MQTT topics spell it) → ``aa:bb:cc:dd:ee:01``; other references unchanged."""
    ref = ref.strip()
    if _HEX12.fullmatch(ref):
        ref = ":".join(ref[i:i + 2] for i in range(0, 12, 2))
    return ref.lower() if ":" in ref else ref


def admin_gate(ctx: "HubContext") -> Any:
    """Middleware: everything under /api/ needs the admin token, whatever ``auth.enabled`` says."""
    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(API_PREFIX) and not api_allowed(request, ctx.admin):
            return json_error(401, API_REFUSED)
        return await handler(request)
    return gate


def _check_keys(body: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(400, f"unknown field {unknown[0]!r} (expected {', '.join(sorted(allowed))})")


def _wait_flag(body: dict[str, Any]) -> bool:
    wait = body.get("wait", True)
    if not isinstance(wait, bool):
        raise BadRequest(400, "wait must be true or false")
    return wait


class DeviceApi:
    """The device actions of the API, on one hub context."""

    def __init__(self, ctx: "HubContext") -> None:
        self.ctx = ctx

    async def record(self, request: web.Request) -> Device:
        return await self.ctx.devices.resolve(canonical_device_id(request.match_info["device"]))

    def session(self, device_id: str) -> "Session | None":
        return control.open_session(self.ctx.registry, device_id)

    async def hub(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        return web.json_response({"hub_id": ctx.hub_id, "version": __version__,
                                  "name": ctx.settings.mdns.name or "xiaozhi-hub",
                                  "mqtt_discovery": ctx.component.mqtt_discovery})

    async def _say_args(self, request: web.Request) -> tuple[dict[str, Any], bool]:
        body = await read_json_object(request, MAX_BODY)
        _check_keys(body, SAY_KEYS)
        return body, _wait_flag(body)

    async def say(self, request: web.Request) -> web.StreamResponse:
        device = await self.record(request)
        body, wait = await self._say_args(request)
        result = await self.ctx.announcements.say(
            device.device_id, body.get("text"), ttl=body.get("ttl"), priority=body.get("priority", "normal"),
            ann_id=body.get("id"), wait=wait, source="api")
        return web.json_response(result.to_json())

    async def say_all(self, request: web.Request) -> web.StreamResponse:
        body, wait = await self._say_args(request)
        devices = [d.device_id for d in await self.ctx.devices.list_all() if not d.blocked]
        results = await self.ctx.announcements.say_many(
            devices, body.get("text"), ttl=body.get("ttl"), priority=body.get("priority", "normal"),
            ann_id=body.get("id"), wait=wait, source="api")
        return web.json_response({"results": [r.to_json() for r in results]})

    async def volume(self, request: web.Request) -> web.StreamResponse:
        device = await self.record(request)
        body = await read_json_object(request, MAX_BODY)
        _check_keys(body, frozenset({"volume"}))
        try:
            volume = control.check_volume(body.get("volume"))
        except ValueError as err:
            raise BadRequest(400, str(err)) from None
        await control.set_volume(self.ctx.registry, device.device_id, volume)
        return web.json_response({"device_id": device.device_id, "volume": volume})

    async def stop(self, request: web.Request) -> web.StreamResponse:
        device = await self.record(request)
        await read_json_object(request, MAX_BODY, allow_empty=True)
        stopped = await control.stop(self.ctx.registry, device.device_id, "api")
        return web.json_response({"device_id": device.device_id, "stopped": stopped})

    async def remove(self, request: web.Request) -> web.StreamResponse:
        device = await self.record(request)
        if self.session(device.device_id) is not None:
            return json_error(409, f"{device.device_id} is connected; remove it once it is offline")
        await self.ctx.devices.remove(device.device_id)
        return web.json_response({"device_id": device.device_id, "removed": True})


def add_routes(app: web.Application, ctx: "HubContext") -> None:
    """Install the admin gate and the API routes on the hub's HTTP app."""
    app.middlewares.append(admin_gate(ctx))
    api = DeviceApi(ctx)

    def guarded(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except BadRequest as err:
                return err.response()
            except AnnounceError as err:
                return json_error(400, str(err))
            except DeviceError as err:
                return json_error(err.status, str(err))
            except control.ControlError as err:
                return json_error(err.status, str(err))
        return wrapped

    app.router.add_get("/api/hub", guarded(api.hub))
    app.router.add_post("/api/say", guarded(api.say_all))
    app.router.add_post("/api/devices/{device}/say", guarded(api.say))
    app.router.add_post("/api/devices/{device}/volume", guarded(api.volume))
    app.router.add_post("/api/devices/{device}/stop", guarded(api.stop))
    app.router.add_delete("/api/devices/{device}", guarded(api.remove))
    app.router.add_get("/api/events", events_handler(ctx))
