"""The agent: one user utterance in, spoken text out (streamed), with tools in between.

A transcript first meets the fast intent matcher (``pipeline/intents.py``): a common command
("volume to thirty", "set a timer for ten minutes", "关灯") runs its built-in tool at once and the
agent speaks the tool's short confirmation, without the LLM. Everything else goes to the LLM with
the conversation memory (rolling summary + recent window) and every tool this device can reach:
the built-ins, the device's MCP tools (names made valid for function calling and mapped back), its
legacy IoT things as ``<thing>_<method>`` tools, and the home control tool when the Home Assistant
hook knows entities. Tool results go back to the LLM for up to ``agent.max_tool_depth`` rounds;
a failing tool becomes an error result the LLM can speak about, or a short spoken sentence when the
LLM says nothing.

The agent runs inside the session's Turn task, so barge-in/abort cancel it, including a tool call in
flight. Each user message is committed to the dialogue store when the turn starts and each answer
when it is complete (or cut off), each in its own transaction.

Background services (the timer scheduler, memory retention, running summaries) are started and
stopped by :func:`start`, which the app runs as a component.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any, AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence

from ..memory.conversation import ConversationMemory
from ..memory.store import DialogueStore
from ..memory.summary import make_summarizer
from ..protocol import mcp
from ..providers.base import LLM, ChatMessage, TextDelta, ToolCall, ToolSpec
from ..settings import Settings
from ..store.db import Database
from ..tools.builtin import builtin_registry, home_tool
from ..tools.home_assistant import NoHomeControl, home_control
from ..tools.registry import (DeviceLink, Tool, ToolContext, ToolEnv, ToolError, ToolRegistry, ToolResult, schema,
                              unique_name)
from ..tools.timers import TimerService
from .intents import IntentCall, IntentMatch, IntentMatcher, detect_language, intent_call

if TYPE_CHECKING:
    from ..context import HubContext

log = logging.getLogger(__name__)

__all__ = ["Agent", "DeviceLink", "create_agent", "device_tool_specs", "start"]

MAX_TOOL_DEPTH = 3          # default of settings.agent.max_tool_depth
PRUNE_INTERVAL = 6 * 3600   # how often dialogue past its retention is deleted

FAILED = {"en": "Sorry, I couldn't do that.", "zh": "抱歉，我没能做到。"}
DONE = {"en": "Done.", "zh": "好了。"}


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
        try:
            text = await tctx.link.call_device_tool(device_name, args)
        except (asyncio.CancelledError, ToolError):
            raise
        except Exception as err:  # McpCallError: the device's own error text
            raise ToolError(str(err) or "device tool failed") from err
        return ToolResult(text)

    return Tool(name, description, params, call, timeout)


_IOT_TYPES = {"number": "number", "boolean": "boolean", "string": "string", "integer": "integer"}


def iot_tools(descriptors: Mapping[str, Mapping[str, Any]], taken: set[str]) -> list[Tool]:
    """Legacy IoT things (PROTOCOL.md 4.7) as tools: ``<thing>_<method>`` sends an ``iot`` command
    (the device does not answer), ``<thing>_get_state`` reads the last reported state."""
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


class _Answer:
    """The assistant's answer as it streams, and whether it was confirmed (not a discarded
    speculation), completed and stored."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.parts: list[str] = []
        self.confirmed = False
        self.complete = False
        self.committed = False

    @property
    def text(self) -> str:
        return "".join(self.parts).strip()


