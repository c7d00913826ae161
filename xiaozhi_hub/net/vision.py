"""``POST /mcp/vision/explain``: where a device camera uploads its photo and question (docs/protocol.md, MCP).

What stock firmware sends (``Esp32Camera::Explain``): headers ``Device-Id``, ``Client-Id``,
``Authorization: Bearer <the token from MCP initialize>``, ``Content-Type: multipart/form-data;
boundary=----ESP32_CAMERA_BOUNDARY`` and ``Transfer-Encoding: chunked`` (no length known in advance);
the parts ``question`` (text) and then ``file`` (``camera.jpg``, ``image/jpeg``, quality 80). A 200
reply's body becomes the camera tool's result, verbatim, and the LLM reads it; any other status makes
the firmware report only "Failed to upload photo". So:

* refusals of the request are 4xx JSON ``{"success": false, "error": …, "message": …}``: 401 (no or
  bad vision token, or one for another device), 403 blocked device, 400 malformed multipart or a
  missing part, 413 too large (``vision.max_image_bytes``; the question at most 2,000 bytes), 415 not
  a JPEG/PNG/GIF/WebP image, 503 no vision model configured (devices are not told the URL then);
* an answer is 200 ``{"success": true, "action": "RESPONSE", "response": "<text>"}``;
* a failure of the vision model itself is 200 ``{"success": false, "message": …}`` so that the device
  passes the reason on and the user hears what went wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from ..auth import strip_bearer
from ..store.devices import InvalidValue, normalize_device_id
from ..vision import EXPLAIN_PATH, IMAGE_TYPES, VisionError, sniff_image
from .httputil import BadRequest

if TYPE_CHECKING:
    from ..context import HubContext

_LOGGER = logging.getLogger(__name__)

MAX_QUESTION_BYTES = 2000
DEFAULT_QUESTION = "What is in this photo?"
QUESTION_PARTS = ("question", "prompt")
IMAGE_PARTS = ("file", "image")


def refusal(status: int, reason: str) -> web.Response:
    return web.json_response({"success": False, "error": reason, "message": reason}, status=status)


@dataclass(frozen=True)
class Upload:
    question: str
    image: bytes
    mime: str


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(65536):
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"{what} too large (limit {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_upload(request: web.Request, max_image_bytes: int) -> Upload:
    """The question and photo of a camera upload, within the limits; raises :class:`BadRequest`."""
    if not request.content_type.startswith("multipart/form-data"):
        raise BadRequest(400, "expected multipart/form-data with the parts 'question' and 'file'")
    if request.content_length is not None and request.content_length > max_image_bytes + 64 * 1024:
        raise BadRequest(413, f"upload too large ({request.content_length} bytes; photo limit {max_image_bytes})")
    try:
        reader = await request.multipart()
        question: bytes | None = None
        image: bytes | None = None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest(400, "nested multipart bodies are not accepted")
            if part.name in QUESTION_PARTS and question is None:
                question = await _read_part(part, MAX_QUESTION_BYTES, "question")
            elif part.name in IMAGE_PARTS and image is None:
                image = await _read_part(part, max_image_bytes, "photo")
            else:
                await _read_part(part, MAX_QUESTION_BYTES, f"part {str(part.name)[:32]!r}")   # tolerated, bounded
    except ValueError as err:                       # aiohttp's multipart parser on a malformed body
        raise BadRequest(400, f"malformed multipart body ({err})") from None
    if not image:
        raise BadRequest(400, "the upload has no photo (a part named 'file')")
    mime = sniff_image(image)
    if mime is None:
        raise BadRequest(415, f"the photo is not an image the hub can pass on ({', '.join(IMAGE_TYPES)})")
    try:
        text = (question or b"").decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadRequest(400, "the question is not UTF-8 text") from None
    return Upload(text or DEFAULT_QUESTION, image, mime)


def _admit(ctx: "HubContext", request: web.Request) -> tuple[str | None, web.Response | None]:
    """The uploading device's id, or the refusal: the token must be a vision token for this Device-Id."""
    try:
        device_id = normalize_device_id(request.headers.get("Device-Id", ""))
    except InvalidValue:
        return None, refusal(400, "missing or malformed Device-Id header (the device's MAC address)")
    token = strip_bearer(request.headers.get("Authorization"))
    if token is None:
        return None, refusal(401, "missing 'Authorization: Bearer <vision token>' (sent in MCP initialize)")
    verdict = ctx.auth.verify_vision_token(token, device_id)
    if not verdict.ok:
        return None, refusal(401, f"vision token refused: {verdict.reason}")
    if ctx.devices.is_blocked(device_id):
        return None, refusal(403, "this device is blocked on the hub")
    return device_id, None


def add_routes(app: web.Application, ctx: "HubContext") -> None:
    """The explain endpoint (answers 503 while no vision model is configured)."""

    async def explain(request: web.Request) -> web.StreamResponse:
        vision = ctx.vision
        if vision is None:
            return refusal(503, "no vision model is configured on the hub (vision.base_url)")
        device_id, refused = _admit(ctx, request)
        if refused is not None:
            _LOGGER.info("photo upload from %s refused: %s", request.remote, refused.text)
            return refused
        try:
            upload = await read_upload(request, vision.settings.max_image_bytes)
        except BadRequest as err:
            _LOGGER.info("photo upload from %s refused: %s", device_id, err.reason)
            return refusal(err.status, err.reason)
        ctx.metrics.inc("vision_requests")
        try:
            answer = await vision.explain(upload.image, upload.mime, upload.question)
        except VisionError as err:
            ctx.metrics.inc("vision_failures")
            _LOGGER.warning("photo from %s not explained: %s", device_id, err)
            body: dict[str, Any] = {"success": False, "message": f"Sorry, I could not look at the photo: {err}"}
            return web.json_response(body)
        _LOGGER.info("photo from %s (%d bytes, %s) explained", device_id, len(upload.image), upload.mime)
        return web.json_response({"success": True, "action": "RESPONSE", "response": answer})

    app.router.add_post(EXPLAIN_PATH, explain)
