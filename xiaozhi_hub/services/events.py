"""The hub's event bus: typed events from sessions, announcements and device records to subscribers
(the ``/api/events`` stream, the MQTT bridge, tests).

Rules:

- :meth:`EventBus.publish` is synchronous and never waits: it appends the event to each subscriber's
  bounded queue and returns, so a session can publish from the audio path at no cost.
- A subscriber whose queue is full is *dropped*: its backlog is discarded, it is unsubscribed, and
  its next :meth:`Subscription.get` raises :class:`SubscriberDropped`. Nothing is ever buffered
  without bound, and one slow reader never delays the others.
- Publishing must happen on the event loop's thread; code on another thread (a paho-mqtt callback)
  uses :meth:`EventBus.publish_threadsafe`.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

log = logging.getLogger(__name__)

DEFAULT_QUEUE = 256


class EventType(str, enum.Enum):
    DEVICE_CONNECTED = "device_connected"
    DEVICE_DISCONNECTED = "device_disconnected"
    STATE = "state"                      # {"state": idle|listening|thinking|speaking|offline}
    WAKE = "wake"                        # {"text": wake word or ""}
    STT = "stt"                          # {"text"}
    REPLY = "reply"                      # {"text", "complete"}: the whole reply once the turn ended
    TURN_FINISHED = "turn_finished"      # {"interrupted"}
    TOOL_CALL = "tool_call"              # {"name", "arguments", "ok", "error"?}
    ANNOUNCEMENT = "announcement"        # {"id", "status", "text"}
    VOLUME = "volume"                    # {"volume"}
    DEVICE_ADDED = "device_added"        # {"device": Device}
    DEVICE_RENAMED = "device_renamed"    # {"device": Device}
    DEVICE_REMOVED = "device_removed"    # {}
    ERROR = "error"                      # {"message"}


@dataclass(frozen=True)
class Event:
    type: EventType
    device_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    seq: int = 0                         # set by the bus: increases by one per published event

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type.value, "ts": round(self.ts, 3), "seq": self.seq}
        if self.device_id is not None:
            out["device_id"] = self.device_id
        out.update(self.data)
        return out


class SubscriberDropped(Exception):
    """This subscriber did not keep up; its queue overflowed and it was unsubscribed."""


class Subscription:
    """One subscriber's bounded queue. Use ``async for event in sub`` or :meth:`get`; close when done."""

    def __init__(self, bus: "EventBus", maxsize: int, name: str) -> None:
        self._bus = bus
        self.maxsize = maxsize
        self.name = name
        self._queue: collections.deque[Event] = collections.deque()
        self._ready = asyncio.Event()
        self._dropped = asyncio.Event()
        self.dropped = False
        self.closed = False

    def __len__(self) -> int:
        return len(self._queue)

    def _offer(self, event: Event) -> bool:
        """Called by the bus; False when the queue is full (the bus then drops this subscriber)."""
        if len(self._queue) >= self.maxsize:
            return False
        self._queue.append(event)
        self._ready.set()
        return True

    def _drop(self) -> None:
        self.dropped = True
        self._queue.clear()
        self._ready.set()
        self._dropped.set()

    async def wait_dropped(self) -> None:
        """Return once the bus has dropped this subscriber (even while its reader is blocked elsewhere)."""
        await self._dropped.wait()

    def get_nowait(self) -> Event | None:
        if self.dropped:
            raise SubscriberDropped(f"{self.name}: more than {self.maxsize} events behind")
        if self._queue:
            return self._queue.popleft()
        self._ready.clear()
        return None

    async def get(self) -> Event:
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            if self.closed:
                raise SubscriberDropped(f"{self.name}: closed")
            await self._ready.wait()

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.get()
        except SubscriberDropped:
            if self.closed and not self.dropped:
                raise StopAsyncIteration from None
            raise

    def close(self) -> None:
        self.closed = True
        self._ready.set()
        self._bus._remove(self)


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []
        self._seq = itertools.count(1)
        self.last_seq = 0
        self.dropped_subscribers = 0

    def subscribe(self, maxsize: int = DEFAULT_QUEUE, name: str = "subscriber") -> Subscription:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        sub = Subscription(self, maxsize, name)
        self._subscribers.append(sub)
        return sub

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def publish(self, type_: EventType, device_id: str | None = None, **data: Any) -> Event:
        """Stamp and deliver one event to every subscriber; never blocks."""
        seq = next(self._seq)
        self.last_seq = seq
        event = Event(type_, device_id, data, time.time(), seq)
        for sub in list(self._subscribers):
            if not sub._offer(event):
                self._subscribers.remove(sub)
                sub._drop()
                self.dropped_subscribers += 1
                log.warning("event subscriber %s dropped: it fell %d events behind", sub.name, sub.maxsize)
        return event

    def publish_threadsafe(self, loop: asyncio.AbstractEventLoop, type_: EventType, device_id: str | None = None,
                           **data: Any) -> None:
        """Publish from another thread (the event is delivered on ``loop``)."""
        loop.call_soon_threadsafe(lambda: self.publish(type_, device_id, **data))

    def on(self, callback: Callable[[Event], None], maxsize: int = DEFAULT_QUEUE,
           name: str = "callback") -> "asyncio.Task[None]":
        """Run ``callback`` for each event in a task of its own (it must not block); returns the task.
        Cancel the task to unsubscribe. A callback that raises is logged and keeps its subscription."""
        sub = self.subscribe(maxsize, name)

        async def pump() -> None:
            try:
                async for event in sub:
                    try:
                        callback(event)
                    except Exception:
                        log.exception("event callback %s failed", name)
            finally:
                sub.close()

        return asyncio.ensure_future(pump())
