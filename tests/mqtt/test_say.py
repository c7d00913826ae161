"""``say`` over a real Mosquitto broker to simulated stock devices (fake providers): heard at once
when connected (tts start, the sentence's audio, tts stop); queued when not, surviving a hub restart
and spoken right after the next hello; expired with an ``expired`` outcome; ``all/say`` to every
connected device; each outcome on the device's event topic."""

from __future__ import annotations

import asyncio
import json

from xiaozhi_hub.simulator import SimulatedDevice
from xiaozhi_hub.simulator.device import DeviceState

from .conftest import BASE, Watcher, device, device_topic, known
from .test_events import LONG_BUDGET, LONG_REPLY


def heard(dev: SimulatedDevice, text: str) -> list:
    return [t for t in dev.turns if text in " ".join(t.sentences)]


def assert_heard(turn, text: str) -> None:
    """tts start, then the sentence with its audio, then tts stop; nothing dropped."""
    kinds = [m.data.get("state") for m in turn.messages if m.type == "tts"]
    assert kinds[0] == "start" and kinds[-1] == "stop", kinds
    assert turn.sentences == [text]
    assert len(turn.played) > 5 and turn.dropped == 0 and turn.decode_errors == 0
    assert turn.tts_start_at < turn.played[0].t and turn.played[-1].t <= turn.tts_stop_at


def outcome(w: Watcher, dev_id: str, ann_id: str, status: str, since: int = 0):
    topic = device_topic(dev_id, "event")

    def match(m) -> bool:
        if m.topic != topic:
            return False
        e = m.json()
        return e["type"] == "announcement" and e["id"] == ann_id and e["status"] == status
    return w.until(match, 20, since)


async def test_say_to_a_connected_device_is_heard(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as dev:
        await known(hub, dev.device_id)
        await dev.wait_state(DeviceState.IDLE)
        sent = watcher.publish(device_topic(dev, "say"), "Dinner is ready.")
        await dev.wait_until(lambda: any(t.tts_stop_at for t in heard(dev, "Dinner is ready.")), 15)
        (turn,) = heard(dev, "Dinner is ready.")
        assert_heard(turn, "Dinner is ready.")
        first_audio = turn.played[0].t - sent
        print(f"\nMQTT say → first audio frame: {first_audio * 1000:.0f} ms; tts stop after "
              f"{(turn.tts_stop_at - sent) * 1000:.0f} ms")
        event = (await watcher.until(lambda m: m.topic == device_topic(dev, "event")
                                     and m.json()["type"] == "announcement")).json()
        assert event["status"] == "spoken" and event["text"] == "Dinner is ready." and event["ts"] > 0
        assert not watcher.on(f"{BASE}/error")


async def test_json_say_echoes_the_id_and_now_interrupts(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub(fake={"llm_reply": LONG_REPLY, "llm_chunk_delay_ms": 5, "tts_ms_per_char": 20},
                         agent=LONG_BUDGET)
    async with device(hub) as dev:
        turn = await dev.start_listening("manual")
        await dev.detect("tell me a story")
        await dev.wait_until(lambda: len(turn.played) > 10, 15)
        watcher.publish(device_topic(dev, "say"),
                        json.dumps({"text": "Someone is at the door.", "priority": "now", "id": "door-1", "ttl": 60}))
        await outcome(watcher, dev.device_id, "door-1", "spoken")
        assert turn.sentences[-1] == "Someone is at the door."            # the firmware keeps one turn per tts start
        assert 1 < len(turn.sentences) < 7                                # the reply was cut, then the announcement


async def test_queued_for_an_absent_device_survives_a_restart(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as dev:
        device_id, client_id = dev.device_id, dev.client_id
        await known(hub, device_id)
    await watcher.value(device_topic(device_id, "availability"), "offline")
    watcher.publish(device_topic(device_id, "say"), json.dumps({"text": "The laundry is done.", "id": "l1"}))
    await outcome(watcher, device_id, "l1", "queued")
    await hub.stop()

    mark = watcher.mark()
    hub2 = await mqtt_hub()                                 # same data folder: a new process's view
    assert hub2.ctx.announcements.queued_count(device_id) == 1
    async with device(hub2, device_id=device_id, client_id=client_id) as dev:
        await dev.wait_until(lambda: any(t.tts_stop_at for t in heard(dev, "The laundry is done.")), 15)
        assert_heard(heard(dev, "The laundry is done.")[0], "The laundry is done.")
        await outcome(watcher, device_id, "l1", "spoken", mark)
    assert hub2.ctx.announcements.queued_count(device_id) == 0


async def test_a_queued_say_expires_with_an_expired_outcome(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as dev:
        device_id = dev.device_id
        await known(hub, device_id)
    await watcher.value(device_topic(device_id, "availability"), "offline")
    watcher.publish(device_topic(device_id, "say"), json.dumps({"text": "Too late.", "id": "x1", "ttl": 1}))
    await outcome(watcher, device_id, "x1", "queued")
    await outcome(watcher, device_id, "x1", "expired")
    async with device(hub, device_id=device_id) as dev:
        await dev.wait_state(DeviceState.IDLE)
        await asyncio.sleep(0.5)                          # nothing is spoken
        assert not heard(dev, "Too late.")


async def test_all_say_reaches_every_connected_device(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as gone:
        await known(hub, gone.device_id)
    async with device(hub) as one, device(hub) as two:
        await known(hub, one.device_id)
        await known(hub, two.device_id)
        watcher.publish(f"{BASE}/all/say", json.dumps({"text": "Good night.", "id": "n1"}))
        for dev in (one, two):
            await dev.wait_until(lambda d=dev: any(t.tts_stop_at for t in heard(d, "Good night.")), 15)
            assert_heard(heard(dev, "Good night.")[0], "Good night.")
            await outcome(watcher, dev.device_id, "n1", "spoken")
        await outcome(watcher, gone.device_id, "n1", "queued")        # and waits for the absent one
