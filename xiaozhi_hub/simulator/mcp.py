"""The device side of MCP, as stock firmware implements it (docs/protocol.md, MCP; FW
``mcp_server.cc``).

The simulator answers the hub's JSON-RPC requests the way a real board does, including its quirks:
numeric ids only (string ids are dropped silently), no reply to ``notifications/*``, error replies
with only ``error.message``, ``tools/list`` pages cut by size with ``nextCursor`` = the name of the
first tool of the next page, and per-property argument checks with the firmware's error texts.

A board with a camera (``camera=True``) also lists ``self.camera.take_photo``; its call is the one
that takes time (capture, upload to the URL from ``initialize``, the hub's vision model), so
:meth:`FirmwareMcpServer.handle` hands it back as a :class:`PhotoRequest` for the firmware loop to
finish (:mod:`.camera`) and answer with :meth:`FirmwareMcpServer.photo_reply`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..protocol import mcp
from ..protocol.mcp import CAMERA_TOOL
from ..protocol.messages import ProtocolError

MAX_PAGE_BYTES = 8000  # FW: a tools/list reply is cut before it would exceed this


class ToolError(Exception):
    """A tool call the firmware would reject; the message becomes ``error.message``."""


@dataclass(frozen=True)
class IntProperty:
    name: str
    description: str = ""
    minimum: int | None = None
    maximum: int | None = None
    default: int | None = None

    def schema(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "integer", "description": self.description}
        if self.minimum is not None:
            d["minimum"] = self.minimum
        if self.maximum is not None:
            d["maximum"] = self.maximum
        if self.default is not None:
            d["default"] = self.default
        return d

    def value_from(self, arguments: Mapping[str, Any]) -> int:
        """FW rules: integer must be a JSON number (floats truncate, booleans are not numbers)."""
        raw = arguments.get(self.name)
        if raw is None or isinstance(raw, bool) or not isinstance(raw, (int, float)):
            if self.default is not None and self.name not in arguments:
                return self.default
            raise ToolError(f"Missing valid argument: {self.name}")
        value = int(raw)
        if self.minimum is not None and value < self.minimum:
            raise ToolError(f"Value is below minimum allowed: {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ToolError(f"Value exceeds maximum allowed: {self.maximum}")
        return value


@dataclass(frozen=True)
class StrProperty:
    name: str
    description: str = ""
    default: str | None = None

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "description": self.description}

    def value_from(self, arguments: Mapping[str, Any]) -> str:
        """FW rules: a string property must be a JSON string."""
        raw = arguments.get(self.name)
        if not isinstance(raw, str):
            raise ToolError(f"Missing valid argument: {self.name}")
        return raw


@dataclass(frozen=True)
class DeviceTool:
    name: str
    description: str
    properties: tuple[IntProperty | StrProperty, ...]
    run: Callable[[dict[str, Any]], Any]

    def to_wire(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object",
                                  "properties": {p.name: p.schema() for p in self.properties}}
        required = [p.name for p in self.properties if p.default is None]
        if required:
            schema["required"] = required
        return mcp.McpTool(self.name, self.description, schema).to_wire()


@dataclass(frozen=True)
class PhotoRequest:
    """A ``self.camera.take_photo`` call, to be answered once the photo is explained (or not)."""

    id: int
    question: str


@dataclass
class McpCall:
    """One request the device received, for assertions in tests."""

    t: float
    id: int
    method: str
    params: Mapping[str, Any] | None


@dataclass
class FirmwareMcpServer:
    """Simulated board state plus the firmware's MCP request handling."""

    volume: int = 70
    brightness: int = 75
    board_name: str = "xiaozhi-simulator"
    firmware_version: str = "2.4.2"
    page_size: int | None = None          # force small pages in tests; None = size-based like FW
    max_page_bytes: int = MAX_PAGE_BYTES
    calls: list[McpCall] = field(default_factory=list)
    dropped: list[Any] = field(default_factory=list)     # payloads the firmware would drop silently
    notifications: list[str] = field(default_factory=list)
    vision: Mapping[str, Any] | None = None
    camera: bool = False                  # the board has a camera: self.camera.take_photo is listed
    photo: bytes | None = None            # what the camera "sees" (None: a colour-bar test card)
    photos: list[tuple[str, bool, str]] = field(default_factory=list)   # (question, ok, tool result or error)

    def __post_init__(self) -> None:
        self.tools: list[DeviceTool] = [
            DeviceTool("self.get_device_status",
                       "Provides the real-time information of the device, including the current status "
                       "of the audio speaker, screen, battery, network, etc.\nUse this tool for: \n"
                       "1. Answering questions about current condition (e.g. what is the current volume "
                       "of the audio speaker?)\n2. As the first step to control the device (e.g. turn "
                       "up / down the volume of the audio speaker, etc.)",
                       (), lambda _args: json.dumps(self.status(), separators=(",", ":"))),
            DeviceTool("self.audio_speaker.set_volume",
                       "Set the volume of the audio speaker. If the current volume is unknown, you must "
                       "call `self.get_device_status` tool first and then call this tool.",
                       (IntProperty("volume", "", 0, 100),), self._set_volume),
        ]
        if self.camera:
            self.tools.append(DeviceTool(
                CAMERA_TOOL, "Take a photo with the device camera and have it explained. Use it when the user "
                "asks you to look at something.\nArgs:\n  `question`: what you want to know about the photo.\n"
                "Return:\n  The explanation, as JSON text.", (StrProperty("question"),), lambda _args: None))

    # -- board behaviour

    def status(self) -> dict[str, Any]:
        return {"audio_speaker": {"volume": self.volume},
                "screen": {"brightness": self.brightness, "theme": "light"},
                "network": {"type": "wifi", "ssid": "simulated", "signal": "strong"}}

    def _set_volume(self, args: dict[str, int]) -> bool:
        self.volume = args["volume"]
        return True

    # -- JSON-RPC

    def handle(self, payload: Any) -> dict[str, Any] | PhotoRequest | None:
        """One inbound payload → the reply payload, None when the firmware sends nothing, or a
        :class:`PhotoRequest` (answered later with :meth:`photo_reply`)."""
        try:
            msg = mcp.parse(payload)
        except ProtocolError:
            self.dropped.append(payload)
            return None
        if isinstance(msg, mcp.McpNotification):
            self.notifications.append(msg.method)
            return None
        if isinstance(msg, mcp.McpResponse):  # the device is not a client; FW drops these
            self.dropped.append(payload)
            return None
        self.calls.append(McpCall(time.monotonic(), msg.id, msg.method, msg.params))
        if msg.method.startswith("notifications"):
            return None
        try:
            photo = self._photo_request(msg.id, msg.method, dict(msg.params or {}))
            if photo is not None:
                return photo
            result = self._dispatch(msg.method, dict(msg.params or {}))
        except ToolError as err:
            return mcp.McpResponse(msg.id, error={"message": str(err)}).to_wire()
        return mcp.McpResponse(msg.id, result=result).to_wire()

    def _photo_request(self, id_: int, method: str, params: dict[str, Any]) -> PhotoRequest | None:
        if not self.camera or method != "tools/call" or params.get("name") != CAMERA_TOOL:
            return None
        arguments = params.get("arguments", {})
        if not isinstance(arguments, Mapping):
            raise ToolError("Invalid arguments")
        return PhotoRequest(id_, StrProperty("question").value_from(arguments))

    def photo_reply(self, request: PhotoRequest, ok: bool, text: str) -> dict[str, Any]:
        """FW: the explain endpoint's body is the tool result as it is; a failure is an error reply."""
        self.photos.append((request.question, ok, text))
        if not ok:
            return mcp.McpResponse(request.id, error={"message": text}).to_wire()
        return mcp.McpResponse(request.id, result={"content": [{"type": "text", "text": text}],
                                                   "isError": False}).to_wire()

    def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        if method == "initialize":
            return self._initialize(params)
        if method == "tools/list":
            return self._tools_list(params)
        if method == "tools/call":
            return self._tools_call(params)
        raise ToolError(f"Method not implemented: {method}")

    def _initialize(self, params: dict[str, Any]) -> dict[str, Any]:
        caps = params.get("capabilities")
        if isinstance(caps, Mapping) and isinstance(caps.get("vision"), Mapping):
            self.vision = dict(caps["vision"])
        return {"protocolVersion": mcp.PROTOCOL_VERSION, "capabilities": {"tools": {}},
                "serverInfo": {"name": self.board_name, "version": self.firmware_version}}

    def _tools_list(self, params: dict[str, Any]) -> dict[str, Any]:
        cursor = params.get("cursor", "")
        if not isinstance(cursor, str):
            raise ToolError("Invalid cursor")
        names = [t.name for t in self.tools]
        start = names.index(cursor) if cursor in names else 0
        page: list[dict[str, Any]] = []
        size = len('{"tools":[]}')
        for tool in self.tools[start:]:
            wire = tool.to_wire()
            item_size = len(json.dumps(wire, separators=(",", ":"))) + 1
            full = (self.page_size is not None and len(page) >= self.page_size) or size + item_size > self.max_page_bytes
            if full:
                if not page:
                    raise ToolError(f"Failed to add tool {tool.name} because of payload size limit")
                return {"tools": page, "nextCursor": tool.name}
            page.append(wire)
            size += item_size
        return {"tools": page}

    def _tools_call(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise ToolError("Missing name")
        arguments = params.get("arguments", {})
        if not isinstance(arguments, Mapping):
            raise ToolError("Invalid arguments")
        tool = next((t for t in self.tools if t.name == name), None)
        if tool is None:
            raise ToolError(f"Unknown tool: {name}")
        values = {p.name: p.value_from(arguments) for p in tool.properties}
        return {"content": [{"type": "text", "text": _result_text(tool.run(values))}], "isError": False}


def _result_text(value: Any) -> str:
    """FW ReturnValue: bool → "true"/"false", int → decimal, str as is, objects → JSON text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))
