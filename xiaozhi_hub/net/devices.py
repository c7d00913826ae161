"""``/api/devices``: the JSON API over the device records, and ending the session of a shut-out device.

Routes (list, show, approve, rename, block, unblock, revoke, transport) serve Home Assistant and tools; they
answer with the public view of a record plus its live state (:mod:`xiaozhi_hub.services.live`). The records, the
SQL and the cached store are in :mod:`xiaozhi_hub.store`. When a device is blocked or its tokens are
revoked (by the API or by the CLI in another process), :func:`disconnect` closes its live session
with the code the WebSocket server would refuse it with at connect time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

from ..protocol.close import CloseCode
from ..store.device_store import REASON_BLOCKED
from ..store.devices import TRANSPORTS, Device, DeviceError
from ..transport.registry import SessionRegistry
from .httputil import API_REFUSED, BadRequest, api_allowed, json_error, read_json_object

if TYPE_CHECKING:
    from ..context import HubContext

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def close_code(reason: str) -> CloseCode:
    """The close code the WebSocket server uses when it refuses such a device at connect time."""
    return CloseCode.BLOCKED if reason == REASON_BLOCKED else CloseCode.AUTH


async def disconnect(registry: SessionRegistry, device_id: str, reason: str) -> bool:
    """End the live session of a device that was just blocked or revoked (True if there was one)."""
    session = registry.by_device(device_id)
    if session is None:
        return False
    _LOGGER.info("closing the session of %s: %s", device_id, reason)
    try:
        await session.close(close_code(reason), reason)
    except Exception:
        _LOGGER.exception("could not close the session of device %s", device_id)
    return True


def _transport_route(ctx: "HubContext", limit: int, reply: Callable[[Device], web.Response]) -> Handler:
    """``POST /api/devices/{id}/transport`` ``{"transport": "websocket" | "mqtt" | null}`` (docs/mqtt-udp.md)."""
    async def transport(request: web.Request) -> web.StreamResponse:
        body = await read_json_object(request, limit)
        value = body.get("transport", "missing")
        if value not in (None, *TRANSPORTS):
            raise BadRequest(400, 'expected {"transport": "websocket" | "mqtt" | null} (null: devices.transport)')
        return reply(await ctx.devices.set_transport(request.match_info["device"], value))
    return transport


def add_routes(app: web.Application, ctx: "HubContext") -> None:
    """``/api/devices`` JSON API (list, show, approve, rename, block, unblock, revoke, transport) for HA and tools."""
    limit = ctx.settings.ota.max_body_bytes
    def api(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not api_allowed(request, ctx.admin):
                return json_error(401, API_REFUSED)
            try:
                return await handler(request)
            except BadRequest as err:
                return err.response()
            except DeviceError as err:
                return json_error(err.status, str(err))
        return wrapped

    def view(device: Device) -> dict[str, Any]:
        return ctx.live.view(device.to_json())      # the record with its live state (online, state, ...)

    def reply(device: Device) -> web.Response:
        return web.json_response({"device": view(device)})

    async def list_(request: web.Request) -> web.StreamResponse:
        return web.json_response({"devices": [view(d) for d in await ctx.devices.list_all()]})

    async def show(request: web.Request) -> web.StreamResponse:
        return reply(await ctx.devices.resolve(request.match_info["device"]))

    async def approve(request: web.Request) -> web.StreamResponse:
        body = await read_json_object(request, limit)
        code = body.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            code = f"{code:06d}"
        if not isinstance(code, str):
            raise BadRequest(400, "expected {\"code\": \"123456\"}")
        return reply(await ctx.devices.approve(code))

    async def rename(request: web.Request) -> web.StreamResponse:
        body = await read_json_object(request, limit)
        name = body.get("name")
        if not isinstance(name, str):
            raise BadRequest(400, "expected {\"name\": \"Kitchen\"}")
        return reply(await ctx.devices.rename(request.match_info["device"], name))

    async def block(request: web.Request) -> web.StreamResponse:
        return reply(await ctx.devices.set_blocked(request.match_info["device"], True))

    async def unblock(request: web.Request) -> web.StreamResponse:
        return reply(await ctx.devices.set_blocked(request.match_info["device"], False))

    async def revoke(request: web.Request) -> web.StreamResponse:
        return reply(await ctx.devices.revoke(request.match_info["device"]))

    app.router.add_get("/api/devices", api(list_))
    app.router.add_post("/api/devices/{device}/transport", api(_transport_route(ctx, limit, reply)))
    app.router.add_post("/api/devices/approve", api(approve))
    app.router.add_get("/api/devices/{device}", api(show))
    app.router.add_post("/api/devices/{device}/rename", api(rename))
    app.router.add_post("/api/devices/{device}/block", api(block))
    app.router.add_post("/api/devices/{device}/unblock", api(unblock))
    app.router.add_post("/api/devices/{device}/revoke", api(revoke))
