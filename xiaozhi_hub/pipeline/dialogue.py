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

    @property
    def text(self) -> str:
        return "".join(self.parts).strip()


class Dialogue:
    def __init__(self, settings: Settings, memory: ConversationMemory | None) -> None:
        self.settings = settings
        self.memory = memory
        self._volatile: dict[str, collections.deque[ChatMessage]] = {}
        self._writes: set[asyncio.Task[None]] = set()   # answers committed after their turn ended

    async def remember(self, device_id: str, role: str, content: str, interrupted: bool = False) -> None:
        if self.memory is not None and self.memory.enabled:
            await self.memory.add(device_id, role, content, interrupted)
        else:
            h = self._volatile.setdefault(device_id, collections.deque(maxlen=self.settings.memory.window_messages))
            if content.strip():
                h.append(ChatMessage(role, content))

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
            await self.remember(answer.device_id, "assistant", answer.text, interrupted=not answer.complete)
        if self.memory is not None and self.memory.enabled:
            self.memory.schedule_summary(answer.device_id)

    def commit_later(self, answer: Answer) -> None:
        """Commit from a done callback: a cancelled turn may leave the answer's generator suspended
        at a ``yield`` until it is garbage-collected."""
        if answer.committed or not answer.confirmed:
            return
        task = asyncio.ensure_future(self.commit(answer))
        task.set_name(f"commit-answer:{answer.device_id}")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait for answers still being committed (shutdown)."""
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=timeout)
