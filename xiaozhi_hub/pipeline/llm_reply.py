"""The LLM's answer to one user message: generation rounds with tools, streamed as it is written.

The LLM sees the conversation (:mod:`.dialogue`) and every tool this device can reach. When it asks
for tools, their results go back to it for up to ``agent.max_tool_depth`` rounds (the last round
offers no tools); a failing tool becomes an error result the LLM can speak about, or a short spoken
sentence when the LLM says nothing at all.

With a *gate* (a speculative answer, started before the user is known to have finished) the reply
may read the conversation and generate text, but it stores nothing and calls no tool until the gate
is set; closed before that, it leaves no trace. The answer is committed when it ends, also when the
turn is cancelled (barge-in): what was said so far, marked interrupted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import AsyncGenerator, Callable

from ..providers.base import LLM, ChatMessage, TextDelta, ToolCall, ToolSpec
from ..tools.registry import ToolContext, ToolError, ToolRegistry
from .dialogue import Answer, Dialogue
from .phrases import DONE, FAILED

log = logging.getLogger(__name__)


class LlmReply:
    """One answer from the LLM; iterate :meth:`stream` once."""

    def __init__(self, llm: LLM, dialogue: Dialogue, tools: ToolRegistry, tctx: ToolContext,
                 messages: list[ChatMessage], text: str, *, max_depth: int,
                 gate: asyncio.Event | None = None, count: Callable[[str], None] = lambda _name: None) -> None:
        self.llm = llm
        self.dialogue = dialogue
        self.tools = tools
        self.tctx = tctx
        self.messages = [*messages, ChatMessage("user", text)]
        self.text = text
        self.max_depth = max_depth
        self.gate = gate
        self.count = count
        self.answer = Answer(tctx.link.device_id)
        self.fallback = ""       # spoken when the LLM ends without words after calling tools

    async def confirmed(self) -> None:
        """Wait for the gate (speculation), then store the user's words, once."""
        if self.answer.confirmed:
            return
        if self.gate is not None:
            await self.gate.wait()
        self.answer.confirmed = True
        self.dialogue.started(self.answer)
        self.count("llm_turns")
        await self.dialogue.remember(self.answer.device_id, "user", self.text)

    async def stream(self) -> AsyncGenerator[str, None]:
        answer = self.answer
        if self.gate is None:
            await self.confirmed()
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _t: self.dialogue.commit_later(answer))
        try:
            for depth in range(self.max_depth + 1):
                offered = self.tools.specs() if depth < self.max_depth else []
                calls: list[ToolCall] = []
                said: list[str] = []
                async for piece in self._generate(offered, calls):
                    said.append(piece)
                    yield piece
                if not calls:
                    break
                await self.confirmed()   # a tool acts on the world: never on a speculation
                await self._run_tools("".join(said), calls)
            await self.confirmed()
            if not answer.text and self.fallback:
                answer.parts.append(self.fallback)
                yield self.fallback
            answer.complete = True
        finally:
            await self.dialogue.commit(answer)

    async def _generate(self, offered: list[ToolSpec], calls: list[ToolCall]) -> AsyncGenerator[str, None]:
        """One generation: yields its text and collects the tool calls it asks for into ``calls``."""
        async for event in self.llm.stream(self.messages, offered):
            if isinstance(event, TextDelta):
                if event.text:
                    self.answer.parts.append(event.text)
                    yield event.text
            elif isinstance(event, ToolCall) and offered:
                calls.append(event)

    async def _run_tools(self, said: str, calls: list[ToolCall]) -> None:
        """Run the round's tool calls; their results go into the conversation for the next round."""
        self.messages.append(ChatMessage("assistant", said, tool_calls=tuple(calls)))
        for call in calls:
            result, say = await self._run_tool(call)
            if say:
                self.fallback = say
            self.messages.append(ChatMessage("tool", result, tool_call_id=call.id, name=call.name))

    async def _run_tool(self, call: ToolCall) -> tuple[str, str]:
        """Run one tool the LLM asked for → (result text for the LLM, sentence to speak if it stays silent)."""
        tctx = self.tctx
        log.info("device %s: LLM calls %s %s", tctx.link.device_id, call.name, json.dumps(call.arguments)[:200])
        try:
            result = await self.tools.call(call.name, call.arguments, tctx)
        except ToolError as err:
            log.info("device %s: tool %s failed: %s", tctx.link.device_id, call.name, err)
            return json.dumps({"error": str(err)}, ensure_ascii=False), err.say or FAILED[tctx.lang]
        return result.for_llm(), result.say or DONE[tctx.lang]
