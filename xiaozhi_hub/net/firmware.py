"""Firmware over HTTP: image downloads for devices and the firmware index for the JSON API.

A download names a record (``<board>_<version>.bin`` or its numeric id) and never a file: the store
maps it to the file the hub chose (see :mod:`xiaozhi_hub.store.firmware`), so no part of a request
path reaches the file system. Download replies carry ``Content-Length`` (the device refuses chunked
firmware), support ``Range`` (206/416), and name the image's SHA-256 in ``X-Firmware-SHA256``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from ..store.firmware import DOWNLOAD_PREFIX, FirmwareError, list_pins
from .httputil import API_REFUSED, api_allowed, json_error

if TYPE_CHECKING:
    from ..context import HubContext

_LOGGER = logging.getLogger(__name__)


def _unsafe_name(name: str) -> bool:
    return (not name or "/" in name or "\\" in name or "\0" in name or ".." in name
            or name.startswith(".") or len(name) > 200)


def add_routes(app: web.Application, ctx: "HubContext") -> None:
    """``GET /xiaozhi/ota/download/{name}`` (images) and ``GET /api/firmware`` (the index)."""

    async def download(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if _unsafe_name(name):
            return json_error(400, "invalid firmware name (expected <board>_<version>.bin or an id)")
        store = ctx.firmware
        record = await store.lookup_download(name)
        if record is None:
            return json_error(404, f"no firmware {name!r} in the store")
        try:
            path = store.path_of(record)
        except FirmwareError as err:
            _LOGGER.error("%s", err)
            return json_error(404, "firmware file unavailable")
        if not path.is_file():
            _LOGGER.error("firmware %s is indexed but %s is missing", record.download_name, path)
            return json_error(404, "firmware file is missing from the store")
        return web.FileResponse(path, headers={
            "Content-Type": "application/octet-stream",
            "X-Firmware-SHA256": record.sha256,
            "X-Firmware-Version": record.version,
            "Content-Disposition": f'attachment; filename="{record.download_name}"',
        })

    async def index(request: web.Request) -> web.StreamResponse:
        if not api_allowed(request, ctx.admin):
            return json_error(401, API_REFUSED)
        records = await ctx.firmware.list()
        pins = await ctx.db.transaction(list_pins)
        return web.json_response({"firmware": [r.to_json() for r in records], "pins": pins})

    app.router.add_get(DOWNLOAD_PREFIX + "{name}", download)
    app.router.add_get("/api/firmware", index)
