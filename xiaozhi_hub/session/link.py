"""The agent's view of one connected device (:class:`xiaozhi_hub.tools.registry.DeviceLink`).

The session builds one per connection and feeds it what the device reports: its MCP tools (the hub's
:class:`McpClient` toward the device), its legacy IoT things and their states. The agent and the
tools see the device only through this object: they list and call its tools, send IoT commands, and
ask for the conversation to end after the current reply.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping, Sequence

from ..protocol import mcp
from ..protocol.mcp import CAMERA_TOOL
from ..protocol.messages import IotCommand, IotUpdate, Message
from .mcp_client import McpCallError, McpClient


class SessionLink:
    """One session's device, as the agent may use it."""

    def __init__(self, session_id: str, device_id: str, send: Callable[[Message], Awaitable[None]],
                 observe: Callable[[str, Mapping[str, Any], str], None] | None = None) -> None:
        self.session_id = session_id
        self.device_id = device_id
        self._send = send
        self._observe = observe               # told (tool, arguments, result) after each answered call
        self.mcp: McpClient | None = None     # set once the hello announced MCP
        self.iot_descriptors: dict[str, Mapping[str, Any]] = {}
        self.iot_states: dict[str, dict[str, Any]] = {}
        self.end_requested = False            # the agent ended the conversation
        self._camera_timeout: float | None = None

    # -- fed by the session ------------------------------------------------------------------------
    def open_mcp(self, timeout: float, vision: Mapping[str, str] | None = None,
                 camera_timeout: float | None = None) -> McpClient:
        """The device speaks MCP: a client toward it (the caller runs its ``start``). ``vision`` is the
        camera's upload URL and token for ``initialize`` (None: no vision model, none offered)."""
        self.mcp = McpClient(self._send, timeout, *((vision["url"], vision["token"]) if vision else ()))
        self._camera_timeout = camera_timeout
        return self.mcp

    def on_mcp(self, payload: Mapping[str, Any]) -> None:
        if self.mcp is not None:
            self.mcp.on_payload(payload)

    def on_iot(self, msg: IotUpdate) -> None:
        for d in msg.descriptors:
            self.iot_descriptors[str(d["name"])] = d
        for s in msg.states:
            state = s.get("state")
            if isinstance(state, Mapping):
                self.iot_states.setdefault(str(s["name"]), {}).update(state)

    def close(self) -> None:
        """The session is closing: calls still waiting for the device fail now."""
        if self.mcp is not None:
            self.mcp.cancel_all()

    # -- DeviceLink --------------------------------------------------------------------------------
    def device_tools(self) -> Sequence[mcp.McpTool]:
        return self.mcp.tools if self.mcp is not None else ()

    async def call_device_tool(self, name: str, arguments: Mapping[str, Any]) -> str:
        if self.mcp is None:
            raise McpCallError("device has no MCP")
        timeout = self._camera_timeout if name == CAMERA_TOOL else None    # it waits for the vision model
        result = await self.mcp.call_tool(name, arguments, timeout)
        if self._observe is not None:
            self._observe(name, arguments, result)     # e.g. the volume the device reports
        return result

    async def send_iot_command(self, commands: Sequence[Mapping[str, Any]]) -> None:
        await self._send(IotCommand(tuple(commands), session_id=self.session_id))

    def end_conversation(self) -> None:
        self.end_requested = True
