"""The tool registry: named tools with a JSON schema, an async handler and a timeout.

The same tools serve two callers. The fast intent path (``pipeline/intents.py``) calls a tool by name
with slots it parsed and speaks the tool's short ``say`` text; the LLM path offers the tools as
functions and feeds the tool's ``data`` back to the model. One implementation per action keeps the
two paths in agreement (a timer set by voice command and one set by the LLM are the same row).

A tool call runs inside the Turn task that asked for it, so barge-in or abort cancels it like any
other await; the registry adds the per-tool timeout and turns failures into :class:`ToolError`,
whose ``say`` is a short sentence fit to be spoken.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from ..protocol import mcp
from ..providers.base import ToolSpec

if TYPE_CHECKING:
    from ..memory.conversation import ConversationMemory
    from ..settings import Settings
    from .home_assistant import HomeControl
    from .timers import TimerService

log = logging.getLogger(__name__)


class DeviceLink(Protocol):
    """The narrow view of one connected device that the agent and its tools may use.

    :class:`xiaozhi_hub.session.link.SessionLink` implements it (one per session); tests use small fakes.
    """

    device_id: str
    session_id: str

    @property
    def iot_descriptors(self) -> Mapping[str, Mapping[str, Any]]:
        """Legacy IoT things the device described, by name (read-only for the agent)."""

    @property
    def iot_states(self) -> Mapping[str, Mapping[str, Any]]:
        """The last state each IoT thing reported, by name (read-only for the agent)."""

    def device_tools(self) -> Sequence[mcp.McpTool]: ...

    async def call_device_tool(self, name: str, arguments: Mapping[str, Any]) -> str: ...

    async def send_iot_command(self, commands: Sequence[Mapping[str, Any]]) -> None: ...

    def end_conversation(self) -> None:
        """Close the channel once the current reply has been spoken."""


class ToolError(Exception):
    """A tool could not do its job. ``say`` is what the user hears; ``str(err)`` goes to the LLM/log."""

    def __init__(self, message: str, say: str | None = None) -> None:
        super().__init__(message)
        self.say = say


@dataclass(frozen=True)
class ToolResult:
    """``data`` is shown to the LLM (JSON-serialisable); ``say`` is the spoken confirmation."""

    data: Any = None
    say: str = ""

    def for_llm(self) -> str:
        if isinstance(self.data, str):
            return self.data
        payload = self.data if self.data is not None else {"ok": True, "message": self.say}
        return json.dumps(payload, ensure_ascii=False, default=str)


@dataclass
class ToolEnv:
    """Hub services the built-in tools use; one per agent, shared by every call."""

    settings: "Settings"
    timers: "TimerService | None" = None
    memory: "ConversationMemory | None" = None
    home: "HomeControl | None" = None
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now().astimezone())
    # Last volume per device before a mute, so "unmute" can restore it.
    volume_before_mute: dict[str, int] = field(default_factory=dict)
    # Told about every tool call: (device_id, tool name, arguments, error or None). Must not block.
    observe: Callable[[str, str, Mapping[str, Any], str | None], None] | None = None


@dataclass
class ToolContext:
    """One call: which device asked, in which language to answer, and the shared services."""

    link: DeviceLink
    env: ToolEnv
    lang: str = "en"

    def pick(self, en: str, zh: str) -> str:
        """The spoken text in the caller's language."""
        return zh if self.lang == "zh" else en


Handler = Callable[[ToolContext, Mapping[str, Any]], Awaitable[ToolResult]]


@dataclass(frozen=True)
class Tool:
    name: str                      # ^[a-zA-Z0-9_-]{1,64}$, used as the LLM function name
    description: str
    parameters: Mapping[str, Any]  # JSON schema object
    handler: Handler
    timeout: float | None = None   # None: settings.agent.tool_timeout
    for_llm: bool = True           # False: reachable only from intents (e.g. relative volume)

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, dict(self.parameters))


def schema(properties: Mapping[str, Mapping[str, Any]] | None = None,
           required: Iterable[str] = ()) -> dict[str, Any]:
    """A JSON schema object for tool parameters (shorthand for tool definitions)."""
    out: dict[str, Any] = {"type": "object", "properties": dict(properties or {})}
    req = list(required)
    if req:
        out["required"] = req
    return out


_JSON_TYPES = {"integer", "number", "string", "boolean", "object", "array"}


