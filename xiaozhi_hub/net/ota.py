"""The OTA check and activation endpoints a stock device calls at boot (docs/protocol.md, OTA check; Activation).

``POST /xiaozhi/ota/`` is the first thing a device does after joining the network, and what it gets
back decides whether it can talk at all, so the reply is built to the firmware's parser:

* ``server_time``: ``timestamp`` in Unix **milliseconds** and ``timezone_offset`` in **minutes**
  (integers; the device adds the offset so its clock holds local time).
* ``firmware`` is always present with string ``version`` and ``url``. Without an update it carries
  the device's own version and ``url: ""`` (firmware up to 1.5 treats a missing ``firmware`` as a
  failed check). With an update it names a strictly newer image for the device's board. ``force`` is
  never sent: the device would reinstall on every boot.
* ``websocket`` is always present (a reply with neither ``websocket`` nor ``mqtt`` leaves the device on
  stale MQTT settings) with the URL built from the host name the device used to reach us, unless
  ``server.public_ws_url`` is set, and a freshly minted per-device token. Only string fields: the
  device stores every string/number field of the section in NVS.
* an ``mqtt`` section (endpoint, per-device credentials, keep-alive, topics) only for a device whose
  transport is ``mqtt`` (its override, else ``devices.transport``): the firmware prefers it over
  ``websocket`` and switches to MQTT+UDP (docs/mqtt-udp.md). ``websocket`` is still sent, so the
  device's stored WebSocket settings stay current for the day it is switched back.
* ``activation`` only while activation is required and the device is not yet approved; then no
  update is offered. The token is there all the same: the socket refuses it (``activation_pending``)
  until the device is approved, and accepts it from then on, so a client that does not repeat its OTA
  check after activating can still connect.

``POST /xiaozhi/ota/activate`` answers 202 while the device waits for approval and 200 once it is
approved (the device polls every 3 s). Devices with an eFuse serial number send an HMAC of the
challenge, at the top level (stock firmware) or wrapped in ``Payload`` (py-xiaozhi); it is checked
only when the device's key was registered, otherwise they are approved by code like any other device.

Bodies are size-limited and validated; garbage gets a 400 with a JSON reason. Both endpoints are
rate-limited per client address (429 with ``Retry-After``).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import __version__
from ..auth import mint_token
from ..store.activation import check_activation_hmac
from ..store.device_info import collect_info
from ..store.devices import Device, DeviceReport, InvalidValue, normalize_device_id, token_time, valid_client_id
from ..store.firmware import DOWNLOAD_PREFIX
from ..transport.mqtt import service as mqtt_udp
from .httputil import BadRequest, json_error, read_json_object
from .ratelimit import RateLimiter, limited

if TYPE_CHECKING:
    from ..context import HubContext

_LOGGER = logging.getLogger(__name__)

OTA_PATH = "/xiaozhi/ota/"
ACTIVATE_PATH = "/xiaozhi/ota/activate"
ACTIVATION_FIELDS = ("algorithm", "serial_number", "challenge", "hmac")
ACTIVATION_TIMEOUT_MS = 30_000     # parsed but unused by current firmware; sent for completeness
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-.]{0,251}[A-Za-z0-9])?")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")
_MAX_STR = 128

# ---------------------------------------------------------------------------- request parsing

@dataclass(frozen=True)
class OTARequest:
    """The parts of an OTA check the hub uses, validated."""

    device_id: str
    client_id: str
    version: str | None              # the running firmware's version, as the device reports it
    board: str | None                # board.type: the build's board id, the key for firmware images
    board_name: str | None
    chip: str | None
    language: str | None
    serial_number: str | None
    info: dict[str, Any] = field(default_factory=dict)


def _opt_str(container: dict[str, Any], key: str, where: str, max_len: int = _MAX_STR) -> str | None:
    value = container.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(400, f"{where}{key} must be a string, not {type(value).__name__}")
    if len(value) > max_len:
        raise BadRequest(400, f"{where}{key} is longer than {max_len} characters")
    return value


def _opt_obj(container: dict[str, Any], key: str) -> dict[str, Any]:
    value = container.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(400, f"{key} must be a JSON object, not {type(value).__name__}")
    return value


def _device_id(raw: str | None) -> str:
    """The normalised MAC from the ``Device-Id`` header (or the body's ``mac_address``)."""
    if not raw:
        raise BadRequest(400, "missing Device-Id header (the device's MAC address)")
    try:
        return normalize_device_id(raw)
    except InvalidValue as err:
        raise BadRequest(400, f"Device-Id: {err}") from None


def parse_ota_request(headers: Any, body: dict[str, Any]) -> OTARequest:
    """Validate the headers and system-info body (docs/protocol.md, OTA check); raises :class:`BadRequest`."""
    application = _opt_obj(body, "application")
    board = _opt_obj(body, "board")

    device_id = _device_id(headers.get("Device-Id") or _opt_str(body, "mac_address", ""))

    client_id = headers.get("Client-Id") or _opt_str(body, "uuid", "") or ""
    if not valid_client_id(client_id):
        raise BadRequest(400, "Client-Id must be a UUID-like string of at most 64 characters")

    version = _opt_str(application, "version", "application.", 64)
    if version is None:
        agent = headers.get("User-Agent", "")           # "<BOARD_NAME>/<firmware version>"
        if "/" in agent:
            candidate = agent.rsplit("/", 1)[1].strip()
            version = candidate[:64] or None

    serial = headers.get("Serial-Number")
    if serial is not None and (len(serial) > 64 or not serial.isprintable()):
        raise BadRequest(400, "Serial-Number header is malformed")

    return OTARequest(
        device_id=device_id, client_id=client_id, version=version,
        board=_opt_str(board, "type", "board.", 64), board_name=_opt_str(board, "name", "board."),
        chip=_opt_str(body, "chip_model_name", "", 32),
        language=_opt_str(body, "language", "", 16) or headers.get("Accept-Language", "")[:16] or None,
        serial_number=serial or None, info=collect_info(body))


def request_host(request: web.Request) -> str | None:
    """The host name or address the client used to reach us (``Host`` header, port removed).

    Reusing it for the WebSocket and download URLs means a device that reached the hub keeps reaching
    it, whichever interface or name it used. Anything that does not look like a host is ignored.
    """
    host = request.headers.get("Host", "").strip()
    if not host:
        return None
    if host.startswith("["):
        end = host.find("]")
        candidate = host[:end + 1] if end > 0 else ""
        return candidate if _IPV6_RE.fullmatch(candidate) else None
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name if _HOSTNAME_RE.fullmatch(name) else None


def timezone_offset_minutes(configured: int | None) -> int:
    """Configured offset, else this machine's current UTC offset, in whole minutes."""
    if configured is not None:
        return configured
    offset = _dt.datetime.now().astimezone().utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


def _activation_message(code: str, language: str | None) -> str:
    if language and language.lower().startswith("zh"):
        return f"请在小智中枢上确认此设备\n验证码 {code}"
    return f"Approve this device on the hub\nCode {code}"


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False, separators=(",", ":")), status=status,
                        content_type="application/json", charset="utf-8")


