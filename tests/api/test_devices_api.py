"""GET /api/devices with the live state, /api/hub, volume and stop, and the validation of every body
(real sockets on 127.0.0.1, the fake providers, the simulated stock device)."""

from __future__ import annotations

import asyncio

import pytest

from xiaozhi_hub import __version__
from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.simulator.device import DeviceState

from .conftest import Api

SPEECH = pcmlib.voice_like(1200)
REPLY = "Okay. The kitchen light is on now."


async def device_json(a: Api, ref: str) -> dict:
    status, body = await a.call("GET", f"/api/devices/{ref}")
    assert status == 200, body
    return body["device"]


async def wait_for(pred, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await pred():
            await asyncio.sleep(0.02)


async def test_hub_info(api) -> None:
    a = await api()
    status, body = await a.call("GET", "/api/hub")
    assert status == 200
    assert body == {"hub_id": a.hub.ctx.hub_id, "version": __version__, "name": "xiaozhi-hub",
                    "mqtt_discovery": True}


async def test_devices_carry_the_live_state(api) -> None:
    a = await api()
    async with a.device() as dev:
        d = await device_json(a, dev.device_id)
        assert d["online"] is True and d["state"] == "idle" and d["transport"] == "websocket"
        assert d["volume"] is None and d["last_heard"] is None and d["last_reply"] is None
        assert {"name", "board", "firmware_version", "device_id"} <= set(d)

        await dev.run_turn(SPEECH, mode="manual")
        await dev.wait_state(DeviceState.IDLE)
        d = await device_json(a, dev.device_id.replace(":", ""))          # 12 hex digits work too
        assert d["last_heard"] == "turn on the kitchen light" and d["last_reply"] == REPLY
        assert d["state"] == "idle"

        status, body = await a.call("POST", f"/api/devices/{dev.device_id}/volume", {"volume": 35})
        assert status == 200 and body == {"device_id": dev.device_id, "volume": 35}
        assert dev.volume == 35                                            # the device's MCP tool was called
        assert (await device_json(a, dev.device_id))["volume"] == 35

        status, body = await a.call("GET", "/api/devices")
        assert status == 200 and [x["device_id"] for x in body["devices"]] == [dev.device_id]
        assert body["devices"][0]["online"] is True
    await wait_for(lambda: _offline(a, dev.device_id))
    d = await device_json(a, dev.device_id)
    assert d["state"] == "offline" and d["last_reply"] == REPLY and d["volume"] == 35   # kept while away


async def _offline(a: Api, device_id: str) -> bool:
    return (await device_json(a, device_id))["online"] is False


async def test_stop_ends_what_the_device_is_saying(api) -> None:
    a = await api(fake={"llm_reply": "A long answer. " * 12})
    async with a.device() as dev:
        status, body = await a.call("POST", f"/api/devices/{dev.device_id}/stop")
        assert status == 200 and body == {"device_id": dev.device_id, "stopped": False}   # nothing to stop
        turn = await dev.start_listening("manual")
        await dev.stream_pcm(SPEECH)
        await dev.stop_listening()
        await dev.wait_until(lambda: turn.first_audio_at is not None, 10)
        status, body = await a.call("POST", f"/api/devices/{dev.device_id}/stop")
        assert status == 200 and body["stopped"] is True
        await dev.wait_until(lambda: turn.tts_stop_at is not None, 5)
        assert len(turn.sentences) < 12


async def test_volume_needs_a_connected_device_with_mcp(api) -> None:
    a = await api()
    async with a.device(mcp=False) as dev:
        status, body = await a.call("POST", f"/api/devices/{dev.device_id}/volume", {"volume": 10})
        assert status == 409 and "set_volume" in body["error"]
    status, body = await a.call("POST", f"/api/devices/{dev.device_id}/volume", {"volume": 10})
    assert status == 409 and "not connected" in body["error"]


BAD_SAY = [
    ({}, "text"), ({"text": ""}, "text"), ({"text": "   "}, "text"), ({"text": 5}, "text"),
    ({"text": "x" * 1001}, "limit is 1000"), ({"text": "hi", "priority": "urgent"}, "priority"),
    ({"text": "hi", "ttl": -1}, "ttl"), ({"text": "hi", "ttl": "soon"}, "ttl"), ({"text": "hi", "ttl": True}, "ttl"),
    ({"text": "hi", "wait": "yes"}, "wait"), ({"text": "hi", "id": ""}, "id"), ({"text": "hi", "id": 7}, "id"),
    ({"text": "hi", "colour": "red"}, "unknown field 'colour'"), ([1, 2], "JSON object"),
]


@pytest.mark.parametrize("path", ["/api/devices/{id}/say", "/api/say"])
async def test_bad_say_bodies_are_400_with_the_reason(api, path: str) -> None:
    a = await api()
    async with a.device() as dev:
        url = path.format(id=dev.device_id)
        for body, reason in BAD_SAY:
            status, reply = await a.call("POST", url, body)
            assert status == 400 and reason in reply["error"], (body, reply)
        for raw in (b"not json", b"", b"\xff\xfe", b"[" * 100000):
            status, reply = await a.call("POST", url, raw=raw)
            assert status in (400, 413) and reply["error"], raw[:10]
        assert not [t for t in dev.turns if t.tts_start_at is not None]      # nothing was said


async def test_bad_volume_bodies_and_unknown_devices(api) -> None:
    a = await api()
    async with a.device() as dev:
        url = f"/api/devices/{dev.device_id}/volume"
        for body in ({}, {"volume": 101}, {"volume": -1}, {"volume": "50"}, {"volume": 50.5}, {"volume": True},
                     {"volume": 5, "mute": True}):
            status, reply = await a.call("POST", url, body)
            assert status == 400 and reply["error"], body
        assert dev.mcp_calls and all(c.params.get("name") != "self.audio_speaker.set_volume" for c in dev.mcp_calls)
    for method, path, body in [("GET", "/api/devices/aa:bb:cc:00:00:09", None),
                               ("POST", "/api/devices/aa:bb:cc:00:00:09/say", {"text": "hi"}),
                               ("POST", "/api/devices/aabbcc000009/volume", {"volume": 5}),
                               ("POST", "/api/devices/aa:bb:cc:00:00:09/stop", None),
                               ("DELETE", "/api/devices/aa:bb:cc:00:00:09", None),
                               ("POST", "/api/devices/not-a-device/say", {"text": "hi"})]:
        status, reply = await a.call(method, path, body)
        assert status == 404 and "no device" in reply["error"], (method, path, reply)


async def test_a_device_can_be_removed_once_offline(api) -> None:
    a = await api()
    async with a.device() as dev:
        status, body = await a.call("DELETE", f"/api/devices/{dev.device_id}")
        assert status == 409
    await wait_for(lambda: _offline(a, dev.device_id))
    status, body = await a.call("DELETE", f"/api/devices/{dev.device_id}")
    assert status == 200 and body == {"device_id": dev.device_id, "removed": True}
    status, body = await a.call("GET", "/api/devices")
    assert body == {"devices": []}
