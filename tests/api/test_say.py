"""Announcements through the HTTP API, end to end over real sockets with the fake providers and the
simulated stock device: heard at once when connected; queued in SQLite when not, surviving a hub
restart and spoken right after the next hello; expired and dropped outcomes; `now` interrupting a
reply (stored as interrupted) while `normal` waits for it; the device back in the state it was in."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.simulator import SimulatedDevice
from xiaozhi_hub.simulator.device import DeviceState

from ..conftest import free_port
from .conftest import Api

SPEECH = pcmlib.voice_like(1200)
# Six different sentences (a repeated one is cut as a loop) said whole (the test's answer budget).
LONG_REPLY = ("The first part of this answer takes a while. Then comes a second, rather longer part. "
              "A third one follows it closely. Number four is about the weather. "
              "The fifth talks of the garden. And the sixth one ends it all.")
LONG_BUDGET = {"answer_sentences": 20, "answer_seconds": 120}


def announcement_turns(dev: SimulatedDevice, text: str) -> list:
    """The device's turns that carried ``text`` (the sentence splitter may cut a long one in parts)."""
    return [t for t in dev.turns if text in " ".join(t.sentences)]


def assert_heard(turn, text: str) -> None:
    """tts start, the sentence, audio while speaking, tts stop, nothing dropped."""
    types = [(m.type, m.data.get("state")) for m in turn.messages if m.type == "tts"]
    assert types[0] == ("tts", "start") and types[-1] == ("tts", "stop"), types
    assert turn.sentences == [text]
    assert len(turn.played) > 5 and turn.dropped == 0 and turn.decode_errors == 0
    assert turn.tts_start_at < turn.played[0].t and turn.played[-1].t <= turn.tts_stop_at


async def dev_known(a: Api, device_id: str) -> None:
    """Wait until the hub has recorded the device (it does so in the background on connecting)."""
    async with asyncio.timeout(10):
        while (await a.call("GET", f"/api/devices/{device_id}"))[0] != 200:
            await asyncio.sleep(0.02)


async def hub_state(a: Api, device_id: str) -> str:
    status, body = await a.call("GET", f"/api/devices/{device_id}")
    assert status == 200
    return body["device"]["state"]


async def test_say_to_a_connected_device_is_heard_and_it_returns_to_idle(api) -> None:
    a = await api()
    async with a.device() as dev:
        await dev.run_turn(SPEECH, mode="manual")            # manual mode: the device idles between turns
        await dev.wait_state(DeviceState.IDLE)
        status, body = await a.call("POST", f"/api/devices/{dev.device_id}/say", {"text": "Dinner is ready."})
        assert status == 200 and body["status"] == "spoken" and body["device_id"] == dev.device_id
        assert len(body["id"]) >= 8                           # generated when the caller gives none
        (turn,) = announcement_turns(dev, "Dinner is ready.")
        assert_heard(turn, "Dinner is ready.")
        await dev.wait_state(DeviceState.IDLE)
        async with asyncio.timeout(5):
            while await hub_state(a, dev.device_id) != "idle":        # the hub too, just after
                await asyncio.sleep(0.02)
        assert a.hub.ctx.announcements.queued_count(dev.device_id) == 0


async def test_queued_for_an_absent_device_survives_a_restart_and_comes_first(api, start_hub) -> None:
    a = await api()
    stream = await a.events()
    await stream.next()
    async with a.device() as dev:
        device_id, client_id = dev.device_id, dev.client_id
        await dev_known(a, device_id)                              # the hub now knows the device
    await stream.until(lambda e: e["type"] == "device_disconnected")
    status, body = await a.call("POST", f"/api/devices/{device_id}/say", {"text": "The laundry is done.", "id": "l1"})
    assert status == 200 and body == {"id": "l1", "status": "queued", "device_id": device_id}
    status, body = await a.call("POST", f"/api/devices/{device_id}/say", {"text": "Take it out."})
    assert body["status"] == "queued"
    event = await stream.until(lambda e: e["type"] == "announcement")
    assert event == {**event, "device_id": device_id, "id": "l1", "status": "queued", "text": "The laundry is done."}
    await stream.close()
    await a.hub.stop()

    b = Api(await start_hub(), a.session)                       # same data folder: a new process's view
    assert b.hub.ctx.announcements.queued_count(device_id) == 2
    dev = b.device(device_id=device_id, client_id=client_id)
    async with dev:
        await dev.start_listening("auto")                       # the device's own request starts at once
        await dev.stream_pcm(SPEECH)
        await dev.wait_until(lambda: len([m for m in dev.messages if m.type == "tts" and m.data.get("state") == "stop"]) >= 2, 20)
        turn = await dev.run_turn(SPEECH, mode="auto")          # then its own question is answered
        assert turn.stt_text == "turn on the kitchen light"
    said = [m.data.get("text") for m in dev.messages if m.type in ("tts", "stt") and m.data.get("state") in (None, "sentence_start")]
    assert said[:2] == ["The laundry is done.", "Take it out."]  # in order, before any stt of the request
    assert said[2] == "turn on the kitchen light"
    assert b.hub.ctx.announcements.queued_count(device_id) == 0


