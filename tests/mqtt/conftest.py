"""A real Mosquitto broker on a free port for each test, a watching MQTT client (paho, in its own
thread) that records every message, and hubs with the fake providers connected to the broker."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import paho.mqtt.client as paho
import pytest

from xiaozhi_hub.app import Hub
from xiaozhi_hub.mqtt import bridge as mqtt_bridge
from xiaozhi_hub.mqtt import client as mqtt_client
from xiaozhi_hub.mqtt.topics import topic_id
from xiaozhi_hub.simulator import SimulatedDevice

from ..conftest import free_port, ws_url

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
BASE = "xiaozhi"


class Broker:
    """``mosquitto -c <conf>`` with ``listener PORT 127.0.0.1`` and ``allow_anonymous true``; no
    persistence, so a restart loses every retained message (the bridge must republish them)."""

    def __init__(self, tmp: Path, port: int | None = None, extra: str = "", anonymous: bool = True) -> None:
        self.port = port or free_port()
        self.anonymous = anonymous
        self.conf = tmp / f"mosquitto-{self.port}.conf"
        self.log = tmp / f"mosquitto-{self.port}.log"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous {str(self.anonymous).lower()}\n"
                             "persistence false\n"
                             # as root, mosquitto would drop to its own user, which cannot read pytest's tmp dirs
                             + ("user root\n" if os.geteuid() == 0 else "") +
                             f"log_dest file {self.log}\nlog_type error\nlog_type warning\n{self.extra}")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    t: float                   # time.monotonic() on arrival

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self) -> Any:
        return json.loads(self.payload)


class Watcher:
    """An MQTT client of the test: subscribes to ``#``, records every message, publishes commands."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None) -> None:
        self.port = port
        self.credentials = (username, password)
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"watcher-{port}-{id(self)}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        if username:
            self.client.username_pw_set(username, password)

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic()))

    async def start(self) -> "Watcher":
        self.client.connect_async("127.0.0.1", self.port)
        self.client.loop_start()
        await asyncio.to_thread(self._subscribed.wait, 20)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> float:
        """Publish (QoS 1); returns the monotonic time it was handed to the broker connection."""
        t = time.monotonic()
        self.client.publish(topic, payload, qos=1, retain=retain)
        return t

    def on(self, topic: str, since: int = 0) -> list[Received]:
        with self._lock:
            return [m for m in self.messages[since:] if m.topic == topic]

    def mark(self) -> int:
        with self._lock:
            return len(self.messages)

    async def until(self, pred: Callable[[Received], bool], timeout: float = 20.0, since: int = 0) -> Received:
        """The first message (from index ``since``) that satisfies ``pred``; waits for it."""
        async with asyncio.timeout(timeout):
            while True:
                with self._lock:
                    found = next((m for m in self.messages[since:] if pred(m)), None)
                if found is not None:
                    return found
                await asyncio.sleep(0.02)

    async def value(self, topic: str, payload: str, timeout: float = 20.0, since: int = 0) -> Received:
        return await self.until(lambda m: m.topic == topic and m.payload == payload.encode(), timeout, since)

    async def retained(self, topic: str, timeout: float = 10.0) -> Received | None:
        """What the broker retains on ``topic`` now, read by a fresh subscription (None: nothing).
        Only messages the broker replays as retained count: wait for the live one first."""
        got: list[Received] = []
        done = threading.Event()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"probe-{time.monotonic_ns()}")
        if self.credentials[0]:
            c.username_pw_set(*self.credentials)

        def on_message(client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
            if msg.retain:
                got.append(Received(msg.topic, bytes(msg.payload), True, time.monotonic()))
                done.set()

        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, qos=1)
        c.on_subscribe = lambda cl, u, mid, rcs, p: threading.Timer(0.5, done.set).start()
        c.on_message = on_message
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        try:
            await asyncio.to_thread(done.wait, timeout)
        finally:
            c.disconnect()
            c.loop_stop()
        return got[0] if got else None


def device_topic(dev: SimulatedDevice | str, leaf: str) -> str:
    device_id = dev if isinstance(dev, str) else dev.device_id
    return f"{BASE}/{topic_id(device_id)}/{leaf}"


@pytest.fixture(autouse=True)
def no_discovery_grace(monkeypatch) -> None:
    """Discovery at once after the start (tests of the grace set it themselves)."""
    monkeypatch.setattr(mqtt_bridge, "DISCOVERY_GRACE", 0.0)


@pytest.fixture
def fast_reconnect(monkeypatch) -> None:
    """Reconnect attempts 1 s apart (the default backoff grows to 60 s)."""
    monkeypatch.setattr(mqtt_client, "RECONNECT_MAX", 1.0)


@pytest.fixture
async def broker(tmp_path, fast_reconnect) -> AsyncIterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
async def watcher(broker: Broker) -> AsyncIterator[Watcher]:
    w = await Watcher(broker.port).start()
    yield w
    w.stop()


@pytest.fixture
async def mqtt_hub(broker: Broker, start_hub) -> Callable[..., Any]:
    """``hub = await mqtt_hub(mqtt={...}, ...)``: a hub with the bridge on the test's broker, connected."""
    async def start(wait: bool = True, **sections: Any) -> Hub:
        mqtt = {"host": "127.0.0.1", "port": broker.port, **sections.pop("mqtt", {})}
        hub = await start_hub(mqtt=mqtt, **sections)
        assert hub.ctx is not None and hub.ctx.mqtt is not None
        if wait:
            await hub.ctx.mqtt.client.wait_connected()
        return hub
    return start


def device(hub: Hub, **kw: Any) -> SimulatedDevice:
    return SimulatedDevice(ws_url(hub), **kw)


async def known(hub: Hub, device_id: str, timeout: float = 10.0) -> None:
    """Wait until the hub has recorded the device (it does so in the background on connecting)."""
    assert hub.ctx is not None
    async with asyncio.timeout(timeout):
        while await hub.ctx.devices.get(device_id) is None:
            await asyncio.sleep(0.02)
