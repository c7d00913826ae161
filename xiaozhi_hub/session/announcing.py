"""The session's part of announcements; the rules (when, in which order, outcomes) are in
:mod:`xiaozhi_hub.services.announce`, which sees a session only through :class:`Announcing`.

An announcement is spoken as the session's turn: a turn in progress is cancelled first (only
priority ``now`` asks for that; its answer is stored as interrupted), a ``listen start`` that arrives
meanwhile (stock firmware sends one right after its hello, while queued announcements are being
spoken) is applied once they are done instead of cutting them off, and afterwards the session
returns to the state it was in. The announcement is its own reply channel, so it is not reported as
the answer of a turn.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable

from ..pipeline.reply import speak_reply
from ..protocol.messages import ListenMode, Message
from .state import SessionState

if TYPE_CHECKING:
    from ..context import HubContext
    from .session import Session

S = SessionState


async def _once(text: str) -> AsyncIterator[str]:
    yield text


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Announcing:
    """One session as the announcement rules see it (``AnnounceTarget``), and as the reply channel
    announcements are spoken into (``ReplyChannel``)."""

    def __init__(self, session: "Session") -> None:
        self.session = session
        self.ctx: "HubContext" = session.ctx
        self.id = session.id
        self.device_id = session.device_id
        self.turn_log: collections.deque[dict[str, float]] = session.turn_log
        self.active = False                          # announcements are being spoken as the turn
        self._deferred: list[ListenMode | None] = []  # the mode of a listen start that came meanwhile

    # -- AnnounceTarget ------------------------------------------------------------------------------
    @property
    def channel_open(self) -> bool:
        return self.session.channel_open

    def ready_for_announcement(self) -> bool:
        """Nothing in progress: no turn, and the user is not in the middle of a sentence."""
        session = self.session
        if session.state not in (S.IDLE, S.LISTENING) or session.busy:
            return False
        return not (session.utterance is not None and session.utterance.heard_speech)

    def announce(self, work: Callable[[], Awaitable[None]]) -> "asyncio.Task[None]":
        """Run ``work`` (speaking announcements, :meth:`speak_text`) as the session's turn."""
        session = self.session
        previous_turn, previous_state = session.turn, session.state

        async def run() -> None:
            if previous_turn is not None and not previous_turn.done():
                previous_turn.cancel()
                await asyncio.wait({previous_turn}, timeout=1.0)
            self.active = True
            try:
                await work()
            finally:
                self.active = False
                deferred, self._deferred = self._deferred, []
                if not _cancelling():        # cancelled (abort, barge-in, close): the canceller sets the state
                    await self._after(previous_state, deferred)

        session.turn = session.spawn(run(), "announce")
        return session.turn

    async def _after(self, previous: SessionState, deferred: list[ListenMode | None]) -> None:
        """Announcements done (or failed): the state from before, then a listen start that waited."""
        session = self.session
        if session.turn is asyncio.current_task():
            session.turn = None                  # done: the deferred listen start is no barge-in
        await session.return_to(previous)
        if deferred and session.channel_open:
            await session.start_listening(deferred[-1])

    async def speak_text(self, text: str) -> str:
        """Say ``text`` now (``tts start`` … ``tts stop``); returns what was spoken ("" if nothing)."""
        self._deferred.clear()       # a listen start before this is answered by the tts stop to come
        return await speak_reply(self, _once(text))

    # -- listen messages while announcing ----------------------------------------------------------------
    def defer_listen(self, mode: ListenMode | None) -> bool:
        """A ``listen start`` now: True when it waits for the announcements (the caller stops there)."""
        if not self.active:
            return False
        self._deferred.append(mode)
        return True

    def drop_listen(self) -> bool:
        """A ``listen stop`` now: True when announcements are playing (it ends the deferred start)."""
        if not self.active:
            return False
        self._deferred.clear()
        return True

    # -- ReplyChannel: the session's, except what happens after ------------------------------------------
    async def send(self, message: Message) -> None:
        await self.session.send(message)

    async def send_audio(self, opus: bytes, timestamp: int = 0) -> None:
        await self.session.send_audio(opus, timestamp)

    def reply_started(self) -> None:
        self.session.reply_started()

    async def reply_finished(self, said: str) -> None:
        self.session.last_voice = time.monotonic()   # the idle timeout counts from the end of speaking

    def reply_cut(self, said: str) -> None:
        pass                                  # the announcement rules judge a cut announcement
