"""MCP JSON-RPC 2.0 shapes as stock firmware speaks them (docs/protocol.md, MCP).

The hub is the MCP client, the device the server. Ids are JSON numbers (the firmware drops string
ids). Device error replies carry only ``error.message``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .messages import ProtocolError

PROTOCOL_VERSION = "2024-11-05"
CAMERA_TOOL = "self.camera.take_photo"   # camera boards: capture, upload to initialize's vision URL, explain


@dataclass(frozen=True)
class McpRequest:
    id: int
    method: str
    params: Mapping[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"jsonrpc": "2.0", "id": self.id, "method": self.method}
        if self.params is not None:
            d["params"] = dict(self.params)
        return d


@dataclass(frozen=True)
class McpNotification:
    method: str
    params: Mapping[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"jsonrpc": "2.0", "method": self.method}
        if self.params is not None:
            d["params"] = dict(self.params)
        return d


@dataclass(frozen=True)
class McpResponse:
    id: int
    result: Any = None
    error: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def error_message(self) -> str:
        if self.error is None:
            return ""
        return str(self.error.get("message", "device error"))

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"jsonrpc": "2.0", "id": self.id}
        if self.error is not None:
            d["error"] = dict(self.error)
        else:
            d["result"] = self.result
        return d


McpMessage = McpRequest | McpNotification | McpResponse


def parse(payload: Mapping[str, Any]) -> McpMessage:
    """Classify one JSON-RPC object; raises :class:`ProtocolError` on shapes the firmware would drop."""
    if not isinstance(payload, Mapping):
        raise ProtocolError("bad_mcp", "mcp payload must be an object")
    if payload.get("jsonrpc") != "2.0":
        raise ProtocolError("bad_mcp", "mcp payload needs jsonrpc '2.0'")
    method = payload.get("method")
    id_ = payload.get("id")
    if id_ is not None and (isinstance(id_, bool) or not isinstance(id_, (int, float))):
        raise ProtocolError("bad_mcp", "mcp id must be a number")
    params = payload.get("params")
    if params is not None and not isinstance(params, Mapping):
        raise ProtocolError("bad_mcp", "mcp params must be an object")
    if isinstance(method, str):
        if id_ is None:
            return McpNotification(method, params)
        return McpRequest(int(id_), method, params)
    if method is not None:
        raise ProtocolError("bad_mcp", "mcp method must be a string")
    if id_ is None:
        raise ProtocolError("bad_mcp", "mcp response without id")
    error = payload.get("error")
    if error is not None and not isinstance(error, Mapping):
        raise ProtocolError("bad_mcp", "mcp error must be an object")
    return McpResponse(int(id_), payload.get("result"), error)


@dataclass(frozen=True)
class McpTool:
    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    annotations: Mapping[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "description": self.description,
                             "inputSchema": dict(self.input_schema)}
        if self.annotations is not None:
            d["annotations"] = dict(self.annotations)
        return d

    @classmethod
    def from_wire(cls, obj: Any) -> "McpTool":
        if not isinstance(obj, Mapping) or not isinstance(obj.get("name"), str) or not obj["name"]:
            raise ProtocolError("bad_mcp", "tool entries need a name")
        schema = obj.get("inputSchema") or {"type": "object", "properties": {}}
        if not isinstance(schema, Mapping):
            raise ProtocolError("bad_mcp", f"tool {obj['name']}: inputSchema must be an object")
        desc = obj.get("description", "")
        return cls(name=obj["name"], description=desc if isinstance(desc, str) else "",
                   input_schema=schema, annotations=obj.get("annotations") if isinstance(obj.get("annotations"), Mapping) else None)


@dataclass(frozen=True)
class ToolsPage:
    tools: tuple[McpTool, ...]
    next_cursor: str | None = None

    @classmethod
    def from_result(cls, result: Any) -> "ToolsPage":
        if not isinstance(result, Mapping) or not isinstance(result.get("tools"), list):
            raise ProtocolError("bad_mcp", "tools/list result needs a tools list")
        cursor = result.get("nextCursor")
        return cls(tuple(McpTool.from_wire(t) for t in result["tools"]),
                   cursor if isinstance(cursor, str) and cursor else None)

    def to_result(self) -> dict[str, Any]:
        d: dict[str, Any] = {"tools": [t.to_wire() for t in self.tools]}
        if self.next_cursor:
            d["nextCursor"] = self.next_cursor
        return d


def initialize_request(id_: int, vision_url: str | None = None, vision_token: str | None = None,
                       client_name: str = "xiaozhi-hub", client_version: str = "0") -> McpRequest:
    caps: dict[str, Any] = {}
    if vision_url:
        caps["vision"] = {"url": vision_url, "token": vision_token or ""}
    return McpRequest(id_, "initialize", {
        "protocolVersion": PROTOCOL_VERSION, "capabilities": caps,
        "clientInfo": {"name": client_name, "version": client_version}})


def tools_list_request(id_: int, cursor: str = "", with_user_tools: bool = False) -> McpRequest:
    params: dict[str, Any] = {"cursor": cursor}
    if with_user_tools:
        params["withUserTools"] = True
    return McpRequest(id_, "tools/list", params)


def tools_call_request(id_: int, name: str, arguments: Mapping[str, Any]) -> McpRequest:
    return McpRequest(id_, "tools/call", {"name": name, "arguments": dict(arguments)})


def call_result_text(result: Any) -> str:
    """The text of a tools/call result (``content`` items of type text, joined)."""
    if not isinstance(result, Mapping):
        return "" if result is None else str(result)
    parts = []
    for item in result.get("content") or ():
        if isinstance(item, Mapping) and item.get("type") == "text":
            parts.append(str(item.get("text", "")))
    return "\n".join(parts)


_INVALID = re.compile(r"[^a-zA-Z0-9_-]")


def function_name(tool_name: str) -> str:
    """A name valid for LLM function calling (``^[a-zA-Z0-9_-]{1,64}$``); dots become underscores."""
    name = _INVALID.sub("_", tool_name)[:64]
    return name or "tool"
