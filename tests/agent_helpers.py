"""Helpers for the tests of the agent, its memory and its tools: a scripted device link, a scripted
LLM, a manual clock, and the ``db`` fixture (each test package's conftest imports it)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping, Sequence

import pytest

from xiaozhi_hub.protocol import mcp
from xiaozhi_hub.providers.base import ChatMessage, LLMEvent, TextDelta, ToolCall, ToolSpec
from xiaozhi_hub.settings import Settings, from_mapping
from xiaozhi_hub.store.db import Database

# Importing these registers their migrations before a database opens.
import xiaozhi_hub.memory.store
import xiaozhi_hub.tools.timers  # noqa: F401

VOLUME_SCHEMA = {"type": "object", "properties": {"volume": {"type": "integer", "minimum": 0, "maximum": 100}},
                 "required": ["volume"]}


class FakeLink:
    """A device as the agent sees it: MCP volume/status tools like stock firmware, IoT optional."""

    def __init__(self, device_id: str = "aa:bb:cc:dd:ee:01", volume: int = 70, mcp_tools: bool = True,
                 iot: Mapping[str, Any] | None = None) -> None:
        self.device_id = device_id
        self.session_id = "session-1"
        self.volume = volume
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.iot_commands: list[dict[str, Any]] = []
        self.iot_descriptors: dict[str, Mapping[str, Any]] = dict(iot or {})
        self.iot_states: dict[str, dict[str, Any]] = {}
        self.ended = False
        self.fail: str | None = None          # error text every device call raises
        self.delay = 0.0                      # seconds each device call takes
        self._tools = [mcp.McpTool("self.get_device_status", "status"),
                       mcp.McpTool("self.audio_speaker.set_volume", "set volume", VOLUME_SCHEMA)] if mcp_tools else []

    def device_tools(self) -> Sequence[mcp.McpTool]:
        return self._tools

    async def call_device_tool(self, name: str, arguments: Mapping[str, Any]) -> str:
        self.calls.append((name, dict(arguments)))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError(self.fail)
        if name == "self.get_device_status":
            return json.dumps({"audio_speaker": {"volume": self.volume}})
        if name == "self.audio_speaker.set_volume":
            self.volume = int(arguments["volume"])
            return "true"
        raise RuntimeError(f"Unknown tool: {name}")

    async def send_iot_command(self, commands: Sequence[Mapping[str, Any]]) -> None:
        self.iot_commands.extend(dict(c) for c in commands)

    def end_conversation(self) -> None:
        self.ended = True


@dataclass
class ScriptedLLM:
    """Plays back one script per call: a list of events (TextDelta/ToolCall). Records what it saw."""

    scripts: list[list[LLMEvent]] = field(default_factory=list)
    name: str = "scripted"
    calls_tools: bool = True
    seen: list[tuple[list[ChatMessage], list[ToolSpec]]] = field(default_factory=list)
    default: str = "Okay."

    async def stream(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> AsyncIterator[LLMEvent]:
        self.seen.append((list(messages), list(tools)))
        script = self.scripts.pop(0) if self.scripts else [TextDelta(self.default)]
        for event in script:
            await asyncio.sleep(0)
            yield event


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id=f"call_{name}", name=name, arguments=arguments)


def settings(tmp_path: Any = None, **sections: Any) -> Settings:
    raw: dict[str, Any] = {"llm": {"provider": "fake"}, **sections}
    if tmp_path is not None:
        raw["data_dir"] = str(tmp_path / "data")
    return from_mapping(raw)


async def collect(deltas: AsyncIterator[str]) -> str:
    return "".join([d async for d in deltas])


class ManualClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def db(tmp_path) -> AsyncIterator[Database]:
    database = await Database(tmp_path / "hub.db").open()
    yield database
    await database.close()