async def test_expired_and_dropped_outcomes(api) -> None:
    a = await api(announce={"max_queued": 2})
    stream = await a.events()
    await stream.next()
    async with a.device() as dev:
        device_id = dev.device_id
        await dev_known(a, device_id)
    await stream.until(lambda e: e["type"] == "device_disconnected")
    for n, ttl in ((1, 600), (2, 600), (3, 600), (4, 1)):
        status, body = await a.call("POST", f"/api/devices/{device_id}/say", {"text": f"Message {n}.", "id": f"m{n}",
                                                                            "ttl": ttl})
        assert status == 200 and body["status"] == "queued"
    outcomes = []
    async with asyncio.timeout(20):
        while ("m4", "expired") not in outcomes:
            e = await stream.until(lambda e: e["type"] == "announcement")
            outcomes.append((e["id"], e["status"]))
    assert outcomes == [("m1", "queued"), ("m2", "queued"), ("m1", "dropped"), ("m3", "queued"),
                        ("m2", "dropped"), ("m4", "queued"), ("m4", "expired")]
    async with a.device(device_id=device_id) as dev:
        await dev.wait_until(lambda: any(t.sentences == ["Message 3."] for t in dev.turns), 10)
        await dev.wait_for("tts", state="stop")
        await asyncio.sleep(0.3)                               # nothing else follows
        assert [t.sentences for t in dev.turns if t.sentences] == [["Message 3."]]
    await stream.close()


async def test_now_interrupts_a_reply_which_is_stored_as_interrupted(api) -> None:
    a = await api(fake={"llm_reply": LONG_REPLY, "llm_chunk_delay_ms": 5, "tts_ms_per_char": 20})
    async with a.device() as dev:
        turn = await dev.start_listening("manual")
        await dev.stream_pcm(SPEECH)
        await dev.stop_listening()
        await dev.wait_until(lambda: len(turn.played) > 10, 15)
        status, body = await a.call("POST", f"/api/devices/{dev.device_id}/say",
                                    {"text": "Someone is at the door.", "priority": "now"})
        assert status == 200 and body["status"] == "spoken"
        assert turn.sentences[-1] == "Someone is at the door."             # the FW keeps one turn per tts start
        assert len(turn.sentences) < 7                                     # the reply was cut off
    rows = await a.hub.ctx.db.fetchall("SELECT role, content, interrupted FROM dialogue ORDER BY id")
    assert [(r["role"], bool(r["interrupted"])) for r in rows] == [("user", False), ("assistant", True)]
    assert LONG_REPLY.startswith(rows[1]["content"][:20])


async def test_normal_waits_for_the_reply_to_end(api) -> None:
    a = await api(fake={"llm_reply": LONG_REPLY, "tts_ms_per_char": 20}, agent=LONG_BUDGET)
    async with a.device() as dev:
        turn = await dev.start_listening("manual")
        await dev.stream_pcm(SPEECH)
        await dev.stop_listening()
        await dev.wait_until(lambda: turn.first_audio_at is not None, 15)
        status, body = await a.call("POST", f"/api/devices/{dev.device_id}/say", {"text": "Dinner is ready."})
        assert status == 200 and body["status"] == "spoken"
        assert turn.tts_stop_at is not None and " ".join(turn.sentences) == LONG_REPLY.strip()   # all of it first
        (later,) = announcement_turns(dev, "Dinner is ready.")
        assert later is not turn and later.tts_start_at > turn.tts_stop_at
    rows = await a.hub.ctx.db.fetchall("SELECT interrupted FROM dialogue WHERE role = 'assistant'")
    assert [r["interrupted"] for r in rows] == [0]


async def test_say_to_every_device(api) -> None:
    a = await api()
    async with a.device() as gone:
        await dev_known(a, gone.device_id)
    async with a.device() as one, a.device() as two:
        await dev_known(a, one.device_id)
        await dev_known(a, two.device_id)
        status, body = await a.call("POST", "/api/say", {"text": "Good night.", "id": "n1"})
        assert status == 200
        results = {r["device_id"]: r for r in body["results"]}
        assert results == {one.device_id: {"id": "n1", "status": "spoken", "device_id": one.device_id},
                           two.device_id: {"id": "n1", "status": "spoken", "device_id": two.device_id},
                           gone.device_id: {"id": "n1", "status": "queued", "device_id": gone.device_id}}
        for dev in (one, two):
            assert_heard(announcement_turns(dev, "Good night.")[0], "Good night.")


