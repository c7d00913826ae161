"""The broker's absence never touches a conversation, and the bridge recovers by itself: a broker that
is down at the hub's start, a broker restarted mid-test (it keeps no retained messages: the bridge
republishes them), the hub killed with SIGKILL (the broker publishes its will: ``offline``), and a
clean stop (``offline`` retained). All with a real Mosquitto; conversations with the fake providers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.mqtt.topics import topic_id

from ..conftest import free_port
from .conftest import BASE, Broker, Watcher, device, device_topic, known

SPEECH = pcmlib.voice_like(1200)
HUB_AVAILABILITY = f"{BASE}/hub/availability"
ROOT = Path(__file__).resolve().parents[2]


async def test_a_broker_down_at_start_blocks_nothing(start_hub, tmp_path, fast_reconnect) -> None:
    broker = Broker(tmp_path)                                  # a port where nothing listens yet
    t0 = time.monotonic()
    hub = await start_hub(mqtt={"host": "127.0.0.1", "port": broker.port})
    started = time.monotonic() - t0
    assert hub.ctx.mqtt is not None and not hub.ctx.mqtt.client.connected
    print(f"\nhub start with the broker down: {started:.2f} s")
    async with device(hub) as dev:
        turn = await dev.run_turn(SPEECH, mode="manual")     # a conversation while the broker is down
        assert turn.stt_text == "turn on the kitchen light" and turn.tts_stop_at is not None
        await known(hub, dev.device_id)
        broker.start()
        try:
            watcher = await Watcher(broker.port).start()
            await hub.ctx.mqtt.client.wait_connected()
            await watcher.value(f"{BASE}/hub/connected", "1")           # the last of the republished state
            assert (await watcher.retained(HUB_AVAILABILITY)).text == "online"
            assert (await watcher.retained(device_topic(dev, "availability"))).text == "online"
            assert (await watcher.retained(device_topic(dev, "state"))).text == "idle"
            assert (await watcher.retained(device_topic(dev, "last_heard"))).text == "turn on the kitchen light"
            watcher.stop()
        finally:
            await hub.stop()
            broker.stop()


async def test_a_broker_restart_is_survived_and_availability_restored(mqtt_hub, broker: Broker,
                                                                      watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as dev:
        await known(hub, dev.device_id)
        config = f"homeassistant/device/xiaozhi_{topic_id(dev.device_id)}/config"
        await watcher.until(lambda m: m.topic == config and m.payload)
        watcher.stop()
        broker.stop()
        await hub.ctx.mqtt.client.wait_connected(False)
        assert hub.ctx.metrics.gauges["mqtt_connected"] == 0.0
        turn = await dev.run_turn(SPEECH, mode="manual")     # the conversation goes on without the broker
        assert turn.stt_text == "turn on the kitchen light" and turn.tts_stop_at is not None
        broker.start()                                       # same port, empty: every retained message lost
        watcher = await Watcher(broker.port).start()
        await hub.ctx.mqtt.client.wait_connected()
        await watcher.value(f"{BASE}/hub/connected", "1")               # the last of the republished state
        assert hub.ctx.mqtt.client.connects == 2
        assert hub.ctx.metrics.gauges["mqtt_connected"] == 1.0 and hub.ctx.metrics.counters["mqtt_connects"] == 2
        assert (await watcher.retained(HUB_AVAILABILITY)).text == "online"
        assert (await watcher.retained(device_topic(dev, "availability"))).text == "online"
        assert (await watcher.retained(device_topic(dev, "state"))).text == "idle"
        assert (await watcher.retained(config)).json()["components"]
        # and the commands work again (the subscriptions were renewed)
        watcher.publish(device_topic(dev, "say"), "Back again.")
        await dev.wait_until(lambda: any("Back again." in " ".join(t.sentences) and t.tts_stop_at for t in dev.turns),
                             15)
        watcher.stop()


async def test_a_clean_stop_leaves_offline_retained(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    await watcher.value(HUB_AVAILABILITY, "online")
    await hub.stop()
    assert (await watcher.retained(HUB_AVAILABILITY)).text == "offline"


async def test_the_will_says_offline_when_the_hub_is_killed(broker: Broker, watcher: Watcher, tmp_path) -> None:
    env = {**os.environ, "XIAOZHI_MQTT__HOST": "127.0.0.1", "XIAOZHI_MQTT__PORT": str(broker.port),
           "XIAOZHI_WYOMING__ENABLED": "false"}
    cmd = [sys.executable, "-m", "xiaozhi_hub", "--config", "examples/fake.yaml", "--ws-port", str(free_port()),
           "--http-port", str(free_port()), "--data-dir", str(tmp_path / "data")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await watcher.value(HUB_AVAILABILITY, "online", timeout=60)
        mark = watcher.mark()
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        await watcher.value(HUB_AVAILABILITY, "offline", since=mark)           # the broker sends the will
        assert (await watcher.retained(HUB_AVAILABILITY)).text == "offline"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
