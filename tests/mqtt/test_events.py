"""Device state and events out, volume and stop in, over a real Mosquitto broker with the simulator:
the retained state follows a voice turn, the turn's events arrive in order with timestamps, what was
heard and replied is retained, ``volume/set`` goes through the device's MCP tool and ``stop`` cuts a
reply off."""

from __future__ import annotations

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.simulator.device import DeviceState

from .conftest import BASE, Watcher, device, device_topic, known

SPEECH = pcmlib.voice_like(1200)
# Six different sentences (a repeated one is cut as a loop) said whole (the test's answer budget).
LONG_REPLY = ("The first part of this answer takes a while. Then comes a second, rather longer part. "
              "A third one follows it closely. Number four is about the weather. "
              "The fifth talks of the garden. And the sixth one ends it all.")
LONG_BUDGET = {"answer_sentences": 20, "answer_seconds": 120}


async def test_a_voice_turn_is_reported(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as dev:
        await known(hub, dev.device_id)
        await watcher.value(device_topic(dev, "availability"), "online")
        mark = watcher.mark()
        await dev.start_listening("manual")
        await dev.detect("你好小智")                              # the wake word, as the firmware reports it
        await dev.stream_pcm(SPEECH)
        await dev.stop_listening()
        await dev.wait_until(lambda: dev.turns and dev.turns[-1].tts_stop_at is not None, 20)
        await dev.wait_state(DeviceState.IDLE)
        speaking = await watcher.value(device_topic(dev, "state"), "speaking", since=mark)
        await watcher.until(lambda m: m.topic == device_topic(dev, "state") and m.text == "idle" and m.t >= speaking.t,
                            since=mark)
        states = [m.text for m in watcher.on(device_topic(dev, "state"), mark)]
        while states and states[0] == "idle":                # the state from before the turn, published again
            states.pop(0)
        assert states[:3] == ["listening", "thinking", "speaking"] and states[-1] == "idle", states
        await watcher.until(lambda m: m.topic == device_topic(dev, "event") and m.json()["type"] == "turn_finished",
                            since=mark)
        events = [m.json() for m in watcher.on(device_topic(dev, "event"), mark)]
        types = [e["type"] for e in events]
        assert types[0] == "wake" and events[0]["text"] == "你好小智"
        assert types.index("stt") < types.index("reply") < types.index("turn_finished"), types
        stt = events[types.index("stt")]
        assert stt["text"] == "turn on the kitchen light" and stt["device_id"] == dev.device_id
        assert all(isinstance(e["ts"], float) and e["ts"] > 0 for e in events)
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        reply = events[types.index("reply")]["text"]
        assert (await watcher.retained(device_topic(dev, "last_heard"))).text == "turn on the kitchen light"
        assert (await watcher.retained(device_topic(dev, "last_reply"))).text == reply
        assert (await watcher.retained(device_topic(dev, "state"))).text == "idle"
    await watcher.value(device_topic(dev, "availability"), "offline")
    assert (await watcher.retained(device_topic(dev, "state"))).text == "offline"
    assert (await watcher.retained(f"{BASE}/hub/connected")).text == "0"


async def test_volume_set_goes_through_the_devices_mcp_tool(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as dev:
        await known(hub, dev.device_id)
        watcher.publish(device_topic(dev, "volume/set"), "35")
        await watcher.value(device_topic(dev, "volume"), "35")
        assert dev.volume == 35
        assert (await watcher.retained(device_topic(dev, "volume"))).text == "35"
        watcher.publish(device_topic(dev, "volume/set"), "70.0")            # as HA's number entity may send it
        await watcher.value(device_topic(dev, "volume"), "70")
        assert dev.volume == 70 and not watcher.on(f"{BASE}/error")


async def test_stop_cuts_a_reply_off(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub(fake={"llm_reply": LONG_REPLY, "llm_chunk_delay_ms": 5, "tts_ms_per_char": 20},
                         agent=LONG_BUDGET)
    async with device(hub) as dev:
        turn = await dev.start_listening("manual")
        await dev.detect("tell me a story")
        await dev.wait_until(lambda: len(turn.played) > 10, 15)
        watcher.publish(device_topic(dev, "stop"), "stop")
        await dev.wait_until(lambda: turn.tts_stop_at is not None, 10)
        assert 0 < len(turn.sentences) < 6                                     # cut off
        finished = await watcher.until(lambda m: m.topic == device_topic(dev, "event")
                                       and m.json()["type"] == "turn_finished")
        assert finished.json()["interrupted"] is True


async def test_a_removed_device_is_cleared(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as dev:
        device_id = dev.device_id
        await known(hub, device_id)
        await watcher.value(device_topic(dev, "state"), "idle")
    await watcher.value(device_topic(device_id, "availability"), "offline")
    config = f"homeassistant/device/xiaozhi_{device_topic(device_id, 'x').split('/')[1]}/config"
    await hub.ctx.devices.remove(device_id)
    await watcher.until(lambda m: m.topic == config and m.payload == b"")
    await watcher.until(lambda m: m.topic == device_topic(device_id, "state") and m.payload == b"")
    for topic in (config, device_topic(device_id, "state"), device_topic(device_id, "availability")):
        assert await watcher.retained(topic) is None, topic


async def test_falling_behind_the_event_bus_resubscribes_and_republishes(mqtt_hub, watcher: Watcher,
                                                                           monkeypatch) -> None:
    from xiaozhi_hub.mqtt import bridge
    from xiaozhi_hub.services.events import EventType
    monkeypatch.setattr(bridge, "SUBSCRIPTION_SIZE", 8)
    hub = await mqtt_hub()
    async with device(hub) as dev:
        await known(hub, dev.device_id)
        await watcher.value(device_topic(dev, "state"), "idle")
        mark = watcher.mark()
        for n in range(50):                                    # a burst the bridge cannot read in time
            hub.ctx.events.publish(EventType.ERROR, None, message=f"burst {n}")
        assert hub.ctx.events.dropped_subscribers >= 1
        await watcher.value(device_topic(dev, "state"), "idle", since=mark)            # republished
        watcher.publish(device_topic(dev, "say"), "After the burst.")                  # and it follows again
        await watcher.until(lambda m: m.topic == device_topic(dev, "event") and m.json().get("status") == "spoken",
                            since=mark)
