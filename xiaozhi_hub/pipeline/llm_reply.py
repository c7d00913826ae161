"""The LLM's answer to one user message: generation rounds with tools, streamed as it is written.

The LLM sees the conversation (:mod:`.dialogue`) and every tool this device can reach. When it asks
for tools, their results go back to it for up to ``agent.max_tool_depth`` rounds (the last round
offers no tools); a failing tool becomes an error result the LLM can speak about, or a short spoken
sentence when the LLM says nothing at all.

What the LLM writes is shaped for the ear on the way (:mod:`.shaping`): only the pieces worth saying
are yielded, one complete piece per yield (with the space that joins it to the previous one; an
empty string first, when the LLM starts writing, for the turn's timing), and when the shaper ends the answer (budget, a leak of the prompt, a loop, nothing but
code) the LLM's stream is closed, which stops the generation. When nothing was left to say, a
short honest sentence is said instead of silence.

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
from .phrases import DONE, FAILED, NO_ANSWER
from .reply import close_stream
from .shaping import AnswerShaper
from .shaping.text import join_piece

log = logging.getLogger(__name__)


class LlmReply:
    """One answer from the LLM; iterate :meth:`stream` once."""

    def __init__(self, llm: LLM, dialogue: Dialogue, tools: ToolRegistry, tctx: ToolContext,
                 messages: list[ChatMessage], text: str, shaper: AnswerShaper, *, max_depth: int,
                 gate: asyncio.Event | None = None, count: Callable[[str], None] = lambda _name: None) -> None:
        self.llm = llm
        self.dialogue = dialogue
        self.tools = tools
        self.tctx = tctx
        self.messages = [*messages, ChatMessage("user", text)]
        self.text = text
        self.shaper = shaper
        self.max_depth = max_depth
        self.gate = gate
        self.count = count
        self.answer = Answer(tctx.link.device_id)
        self._writing = False    # the LLM has started writing this answer
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
                if not calls or self.shaper.stopped:
                    break
                await self.confirmed()   # a tool acts on the world: never on a speculation
                await self._run_tools("".join(said).strip(), calls)
            await self.confirmed()
            if not answer.text:
                if not self.fallback:
                    self.count("answers_cut_to_nothing" if self.shaper.cut_everything else "answers_empty")
                say = self.fallback or NO_ANSWER[self.tctx.lang]
                answer.parts.append(say)
                yield say
            answer.complete = True
        finally:
            await self.dialogue.commit(answer)

    async def _generate(self, offered: list[ToolSpec], calls: list[ToolCall]) -> AsyncGenerator[str, None]:
        """One generation: yields the pieces to say and collects the tool calls it asks for into
        ``calls``; the LLM is stopped as soon as the shaper ends the answer."""
        shaper = self.shaper
        stream = self.llm.stream(self.messages, offered)
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    if not self._writing:
                        self._writing = True
                        yield ""         # the LLM's first token (the reply marks the time)
                    for piece in shaper.feed(event.text):
                        yield self._said(piece)
                    if shaper.stopped:
                        self.count("answers_cut")
                        return
                elif isinstance(event, ToolCall) and offered:
                    calls.append(event)
            for piece in shaper.flush():
                yield self._said(piece)
            if shaper.stopped:
                self.count("answers_cut")
        finally:
            await close_stream(stream)   # stops the generation when the answer ended early

    def _said(self, piece: str) -> str:
        """Keep ``piece`` as part of the stored answer; the text to yield for it."""
        before = "".join(self.answer.parts)
        part = join_piece(before, piece)[len(before):]
        self.answer.parts.append(part)
        return part

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
