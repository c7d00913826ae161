"""Speculative answers: the reply starts on a draft transcript during the end-of-speech silence.

The VAD waits ``vad.silence_ms`` of silence before it ends an utterance, and most of that wait is
idle. A streaming ASR can give a draft of what was said once ``asr.early_decode_ms`` of it has
passed; the answer starts on that draft while the VAD is still waiting. At the end of speech the turn
either adopts the speculation (the final transcript says the same words: open the gate and play) or
discards it without a trace.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from ..compute import ComputePool
from ..tools.registry import DeviceLink
from .reply import Reply, ReplyChannel
from .timing import TurnTiming


def llm_is_idle(compute: ComputePool) -> bool:
    """A guess starts only on an idle LLM: it must not queue ahead of another device's turn."""
    lim = compute.limit("llm")
    return lim.active < lim.limit and not lim.waiting


class Speculation:
    """An answer started on a draft transcript while the user is (probably) done.

    The agent runs with a *gate*: it may read the conversation and generate text (and the reply may
    be synthesized), but it stores nothing and calls no tool until the gate opens (:meth:`adopt`).
    """

    def __init__(self, channel: ReplyChannel, link: DeviceLink, text: str) -> None:
        self.text = text
        self.gate = asyncio.Event()
        self.started_at = time.monotonic()
        self.decided = False            # adopted or discarded
        self.timing = TurnTiming(channel.ctx.metrics, None)
        self.timing.stamps["draft"] = self.started_at
        self.reply = Reply(channel, channel.ctx.agent.reply(link, text, gate=self.gate), self.timing)
        self.reply.start()

    def adopt(self, timing: TurnTiming) -> Reply:
        """Commit: the answer may act and be stored now; its stages count towards ``timing``."""
        self.decided = True
        timing.absorb(self.timing)
        self.reply.timing = timing
        self.gate.set()
        return self.reply

    async def discard(self) -> None:
        """Throw the answer away: it stored nothing and called no tool."""
        self.decided = True
        await self.reply.discard()


class SpeculationSlot:
    """The one speculative answer a session may have running, and the counting around it
    (``speculations``, ``speculation_misses``; the turn counts ``speculation_hits``)."""

    def __init__(self, channel: ReplyChannel, link: DeviceLink,
                 spawn: Callable[[Awaitable[None], str], object]) -> None:
        self.channel = channel
        self.link = link
        self.metrics = channel.ctx.metrics
        self._spawn = spawn
        self.current: Speculation | None = None

    def start(self, text: str) -> None:
        """Answer ``text`` speculatively (replacing an older guess), if the LLM is idle."""
        if not llm_is_idle(self.channel.ctx.compute):
            return
        self.withdraw()
        self.current = Speculation(self.channel, self.link, text)
        self.metrics.inc("speculations")

    def take(self) -> Speculation | None:
        """Hand the running speculation to the turn that decides on it."""
        spec, self.current = self.current, None
        return spec

    def withdraw(self) -> None:
        """The guess is out of date (speech resumed, or a newer draft): discard it in the background."""
        spec = self._miss()
        if spec is not None:
            self._spawn(spec.discard(), "speculation-discard")

    async def drop(self) -> None:
        """Discard the guess now (the utterance it belongs to is gone)."""
        spec = self._miss()
        if spec is not None:
            await spec.discard()

    def _miss(self) -> Speculation | None:
        spec = self.take()
        if spec is not None:
            self.metrics.inc("speculation_misses")
        return spec
