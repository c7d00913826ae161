"""Bad input, each with its documented behaviour, while a second device completes a turn unaffected.

Documented behaviour (README "How a device is handled", transport/ws_server.py):
non-JSON / unknown type → JSON error, connection kept; binary before hello → ignored + one JSON error;
frame over max_frame_bytes → close 1009; flood → close 1008; abrupt TCP close → session cleaned up;
missing or wrong token → JSON error "auth_failed" then close 4001; no hello → close 4000.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Awaitable, Callable

import aiohttp
import pytest

from xiaozhi_hub.auth import mint_token
from xiaozhi_hub.simulator import SimulatedDevice

from ..conftest import LONG_BUDGET, LONG_REPLY, LONG_SENTENCES, ws_url
from .test_turns import SPEECH, assert_complete_turn

HELLO = json.dumps({"type": "hello", "version": 1, "features": {"mcp": True}, "transport": "websocket",
                    "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}})


async def with_bystander(hub, bad: Callable[[], Awaitable[None]], sentences: list[str] | None = None) -> None:
    """Run ``bad`` while another device completes a push-to-talk turn; both must finish."""
    async with SimulatedDevice(ws_url(hub)) as good:
        async def good_turn() -> None:
            turn = await good.run_turn(SPEECH, mode="manual")
            assert_complete_turn(turn, sentences=sentences)
        await asyncio.gather(good_turn(), bad())
        assert not good.closed


async def raw(session: aiohttp.ClientSession, hub, device_id: str = "02:aa:00:00:00:01",
              headers: dict[str, str] | None = None) -> aiohttp.ClientWebSocketResponse:
    h = {"Device-Id": device_id, "Client-Id": "raw-client", "Protocol-Version": "1", **(headers or {})}
    return await session.ws_connect(ws_url(hub), headers=h, heartbeat=None, compress=0, max_msg_size=0)


async def after_hello(session: aiohttp.ClientSession, hub) -> aiohttp.ClientWebSocketResponse:
    """A raw connection that has completed the hello."""
    ws = await raw(session, hub)
    await ws.send_str(HELLO)
    await next_json(ws, "hello")
    return ws


async def next_json(ws: aiohttp.ClientWebSocketResponse, type_: str, timeout: float = 3.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"expected {type_}, got {msg.type} {msg.data} {msg.extra}")
        data = json.loads(msg.data)
        if data.get("type") == type_:
            return data


async def closed_with(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return ws.close_code


async def test_non_json_text_gets_a_json_error_and_the_connection_stays(start_hub):
    hub = await start_hub()

    async def bad() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await after_hello(s, hub)
            await ws.send_str("this is { not json")
            err = await next_json(ws, "error")
            assert err["code"] == "not_json"
            await ws.send_str("[1, 2, 3]")
            assert (await next_json(ws, "error"))["code"] == "not_object"
            await ws.send_str(json.dumps({"type": "listen", "state": "sideways"}))
            assert (await next_json(ws, "error"))["code"] == "bad_field"
            # Still served: an abort is answered with tts stop.
            await ws.send_str(json.dumps({"type": "abort"}))
            assert (await next_json(ws, "tts"))["state"] == "stop"
            await ws.close()

    await with_bystander(hub, bad)


async def test_unknown_type_gets_a_json_error(start_hub):
    hub = await start_hub()

    async def bad() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await after_hello(s, hub)
            await ws.send_str(json.dumps({"type": "teleport", "where": "moon"}))
            err = await next_json(ws, "error")
            assert err["code"] == "unknown_type" and "teleport" in err["message"]
            await ws.send_str(json.dumps({"no": "type"}))
            assert (await next_json(ws, "error"))["code"] == "missing_type"
            await ws.close()

    await with_bystander(hub, bad)


async def test_binary_before_hello_is_ignored_with_one_error(start_hub):
    hub = await start_hub()

    async def bad() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await raw(s, hub)
            for _ in range(5):
                await ws.send_bytes(b"\xf8\xff\xfe" * 10)
            err = await next_json(ws, "error")
            assert err["code"] == "hello_required"
            await ws.send_str(HELLO)
            hello = await next_json(ws, "hello")   # the hello still works afterwards
            assert hello["transport"] == "websocket"
            await ws.close()

    await with_bystander(hub, bad)


async def test_no_hello_closes_4000(start_hub):
    hub = await start_hub(session={"hello_timeout": 0.5})
    async with aiohttp.ClientSession() as s:
        ws = await raw(s, hub)
        assert await closed_with(ws, 3) == 4000


async def test_ten_megabyte_frame_closes_1009(start_hub):
    hub = await start_hub()

    async def bad() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await after_hello(s, hub)
            try:
                await ws.send_bytes(b"\x00" * (10 * 1024 * 1024))
            except (ConnectionError, aiohttp.ClientError):
                pass  # the hub may drop the socket while we are still writing
            code = await closed_with(ws)
            assert code in (1009, 1006, None), code
            assert code == 1009 or ws.closed
            for _ in range(50):
                if hub.ctx.registry.by_device("02:aa:00:00:00:01") is None:
                    break
                await asyncio.sleep(0.05)
            assert hub.ctx.registry.by_device("02:aa:00:00:00:01") is None

    await with_bystander(hub, bad)


async def test_thousand_frames_per_second_is_throttled_then_closed_1008(start_hub):
    hub = await start_hub()
    packet = b"\xf8\xff\xfe"  # a tiny Opus packet, as in DTX silence

    async def bad() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await after_hello(s, hub)
            await ws.send_str(json.dumps({"type": "listen", "state": "start", "mode": "auto"}))
            t0 = time.monotonic()

            async def flood() -> None:
                while not ws.closed and time.monotonic() - t0 < 8:
                    for _ in range(100):                 # 1,000 frames per second
                        await ws.send_bytes(packet)
                    await asyncio.sleep(0.1)

            sender = asyncio.create_task(flood())
            code = await closed_with(ws, 8)
            closed_after = time.monotonic() - t0
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            assert code == 1008, code
            assert 2.0 <= closed_after < 4.0, closed_after   # flood_grace_seconds is 2
            assert hub.ctx.metrics.counters["floods"] == 1
            assert hub.ctx.metrics.counters["frames_dropped"] > 0

    await with_bystander(hub, bad)


async def test_abrupt_tcp_close_mid_stream_cleans_up(start_hub):
    hub = await start_hub(fake={"llm_reply": LONG_REPLY}, agent=LONG_BUDGET)

    async def bad() -> None:
        dev = SimulatedDevice(ws_url(hub))
        await dev.connect()
        await dev.start_listening("manual")
        await dev.stream_pcm(SPEECH[: len(SPEECH) // 2])   # mid-utterance ...
        await dev.close()                                   # ... the device drops TCP (no close frame)
        for _ in range(50):
            if hub.ctx.registry.by_device(dev.device_id) is None:
                break
            await asyncio.sleep(0.05)
        assert hub.ctx.registry.by_device(dev.device_id) is None
        # And while speaking: the turn task is cancelled with the session.
        dev2 = SimulatedDevice(ws_url(hub))
        await dev2.connect()
        await dev2.start_listening("manual")
        await dev2.stream_pcm(SPEECH)
        await dev2.stop_listening()
        await dev2.wait_until(lambda: len(dev2.turn.played) >= 3, 5)
        session = hub.ctx.registry.by_device(dev2.device_id)
        turn_task = session.turn
        await dev2.close()
        await asyncio.wait_for(session.closed.wait(), 3)
        assert turn_task.done()

    await with_bystander(hub, bad, sentences=LONG_SENTENCES)


@pytest.mark.parametrize("auth", [False, True])
async def test_auth_on_and_off(start_hub, auth):
    hub = await start_hub(auth={"enabled": auth, "tokens": ["static-token-1"], "secret": "hub-secret-for-tests"})
    # With auth off anything connects; with auth on, a minted per-device token and a static token work.
    token = mint_token("hub-secret-for-tests", "client-1", "02:bb:00:00:00:01")
    async with SimulatedDevice(ws_url(hub), device_id="02:bb:00:00:00:01", client_id="client-1", token=token) as dev:
        assert_complete_turn(await dev.run_turn(SPEECH, mode="manual"))
    async with SimulatedDevice(ws_url(hub), token="static-token-1") as dev:
        assert dev.server_hello["transport"] == "websocket"
    if not auth:
        async with SimulatedDevice(ws_url(hub)) as dev:       # no token at all
            assert dev.server_hello is not None
        return

    async def refused(headers: dict[str, str]) -> None:
        async with aiohttp.ClientSession() as s:
            ws = await raw(s, hub, "02:bb:00:00:00:02", headers)
            err = await next_json(ws, "error")
            assert err["code"] == "auth_failed"
            assert await closed_with(ws) == 4001

    async def bad() -> None:
        await refused({})                                            # missing token
        await refused({"Authorization": "Bearer wrong-token"})       # wrong token
        other = mint_token("some-other-secret", "raw-client", "02:bb:00:00:00:02")
        await refused({"Authorization": f"Bearer {other}"})          # token from another hub

    # The bystander needs a token too, so it is run here rather than with with_bystander().
    async with SimulatedDevice(ws_url(hub), token="static-token-1") as good:
        results = await asyncio.gather(good.run_turn(SPEECH, mode="manual"), bad())
        assert_complete_turn(results[0])


async def test_query_parameters_instead_of_headers(start_hub):
    hub = await start_hub(auth={"enabled": True, "tokens": ["static-token-1"]})
    async with aiohttp.ClientSession() as s:
        url = ws_url(hub) + "?device-id=02:cc:00:00:00:01&client-id=web&authorization=Bearer%20static-token-1"
        ws = await s.ws_connect(url, heartbeat=None)
        await ws.send_str(HELLO)
        assert (await next_json(ws, "hello"))["transport"] == "websocket"
        assert hub.ctx.registry.by_device("02:cc:00:00:00:01") is not None
        await ws.close()
        ws = await s.ws_connect(ws_url(hub), heartbeat=None)         # neither header nor query
        assert (await next_json(ws, "error"))["code"] == "missing_device_id"
        assert await closed_with(ws) == 4001
