"""The announcement rules on a real SQLite database with a scripted session: outcomes that the
end-to-end tests cannot provoke with the fake providers (failed, a device leaving mid-sentence, the
user stopping it), waiting for the right moment, the late note, and the live state's own rules."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import pytest

from xiaozhi_hub.services.announce import AnnounceError, Announcements, late_note
from xiaozhi_hub.services.events import EventBus, EventType
from xiaozhi_hub.services.live import LiveDevices
from xiaozhi_hub.settings import AnnounceSettings
from xiaozhi_hub.store.announcements import Announcement
from xiaozhi_hub.store.db import Database

DEV = "aa:bb:cc:dd:ee:01"


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


class Target:
    """A connected session as the rules see it; ``behaviour`` scripts what speaking does."""

    def __init__(self, device_id: str = DEV, behaviour: str = "ok") -> None:
        self.device_id = device_id
        self.behaviour = behaviour
        self.open = True
        self.ready = True
        self.spoken: list[str] = []
        self.turn: asyncio.Task[None] | None = None

    @property
    def channel_open(self) -> bool:
        return self.open

    def ready_for_announcement(self) -> bool:
        return self.ready

    def announce(self, work: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        self.turn = asyncio.ensure_future(work())
        return self.turn

    async def speak_text(self, text: str) -> str:
        if self.behaviour == "leave":
            self.open = False
            raise ConnectionResetError("gone")
        if self.behaviour == "abort":
            asyncio.current_task().cancel()            # the user pressed the button
            await asyncio.sleep(0)
        if self.behaviour == "silent":
            return ""                                  # TTS produced nothing
        self.spoken.append(text)
        return text


@pytest.fixture
async def setup(tmp_path):
    import xiaozhi_hub.store.announcements  # noqa: F401  (registers the table)

    db = await Database(tmp_path / "hub.db").open()
    bus = EventBus()
    sessions: dict[str, Any] = {}
    clock = Clock()
    made: list[Announcements] = []

    def make(**settings: Any) -> Announcements:
        svc = Announcements(db, AnnounceSettings(**settings), LiveDevices(bus), sessions.get, clock)
        made.append(svc)
        return svc

    yield make, bus, sessions, clock, db
    for svc in made:
        await svc.close()
    await db.close()


def outcomes(sub) -> list[tuple[str, str]]:
    out = []
    while (e := sub.get_nowait()) is not None:
        if e.type is EventType.ANNOUNCEMENT:
            out.append((e.data["id"], e.data["status"]))
    return out


async def test_nothing_synthesised_is_failed_and_not_retried(setup) -> None:
    make, bus, sessions, _, _ = setup
    svc = make()
    await svc.start()
    sessions[DEV] = Target(behaviour="silent")
    result = await svc.say(DEV, "Hello.", ann_id="x")
    assert result.status == "failed" and svc.queued_count(DEV) == 0


async def test_a_device_leaving_mid_sentence_keeps_it_for_the_next_connection(setup) -> None:
    make, bus, sessions, _, _ = setup
    sub = bus.subscribe()
    svc = make()
    await svc.start()
    sessions[DEV] = Target(behaviour="leave")
    assert (await svc.say(DEV, "Hello.", ann_id="x")).status == "queued"
    assert svc.queued_count(DEV) == 1
    await asyncio.sleep(0.05)
    back = sessions[DEV] = Target()
    svc.on_hello(back)
    await back.turn
    assert back.spoken == ["Hello."] and svc.queued_count(DEV) == 0
    assert outcomes(sub) == [("x", "queued"), ("x", "spoken")]


async def test_stopped_by_the_user_counts_as_spoken(setup) -> None:
    make, bus, sessions, _, _ = setup
    sub = bus.subscribe()
    svc = make()
    await svc.start()
    sessions[DEV] = Target(behaviour="abort")
    await svc.say(DEV, "Hello.", ann_id="x", wait=False)
    async with asyncio.timeout(5):
        while svc.queued_count(DEV):
            await asyncio.sleep(0.01)
    events = [e for e in iter(sub.get_nowait, None) if e.type is EventType.ANNOUNCEMENT]
    assert [(e.data["status"], e.data.get("interrupted")) for e in events] == [("spoken", True)]


async def test_normal_waits_for_the_device_and_now_does_not(setup) -> None:
    make, bus, sessions, _, _ = setup
    svc = make()
    await svc.start()
    target = sessions[DEV] = Target()
    target.ready = False                               # a reply is in progress
    waiting = asyncio.create_task(svc.say(DEV, "Later.", ann_id="n"))
    await asyncio.sleep(0.3)
    assert not waiting.done() and target.spoken == []
    urgent = await svc.say(DEV, "Now.", ann_id="u", priority="now")
    assert urgent.status == "spoken" and target.spoken == ["Later.", "Now."]   # in order, without waiting
    assert (await waiting).status == "spoken"


async def test_the_caller_id_does_not_queue_twice_and_bad_values_are_refused(setup) -> None:
    make, *_ = setup
    svc = make()
    await svc.start()
    assert (await svc.say(DEV, "One.", ann_id="same")).status == "queued"
    assert (await svc.say(DEV, "One.", ann_id="same")).status == "queued"
    assert svc.queued_count(DEV) == 1
    for kw in ({"text": ""}, {"text": "x" * 1001}, {"text": "ok", "ttl": 0}, {"text": "ok", "priority": "high"},
               {"text": "ok", "ann_id": "\n"}, {"text": ["ok"]}):
        text = kw.pop("text")
        with pytest.raises(AnnounceError):
            await svc.say(DEV, text, **kw)
    assert svc.queued_count(DEV) == 1


async def test_counts_and_expiry_survive_a_new_service(setup) -> None:
    make, bus, sessions, clock, _ = setup
    svc = make(ttl_seconds=60)
    await svc.start()
    await svc.say(DEV, "One.", ann_id="1")
    await svc.say(DEV, "Two.", ann_id="2", ttl=600)
    await svc.close()
    again = make(ttl_seconds=60)
    await again.start()
    assert again.queued_count(DEV) == 2
    clock.t += 61
    assert [a.id for a in await again.expire_due()] == ["1"]
    assert again.queued_count(DEV) == 1


def test_a_late_announcement_with_a_language_says_how_late() -> None:
    ann = Announcement(1, "t", DEV, "Your 5 minute timer is done.", "normal", "timer", "en", 1000.0, 9999.0)
    assert late_note(ann, 1030.0) == "Your 5 minute timer is done."
    assert late_note(ann, 1000.0 + 180) == "Your 5 minute timer is done. This was due 3 minutes ago."
    zh = Announcement(1, "t", DEV, "计时器时间到了。", "normal", "timer", "zh", 1000.0, 9999.0)
    assert late_note(zh, 1000.0 + 120) == "计时器时间到了。（这是2分钟前的提醒。）"
    plain = Announcement(1, "t", DEV, "Dinner.", "normal", "api", None, 1000.0, 9999.0)
    assert late_note(plain, 5000.0) == "Dinner."


def test_live_state_ignores_a_replaced_session_and_reads_the_volume() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    live = LiveDevices(bus)
    live.connected(DEV, "old", "websocket")
    live.connected(DEV, "new", "websocket")                   # a reconnect before the old one closed
    live.state(DEV, "old", "speaking")                         # stale reports change nothing
    live.disconnected(DEV, "old")
    assert live.get(DEV).online and live.get(DEV).state == "idle"
    live.device_tool(DEV, "self.get_device_status", {}, '{"audio_speaker": {"volume": 55}}')
    live.device_tool(DEV, "self.audio_speaker.set_volume", {"volume": 101}, "true")     # not a volume
    live.device_tool(DEV, "self.get_device_status", {}, "not json")
    assert live.get(DEV).volume == 55
    live.disconnected(DEV, "new")
    types = [e.type.value for e in iter(sub.get_nowait, None)]
    assert types == ["device_connected", "state", "volume", "state", "device_disconnected"]
    assert live.view({"device_id": DEV, "name": "K"})["state"] == "offline"
    assert live.view({"device_id": "other"})["online"] is False
