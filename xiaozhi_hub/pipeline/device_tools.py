"""The tools a connected device brings: its MCP tools and its legacy IoT things, as agent tools.

MCP tool names are made valid for function calling (and kept unique next to the built-ins), and
each call goes back to the device under its own name through the :class:`DeviceLink`. Legacy IoT
things (docs/protocol.md, Legacy IoT) become ``<thing>_<method>`` tools that send an ``iot`` command
(the device does not answer) and ``<thing>_get_state`` tools that read the last reported state.
The camera tool (``self.camera.take_photo``) waits as long as the vision model may take, and without
a vision model it is answered by the hub: no vision model is set up.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Mapping, Sequence

from ..protocol import mcp
from ..protocol.mcp import CAMERA_TOOL
from ..providers.base import ToolSpec
from ..tools.registry import DeviceLink, Tool, ToolContext, ToolError, ToolResult, schema, unique_name

NO_VISION = {"en": "No vision model is set up on the hub, so I can't look through the camera.",
             "zh": "中枢上还没有配置视觉模型，所以我看不了摄像头。"}
_IOT_TYPES = {"number": "number", "boolean": "boolean", "string": "string", "integer": "integer"}


def device_tools(link: DeviceLink, taken: set[str], timeout: float, camera_timeout: float | None = None) -> list[Tool]:
    """Every tool of ``link``'s device, named so as not to clash with ``taken`` (which grows).
    ``camera_timeout``: the camera tool's own limit (it waits for the vision model)."""
    out: list[Tool] = []
    for name, (spec, device_name) in device_tool_specs(link.device_tools(), sorted(taken)).items():
        limit = max(timeout, camera_timeout or 0.0) if device_name == CAMERA_TOOL else timeout
        out.append(_device_tool(name, device_name, spec.description, spec.parameters, limit))
        taken.add(name)
    out.extend(iot_tools(link.iot_descriptors, taken))
    return out


def device_tool_specs(tools: Sequence[mcp.McpTool], taken: Sequence[str] = ()) -> dict[str, tuple[ToolSpec, str]]:
    """LLM function name -> (spec, device tool name). Names are sanitised and kept unique."""
    out: dict[str, tuple[ToolSpec, str]] = {}
    used = set(taken)
    for tool in tools:
        name = unique_name(tool.name, used)
        used.add(name)
        out[name] = (ToolSpec(name, tool.description, dict(tool.input_schema)), tool.name)
    return out


def _device_tool(name: str, device_name: str, description: str, params: Mapping[str, Any], timeout: float) -> Tool:
    async def call(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        if device_name == CAMERA_TOOL and not tctx.env.settings.vision.configured:
            # The device was offered no upload URL and would only say "Image explain URL or token is
            # not set"; this says what is missing, in words the LLM (or the fallback) can speak.
            raise ToolError(NO_VISION["en"], say=tctx.pick(NO_VISION["en"], NO_VISION["zh"]))
        try:
            text = await tctx.link.call_device_tool(device_name, args)
        except (asyncio.CancelledError, ToolError):
            raise
        except Exception as err:  # McpCallError: the device's own error text
            raise ToolError(str(err) or "device tool failed") from err
        return ToolResult(text)

    return Tool(name, description, params, call, timeout)


def iot_tools(descriptors: Mapping[str, Mapping[str, Any]], taken: set[str]) -> list[Tool]:
    """Legacy IoT things as tools: ``<thing>_<method>`` sends an ``iot`` command, ``<thing>_get_state``
    reads the last reported state."""
    out: list[Tool] = []
    for thing, desc in descriptors.items():
        methods: Mapping[str, Any] = desc.get("methods") or {}
        if not isinstance(methods, Mapping):
            methods = {}
        for method, mdesc in methods.items():
            mdesc = mdesc if isinstance(mdesc, Mapping) else {}
            params: Mapping[str, Any] = mdesc.get("parameters") or {}
            if not isinstance(params, Mapping):
                params = {}
            props = {p: {"type": _IOT_TYPES.get(str((spec or {}).get("type")), "string"),
                         "description": str((spec or {}).get("description", ""))}
                     for p, spec in params.items()}
            name = unique_name(f"{thing}_{method}", taken)
            taken.add(name)
            out.append(Tool(name, f"{desc.get('description', thing)}: {mdesc.get('description', method)}",
                            schema(props, list(props)), _iot_call(str(thing), str(method))))
        if isinstance(desc.get("properties"), Mapping) and desc["properties"]:
            name = unique_name(f"{thing}_get_state", taken)
            taken.add(name)
            out.append(Tool(name, f"Read the state of {desc.get('description', thing)}.", schema(),
                            _iot_state(str(thing))))
    return out


def _iot_call(thing: str, method: str) -> Callable[[ToolContext, Mapping[str, Any]], Awaitable[ToolResult]]:
    async def call(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        await tctx.link.send_iot_command([{"name": thing, "method": method, "parameters": dict(args)}])
        return ToolResult({"ok": True, "sent": f"{thing}.{method}"})

    return call


def _iot_state(thing: str) -> Callable[[ToolContext, Mapping[str, Any]], Awaitable[ToolResult]]:
    async def call(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
        return ToolResult(dict(tctx.link.iot_states.get(thing, {})))

    return call
