"""HTTP helpers shared by the hub's routes: JSON errors, bounded bodies, the JSON API guard.

Every refusal is a JSON ``{"error": reason}`` with a 4xx status, never a 500, and request bodies are
read with a hard size limit before anything parses them.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..services.admin_token import AdminToken


class BadRequest(Exception):
    """A client error with an HTTP status and a one-line reason for the JSON body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> web.Response:
        return json_error(self.status, self.reason)


def json_error(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes without buffering it all."""
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(413, f"request body too large ({request.content_length} bytes, limit {limit})")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"request body too large (limit {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: web.Request, limit: int, *, allow_empty: bool = False) -> dict[str, Any]:
    """Read and parse a JSON object body; anything else is a 400 with the reason."""
    raw = await read_body(request, limit)
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest(400, "request body is empty; expected a JSON object")
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(400, "request body is not UTF-8 text") from None
    except RecursionError:
        raise BadRequest(400, "request body is nested too deeply") from None
    except ValueError as err:
        raise BadRequest(400, f"request body is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise BadRequest(400, f"request body must be a JSON object, not {type(value).__name__}")
    return value


def api_allowed(request: web.Request, admin: AdminToken) -> bool:
    """Who may use the JSON API (everything under ``/api/``): holders of the admin token, whatever
    ``auth.enabled`` says (that setting is about devices; see :mod:`xiaozhi_hub.services.admin_token`)."""
    return admin.allows(request.headers.get("Authorization"))


API_REFUSED = "this API needs 'Authorization: Bearer <admin token>' (print it with `xiaozhi-hub token`)"
