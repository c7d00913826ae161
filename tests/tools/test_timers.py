"""Timers and alarms: SQLite persistence, announcement when due, waiting for the device, busy
sessions, restarts, voice cancel/list through the agent."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import pytest

from xiaozhi_hub.pipeline.agent import Agent
from xiaozhi_hub.session.state import SessionState as State
from xiaozhi_hub.store.db import Database
from xiaozhi_hub.tools.builtin import next_occurrence
from xiaozhi_hub.tools.timers import Timer, TimerService

from .conftest import FakeLink, ManualClock, ScriptedLLM, collect, settings

DEV = "aa:bb:cc:dd:ee:01"


@dataclass
class Speech:
    heard_speech: bool


class FakeSession:
    """What the scheduler sees of a session (tools.timers.Announcer): state, busy, the utterance in
    progress, start_reply (records what is spoken)."""

    def __init__(self, hold: float = 0.0) -> None:
        self.state = State.IDLE
        self.busy = False
        self.utterance: Speech | None = None
        self.spoken: list[str] = []
        self.hold = hold

    def start_reply(self, deltas, user_text=None):
        async def run() -> None:
            self.spoken.append("".join([d async for d in deltas]))
            if self.hold:
                await asyncio.sleep(self.hold)
        return asyncio.ensure_future(run())


def service(db, sessions: dict, clock, **agent) -> TimerService:
    return TimerService(db, settings(agent=agent), sessions.get, clock=clock)


async def settle(svc: TimerService) -> None:
    for _ in range(50):
        if not svc._delivering:
            return
        await asyncio.sleep(0.01)


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


async def test_due_timer_waits_for_its_device_then_is_announced_once(db):
    clock = ManualClock()
    sessions: dict = {}
    svc = service(db, sessions, clock)
    await svc.add_timer(DEV, 120, "", "en")
    clock.t += 119
    assert await svc.deliver_due() == 0                 # not due yet
    clock.t += 2
    assert await svc.deliver_due() == 1                 # due, device not connected: waiting
    session = FakeSession()
    session.state = State.SPEAKING
    session.busy = True
    sessions[DEV] = session
    assert await svc.deliver_due() == 1                 # in a turn: not interrupted
    session.state, session.busy = State.LISTENING, False
    session.utterance = Speech(heard_speech=True)
    assert await svc.deliver_due() == 1                 # the user is speaking: not interrupted either
    session.utterance = Speech(heard_speech=False)
    assert await svc.deliver_due() == 0                 # listening, nothing said yet: announced
    await settle(svc)
    assert session.spoken == ["Your 2 minute timer is done."]
    assert await svc.active(DEV) == []
    assert await svc.deliver_due() == 0 and session.spoken == ["Your 2 minute timer is done."]


async def test_announcement_cut_by_a_disconnect_is_retried(db):
    clock = ManualClock()
    first = FakeSession(hold=0.2)
    sessions = {DEV: first}
    svc = service(db, sessions, clock)
    await svc.add_timer(DEV, 10, "tea", "en")
    clock.t += 10
    await svc.deliver_due()
    first.state = State.CLOSED                            # the device leaves while it is spoken
    await settle(svc)
    assert len(await svc.store.for_device(DEV)) == 1
    second = FakeSession()
    sessions[DEV] = second
    clock.t += 120
    await svc.deliver_due()
    await settle(svc)
    assert second.spoken == ["Time's up: tea. It went off 2 minutes ago."]
    assert await svc.store.for_device(DEV) == []


async def test_a_timer_missed_for_too_long_is_dropped(db):
    clock = ManualClock()
    svc = service(db, {}, clock, timer_max_late_hours=1)
    await svc.add_timer(DEV, 10)
    clock.t += 2 * 3600
    assert await svc.deliver_due() == 0
    assert await svc.store.for_device(DEV) == []


async def test_timers_survive_a_restart(tmp_path):
    clock = ManualClock()
    db = await Database(tmp_path / "hub.db").open()
    await service(db, {}, clock).add_alarm(DEV, clock.t + 60, "call mom", "zh")
    await db.close()
    db = await Database(tmp_path / "hub.db").open()
    try:
        session = FakeSession()
        svc = service(db, {DEV: session}, clock)
        clock.t += 61
        await svc.deliver_due()
        await settle(svc)
        assert len(session.spoken) == 1 and "call mom" in session.spoken[0] and "闹钟响了" in session.spoken[0]
    finally:
        await db.close()


async def test_the_scheduler_announces_in_real_time_and_wakes_on_new_timers(db):
    session = FakeSession()
    svc = TimerService(db, settings(agent={"timer_poll_seconds": 0.05}), {DEV: session}.get)
    await svc.start()
    try:
        await asyncio.sleep(0.05)               # the scheduler is asleep (nothing due)
        await svc.add_timer(DEV, 0.3, "", "en")
        t0 = asyncio.get_running_loop().time()
        while not session.spoken:
            await asyncio.sleep(0.02)
            assert asyncio.get_running_loop().time() - t0 < 3
        assert asyncio.get_running_loop().time() - t0 >= 0.25
    finally:
        await svc.close()


def test_announcement_texts():
    t = Timer(1, DEV, "timer", "", 600.0, 1000.0, "en", 400.0)
    assert t.announcement(1000.0) == "Your 10 minute timer is done."
    assert Timer(1, DEV, "timer", "", 600.0, 1000.0, "zh", 400.0).announcement(1000.0) == "10分钟的计时器时间到了。"
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
