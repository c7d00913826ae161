"""A Session driven directly, without sockets: a recording fake Connection, and the hub's real parts
behind it (fake providers, WebRTC VAD, real Opus, a real SQLite file, the real agent)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from xiaozhi_hub.app import configure_compute, open_api_services, open_stores
from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.audio.opus import OpusEncoder
from xiaozhi_hub.auth import Authenticator
from xiaozhi_hub.context import HubContext
from xiaozhi_hub.pipeline.agent import create_agent
from xiaozhi_hub.pipeline.speaker import PhraseCache
from xiaozhi_hub.providers.fake import FakeTTS
from xiaozhi_hub.providers.registry import close_providers, create_providers
from xiaozhi_hub.session.session import Session
from xiaozhi_hub.session.state import SessionState
from xiaozhi_hub.store.db import Database
from xiaozhi_hub.transport.registry import SessionRegistry

from ..conftest import fake_settings

DEVICE_ID = "02:00:00:00:0a:01"
HELLO = {"type": "hello", "version": 1, "transport": "websocket", "features": {"mcp": False},
         "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}}
TIMEOUT = 20.0     # generous: the machine is shared; every wait ends as soon as its condition holds


class Changes:
    """Wakes waiters whenever something they may be waiting for happened (a frame sent, a state
    entered, a speculation started or withdrawn); each waiter re-checks its own condition."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def poke(self) -> None:
        self._event.set()

    async def wait_until(self, condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while True:
                self._event.clear()        # before the check: a poke from now on is not lost
                if condition():
                    return
                await self._event.wait()


class FakeConnection:
    """The transport side of a session, recorded in order: ("text", JSON object) or ("audio", bytes)."""

    remote = "fake"

    def __init__(self, changes: Changes) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.closed_with: tuple[int, str] | None = None
        self.changes = changes

    async def send_text(self, text: str) -> None:
        self._record(("text", json.loads(text)))

    async def send_bytes(self, data: bytes) -> None:
        self._record(("audio", data))

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (int(code), reason)
        self._record(("close", int(code)))

    def _record(self, item: tuple[str, Any]) -> None:
        self.sent.append(item)
        self.changes.poke()

    # -- views
    def texts(self) -> list[dict[str, Any]]:
        return [obj for kind, obj in self.sent if kind == "text"]

    def audio_count(self) -> int:
        return sum(1 for kind, _ in self.sent if kind == "audio")

    def wire(self) -> list[str]:
        """The order of what was sent, one word per frame: ``tts:start``, ``stt``, ``audio``, ..."""
        out = []
        for kind, obj in self.sent:
            if kind == "text":
                out.append(f"{obj['type']}:{obj['state']}" if obj["type"] == "tts" else obj["type"])
            else:
                out.append(kind)
        return out


class RecordingSession(Session):
    """The real Session; it only also records each state it enters, and tells waiters when it did or
    when its speculation slot started, handed over or withdrew a guess."""

    def __init__(self, *args: Any, changes: Changes, **kwargs: Any) -> None:
        self.changes = changes
        super().__init__(*args, **kwargs)
        self.states: list[SessionState] = [self.state]
        slot = self.speculation
        for name in ("start", "take", "withdraw"):
            setattr(slot, name, self._poking(getattr(slot, name)))

    def _poking(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            result = fn(*args)
            self.changes.poke()
            return result
        return call

    def set_state(self, new: SessionState) -> None:
        super().set_state(new)
        self.states.append(new)
        self.changes.poke()


@dataclass
class Harness:
    ctx: HubContext
    session: RecordingSession
    conn: FakeConnection
    changes: Changes
    encoder: OpusEncoder = field(default_factory=lambda: OpusEncoder(16000, 1, 60))

    async def wait_until(self, condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        await self.changes.wait_until(condition, timeout)

    async def turn_done(self) -> None:
        """Wait for the current turn task (if any) to finish."""
        task = self.session.turn
        if task is not None:
            async with asyncio.timeout(TIMEOUT):
                await asyncio.wait({task})

    async def send(self, **obj: Any) -> None:
        await self.session.handle_text(json.dumps({"session_id": self.session.id, **obj}))

    async def hello(self) -> None:
        await self.session.handle_text(json.dumps(HELLO))

    async def mic(self, pcm: bytes) -> None:
        """Microphone audio as the device sends it: 60 ms Opus frames, one by one."""
        for frame in pcmlib.frames(pcm, 16000, 60):
            await self.session.handle_binary(self.encoder.encode(frame))

    def fast_tts(self, ms_per_char: int = 10) -> None:
        """Shorter fake speech from now on (the answer a test only needs to hear complete)."""
        tts = self.ctx.providers.tts
        assert isinstance(tts, FakeTTS)
        tts.settings = dataclasses.replace(tts.settings, tts_ms_per_char=ms_per_char)

    def counter(self, name: str) -> float:
        return self.ctx.metrics.counters.get(name, 0)


@pytest.fixture
async def harness(tmp_path) -> AsyncIterator[Callable[..., Any]]:
    """``h = await harness(fake={...}, session={...})``: a hub context and one Session on a fake connection."""
    opened: list[tuple[HubContext, Session]] = []
    closers: list[Callable[[], Awaitable[None]]] = []

    async def make(**sections: Any) -> Harness:
        sections.setdefault("session", {}).setdefault("filler_after_ms", 0)   # no "One moment." by timing
        settings = fake_settings(tmp_path, **sections)
        compute = configure_compute(settings)
        providers = await create_providers(settings, compute)
        db = await Database(tmp_path / f"hub{len(opened)}.db").open()
        registry = SessionRegistry()
        stores = await open_stores(settings, db, registry, closers)
        phrases = PhraseCache(providers.tts, settings.audio.downlink_sample_rate, settings.audio.frame_duration_ms,
                              compute)
        ctx = HubContext(settings=settings, db=db, auth=Authenticator(settings.auth, "test-secret"), compute=compute,
                         registry=registry, providers=providers, hub_id="test", devices=stores.devices,
                         firmware=stores.firmware, phrases=phrases)
        await open_api_services(ctx, closers)     # live state, announcements: what sessions report to
        ctx.agent = await create_agent(ctx)
        changes = Changes()
        conn = FakeConnection(changes)
        session = RecordingSession(ctx, conn, DEVICE_ID, "client-1", 1, changes=changes)
        opened.append((ctx, session))
        return Harness(ctx, session, conn, changes)

    yield make
    for ctx, session in opened:
        await session.close()
        await ctx.agent.close()
    for closer in reversed(closers):       # the device store's refresh
        await closer()
    for ctx, _ in opened:
        await close_providers(ctx.providers)
        await ctx.db.close()
        ctx.compute.shutdown()