def validate_arguments(params: Mapping[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """Check and coerce ``args`` against a tool's schema (the subset device and built-in tools use).

    Small models often send ``"30"`` for an integer or ``30.0``; those are coerced. Missing required
    arguments, wrong types, values out of range and values outside an ``enum`` raise :class:`ToolError`
    so the LLM gets a precise error it can correct or speak about.
    """
    if not isinstance(args, Mapping):
        raise ToolError("arguments must be an object")
    props: Mapping[str, Any] = params.get("properties") or {}
    out: dict[str, Any] = {}
    for name in params.get("required") or ():
        if name not in args or args[name] is None:
            raise ToolError(f"missing argument: {name}")
    for name, value in args.items():
        spec = props.get(name)
        if spec is None:
            continue  # unknown arguments are dropped rather than failing the call
        if value is None and name not in (params.get("required") or ()):
            continue
        out[name] = _coerce(name, spec, value)
    for name, spec in props.items():
        if name not in out and isinstance(spec, Mapping) and "default" in spec:
            out[name] = spec["default"]
    return out


def _coerce(name: str, spec: Mapping[str, Any], value: Any) -> Any:
    kind = spec.get("type")
    if kind == "integer":
        if isinstance(value, bool):
            raise ToolError(f"{name} must be an integer")
        if isinstance(value, str):
            try:
                value = float(value.strip().rstrip("%"))
            except ValueError:
                raise ToolError(f"{name} must be an integer") from None
        if not isinstance(value, (int, float)):
            raise ToolError(f"{name} must be an integer")
        value = int(round(value))
    elif kind == "number":
        if isinstance(value, bool):
            raise ToolError(f"{name} must be a number")
        if isinstance(value, str):
            try:
                value = float(value.strip().rstrip("%"))
            except ValueError:
                raise ToolError(f"{name} must be a number") from None
        if not isinstance(value, (int, float)):
            raise ToolError(f"{name} must be a number")
    elif kind == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise ToolError(f"{name} must be true or false")
    elif kind == "string":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ToolError(f"{name} must be a string")
    if kind in ("integer", "number"):
        lo, hi = spec.get("minimum"), spec.get("maximum")
        if lo is not None and value < lo or hi is not None and value > hi:
            raise ToolError(f"{name} must be between {lo if lo is not None else '-inf'} and "
                            f"{hi if hi is not None else 'inf'}")
    enum = spec.get("enum")
    if enum is not None and value not in enum:
        raise ToolError(f"{name} must be one of {', '.join(map(str, enum))}")
    return value


class ToolRegistry:
    """Named tools. Registration order is kept (stable prompts keep the LLM's prefix cache warm)."""

    def __init__(self, default_timeout: float = 10.0) -> None:
        self.default_timeout = default_timeout
        self._tools: dict[str, Tool] = {}

    def register(self, tool: Tool, replace: bool = False) -> Tool:
        if not replace and tool.name in self._tools:
            raise ValueError(f"tool {tool.name} is already registered")
        if mcp.function_name(tool.name) != tool.name:
            raise ValueError(f"tool name {tool.name!r} is not valid for function calling")
        self._tools[tool.name] = tool
        return tool

    def unregister(self, name: str) -> None:
        self._tools.pop(name, None)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def specs(self) -> list[ToolSpec]:
        """The tools offered to the LLM."""
        return [t.spec() for t in self._tools.values() if t.for_llm]

    async def call(self, name: str, args: Mapping[str, Any], tctx: ToolContext) -> ToolResult:
        """Validate, run with the tool's timeout; every failure becomes :class:`ToolError`.

        Cancellation (barge-in) is not caught: it propagates to the Turn that owns the call.
        """
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name}")
        return await run_tool(tool, args, tctx, tool.timeout or self.default_timeout)

    def with_tools(self, extra: Iterable[Tool]) -> "ToolRegistry":
        """A copy with per-call tools added (device MCP/IoT tools of one session)."""
        out = ToolRegistry(self.default_timeout)
        out._tools = dict(self._tools)
        for tool in extra:
            out._tools[tool.name] = tool
        return out


async def run_tool(tool: Tool, args: Mapping[str, Any], tctx: ToolContext, timeout: float) -> ToolResult:
    observe = tctx.env.observe
    try:
        result = await _run_tool(tool, args, tctx, timeout)
    except ToolError as err:
        if observe is not None:
            observe(tctx.link.device_id, tool.name, args, str(err))
        raise
    if observe is not None:
        observe(tctx.link.device_id, tool.name, args, None)
    return result


async def _run_tool(tool: Tool, args: Mapping[str, Any], tctx: ToolContext, timeout: float) -> ToolResult:
    clean = validate_arguments(tool.parameters, args)
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
        # arrives as the tool finishes, and a barge-in must always stop the turn.
        async with asyncio.timeout(timeout):
            return await tool.handler(tctx, clean)
    except TimeoutError:
        log.info("device %s: tool %s timed out after %.1fs", tctx.link.device_id, tool.name, timeout)
        raise ToolError(f"{tool.name} timed out", tctx.pick("Sorry, that took too long.",
                                                            "抱歉，操作超时了。")) from None
    except (ToolError, asyncio.CancelledError):
        raise
    except Exception as err:  # a failing tool must not fail the turn
        log.info("device %s: tool %s failed: %s", tctx.link.device_id, tool.name, err)
        raise ToolError(str(err) or type(err).__name__) from err


def unique_name(base: str, taken: Iterable[str]) -> str:
    """``base`` made valid for function calling and distinct from ``taken`` (``_2``, ``_3``…)."""
    taken = set(taken)
    name = mcp.function_name(base)
    n = 2
    while name in taken:
        suffix = f"_{n}"
        name = mcp.function_name(base)[:64 - len(suffix)] + suffix
        n += 1
    return name


__all__ = ["DeviceLink", "Tool", "ToolContext", "ToolEnv", "ToolError", "ToolRegistry", "ToolResult",
           "run_tool", "schema", "unique_name", "validate_arguments"]
