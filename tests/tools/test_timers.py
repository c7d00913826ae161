"""Timers and alarms: SQLite persistence, the hand-off to the announcements when due (and their rules
delivering it), missed timers, restarts, voice cancel/list through the agent."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from xiaozhi_hub.pipeline.agent import Agent
from xiaozhi_hub.store.db import Database
from xiaozhi_hub.tools.builtin import next_occurrence
from xiaozhi_hub.tools.timers import Timer, TimerService

from .conftest import FakeLink, ManualClock, ScriptedLLM, collect, settings

DEV = "aa:bb:cc:dd:ee:01"


class Recorder:
    """The announcements as the timer service sees them: records every hand-off."""

    def __init__(self) -> None:
        self.said: list[dict] = []

    async def say(self, device_id, text, **kw):
        self.said.append({"device_id": device_id, "text": text, **kw})


def service(db, announcer, clock, **agent) -> TimerService:
    return TimerService(db, settings(agent=agent), announcer, clock=clock)


class Target:
    """A connected session for the real announcement rules (services.announce.AnnounceTarget)."""

    def __init__(self, device_id: str = DEV, ready: bool = True) -> None:
        self.device_id = device_id
        self.channel_open = True
        self.ready = ready
        self.spoken: list[str] = []
        self.turn = None

    def ready_for_announcement(self) -> bool:
        return self.ready

    def announce(self, work):
        self.turn = asyncio.ensure_future(work())
        return self.turn

    async def speak_text(self, text: str) -> str:
        self.spoken.append(text)
        return text


async def test_add_list_cancel(db):
    clock = ManualClock()
    svc = service(db, {}, clock, max_timers=3)
    await svc.add_timer(DEV, 600, "", "en")
    await svc.add_timer(DEV, 60, "pasta", "en")
    await svc.add_timer("other", 60)
    assert [t.label for t in await svc.active(DEV)] == ["pasta", ""]
    assert [t.label for t in await svc.cancel(DEV, label="PASTA")] == ["pasta"]
    await svc.add_timer(DEV, 30)
    assert [t.duration for t in await svc.cancel(DEV)] == [30]          # the next one due
    await svc.add_timer(DEV, 5)
    assert len(await svc.cancel(DEV, all_=True)) == 2
    assert await svc.active(DEV) == [] and len(await svc.active("other")) == 1


async def test_limit_per_device(db):
    from xiaozhi_hub.tools.timers import TimerLimitError

    svc = service(db, {}, ManualClock(), max_timers=2)
    await svc.add_timer(DEV, 1)
    await svc.add_timer(DEV, 2)
    with pytest.raises(TimerLimitError):
        await svc.add_timer(DEV, 3)


async def test_a_due_timer_is_handed_to_the_announcements_once(db):
    clock = ManualClock()
    rec = Recorder()
    svc = service(db, rec, clock)
    timer = await svc.add_timer(DEV, 120, "", "en")
    clock.t += 119
    assert await svc.deliver_due() == 0 and rec.said == []               # not due yet
    clock.t += 2
    assert await svc.deliver_due() == 1
    assert rec.said == [{"device_id": DEV, "text": "Your 2 minute timer is done.", "ttl": 12 * 3600 - 1,
                         "ann_id": f"timer-{timer.id}", "source": "timer", "lang": "en", "wait": False,
                         "since": timer.due_at}]
    assert await svc.active(DEV) == []
    assert await svc.deliver_due() == 0 and len(rec.said) == 1          # once


async def test_a_timer_missed_for_too_long_is_dropped(db):
    clock = ManualClock()
    rec = Recorder()
    svc = service(db, rec, clock, timer_max_late_hours=1)
    await svc.add_timer(DEV, 10)
    clock.t += 2 * 3600
    assert await svc.deliver_due() == 1
    assert rec.said == [] and await svc.store.for_device(DEV) == []


async def test_the_announcement_rules_deliver_a_timer_when_the_device_is_back(db):
    """The real rules: a device that is away hears the timer on its next connection, saying how late."""
    from xiaozhi_hub.services.announce import Announcements
    from xiaozhi_hub.services.events import EventBus
    from xiaozhi_hub.services.live import LiveDevices
    from xiaozhi_hub.settings import AnnounceSettings
    import xiaozhi_hub.store.announcements  # noqa: F401

    await db.migrate()
    clock = ManualClock()
    sessions: dict = {}
    announcements = Announcements(db, AnnounceSettings(), LiveDevices(EventBus()), sessions.get, clock)
    await announcements.start()
    try:
        svc = service(db, announcements, clock)
        await svc.add_timer(DEV, 10, "tea", "en")
        clock.t += 10
        await svc.deliver_due()                               # the device is away: queued
        assert announcements.queued_count(DEV) == 1 and await svc.active(DEV) == []
        clock.t += 120
        target = sessions[DEV] = Target()
        announcements.on_hello(target)
        await target.turn
        assert target.spoken == ["Time's up: tea. This was due 2 minutes ago."]
        await svc.add_timer(DEV, 5, "", "zh")
        clock.t += 5
        target.turn = None
        await svc.deliver_due()                               # connected: spoken at once
        async with asyncio.timeout(5):
            while target.turn is None or not target.turn.done():
                await asyncio.sleep(0.01)
        assert target.spoken[-1] == "5秒的计时器时间到了。"
    finally:
        await announcements.close()


async def test_timers_survive_a_restart(tmp_path):
    clock = ManualClock()
    db = await Database(tmp_path / "hub.db").open()
    await service(db, None, clock).add_alarm(DEV, clock.t + 60, "call mom", "zh")
    await db.close()
    db = await Database(tmp_path / "hub.db").open()
    try:
        rec = Recorder()
        svc = service(db, rec, clock)
        clock.t += 61
        await svc.deliver_due()
        assert len(rec.said) == 1 and "call mom" in rec.said[0]["text"] and "闹钟响了" in rec.said[0]["text"]
    finally:
        await db.close()


async def test_the_scheduler_hands_over_in_real_time_and_wakes_on_new_timers(db):
    rec = Recorder()
    svc = TimerService(db, settings(), rec)
    await svc.start()
    try:
        await asyncio.sleep(0.05)               # the scheduler is asleep (nothing due)
        await svc.add_timer(DEV, 0.3, "", "en")
        t0 = asyncio.get_running_loop().time()
        async with asyncio.timeout(10):
            while not rec.said:
                await asyncio.sleep(0.02)
        assert asyncio.get_running_loop().time() - t0 >= 0.25
    finally:
        await svc.close()


def test_announcement_texts():
    t = Timer(1, DEV, "timer", "", 600.0, 1000.0, "en", 400.0)
    assert t.announcement() == "Your 10 minute timer is done."
    assert Timer(1, DEV, "timer", "", 600.0, 1000.0, "zh", 400.0).announcement() == "10分钟的计时器时间到了。"
    assert t.describe("en", 700.0) == "the 10 minute timer, 5 minutes left"


def test_next_occurrence():
    now = dt.datetime(2025, 5, 9, 8, 15)
    assert next_occurrence(now, 9, 0) == dt.datetime(2025, 5, 9, 9, 0)
    assert next_occurrence(now, 7, 0) == dt.datetime(2025, 5, 10, 7, 0)
    assert next_occurrence(now, 7, 0, ambiguous=True) == dt.datetime(2025, 5, 9, 19, 0)
    assert next_occurrence(now, 12, 0, ambiguous=True) == dt.datetime(2025, 5, 9, 12, 0)


async def test_voice_commands_set_list_and_cancel_timers(tmp_path, db):
    agent = Agent(settings(tmp_path), ScriptedLLM(), db=db)
    link = FakeLink()
    assert await collect(agent.reply(link, "set a timer for ten minutes")) == "Timer set for 10 minutes."
    assert await collect(agent.reply(link, "remind me in an hour to call mom")) == (
        "OK, I'll remind you to call mom in 1 hour.")
    listed = await collect(agent.reply(link, "what timers do I have"))
    assert listed.startswith("You have 2: the 10 minute timer, ") and "the call mom timer" in listed
    assert await collect(agent.reply(link, "cancel the call mom timer")) == "The timer is cancelled."
    assert await collect(agent.reply(link, "十分钟后提醒我")) == "好的，计时10分钟。"
    assert await collect(agent.reply(link, "cancel all timers")) == "Cancelled 2 timers."
    assert await collect(agent.reply(link, "cancel the timer")) == "There is no timer to cancel."
    await agent.close()


async def test_alarm_by_voice_is_stored_for_the_next_occurrence(tmp_path, db):
    agent = Agent(settings(tmp_path), ScriptedLLM(), db=db)
    fixed = dt.datetime(2025, 5, 9, 8, 15).astimezone()
    agent.env.now = lambda: fixed
    said = await collect(agent.reply(FakeLink(), "set an alarm for 7 am"))
    assert said == "Alarm set for 7 AM tomorrow."
    (alarm,) = await agent.timers.active(FakeLink().device_id)
    assert alarm.kind == "alarm" and alarm.due_at == fixed.replace(day=10, hour=7, minute=0).timestamp()
    await agent.close()