async def test_wait_false_answers_at_once_and_the_outcome_follows_as_an_event(api) -> None:
    a = await api()
    stream = await a.events()
    await stream.next()
    async with a.device() as dev:
        status, body = await a.call("POST", f"/api/devices/{dev.device_id}/say",
                                    {"text": "Quick one.", "id": "q1", "wait": False})
        assert status == 200 and body["status"] == "queued"
        event = await stream.until(lambda e: e["type"] == "announcement")
        assert (event["id"], event["status"]) == ("q1", "spoken")
    await stream.close()


async def test_queued_announcements_survive_kill_9(tmp_path) -> None:
    """A hub process killed with SIGKILL right after accepting an announcement still delivers it."""
    data = tmp_path / "data"
    ws_port, http_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "xiaozhi_hub", "--config", "examples/fake.yaml", "--ws-port", str(ws_port),
           "--http-port", str(http_port), "--data-dir", str(data)]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    async def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(60):
            while " ready in " not in (line := await loop.run_in_executor(None, proc.stdout.readline)):
                assert line, "the hub exited before it was ready"
        return proc

    url = f"ws://127.0.0.1:{ws_port}/xiaozhi/v1/"
    proc = await start()
    try:
        async with SimulatedDevice(url) as dev:
            device_id = dev.device_id
        token = (data / "admin_token").read_text().strip()
        base = f"http://127.0.0.1:{http_port}/api/devices/{device_id}"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            async with asyncio.timeout(10):
                while True:                      # until the hub has seen the device go
                    async with http.get(base) as r:
                        if (await r.json())["device"]["online"] is False:
                            break
                    await asyncio.sleep(0.05)
            async with http.post(f"{base}/say", json={"text": "Still here."}) as r:
                body = await r.json()
            assert r.status == 200 and body["status"] == "queued"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc = await start()
        async with SimulatedDevice(url, device_id=device_id) as dev:
            await dev.wait_until(lambda: any(t.sentences == ["Still here."] for t in dev.turns), 15)
    finally:
        proc.terminate()
        proc.wait(15)


async def test_the_user_can_stop_an_announcement_and_talk_on(api) -> None:
    a = await api(fake={"tts_ms_per_char": 40})
    stream = await a.events()
    await stream.next()
    text = "This is a long announcement about the washing machine being done at last."
    async with a.device() as dev:
        await dev.run_turn(SPEECH, mode="manual")
        await dev.wait_state(DeviceState.IDLE)
        status, body = await a.call("POST", f"/api/devices/{dev.device_id}/say", {"text": text, "id": "w",
                                                                                 "wait": False})
        assert status == 200
        (turn,) = await asyncio.wait_for(_announcement_turn(dev, text), 10)
        await dev.wait_until(lambda: len(turn.played) > 5, 10)
        await dev.abort()                                             # the button while it speaks
        await dev.wait_until(lambda: turn.tts_stop_at is not None, 5)
        event = await stream.until(lambda e: e["type"] == "announcement" and e["status"] != "queued")
        assert (event["id"], event["status"], event.get("interrupted")) == ("w", "spoken", True)
        await dev.wait_state(DeviceState.IDLE)
        async with asyncio.timeout(5):
            while await hub_state(a, dev.device_id) != "idle":       # manual mode: idle after the abort
                await asyncio.sleep(0.02)
        again = await dev.run_turn(SPEECH, mode="manual")              # and the next turn works
        assert again.stt_text == "turn on the kitchen light"
    assert a.hub.ctx.announcements.queued_count(dev.device_id) == 0
    await stream.close()


async def test_realtime_voice_cuts_an_announcement_and_is_answered(api) -> None:
    a = await api(fake={"tts_ms_per_char": 40})
    text = "This is a long announcement about the washing machine being done at last."
    async with a.device() as dev:
        await dev.start_listening("realtime")
        await dev.stream_silence(lambda: a.hub.ctx.live.get(dev.device_id).state == "listening", 5)
        status, _ = await a.call("POST", f"/api/devices/{dev.device_id}/say", {"text": text, "wait": False})
        assert status == 200
        await dev.wait_until(lambda: any(len(t.played) > 3 for t in announcement_turns(dev, text)), 10)
        await dev.stream_pcm(SPEECH)                                  # realtime: the mic stays on
        await dev.stream_silence(lambda: any(t.stt_text for t in dev.turns[1:]), 15)
        answered = [t for t in dev.turns if t.stt_text == "turn on the kitchen light"]
        assert answered
        await dev.wait_until(lambda: answered[-1].tts_stop_at is not None, 15)
        assert any("The kitchen light is on now." in s for t in dev.turns for s in t.sentences)
        (spoken,) = announcement_turns(dev, text)
        assert spoken.audio_seconds < len(text) * 0.040 - 0.5                # it was cut short


async def _announcement_turn(dev: SimulatedDevice, text: str) -> list:
    await dev.wait_until(lambda: bool(announcement_turns(dev, text)), 10)
    return announcement_turns(dev, text)