class Agent:
    """Owns the tools, the intent matcher, the conversation memory and the timer service."""

    def __init__(self, settings: Settings, llm: LLM, db: Database | None = None,
                 ctx: "HubContext | None" = None,
                 find_session: Callable[[str], Any] | None = None) -> None:
        self.settings = settings
        self.llm = llm
        self.ctx = ctx
        self.registry: ToolRegistry = builtin_registry(settings.agent.tool_timeout)
        self.matcher: IntentMatcher | None = (IntentMatcher.from_settings(settings.intents)
                                              if settings.intents.enabled else None)
        self.memory: ConversationMemory | None = None
        self.timers: TimerService | None = None
        if db is not None:
            self.memory = ConversationMemory(DialogueStore(db, settings.memory),
                                             make_summarizer(settings.memory.summarizer, llm,
                                                             remote=settings.llm.provider == "openai"),
                                             settings.memory)
            self.memory.on_fold = self._prefill_after_fold
            if find_session is None and ctx is not None:
                find_session = ctx.registry.by_device
            self.timers = TimerService(db, settings, find_session or (lambda _d: None))
        self.env = ToolEnv(settings, timers=self.timers, memory=self.memory, home=None)
        # Without a database (or with memory disabled) the context lives in process only.
        self._volatile: dict[str, collections.deque[ChatMessage]] = {}
        self._offered: dict[str, list[ToolSpec]] = {}   # the tools last offered to each device's LLM turns
        self._prune_task: asyncio.Task[None] | None = None
        self._warm_task: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()   # answers committed after their turn ended
        self.started = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the timer scheduler and memory retention (idempotent)."""
        if self.started:
            return
        self.started = True
        if self.timers is not None:
            await self.timers.start()
        if self.memory is not None and self.settings.memory.retention_days > 0:
            self._prune_task = asyncio.ensure_future(self._prune_loop())
            self._prune_task.set_name("memory-retention")
        warm_up = getattr(self.llm, "warm_up", None)
        if warm_up is not None:
            # In the background, after "ready": the first turn then finds the system prompt and the
            # built-in tools already evaluated in llama.cpp's prefix cache (seconds on a small CPU).
            self._warm_task = asyncio.ensure_future(self._warm_up(warm_up))
            self._warm_task.set_name("llm-warm-up")

    async def _warm_up(self, warm_up: Callable[..., Awaitable[None]]) -> None:
        t0 = time.monotonic()
        try:
            await warm_up(self.registry.specs(), self.settings.llm.system_prompt)
        except Exception as err:  # a failed warm-up only costs the first turn some time
            log.info("LLM warm-up skipped: %s", err)
            return
        log.info("LLM prompt cache warmed in %.1fs", time.monotonic() - t0)

    async def _prefill_after_fold(self, device_id: str) -> None:
        """A summary just folded old messages away, so the next prompt shares only the system prompt
        with llama.cpp's cached prefix: re-evaluating the rest cost that turn ~3 s on two cores.
        Evaluate it now instead, while the user is still listening to the answer (idle LLM only)."""
        prefill = getattr(self.llm, "prefill", None)
        if prefill is None:
            return
        t0 = time.monotonic()
        try:
            await prefill(await self._context(device_id), self._offered.get(device_id, self.registry.specs()),
                          only_if_idle=True)
        except Exception as err:  # busy or failed: the next turn just pays for the prompt itself
            log.debug("prompt prefill for %s skipped: %s", device_id, err)
            return
        self._metric("prefills")
        log.debug("prompt prefill for %s in %.2fs", device_id, time.monotonic() - t0)

    async def close(self) -> None:
        if self._warm_task is not None and not self._warm_task.done():
            self._warm_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._warm_task
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=2.0)
        if self._prune_task is not None:
            self._prune_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prune_task
            self._prune_task = None
        if self.timers is not None:
            await self.timers.close()
        if self.memory is not None:
            await self.memory.close()
        self.started = False

    async def _prune_loop(self) -> None:
        assert self.memory is not None
        while True:
            try:
                n = await self.memory.store.prune()
                if n:
                    log.info("deleted %d dialogue messages past their retention", n)
            except Exception:
                log.exception("dialogue retention failed")
            await asyncio.sleep(PRUNE_INTERVAL)

    # ------------------------------------------------------------------ helpers
    def _home(self) -> Any:
        return home_control(self.ctx) if self.ctx is not None else (self.env.home or NoHomeControl())

    def _tool_context(self, link: DeviceLink, lang: str) -> ToolContext:
        self.env.home = self._home()
        return ToolContext(link, self.env, lang)

    def _metric(self, name: str, seconds: float | None = None) -> None:
        if self.ctx is None:
            return
        metrics = self.ctx.metrics
        if seconds is None:
            metrics.inc(name)
        else:
            metrics.observe(name, seconds)

    def match_intent(self, text: str) -> tuple[IntentMatch, IntentCall] | None:
        """The intent and tool call for ``text``, or None (→ LLM)."""
        if self.matcher is None:
            return None
        from ..tools.home_assistant import find_entity

        home = self._home()

        def resolve(name: str) -> str | None:
            entity = find_entity(home, name)
            return entity.name if entity is not None else None

        match = self.matcher.match(text, resolve)
        if match is None:
            return None
        if match.intent in ("timer_set", "timer_list", "timer_cancel", "alarm_cancel", "timer_cancel_all",
                            "alarm_set") and self.timers is None:
            return None
        call = intent_call(match, self.env.now())
        return (match, call) if call is not None else None

    def tools_for(self, link: DeviceLink) -> ToolRegistry:
        """The built-ins plus this device's MCP and IoT tools (and home control when entities exist)."""
        taken = {t.name for t in self.registry}
        extra: list[Tool] = []
        timeout = self.settings.session.mcp_call_timeout + 1.0
        for name, (spec, device_name) in device_tool_specs(link.device_tools(), sorted(taken)).items():
            extra.append(_device_tool(name, device_name, spec.description, spec.parameters, timeout))
            taken.add(name)
        extra.extend(iot_tools(getattr(link, "iot_descriptors", {}) or {}, taken))
        entities = self._home().entities()
        if entities:
            extra.append(home_tool(sorted({e.name for e in entities})))
        return self.registry.with_tools(extra)

    async def _remember(self, device_id: str, role: str, content: str, interrupted: bool = False) -> None:
        if self.memory is not None and self.memory.enabled:
            await self.memory.add(device_id, role, content, interrupted)
        else:
            h = self._volatile.setdefault(device_id, collections.deque(maxlen=self.settings.memory.window_messages))
            if content.strip():
                h.append(ChatMessage(role, content))

    async def _context(self, device_id: str) -> list[ChatMessage]:
        system = self.settings.llm.system_prompt
        if self.memory is not None and self.memory.enabled:
            return await self.memory.chat_messages(device_id, system)
        return [ChatMessage("system", system), *self._volatile.get(device_id, ())]

    # ------------------------------------------------------------------ the turn
    async def reply(self, link: DeviceLink, text: str, gate: asyncio.Event | None = None) -> AsyncGenerator[str, None]:
        """Stream the spoken answer to ``text`` as text deltas.

        With a ``gate`` (a speculative answer, started before the user is known to have finished) the
        reply may read the conversation and generate text, but it stores nothing and calls no tool
        until the gate is set; closed before that, it leaves no trace.
        """
        text = text.strip()
        if not text:
            return
        t0 = time.perf_counter()
        found = self.match_intent(text)
        self._metric("intent_match", time.perf_counter() - t0)
        if found is not None:
            if gate is not None:
                await gate.wait()   # an intent is fast anyway: nothing to gain before the commit
            self._metric("intent_turns")
            async for delta in self._intent_reply(link, text, *found):
                yield delta
            return
        async for delta in self._llm_reply(link, text, gate):
            yield delta

    async def _intent_reply(self, link: DeviceLink, text: str, match: IntentMatch,
                            call: IntentCall) -> AsyncIterator[str]:
        log.info("device %s: intent %s %s", link.device_id, match.intent, dict(call.arguments))
        forgetting = call.tool == "forget_conversation"
        if not forgetting:
            await self._remember(link.device_id, "user", text)
        tctx = self._tool_context(link, match.lang)
        try:
            result = await self.registry.call(call.tool, call.arguments, tctx)
            say = result.say or DONE[match.lang]
        except ToolError as err:
            log.info("device %s: intent %s failed: %s", link.device_id, match.intent, err)
            say = err.say or FAILED[match.lang]
        if forgetting:
            self._volatile.pop(link.device_id, None)
        else:
            # The answer is complete before it is spoken: commit it now, a barge-in cannot lose it.
            await self._remember(link.device_id, "assistant", say)
        yield say

    async def _llm_reply(self, link: DeviceLink, text: str, gate: asyncio.Event | None = None) -> AsyncIterator[str]:
        lang = detect_language(text)
        if self.memory is not None:
            await self.memory.yield_to_turn(link.device_id)
        messages = [*await self._context(link.device_id), ChatMessage("user", text)]
        answer = _Answer(link.device_id)

        async def confirmed() -> None:
            """Wait for the gate (speculation), then store the user's words, once."""
            if answer.confirmed:
                return
            if gate is not None:
                await gate.wait()
            answer.confirmed = True
            self._metric("llm_turns")
            await self._remember(link.device_id, "user", text)

        if gate is None:
            await confirmed()
        tools = self.tools_for(link)
        self._offered[link.device_id] = tools.specs()
        tctx = self._tool_context(link, lang)
        max_depth = self.settings.agent.max_tool_depth
        # A cancelled turn (barge-in) may leave this generator suspended at a ``yield`` until it is
        # garbage-collected; the task's done callback commits the partial answer promptly instead.
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _t: self._commit_later(answer))
        fallback = ""          # spoken when the LLM ends without words after calling tools
        try:
            for depth in range(max_depth + 1):
                offered = tools.specs() if depth < max_depth else []
                calls: list[ToolCall] = []
                said: list[str] = []
                async for event in self.llm.stream(messages, offered):
                    if isinstance(event, TextDelta):
                        if event.text:
                            answer.parts.append(event.text)
                            said.append(event.text)
                            yield event.text
                    elif isinstance(event, ToolCall) and offered:
                        calls.append(event)
                if not calls:
                    break
                await confirmed()   # a tool acts on the world: never on a speculation
                messages.append(ChatMessage("assistant", "".join(said), tool_calls=tuple(calls)))
                for call in calls:
                    result, say = await self._run_llm_tool(tools, call, tctx)
                    if say:
                        fallback = say
                    messages.append(ChatMessage("tool", result, tool_call_id=call.id, name=call.name))
            await confirmed()
            if not answer.text and fallback:
                answer.parts.append(fallback)
                yield fallback
            answer.complete = True
        finally:
            # Committed even when the turn is cancelled (barge-in): what was said so far, marked.
            await self._commit(answer)

    async def _commit(self, answer: "_Answer") -> None:
        """Store the assistant's answer once (complete, or marked interrupted), then maybe summarise.
        A speculative answer that was never confirmed is not stored at all."""
        if answer.committed or not answer.confirmed:
            return
        answer.committed = True
        if answer.text:
            await self._remember(answer.device_id, "assistant", answer.text, interrupted=not answer.complete)
        if self.memory is not None and self.memory.enabled:
            self.memory.schedule_summary(answer.device_id)

    def _commit_later(self, answer: "_Answer") -> None:
        if answer.committed or not answer.confirmed:
            return
        task = asyncio.ensure_future(self._commit(answer))
        task.set_name(f"commit-answer:{answer.device_id}")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _run_llm_tool(self, tools: ToolRegistry, call: ToolCall, tctx: ToolContext) -> tuple[str, str]:
        """Run one tool the LLM asked for → (result text for the LLM, sentence to speak if it stays silent)."""
        log.info("device %s: LLM calls %s %s", tctx.link.device_id, call.name, json.dumps(call.arguments)[:200])
        try:
            result = await tools.call(call.name, call.arguments, tctx)
        except ToolError as err:
            log.info("device %s: tool %s failed: %s", tctx.link.device_id, call.name, err)
            return json.dumps({"error": str(err)}, ensure_ascii=False), err.say or FAILED[tctx.lang]
        return result.for_llm(), result.say or DONE[tctx.lang]


async def create_agent(ctx: "HubContext") -> Agent:
    """Build the hub's agent (called once by the app after the providers are loaded)."""
    return Agent(ctx.settings, ctx.providers.llm, db=ctx.db, ctx=ctx)


async def start(ctx: "HubContext") -> Callable[[], Awaitable[None]] | None:
    """App component hook: start the agent's background services; returns their closer."""
    agent = ctx.agent
    if agent.started:
        return None
    await agent.start()
    return agent.close
