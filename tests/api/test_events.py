"""The event bus (bounded, a slow subscriber is dropped and learns it) and the /api/events stream:
hello snapshot first, then the events of a device's life in order; a client that stops reading is
disconnected without affecting another; a reconnect resynchronises from the new hello."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.services.events import EventBus, EventType, SubscriberDropped
from xiaozhi_hub.simulator.device import DeviceState

from .conftest import Api

SPEECH = pcmlib.voice_like(1200)
ORDERED = {"device_connected", "device_disconnected", "state", "stt", "reply", "turn_finished", "announcement", "wake"}


# ---------------------------------------------------------------------------- the bus


async def test_bus_delivers_in_order_and_drops_only_the_slow_subscriber() -> None:
    bus = EventBus()
    fast, slow = bus.subscribe(4, "fast"), bus.subscribe(4, "slow")
    got: list[int] = []
    for i in range(10):
        bus.publish(EventType.VOLUME, "d", volume=i)          # synchronous, never waits
        got.append((await fast.get()).data["volume"])
    assert got == list(range(10))
    assert slow.dropped and len(slow) == 0 and bus.dropped_subscribers == 1
    with pytest.raises(SubscriberDropped):
        await slow.get()                                        # it learns it was dropped
    assert bus.subscriber_count == 1
    bus.publish(EventType.STATE, "d", state="idle")
    event = await fast.get()
    assert event.to_json() == {"type": "state", "device_id": "d", "state": "idle", "ts": event.to_json()["ts"],
                               "seq": 11}


async def test_bus_callbacks_and_close() -> None:
    bus = EventBus()
    seen: list[str] = []
    done = asyncio.Event()

    def callback(event) -> None:
        seen.append(event.type.value)
        if event.type is EventType.ERROR:
            raise RuntimeError("a broken callback is logged, not fatal")
        if event.type is EventType.WAKE:
            done.set()

    task = bus.on(callback, name="test")
    await asyncio.sleep(0)
    bus.publish(EventType.ERROR, None, message="x")
    bus.publish(EventType.WAKE, "d", text="hi")
    await asyncio.wait_for(done.wait(), 5)
    assert seen == ["error", "wake"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert bus.subscriber_count == 0
    sub = bus.subscribe()
    sub.close()
    assert [e async for e in sub] == []


# ---------------------------------------------------------------------------- the stream


def ordered(events: list[dict], device_id: str) -> list[tuple]:
    out = []
    for e in events:
        if e.get("device_id") != device_id or e["type"] not in ORDERED:
            continue
        detail = e.get("state") or e.get("status") or e.get("text")
        out.append((e["type"], detail) if detail is not None else (e["type"],))
    return out


async def test_hello_then_the_events_of_a_turn_and_an_announcement_in_order(api) -> None:
    a = await api()
    stream = await a.events()
    hello = await stream.next()
    assert hello["type"] == "hello" and hello["hub_id"] == a.hub.ctx.hub_id and hello["devices"] == []
    assert hello["version"] and hello["mqtt_discovery"] is True
    async with a.device() as dev:
        await dev.detect("你好小智")
        await dev.run_turn(SPEECH, mode="manual")
        await dev.wait_state(DeviceState.IDLE)
        status, body = await a.call("POST", f"/api/devices/{dev.device_id}/say", {"text": "Dinner is ready.", "id": "a1"})
        assert status == 200 and body == {"id": "a1", "status": "spoken", "device_id": dev.device_id}
        await stream.until(lambda e: e["type"] == "announcement")
        await stream.until(lambda e: e["type"] == "state")               # back to the state it was in
    await stream.until(lambda e: e["type"] == "device_disconnected")
    assert ordered(stream.messages, dev.device_id) == [
        ("device_connected",), ("state", "idle"), ("wake", "你好小智"),
        ("state", "listening"), ("state", "thinking"), ("stt", "turn on the kitchen light"), ("state", "speaking"),
        ("reply", "Okay. The kitchen light is on now."), ("turn_finished",), ("state", "idle"),
        ("state", "speaking"), ("announcement", "spoken"), ("state", "idle"),
        ("state", "offline"), ("device_disconnected",)]
    added = [e for e in stream.messages if e["type"] == "device_added"]
    assert len(added) == 1 and added[0]["device"]["device_id"] == dev.device_id
    seqs = [e["seq"] for e in stream.messages[1:]]
    assert seqs == sorted(seqs) and all(isinstance(e["ts"], float) for e in stream.messages[1:])
    await stream.close()


async def test_a_reconnecting_client_resyncs_from_the_hello(api) -> None:
    a = await api()
    async with a.device() as dev:
        first = await a.events()
        hello = await first.next()
        assert [d["device_id"] for d in hello["devices"]] == [dev.device_id]
        assert hello["devices"][0]["online"] is True and hello["devices"][0]["state"] == "idle"
        await first.close()
        status, _ = await a.call("POST", f"/api/devices/{dev.device_id}/rename", {"name": "Kitchen"})
        assert status == 200
        second = await a.events()
        hello = await second.next()
        assert hello["devices"][0]["name"] == "Kitchen" and hello["devices"][0]["online"] is True
        status, _ = await a.call("POST", f"/api/devices/{dev.device_id}/rename", {"name": "Hall"})
        renamed = await second.until(lambda e: e["type"] == "device_renamed")
        assert renamed["device"]["name"] == "Hall" and renamed["device"]["online"] is True
        await second.close()


async def test_a_client_that_stops_reading_is_dropped_and_others_are_not(api) -> None:
    a = await api()
    ctx = a.hub.ctx
    slow = await a.events()
    await slow.next()                                 # the hello; then it reads nothing
    fast = await a.events()
    await fast.next()
    big = "x" * 32768
    reader_done = asyncio.Event()
    received = 0

    async def read_fast() -> None:
        nonlocal received
        while True:
            e = await fast.next(30)
            if e["type"] == "reply":
                received += 1
            if e["type"] == "wake":
                reader_done.set()
                return

    reader = asyncio.create_task(read_fast())
    for _ in range(20000):                            # until the socket buffers fill and the queue overflows
        ctx.events.publish(EventType.REPLY, "aa:bb:cc:dd:ee:01", text=big, complete=True)
        await asyncio.sleep(0)
        if ctx.events.dropped_subscribers:
            break
    assert ctx.events.dropped_subscribers == 1
    ctx.events.publish(EventType.WAKE, "aa:bb:cc:dd:ee:01", text="")
    await asyncio.wait_for(reader_done.wait(), 60)
    await reader
    assert received > 0
    # The slow client, reading at last, finds its stream ended (close 1013, or cut if even that was stuck).
    async with asyncio.timeout(30):
        while True:
            msg = await slow.ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break
    assert slow.ws.close_code in (1013, 1006, None)
    assert ctx.metrics.counters["event_streams_dropped"] == 1
    await fast.close()


async def test_the_stream_needs_the_token_and_a_websocket(api) -> None:
    a = await api()
    async with a.session.get(f"{a.base}/api/events", headers=a.headers()) as r:
        assert r.status == 400 and "WebSocket" in (await r.json())["error"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await a.events(token="nope")
    assert err.value.status == 401


async def test_publishing_from_another_thread() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, lambda: bus.publish_threadsafe(loop, EventType.VOLUME, "d", volume=3))
    event = await asyncio.wait_for(sub.get(), 5)
    assert (event.type, event.data["volume"]) == (EventType.VOLUME, 3)
