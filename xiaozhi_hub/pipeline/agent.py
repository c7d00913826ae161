"""The agent: one user utterance in, spoken text out (streamed), with tools in between.

A transcript first meets the fast intent matcher (:mod:`.intents`): a common command ("volume to
thirty", "set a timer for ten minutes", "关灯") runs its built-in tool at once and the agent speaks
the tool's short confirmation, without the LLM. Everything else goes to the LLM (:mod:`.llm_reply`)
with the conversation (:mod:`.dialogue`: rolling summary + recent window) and every tool this device
can reach: the built-ins, the device's MCP tools and legacy IoT things (:mod:`.device_tools`), and
the home control tool when the Home Assistant hook knows entities. A model that cannot call tools
reliably (``llm.tools``; ``auto`` asks the provider) is offered none, and no tool instructions in
its prompt: the intents carry the tools for it. Its answer is shaped for speech on the way
(:mod:`.shaping`).

The agent runs inside the session's Turn task, so barge-in/abort cancel it, including a tool call in
flight.

Background services (the timer scheduler, memory retention, the LLM's prompt cache warm-up) are
started and stopped by :meth:`Agent.start` and :meth:`Agent.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, AsyncGenerator

from ..memory.conversation import ConversationMemory
from ..memory.store import DialogueStore
from ..memory.summary import make_summarizer
from ..providers.base import LLM, PromptCacheLLM, ToolSpec
from ..settings import Settings
from ..store.db import Database
from ..tools.builtin import builtin_registry, home_tool
from ..tools.home_assistant import HomeControl, NoHomeControl, find_entity, home_control, looks_like_home_entity
from ..tools.registry import DeviceLink, ToolContext, ToolEnv, ToolError, ToolRegistry
from ..tools.timers import TimerService
from ..vision import camera_call_timeout
from .device_tools import device_tools
from .dialogue import Dialogue
from .intents import IntentCall, IntentMatch, IntentMatcher, detect_language, intent_call
from .llm_reply import LlmReply
from .phrases import DONE, FAILED
from .shaping import shaper_for

if TYPE_CHECKING:
    from ..context import HubContext

log = logging.getLogger(__name__)

__all__ = ["Agent", "DeviceLink", "create_agent"]

MAX_TOOL_DEPTH = 3          # default of settings.agent.max_tool_depth
PRUNE_INTERVAL = 6 * 3600   # how often dialogue past its retention is deleted


class Agent:
    """Owns the tools, the intent matcher, the conversation (memory) and the timer service."""

    def __init__(self, settings: Settings, llm: LLM, db: Database | None = None,
                 ctx: "HubContext | None" = None) -> None:
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
            # Due timers become announcements (one set of delivery rules); without a hub, nobody speaks.
            self.timers = TimerService(db, settings, ctx.announcements if ctx is not None else None)
        self.env = ToolEnv(settings, timers=self.timers, memory=self.memory, home=None,
                           observe=ctx.live.tool_call if ctx is not None else None)
        mode = settings.llm.tools
        self.llm_tools = mode == "on" or (mode == "auto" and llm.calls_tools)   # offer the LLM tools at all
        # Without a database (or with memory disabled) the conversation lives in process only.
        self.dialogue = Dialogue(settings, self.memory)
        self._offered: dict[str, list[ToolSpec]] = {}   # the tools last offered to each device's LLM turns
        self._prune_task: asyncio.Task[None] | None = None
        self._warm_task: asyncio.Task[None] | None = None
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
        if isinstance(self.llm, PromptCacheLLM):
            # In the background, after "ready": the first turn then finds the system prompt and the
            # built-in tools already evaluated in llama.cpp's prefix cache (seconds on a small CPU).
            self._warm_task = asyncio.ensure_future(self._warm_up(self.llm))
            self._warm_task.set_name("llm-warm-up")

    async def _warm_up(self, llm: PromptCacheLLM) -> None:
        t0 = time.monotonic()
        try:
            await llm.warm_up(self.registry.specs() if self.llm_tools else [], self.settings.llm.system_prompt)
        except Exception as err:  # a failed warm-up only costs the first turn some time
            log.info("LLM warm-up skipped: %s", err)
            return
        log.info("LLM prompt cache warmed in %.1fs", time.monotonic() - t0)

    async def _prefill_after_fold(self, device_id: str) -> None:
        """A summary just folded old messages away, so the next prompt shares only the system prompt
        with llama.cpp's cached prefix: re-evaluating the rest cost that turn ~3 s on two cores.
        Evaluate it now instead, while the user is still listening to the answer (idle LLM only)."""
        if not isinstance(self.llm, PromptCacheLLM):
            return
        t0 = time.monotonic()
        try:
            await self.llm.prefill(await self.dialogue.messages(device_id),
                                   self._offered.get(device_id, self.registry.specs() if self.llm_tools else []),
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
        await self.dialogue.flush()
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
    def _home(self) -> HomeControl:
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
        home = self._home()
        has_home = bool(home.entities())

        def resolve(name: str) -> str | None:
            entity = find_entity(home, name)
            if entity is not None:
                return entity.name
            # A home is connected but did not share this one: match anyway, so the home tool refuses
            # it in words instead of the LLM pretending to switch it.
            return name if has_home and looks_like_home_entity(home, name) else None

        match = self.matcher.match(text, resolve)
        if match is None:
            return None
        if match.intent in ("timer_set", "timer_list", "timer_cancel", "alarm_cancel", "timer_cancel_all",
                            "alarm_set") and self.timers is None:
            return None
        call = intent_call(match, self.env.now())
        return (match, call) if call is not None else None

    def tools_for(self, link: DeviceLink) -> ToolRegistry:
        """The built-ins plus this device's MCP and IoT tools (and home control when entities exist);
        none for a model that is not offered tools (``llm.tools``)."""
        if not self.llm_tools:
            return ToolRegistry(self.settings.agent.tool_timeout)
        taken = {t.name for t in self.registry}
        extra = device_tools(link, taken, self.settings.session.mcp_call_timeout + 1.0,
                             camera_call_timeout(self.settings) + 1.0)
        entities = self._home().entities()
        if entities:
            extra.append(home_tool(sorted({e.name for e in entities})))
        return self.registry.with_tools(extra)

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
        speech = await self._home_conversation(link, text, gate)
        if speech is not None:
            yield speech
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

    async def _home_conversation(self, link: DeviceLink, text: str, gate: asyncio.Event | None) -> str | None:
        """Conversation-first (asked for by the Home Assistant component): Home Assistant's own
        agent answers when it understands ``text``; None lets the hub's assistant answer."""
        if self.ctx is None or not self.ctx.component.conversation_first:
            return None
        if gate is not None:
            await gate.wait()     # Home Assistant acts on the world: never on a speculation
        speech = await self.ctx.component.converse(link.device_id, text, detect_language(text))
        if speech is not None:
            self._metric("home_conversation_turns")
            await self.dialogue.remember(link.device_id, "user", text)
            await self.dialogue.remember_whole(link.device_id, speech)
        return speech

    def cut_short(self, device_id: str, said: str) -> None:
        """The device stopped speaking the latest answer part way (see :meth:`Dialogue.cut_short`)."""
        self.dialogue.cut_short(device_id, said)

    async def _intent_reply(self, link: DeviceLink, text: str, match: IntentMatch,
                            call: IntentCall) -> AsyncGenerator[str, None]:
        log.info("device %s: intent %s %s", link.device_id, match.intent, dict(call.arguments))
        forgetting = call.tool == "forget_conversation"
        if not forgetting:
            await self.dialogue.remember(link.device_id, "user", text)
        tctx = self._tool_context(link, match.lang)
        try:
            result = await self.registry.call(call.tool, call.arguments, tctx)
            say = result.say or DONE[match.lang]
        except ToolError as err:
            log.info("device %s: intent %s failed: %s", link.device_id, match.intent, err)
            say = err.say or FAILED[match.lang]
        if forgetting:
            self.dialogue.forget(link.device_id)
        else:
            # The answer is complete before it is spoken: commit it now, a barge-in cannot lose it.
            await self.dialogue.remember_whole(link.device_id, say)
        yield say

    async def llm_warmed(self) -> None:
        """Wait for the prompt-cache warm-up if it still runs (after "ready"; seconds, many more on a
        busy machine). It evaluates the start of every turn's prompt (system prompt and tools), so a
        turn waiting for it is making progress, not queueing: waiting inside the LLM's queue instead
        counted it against ``llm.max_wait`` and the first question after start-up heard "busy"."""
        task = self._warm_task
        if task is not None and not task.done():
            await asyncio.wait({task})       # a cancelled turn stops waiting; the warm-up goes on

    async def _llm_reply(self, link: DeviceLink, text: str, gate: asyncio.Event | None) -> AsyncGenerator[str, None]:
        lang = detect_language(text)
        if self.memory is not None:
            await self.memory.yield_to_turn(link.device_id)
        await self.llm_warmed()
        messages = await self.dialogue.messages(link.device_id)
        tools = self.tools_for(link)
        specs = self._offered[link.device_id] = tools.specs()
        shaper = shaper_for(self.settings, messages, specs, text)
        reply = LlmReply(self.llm, self.dialogue, tools, self._tool_context(link, lang), messages, text, shaper,
                         max_depth=self.settings.agent.max_tool_depth, gate=gate, count=self._metric)
        async for delta in reply.stream():
            yield delta


async def create_agent(ctx: "HubContext") -> Agent:
    """Build the hub's agent (called once by the app after the providers are loaded)."""
    return Agent(ctx.settings, ctx.providers.llm, db=ctx.db, ctx=ctx)