# ---------------------------------------------------------------------------- the endpoint

class OTAEndpoint:
    """Handlers for the OTA check, its status page and activation; state is the two rate limiters."""

    def __init__(self, ctx: "HubContext") -> None:
        self.ctx = ctx
        per_minute = ctx.settings.ota.rate_limit_per_minute
        self.ota_limiter = RateLimiter(per_minute)
        self.activation_limiter = RateLimiter(per_minute)

    @property
    def activation_required(self) -> bool:
        return self.ctx.settings.ota.activation

    def needs_activation(self, device: Device) -> bool:
        return self.activation_required and not device.activated

    # -- POST /xiaozhi/ota/ -----------------------------------------------------------------------
    async def check(self, request: web.Request) -> web.StreamResponse:
        if (refusal := limited(self.ota_limiter, request)) is not None:
            return refusal
        try:
            body = await read_json_object(request, self.ctx.settings.ota.max_body_bytes)
            req = parse_ota_request(request.headers, body)
            store = self.ctx.devices
        except BadRequest as err:
            _LOGGER.info("OTA check from %s refused: %s", request.remote, err.reason)
            return err.response()

        device = await store.record_report(DeviceReport(
            device_id=req.device_id, client_id=req.client_id, board=req.board, board_name=req.board_name,
            chip=req.chip, firmware_version=req.version, language=req.language,
            serial_number=req.serial_number, ip=request.remote, info=req.info))
        if device.blocked:
            _LOGGER.info("OTA check from blocked device %s refused", device.label)
            return json_error(403, "this device is blocked on the hub")

        host = request_host(request)
        now = time.time()
        reply: dict[str, Any] = {
            "server_time": {
                "timestamp": int(now * 1000),
                "timezone_offset": timezone_offset_minutes(self.ctx.settings.ota.timezone_offset_minutes),
            },
            # The device's own version and no URL: "nothing to install" for every firmware generation.
            "firmware": {"version": req.version or "0", "url": ""},
            # A token even while activation is pending: a client that does not repeat its OTA check after
            # activating (py-xiaozhi) connects with this one, which the socket accepts once it is approved.
            "websocket": {"url": self.ctx.ws_url(host),
                          "token": mint_token(self.ctx.auth.secret, req.client_id, device.device_id,
                                              now=token_time(device, now))},
        }
        if self.needs_activation(device):
            reply["activation"] = await self._activation_section(device, req.language)
            return _json(reply)

        offer = await self.ctx.firmware.offer_for(device)
        if offer is not None:
            reply["firmware"] = {"version": offer.version,
                                 "url": f"{self.ctx.http_url(host)}{DOWNLOAD_PREFIX}{offer.download_name}"}
            _LOGGER.info("offering firmware %s to %s (running %s)", offer.version, device.label, req.version)
        if device.transport_or(self.ctx.settings.devices.transport) == "mqtt":
            transport = await mqtt_udp.for_device(self.ctx)
            if transport is not None:
                reply["mqtt"] = transport.ota_mqtt(device, req.client_id, now, host)
            else:
                _LOGGER.warning("%s should use MQTT, but the device MQTT endpoint is not running: told WebSocket",
                                device.label)
        _LOGGER.debug("OTA check from %s (%s %s)", device.label, req.board, req.version)
        return _json(reply)

    async def _activation_section(self, device: Device, language: str | None) -> dict[str, Any]:
        """The code and challenge of a pending device (kept across checks); no firmware is offered."""
        device = await self.ctx.devices.ensure_activation_code(device.device_id)
        assert device.activation_code is not None and device.activation_challenge is not None
        _LOGGER.info("device %s (%s) waits for approval with code %s",
                     device.label, device.board or "unknown board", device.activation_code)
        return {
            "code": device.activation_code,
            "message": _activation_message(device.activation_code, language),
            "challenge": device.activation_challenge,
            "timeout_ms": ACTIVATION_TIMEOUT_MS,
        }

    # -- GET /xiaozhi/ota/ ------------------------------------------------------------------------
    async def status(self, request: web.Request) -> web.StreamResponse:
        host = request_host(request)
        lines = [
            f"xiaozhi-hub {__version__}: the OTA endpoint is running.",
            "",
            f"OTA URL for devices:            {self.ctx.http_url(host)}{OTA_PATH}",
            f"WebSocket URL given to devices: {self.ctx.ws_url(host)}",
            f"Hub id:                         {self.ctx.hub_id}",
            "Activation:                     " + ("required (approve codes with `xiaozhi-hub devices approve CODE`)"
                                                  if self.activation_required else "off (devices are admitted on sight)"),
        ]
        devices = await self.ctx.devices.list_all()
        pending = sum(1 for d in devices if self.needs_activation(d))
        blocked = sum(1 for d in devices if d.blocked)
        lines.append(f"Known devices:                  {len(devices)} ({pending} waiting for approval, {blocked} blocked)")
        images = await self.ctx.firmware.list()
        boards = sorted({r.board for r in images})
        lines.append(f"Firmware images:                {len(images)}" + (f" (boards: {', '.join(boards)})" if boards else ""))
        lines += ["", "Devices POST their system info here and get the time, the WebSocket URL and a token back."]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")

    # -- POST /xiaozhi/ota/activate ---------------------------------------------------------------
    async def activate(self, request: web.Request) -> web.StreamResponse:
        if (refusal := limited(self.activation_limiter, request)) is not None:
            return refusal
        try:
            body = await read_json_object(request, self.ctx.settings.ota.max_body_bytes, allow_empty=True)
            proof = parse_activation_body(body)
            device_id = _device_id(request.headers.get("Device-Id"))
            store = self.ctx.devices
        except BadRequest as err:
            return err.response()

        # Read with the cache brought up to date: a device approved from the command line connects right
        # after this poll says "activated", and the socket must not still see it as pending.
        device = await store.reload(device_id)
        if device is None:
            return json_error(404, "unknown device: it must make an OTA check first")
        if device.blocked:
            return json_error(403, "this device is blocked on the hub")
        if not self.needs_activation(device):
            return _json({"status": "activated"})

        verdict = check_activation_hmac(device, proof)
        if verdict is False:
            _LOGGER.warning("activation HMAC from %s does not match its registered key", device.label)
            return json_error(403, "activation HMAC does not match the key registered for this device")
        if verdict is True:
            device = await store.approve_device(device.device_id)
            _LOGGER.info("device %s approved by its HMAC key", device.label)
            return _json({"status": "activated"})
        return _json({"status": "pending", "message": "waiting for the code to be approved on the hub"}, status=202)


