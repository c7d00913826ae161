"""The hub's MCP client toward one device (the device is the MCP server; docs/protocol.md, MCP).

Requests carry increasing numeric ids and are answered asynchronously; replies are matched by id.
After the hello the client sends ``initialize`` then pages through ``tools/list`` (``nextCursor``).
Every call has a timeout; a device that never answers costs a timer, not a hang.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Mapping

from .. import __version__
from ..protocol import mcp
from ..protocol.messages import HubMcp, ProtocolError

log = logging.getLogger(__name__)

MAX_TOOL_PAGES = 20


class McpCallError(Exception):
    """The device answered a tools/call with an error (its ``error.message``) or timed out."""


class McpClient:
    def __init__(self, send: Callable[[HubMcp], Awaitable[None]], timeout: float,
                 vision_url: str | None = None, vision_token: str | None = None) -> None:
        self._send = send
        self._timeout = timeout
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[mcp.McpResponse]] = {}
        self._vision = (vision_url, vision_token)
        self.server_info: Mapping[str, Any] | None = None
        self.tools: list[mcp.McpTool] = []
        self.ready = asyncio.Event()

    def _new_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    async def request(self, method: str, params: Mapping[str, Any] | None = None,
                      timeout: float | None = None) -> mcp.McpResponse:
        req = mcp.McpRequest(self._new_id(), method, params)
        fut: asyncio.Future[mcp.McpResponse] = asyncio.get_running_loop().create_future()
        self._pending[req.id] = fut
        try:
            async with asyncio.timeout(timeout or self._timeout):
                await self._send(HubMcp(req.to_wire()))
                return await fut
        except TimeoutError:
            raise McpCallError(f"device did not answer {method} in {timeout or self._timeout:.0f}s") from None
        finally:
            self._pending.pop(req.id, None)

    def on_payload(self, payload: Mapping[str, Any]) -> None:
        """Feed one ``mcp`` payload from the device."""
        try:
            msg = mcp.parse(payload)
        except ProtocolError as err:
            log.info("ignoring malformed mcp payload: %s", err)
            return
        if isinstance(msg, mcp.McpResponse):
            fut = self._pending.get(msg.id)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            else:
                log.debug("mcp reply for unknown id %s", msg.id)
        # Devices do not send requests or notifications to the hub; ignore them.

    async def start(self) -> None:
        """initialize, then list every tool page. Errors are logged; the session goes on without tools."""
        try:
            init = await self.request("initialize", mcp.initialize_request(
                0, *self._vision, client_version=__version__).params)
            if init.ok and isinstance(init.result, Mapping):
                info = init.result.get("serverInfo")
                self.server_info = info if isinstance(info, Mapping) else None
            tools: list[mcp.McpTool] = []
            cursor = ""
            for _ in range(MAX_TOOL_PAGES):
                resp = await self.request("tools/list", mcp.tools_list_request(0, cursor).params)
                if not resp.ok:
                    log.info("device tools/list error: %s", resp.error_message)
                    break
                page = mcp.ToolsPage.from_result(resp.result)
                tools.extend(page.tools)
                if not page.next_cursor or page.next_cursor == cursor:
                    break
                cursor = page.next_cursor
            self.tools = tools
        except (McpCallError, ProtocolError) as err:
            log.info("device MCP setup failed: %s", err)
        finally:
            self.ready.set()

    async def call_tool(self, name: str, arguments: Mapping[str, Any], timeout: float | None = None) -> str:
        """Call a device tool; returns the result text or raises :class:`McpCallError`."""
        resp = await self.request("tools/call", {"name": name, "arguments": dict(arguments)}, timeout)
        if not resp.ok:
            raise McpCallError(resp.error_message)
        if isinstance(resp.result, Mapping) and resp.result.get("isError"):
            raise McpCallError(mcp.call_result_text(resp.result) or "tool failed")
        return mcp.call_result_text(resp.result)

    def cancel_all(self) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        self._pending.clear()
