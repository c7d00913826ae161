"""What the agent remembers of each device's conversation, and how an answer gets committed.

With conversation memory on, messages go to the dialogue store (rolling summary + recent window,
:mod:`xiaozhi_hub.memory`); without a database, or with memory off, a short window is kept in
process. Each user message is committed when its turn starts and each answer when it is complete
or cut off (marked interrupted), each in its own transaction; an answer that was never confirmed
(a discarded speculation) is not stored at all.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Coroutine

from ..memory.conversation import ConversationMemory
from ..providers.base import ChatMessage
from ..settings import Settings


class Answer:
    """The assistant's answer as it streams, and whether it was confirmed (not a discarded
    speculation), completed and stored."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.parts: list[str] = []
        self.confirmed = False
        self.complete = False
        self.committed = False
        self.row_id: int | None = None     # the stored message, once committed

    @property
    def text(self) -> str:
        return "".join(self.parts).strip()


class Dialogue:
    def __init__(self, settings: Settings, memory: ConversationMemory | None) -> None:
        self.settings = settings
        self.memory = memory
        self._volatile: dict[str, collections.deque[ChatMessage]] = {}
        self._writes: set[asyncio.Task[None]] = set()   # answers committed after their turn ended
        self._latest: dict[str, Answer] = {}            # each device's latest answer (see cut_short)

    async def remember(self, device_id: str, role: str, content: str, interrupted: bool = False) -> int | None:
        """Store one message; returns its id in the dialogue store (None when kept in process)."""
        if self.memory is not None and self.memory.enabled:
            return await self.memory.add(device_id, role, content, interrupted)
        h = self._volatile.setdefault(device_id, collections.deque(maxlen=self.settings.memory.window_messages))
        if content.strip():
            h.append(ChatMessage(role, content))
        return None

    def started(self, answer: Answer) -> None:
        """``answer`` (confirmed) is the device's latest: the one a cut-off playback refers to."""
        self._latest[answer.device_id] = answer

    async def remember_whole(self, device_id: str, text: str) -> None:
        """Store an answer that is complete before it is spoken (an intent's, Home Assistant's)."""
        answer = Answer(device_id)
        answer.parts.append(text)
        answer.confirmed = answer.complete = answer.committed = True
        answer.row_id = await self.remember(device_id, "assistant", text)
        self._latest[device_id] = answer

    def cut_short(self, device_id: str, said: str) -> None:
        """The device stopped speaking the latest answer part way (abort, barge-in, an announcement
        with priority ``now``): store it as interrupted, with only what was said, also when the LLM
        had already finished writing it."""
        answer = self._latest.pop(device_id, None)
        if answer is None:
            return
        if not answer.committed:
            answer.complete = False            # committed as interrupted when the generator ends
        elif answer.complete and answer.row_id is not None and self.memory is not None:
            self._track(self.memory.mark_interrupted(answer.row_id, said.strip() or None), f"cut-short:{device_id}")

    async def messages(self, device_id: str) -> list[ChatMessage]:
        """The prompt before the user's new words: the system prompt and what is remembered."""
        system = self.settings.llm.system_prompt
        if self.memory is not None and self.memory.enabled:
            return await self.memory.chat_messages(device_id, system)
        return [ChatMessage("system", system), *self._volatile.get(device_id, ())]

    def forget(self, device_id: str) -> None:
        """Drop the in-process window (the stored dialogue is forgotten by the tool itself)."""
        self._volatile.pop(device_id, None)

    async def commit(self, answer: Answer) -> None:
        """Store the assistant's answer once (complete, or marked interrupted), then maybe summarise."""
        if answer.committed or not answer.confirmed:
            return
        answer.committed = True
        if answer.text:
            answer.row_id = await self.remember(answer.device_id, "assistant", answer.text,
                                                interrupted=not answer.complete)
        if self.memory is not None and self.memory.enabled:
            self.memory.schedule_summary(answer.device_id)

    def commit_later(self, answer: Answer) -> None:
        """Commit from a done callback: a cancelled turn may leave the answer's generator suspended
        at a ``yield`` until it is garbage-collected."""
        if answer.committed or not answer.confirmed:
            return
        self._track(self.commit(answer), f"commit-answer:{answer.device_id}")

    def _track(self, write: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.ensure_future(write)
        task.set_name(name)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait for answers still being committed (shutdown)."""
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=timeout)
