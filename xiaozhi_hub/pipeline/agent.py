"""The agent: one user utterance in, spoken text out (streamed), with tool calls in between.

The session hands the agent a :class:`DeviceLink`: the narrow view of the device the agent may use
(its MCP tools, ending the conversation). The agent streams text deltas; the turn splits them into
sentences and speaks them. Tool calls requested by the LLM run here, their results go back to the
LLM, up to ``MAX_TOOL_DEPTH`` rounds.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
from typing import TYPE_CHECKING, Any, AsyncIterator, Mapping, Protocol, Sequence

from ..protocol import mcp
from ..providers.base import LLM, ChatMessage, TextDelta, ToolCall, ToolSpec
from ..settings import Settings

if TYPE_CHECKING:
    from ..context import HubContext

log = logging.getLogger(__name__)

MAX_TOOL_DEPTH = 3
HISTORY_TURNS = 8


class DeviceLink(Protocol):
    """What a session offers the agent."""

    device_id: str
    session_id: str

    def device_tools(self) -> Sequence[mcp.McpTool]: ...

    async def call_device_tool(self, name: str, arguments: Mapping[str, Any]) -> str: ...

    def end_conversation(self) -> None:
        """Close the channel once the current reply has been spoken."""


def device_tool_specs(tools: Sequence[mcp.McpTool]) -> dict[str, tuple[ToolSpec, str]]:
    """LLM function name -> (spec, device tool name). Names are sanitised and kept unique."""
    out: dict[str, tuple[ToolSpec, str]] = {}
    for tool in tools:
        base = mcp.function_name(tool.name)
        name = base
        for n in itertools.count(2):
            if name not in out:
                break
            name = f"{base[:60]}_{n}"
        out[name] = (ToolSpec(name, tool.description, dict(tool.input_schema)), tool.name)
    return out


class Agent:
    def __init__(self, settings: Settings, llm: LLM) -> None:
        self.settings = settings
        self.llm = llm
        self._history: dict[str, collections.deque[ChatMessage]] = {}

    def history(self, device_id: str) -> collections.deque[ChatMessage]:
        h = self._history.get(device_id)
        if h is None:
            h = self._history[device_id] = collections.deque(maxlen=HISTORY_TURNS * 2)
        return h

    async def reply(self, link: DeviceLink, text: str) -> AsyncIterator[str]:
        """Stream the spoken answer to ``text`` as text deltas."""
        history = self.history(link.device_id)
        tools = device_tool_specs(link.device_tools())
        messages: list[ChatMessage] = [ChatMessage("system", self.settings.llm.system_prompt), *history,
                                       ChatMessage("user", text)]
        answer: list[str] = []
        for depth in range(MAX_TOOL_DEPTH + 1):
            calls: list[ToolCall] = []
            offered = [spec for spec, _ in tools.values()] if depth < MAX_TOOL_DEPTH else []
            async for event in self.llm.stream(messages, offered):
                if isinstance(event, TextDelta):
                    if event.text:
                        answer.append(event.text)
                        yield event.text
                elif isinstance(event, ToolCall):
                    calls.append(event)
            if not calls:
                break
            messages.append(ChatMessage("assistant", "", tool_calls=tuple(calls)))
            for call in calls:
                result = await self._run_tool(link, tools, call)
                messages.append(ChatMessage("tool", result, tool_call_id=call.id, name=call.name))
        history.append(ChatMessage("user", text))
        history.append(ChatMessage("assistant", "".join(answer)))

    async def _run_tool(self, link: DeviceLink, tools: Mapping[str, tuple[ToolSpec, str]], call: ToolCall) -> str:
        entry = tools.get(call.name)
        if entry is None:
            return json.dumps({"error": f"unknown tool {call.name}"})
        try:
            return await link.call_device_tool(entry[1], call.arguments)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a tool error becomes a result the LLM can speak about
            log.info("device %s tool %s failed: %s", link.device_id, entry[1], err)
            return json.dumps({"error": str(err)})


async def create_agent(ctx: "HubContext") -> Agent:
    """Build the hub's agent (called once by the app after the providers are loaded)."""
    return Agent(ctx.settings, ctx.providers.llm)
