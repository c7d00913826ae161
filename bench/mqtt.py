"""Announcement latency over MQTT: ``say`` published → first audio frame at the device.

A real Mosquitto on a free port, the hub in a subprocess with the fake providers and the MQTT bridge,
simulated stock devices (connected, idle) and a paho client that publishes in this process; both
times are this process's monotonic clock. Three cases:

* 1 device connected, ``<base>/<id>/say``;
* 50 devices connected, ``<base>/<id>/say`` to one of them (a different one each round);
* 50 devices connected, ``<base>/all/say``: latency per device (the hub synthesises for all of them).

One warm-up round per case is not measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import paho.mqtt.client as paho

from xiaozhi_hub.mqtt.topics import topic_id
from xiaozhi_hub.simulator import SimulatedDevice

from .common import free_port, hub_process, pct

ROUNDS_ONE = 20
ROUNDS_ALL = 5
MANY = 50
# Pause between rounds: an announcement right on the heels of the last one waits while the device's
# previous turn winds down (the announcement rules look again every 50 ms), which is not what a say
# arriving at a random moment sees.
SETTLE = 0.3


@contextlib.contextmanager
def mosquitto() -> Iterator[int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with tempfile.TemporaryDirectory(prefix="xiaozhi-bench-mqtt-") as tmp:
        port = free_port()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        + ("user root\n" if os.geteuid() == 0 else ""))
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("mosquitto did not start") from None
                    time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


def _spoken(dev: SimulatedDevice, text: str) -> float | None:
    """When the first audio frame of the turn that said ``text`` arrived, once that turn is over."""
    for turn in dev.turns:
        if text in " ".join(turn.sentences) and turn.tts_stop_at is not None and turn.played:
            return turn.played[0].t
    return None


async def _say(pub: paho.Client, topic: str, text: str, devices: list[SimulatedDevice]) -> list[float]:
    t0 = time.monotonic()
    pub.publish(topic, text, qos=1)
    async with asyncio.timeout(60):
        while True:
            arrivals = [_spoken(d, text) for d in devices]
            if all(a is not None for a in arrivals):
                return [a - t0 for a in arrivals if a is not None]
            await asyncio.sleep(0.005)


async def _case(pub: paho.Client, devices: list[SimulatedDevice], rounds: int, everyone: bool, tag: str) -> list[float]:
    latencies: list[float] = []
    for r in range(rounds + 1):                     # round 0 warms up
        await asyncio.sleep(SETTLE)
        text = f"Message {tag} {r}."
        if everyone:
            got = await _say(pub, "xiaozhi/all/say", text, devices)
        else:
            dev = devices[r % len(devices)]
            got = await _say(pub, f"xiaozhi/{topic_id(dev.device_id)}/say", text, [dev])
        if r:
            latencies.extend(got)
    return latencies


async def run() -> list[tuple[str, str, str]]:
    with mosquitto() as port:
        config = {"asr": {"provider": "fake"}, "llm": {"provider": "fake"}, "tts": {"provider": "fake"},
                  "session": {"idle_timeout": 3600}, "wyoming": {"enabled": False},
                  "mqtt": {"host": "127.0.0.1", "port": port}}
        with hub_process(config) as hub:
            pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
            pub.connect("127.0.0.1", port)
            pub.loop_start()
            try:
                return await _measure(pub, hub.ws_url)
            finally:
                pub.disconnect()
                pub.loop_stop()


async def _measure(pub: paho.Client, url: str) -> list[tuple[str, str, str]]:
    devices = [SimulatedDevice(url) for _ in range(MANY)]
    await devices[0].connect()
    await asyncio.sleep(0.5)                         # the hub records the device and maps its topic id
    one = await _case(pub, devices[:1], ROUNDS_ONE, False, "one")
    await asyncio.gather(*(d.connect() for d in devices[1:]))
    await asyncio.sleep(1.0)
    one_of_many = await _case(pub, devices, ROUNDS_ONE, False, "one-of-many")
    everyone = await _case(pub, devices, ROUNDS_ALL, True, "all")
    await asyncio.gather(*(d.close() for d in devices))
    return [
        (f"1 device: say → first audio p50 / p99 ({ROUNDS_ONE} rounds)", f"{pct(one, 50)} / {pct(one, 99)} ms", ""),
        (f"{MANY} connected, say to one: p50 / p99 ({ROUNDS_ONE} rounds)",
         f"{pct(one_of_many, 50)} / {pct(one_of_many, 99)} ms", ""),
        (f"{MANY} connected, all/say: p50 / p99 per device ({ROUNDS_ALL} rounds)",
         f"{pct(everyone, 50)} / {pct(everyone, 99)} ms", ""),
        (f"{MANY} connected, all/say: slowest device", f"{max(everyone) * 1000:.1f} ms" if everyone else "-", ""),
    ]