def parse_activation_body(body: dict[str, Any]) -> dict[str, str]:
    """The proof fields of an activation poll, in either shape clients send (docs/protocol.md, Activation).

    Stock firmware posts ``{"algorithm", "serial_number", "challenge", "hmac"}`` at the top level (or
    ``{}`` without an eFuse serial number); py-xiaozhi wraps the same fields as ``{"Payload": {...}}``.
    Raises :class:`BadRequest` for anything else that is not a string where a string belongs.
    """
    fields: Any = body
    if "Payload" in body:
        fields = body["Payload"]
        if not isinstance(fields, dict):
            raise BadRequest(400, "Payload must be a JSON object")
    proof: dict[str, str] = {}
    for key in ACTIVATION_FIELDS:
        if key in fields:
            if not isinstance(fields[key], str):
                raise BadRequest(400, f"{key} must be a string")
            proof[key] = fields[key]
    if "algorithm" in proof and proof["algorithm"] != "hmac-sha256":
        raise BadRequest(400, f"unsupported algorithm {proof['algorithm'][:32]!r} (expected hmac-sha256)")
    return proof


def add_routes(app: web.Application, endpoint: OTAEndpoint) -> None:
    """Add the OTA routes (both with and without the trailing slash devices may be configured with)."""
    for path in (OTA_PATH, OTA_PATH.rstrip("/")):
        app.router.add_post(path, endpoint.check)
        app.router.add_get(path, endpoint.status)
    app.router.add_post(ACTIVATE_PATH, endpoint.activate)
    app.router.add_post(ACTIVATE_PATH + "/", endpoint.activate)
