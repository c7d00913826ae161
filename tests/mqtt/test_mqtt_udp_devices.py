"""The bridge with a device on the hub's MQTT+UDP transport (docs/mqtt-udp.md), which stays connected
while idle: it is ``online`` on the automation broker all along, ``volume/set`` reaches it without an
audio channel, and a ``say`` is queued, shown on its screen at once and spoken when its channel opens.
A real Mosquitto for the bridge; the device talks to the hub's own MQTT endpoint."""

from __future__ import annotations

import asyncio

from xiaozhi_hub.simulator.mqtt_device import MqttSimulatedDevice

from .conftest import Watcher, device_topic

DEVICE_MQTT = {"device_mqtt": {"enabled": True, "port": 0}, "udp": {"port": 0}, "devices": {"transport": "mqtt"}}


async def test_an_idle_mqtt_udp_device_through_the_bridge(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub(**DEVICE_MQTT)
    ota = f"http://127.0.0.1:{hub.ctx.http_port}/xiaozhi/ota/"
    async with MqttSimulatedDevice(ota) as dev:
        await watcher.value(device_topic(dev, "availability"), "online")
        await watcher.value(device_topic(dev, "state"), "idle")
        session = hub.ctx.registry.by_device(dev.device_id)
        await asyncio.wait_for(session.link.mcp.ready.wait(), 10)
        assert not dev.audio_channel_open
        watcher.publish(device_topic(dev, "volume/set"), "45")               # no audio channel needed
        await watcher.value(device_topic(dev, "volume"), "45")
        assert dev.volume == 45 and not dev.audio_channel_open
        watcher.publish(device_topic(dev, "say"), '{"text": "The washing machine is done.", "id": "wm"}')
        await watcher.until(lambda m: m.topic == device_topic(dev, "event") and m.json().get("id") == "wm"
                            and m.json()["status"] == "queued")
        alert = await dev.wait_for("alert", timeout=10)                       # on its screen at once
        assert alert.data["message"] == "The washing machine is done."
        since = len(dev.messages)
        await dev.open_audio_channel()                                       # the user wakes it
        sentence = await dev.wait_for("tts", state="sentence_start", timeout=10, since=since)
        assert sentence.data["text"] == "The washing machine is done."
        await watcher.until(lambda m: m.topic == device_topic(dev, "event") and m.json().get("id") == "wm"
                            and m.json()["status"] == "spoken")
    await watcher.value(device_topic(dev, "availability"), "offline")
