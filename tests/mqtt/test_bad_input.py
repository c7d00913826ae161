"""Every malformed command over a real Mosquitto broker is answered on ``<base>/error`` with its
topic and the reason, nothing crashes, and the device is still served right after."""

from __future__ import annotations

import json
import logging

import pytest

from xiaozhi_hub.mqtt.commands import CommandError, parse_say, parse_volume
from xiaozhi_hub.simulator.device import DeviceState

from .conftest import BASE, Watcher, device, device_topic, known

ERROR = f"{BASE}/error"

BAD = [
    # (leaf under the device, payload, words the reason must contain)
    ("say", b"\xff\xfe\x00 not utf-8", "not UTF-8"),
    ("say", b"   ", "empty payload"),
    ("say", b'{"text": "hi"', "not valid JSON"),
    ("say", b"[1, 2]", "must be an object"),
    ("say", b'{"text": 42}', "text must be a non-empty string"),
    ("say", b'{"txt": "hi"}', "unknown field 'txt'"),
    ("say", b'{"ttl": 5}', "text is missing"),
    ("say", b'{"text": "hi", "ttl": "soon"}', "ttl must be a number"),
    ("say", b'{"text": "hi", "ttl": -1}', "ttl must be a number"),
    ("say", b'{"text": "hi", "priority": "urgent"}', "priority must be"),
    ("say", b'{"text": "hi", "id": 7}', "id must be a printable string"),
    ("say", ("x" * 1001).encode(), "the limit is 1000"),
    ("say", b"y" * 20000, "the limit is 16384"),
    ("volume/set", b"loud", "whole number from 0 to 100"),
    ("volume/set", b"101", "whole number from 0 to 100"),
    ("volume/set", b"-1", "whole number from 0 to 100"),
    ("volume/set", b"33.5", "whole number from 0 to 100"),
    ("volume/set", b"true", "whole number from 0 to 100"),
    ("volume/set", b" ", "whole number from 0 to 100"),
]


async def test_each_malformed_payload_is_reported(mqtt_hub, watcher: Watcher, caplog) -> None:
    caplog.set_level(logging.WARNING, "xiaozhi_hub.mqtt")
    hub = await mqtt_hub()
    async with device(hub) as dev:
        await known(hub, dev.device_id)
        await dev.wait_state(DeviceState.IDLE)
        for leaf, payload, reason in BAD:
            topic = device_topic(dev, leaf)
            mark = watcher.mark()
            watcher.publish(topic, payload)
            err = (await watcher.until(lambda m: m.topic == ERROR, since=mark)).json()
            assert err["topic"] == topic and reason in err["error"], (payload[:40], err)
            assert err["ts"] > 0
        # still served: a good say is heard, and nothing was spoken from the bad ones
        watcher.publish(device_topic(dev, "say"), "Still here.")
        await dev.wait_until(lambda: any("Still here." in " ".join(t.sentences) and t.tts_stop_at for t in dev.turns), 15)
        assert [" ".join(t.sentences) for t in dev.turns if t.sentences] == ["Still here."]
    assert hub.ctx.mqtt.errors == len(BAD)
    assert hub.ctx.metrics.counters["mqtt_command_errors"] == len(BAD)
    assert hub.ctx.metrics.counters["mqtt_commands"] == len(BAD) + 1
    assert sum("refused a message" in r.getMessage() for r in caplog.records) == 10      # logged (at most 10 a minute)
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)                  # no crash, no traceback


async def test_unknown_and_offline_devices(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as dev:
        device_id = dev.device_id
        await known(hub, device_id)
    cases = [
        (f"{BASE}/001122334455/say", b"hello", "unknown device '001122334455'"),
        (f"{BASE}/nosuchdevice/stop", b"stop", "unknown device"),
        (f"{BASE}/all/stop", b"stop", "needs one device"),
        (f"{BASE}/all/volume/set", b"20", "needs one device"),
        (device_topic(device_id, "volume/set"), b"50", "is not connected"),
    ]
    for topic, payload, reason in cases:
        mark = watcher.mark()
        watcher.publish(topic, payload)
        err = (await watcher.until(lambda m: m.topic == ERROR, since=mark)).json()
        assert err["topic"] == topic and reason in err["error"], err
    assert hub.ctx.announcements.queued_count(device_id) == 0                   # nothing was queued


async def test_a_retained_command_is_not_replayed_on_reconnect(mqtt_hub, watcher: Watcher) -> None:
    """MQTT 3.1.1 marks a message retained only when a (re)subscription replays it: the live one is
    carried out once, the replay after a hub restart is refused instead of spoken again."""
    hub = await mqtt_hub()
    async with device(hub) as dev:
        device_id = dev.device_id
        await known(hub, device_id)
    watcher.publish(device_topic(device_id, "say"), b"Only once.", retain=True)
    await watcher.until(lambda m: m.topic == device_topic(device_id, "event") and m.json()["status"] == "queued")
    await hub.stop()
    mark = watcher.mark()
    hub2 = await mqtt_hub()
    err = (await watcher.until(lambda m: m.topic == ERROR, since=mark)).json()
    assert err["topic"] == device_topic(device_id, "say") and "retained commands are ignored" in err["error"]
    assert hub2.ctx.announcements.queued_count(device_id) == 1                  # still the one, not two
    watcher.publish(device_topic(device_id, "say"), b"", retain=True)           # clear it on the broker


async def test_an_empty_message_is_no_command(mqtt_hub, watcher: Watcher) -> None:
    """An empty message is how MQTT clears a retained one: ignored on every command topic."""
    hub = await mqtt_hub()
    async with device(hub) as dev:
        await known(hub, dev.device_id)
        for leaf in ("say", "volume/set", "stop"):
            watcher.publish(device_topic(dev, leaf), b"")
        watcher.publish(f"{BASE}/all/say", b"")
        mark = watcher.mark()
        watcher.publish(device_topic(dev, "say"), "Marker.")                 # handled after the empty ones
        await watcher.until(lambda m: m.topic == device_topic(dev, "event") and m.json().get("text") == "Marker."
                            and m.json()["status"] == "spoken", since=mark)
        assert not watcher.on(ERROR) and hub.ctx.mqtt.errors == 0
        assert [" ".join(t.sentences) for t in dev.turns if t.sentences] == ["Marker."]


def test_parsers() -> None:
    assert parse_say(b"  Hello there. ").text == "Hello there."
    assert parse_say(b'"quoted"').text == "quoted"
    req = parse_say(json.dumps({"text": "t", "ttl": 5, "priority": "now", "id": "a"}).encode())
    assert (req.text, req.ttl, req.priority, req.id) == ("t", 5, "now", "a")
    assert parse_volume(b"30") == 30 and parse_volume(b" 30.0 ") == 30 and parse_volume(b"0") == 0
    with pytest.raises(CommandError):
        parse_volume(b"1e3")
