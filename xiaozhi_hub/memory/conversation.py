"""Conversation memory for the agent: the store, the summariser and the background summaries.

The agent asks for a context window before calling the LLM and records each message as soon as it
is complete. When the uncovered messages overflow the window, a summary task starts in the
background (one per device at a time) so the next turn is not delayed by a summarising LLM call;
the window stays bounded even before the summary lands, because it is cut by count and size.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Awaitable, Callable

from ..providers.base import ChatMessage
from ..settings import MemorySettings
from .store import ContextWindow, DialogueStore
from .summary import Summarizer

log = logging.getLogger(__name__)

SUMMARY_HEADER = "What you remember from earlier in this conversation:"


class ConversationMemory:
    def __init__(self, store: DialogueStore, summarizer: Summarizer, settings: MemorySettings) -> None:
        self.store = store
        self.summarizer = summarizer
        self.settings = settings
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        # Called after a summary has folded messages away (the agent re-warms the LLM's prompt cache).
        self.on_fold: Callable[[str], Awaitable[None]] | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    async def context(self, device_id: str) -> ContextWindow:
        if not self.enabled:
            return ContextWindow("", ())
        return await self.store.window(device_id)

    async def chat_messages(self, device_id: str, system_prompt: str) -> list[ChatMessage]:
        """The system prompt, the summary as a second system message, then the window, oldest first.

        The summary is not appended to the system prompt: providers add the tool list to the first
        system message, and a prompt prefix that stays the same keeps llama.cpp's cache of it (a
        changed summary would otherwise re-evaluate every tool schema, seconds on a small board).
        """
        window = await self.context(device_id)
        out = [ChatMessage("system", system_prompt)]
        if window.summary:
            out.append(ChatMessage("system", f"{SUMMARY_HEADER}\n{window.summary}"))
        for m in window.messages:
            content = m.content
            if m.interrupted and m.role == "assistant":
                content = f"{content} (interrupted)"
            out.append(ChatMessage(m.role, content))
        return out

    async def add(self, device_id: str, role: str, content: str, interrupted: bool = False) -> int | None:
        """Commit one message in its own transaction. Shielded: a barge-in that cancels the turn while
        the row is being written does not lose it."""
        if not self.enabled or not content.strip():
            return None
        return await asyncio.shield(self.store.append(device_id, role, content, interrupted))

    async def mark_interrupted(self, message_id: int, content: str | None = None) -> None:
        """See :meth:`DialogueStore.mark_interrupted` (shielded like :meth:`add`)."""
        if self.enabled:
            await asyncio.shield(self.store.mark_interrupted(message_id, content))

    def schedule_summary(self, device_id: str) -> None:
        """Start a background summary for ``device_id`` unless one is running."""
        if not self.enabled or self._closed:
            return
        task = self._tasks.get(device_id)
        if task is not None and not task.done():
            return
        task = asyncio.ensure_future(self._summarize(device_id))
        task.set_name(f"summary:{device_id}")
        self._tasks[device_id] = task
        task.add_done_callback(functools.partial(self._task_done, device_id))

    def _task_done(self, device_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(device_id) is task:
            del self._tasks[device_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("summary for %s failed", device_id, exc_info=task.exception())

    async def yield_to_turn(self, device_id: str) -> None:
        """Stop a running summary of ``device_id``: a new turn needs the LLM (one generation at a
        time on a small machine) more than the summary does; it is rescheduled after the turn."""
        task = self._tasks.pop(device_id, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _summarize(self, device_id: str) -> None:
        # Loop: a long backlog (e.g. after raising the window) may need more than one pass.
        folded = False
        for _ in range(8):
            if not await self.summarize_now(device_id):
                break
            folded = True
        if folded and self.on_fold is not None:
            await self.on_fold(device_id)

    async def summarize_now(self, device_id: str) -> bool:
        """Fold overflowing messages into the summary now; False when nothing needed folding."""
        job = await self.store.summary_job(device_id)
        if job is None:
            return False
        summary = await self.summarizer.summarize(job.previous, job.messages, self.settings.summary_chars)
        return await self.store.save_summary(device_id, summary, job.upto_id)

    async def forget(self, device_id: str) -> int:
        """Stop any running summary of the device, then delete its dialogue and summary."""
        task = self._tasks.pop(device_id, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return await self.store.forget(device_id)

    async def wait_idle(self) -> None:
        """Wait for running summaries (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self, timeout: float = 2.0) -> None:
        """Let running summaries finish for up to ``timeout`` seconds, then cancel them."""
        self._closed = True
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        self._tasks.clear()
