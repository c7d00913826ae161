"""End to end over MQTT+UDP: the simulated stock device (OTA, MQTT, hello, encrypted UDP audio)
against an in-process hub with the fake providers, on real sockets on 127.0.0.1.

Covers the acceptance list of the transport: the OTA mqtt section, hello and UDP setup, three turns,
abort, barge-in, goodbye from either side, an alert and MCP set_volume to an idle device, revoked
credentials, bad UDP packets beside a healthy neighbour, reconnecting after a hub restart."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import aiohttp

from xiaozhi_hub.app import Hub
from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.simulator.mqtt_device import MqttSimulatedDevice, ota_check
from xiaozhi_hub.simulator.records import DeviceState
from xiaozhi_hub.transport.mqtt import crypto

from ..conftest import fake_settings, free_port

SPEECH = pcmlib.voice_like(1200)
REPLY = ["Okay.", "The kitchen light is on now."]
# A long answer of different sentences (the hub cuts a repeated one as a loop) and a budget that lets
# it be said whole (docs/agent.md, Spoken answers).
LONG = ["The kettle is boiling.", "Rain starts at noon.", "Your parcel arrives today.", "The oven has finished.",
        "Grandma called twice.", "Traffic looks light.", "The heating is on.", "Bins go out tonight.",
        "A meeting begins soon.", "The garden needs water."]
LONG_BUDGET = {"answer_sentences": 20, "answer_seconds": 120}
MQTT = {"device_mqtt": {"enabled": True, "port": 0}, "udp": {"port": 0}, "devices": {"transport": "mqtt"}}


def ota_url(hub: Hub) -> str:
    assert hub.ctx is not None
    return f"http://127.0.0.1:{hub.ctx.http_port}/xiaozhi/ota/"


async def mqtt_hub(start_hub: Any, **sections: Any) -> Hub:
    merged = {k: dict(v) for k, v in MQTT.items()}
    for key, value in sections.items():
        merged[key] = {**merged.get(key, {}), **value}
    return await start_hub(**merged)


def assert_complete(turn: Any, sentences: list[str] | None = None) -> None:
    assert turn.stt_text == "turn on the kitchen light"
    types = [(m.type, m.data.get("state")) for m in turn.messages if m.type != "mcp"]
    assert types[0] == ("stt", None) and types[-1] == ("tts", "stop"), types
    assert turn.sentences == (sentences or REPLY)
    assert turn.played and turn.dropped == 0 and turn.decode_errors == 0 and turn.overflow == 0
    expected = sum(len(s) for s in turn.sentences) * 0.060
    assert abs(turn.audio_seconds - expected) < 0.25, (turn.audio_seconds, expected)
    assert turn.tts_start_at < turn.played[0].t and turn.played[-1].t <= turn.tts_stop_at


# ---------------------------------------------------------------------------- OTA and setup

async def test_ota_reply_carries_the_mqtt_section_only_for_mqtt_devices(start_hub):
    hub = await start_hub(device_mqtt={"enabled": True, "port": 0}, udp={"port": 0})
    ctx = hub.ctx
    plain = await ota_check(ota_url(hub), "02:00:00:00:01:01", "uuid-1")
    assert "mqtt" not in plain and plain["websocket"]["url"].startswith("ws://")

    await ctx.devices.set_transport("02:00:00:00:01:01", "mqtt")
    reply = await ota_check(ota_url(hub), "02:00:00:00:01:01", "uuid-1")
    section = reply["mqtt"]
    assert set(section) == {"endpoint", "client_id", "username", "password", "keepalive", "publish_topic",
                            "subscribe_topic"}
    assert section["endpoint"] == f"127.0.0.1:{ctx.mqtt_udp.mqtt_port}"   # the host the device used
    assert section["keepalive"] == 240 and isinstance(section["keepalive"], int)
    assert section["client_id"] == "GID_xiaozhi@@@02_00_00_00_01_01@@@uuid-1"
    assert section["username"] == "02:00:00:00:01:01"
    assert section["publish_topic"] == "xiaozhi/020000000101/up"
    assert "websocket" in reply                       # kept current for a switch back
    # Back to the default: the mqtt section is gone again.
    await ctx.devices.set_transport("02:00:00:00:01:01", None)
    assert "mqtt" not in await ota_check(ota_url(hub), "02:00:00:00:01:01", "uuid-1")


async def test_public_address_settings_are_followed(start_hub):
    hub = await start_hub(device_mqtt={"enabled": True, "port": 0, "public_port": 2884},
                          udp={"port": 0, "public_port": 2885}, devices={"transport": "mqtt"},
                          server={"public_ws_url": "wss://hub.example.net/xiaozhi/v1/"})
    reply = await ota_check(ota_url(hub), "02:00:00:00:01:02", "uuid-2")
    assert reply["mqtt"]["endpoint"] == "hub.example.net:2884"
    client = next(iter(hub.ctx.mqtt_udp.endpoint.clients.values()), None)
    assert client is None                              # (nothing connected: the address is not reachable)
    assert hub.ctx.mqtt_udp.udp_public_port() == 2885


async def test_hello_opens_an_encrypted_udp_channel_and_three_turns_run(start_hub):
    hub = await mqtt_hub(start_hub)
    ctx = hub.ctx
    async with MqttSimulatedDevice(ota_url(hub)) as dev:
        # Idle and connected: registered, no channel yet, nothing but MCP has been said.
        await dev.wait_until(lambda: ctx.registry.by_device(dev.device_id) is not None, 3)
        assert ctx.registry.by_device(dev.device_id).hello is None
        hello = await dev.open_audio_channel()
        assert hello["transport"] == "udp" and hello["session_id"]
        udp = hello["udp"]
        assert udp["server"] == "127.0.0.1" and udp["port"] == ctx.mqtt_udp.udp_port
        assert len(udp["key"]) == 32 and len(udp["nonce"]) == 32
        nonce = bytes.fromhex(udp["nonce"])
        assert nonce[0] == 0x01 and nonce[2:4] == b"\0\0" and nonce[8:] == bytes(8)
        assert hello["audio_params"]["sample_rate"] == 24000 and hello["audio_params"]["frame_duration"] == 60
        for _ in range(3):
            turn = await dev.run_turn(SPEECH, mode="auto", timeout=20)
            assert_complete(turn)
        assert ctx.metrics.counters["turns"] == 3
        assert ctx.metrics.counters["udp_packets_in"] > 50 and ctx.metrics.counters["udp_packets_out"] > 90
        assert dev.udp_dropped == 0 and not dev.errors
        assert dev.mqtt_connected and dev.session_id == hello["session_id"]


async def test_manual_mode_turn_and_pacing(start_hub):
    hub = await mqtt_hub(start_hub, fake={"llm_reply": "This reply is long enough to take a few seconds to say aloud."})
    async with MqttSimulatedDevice(ota_url(hub)) as dev:
        turn = await dev.run_turn(SPEECH, mode="manual", timeout=20)
        played = turn.played
        assert len(played) > 20 and turn.listen_stop_at is not None
        t0 = played[0].t
        for n, a in enumerate(played):                # never more than 5 frames ahead of real time
            assert a.t - t0 >= (n - 5) * 0.060 - 0.015, (n, a.t - t0)
        assert played[-1].t - t0 <= len(played) * 0.060 + 0.3
        await dev.wait_state(DeviceState.IDLE, timeout=3)


# ---------------------------------------------------------------------------- abort and barge-in

async def test_abort_stops_the_answer_and_no_audio_follows(start_hub):
    hub = await mqtt_hub(start_hub, fake={"llm_reply": " ".join(LONG)}, agent=LONG_BUDGET)
    async with MqttSimulatedDevice(ota_url(hub)) as dev:
        turn = await dev.run_turn(SPEECH, mode="manual", abort_after_ms=400, timeout=20)
        assert turn.abort_to_stop is not None and turn.abort_to_stop < 0.150, turn.abort_to_stop
        await asyncio.sleep(0.3)
        assert all(a.t <= turn.tts_stop_at for a in turn.audio), "audio after tts stop"
        assert len(turn.played) < 30
        again = await dev.run_turn(SPEECH, mode="manual", timeout=20)
        assert_complete(again, sentences=LONG)


async def test_barge_in_with_a_new_listen_start(start_hub):
    hub = await mqtt_hub(start_hub, fake={"llm_reply": " ".join(LONG)}, agent=LONG_BUDGET)
    async with MqttSimulatedDevice(ota_url(hub)) as dev:
        await dev.start_listening("auto")
        await dev.stream_pcm(SPEECH)
        first = dev.turn
        await dev.stream_silence(lambda: first.tts_start_at is not None, 10)
        await dev.wait_until(lambda: len(first.played) >= 3, 5)
        await dev.abort("wake_word_detected")          # FW >= 2.3: abort, then listen start at once
        second = dev.turn
        await dev.stream_pcm(SPEECH)
        await dev.stream_silence(lambda: second.tts_start_at is not None, 10)
        await dev.wait_until(lambda: second.tts_stop_at is not None, 20)
        assert second.stt_text == "turn on the kitchen light"
        assert len(first.played) < 40
        assert hub.ctx.metrics.counters["turns"] == 2


async def test_realtime_voice_over_the_answer_barges_in(start_hub):
    hub = await mqtt_hub(start_hub, fake={"llm_reply": " ".join(LONG)}, agent=LONG_BUDGET)
    async with MqttSimulatedDevice(ota_url(hub), aec=True) as dev:
        await dev.start_listening("realtime")
        await dev.stream_pcm(SPEECH)
        turn = dev.turn
        await dev.stream_silence(lambda: turn.tts_start_at is not None, 10)
        await dev.wait_until(lambda: len(turn.played) >= 5, 5)
        await dev.stream_pcm(SPEECH)
        await dev.wait_until(lambda: turn.tts_stop_at is not None, 3)
        assert hub.ctx.metrics.counters["barge_ins"] == 1


# ---------------------------------------------------------------------------- goodbye both ways

async def test_device_goodbye_closes_the_channel_and_the_device_stays_reachable(start_hub):
    hub = await mqtt_hub(start_hub)
    ctx = hub.ctx
    async with MqttSimulatedDevice(ota_url(hub)) as dev:
        await dev.run_turn(SPEECH, mode="manual", timeout=20)
        old = ctx.registry.by_device(dev.device_id)
        old_ssrc = int.from_bytes(dev._nonce[4:8], "big")
        await dev.close_audio_channel()                # the device says goodbye
        await dev.wait_until(lambda: ctx.registry.by_device(dev.device_id) is not old, 3)
        await old.closed.wait()
        fresh = ctx.registry.by_device(dev.device_id)
        assert fresh is not None and fresh.hello is None     # online, no channel
        assert old_ssrc not in ctx.mqtt_udp.udp.channels    # the old keys are gone
        assert dev.goodbyes_received == 0                    # the hub did not answer it
        turn = await dev.run_turn(SPEECH, mode="manual", timeout=20)   # a new hello, a new channel
        assert_complete(turn)
        assert ctx.registry.by_device(dev.device_id).id == dev.session_id != old.id


async def test_hub_goodbye_after_idle_timeout(start_hub):
    hub = await mqtt_hub(start_hub, session={"idle_timeout": 1.5})
    ctx = hub.ctx
    async with MqttSimulatedDevice(ota_url(hub)) as dev:
        await dev.open_audio_channel()
        sid = dev.session_id
        await dev.start_listening("auto")
        await dev.stream_silence(lambda: dev.goodbyes_received > 0, 8)   # the mic is on, nobody speaks
        await dev.wait_until(lambda: dev.goodbyes_received == 1, 8)
        assert not dev.audio_channel_open and dev.mqtt_connected and not dev.closed
        goodbye_msg = [m for m in dev.messages if m.type == "goodbye"][-1]
        assert goodbye_msg.data["session_id"] == sid
        assert dev.turns[-1].sentences == ["Goodbye."] and dev.turns[-1].played
        assert ctx.metrics.counters["idle_closes"] == 1
        await dev.wait_until(lambda: (s := ctx.registry.by_device(dev.device_id)) is not None and s.id != sid, 3)
        turn = await dev.run_turn(pcmlib.voice_like(600), mode="auto", timeout=20)   # (within the idle time)
        assert_complete(turn)
        assert dev.session_id != sid


async def test_presence_session_is_never_idle_closed(start_hub):
    hub = await mqtt_hub(start_hub, session={"idle_timeout": 0.5})
    async with MqttSimulatedDevice(ota_url(hub)) as dev:
        first = hub.ctx.registry.by_device(dev.device_id)
        await asyncio.sleep(2.0)                        # four idle periods without a channel
        assert hub.ctx.registry.by_device(dev.device_id) is first and dev.goodbyes_received == 0


# ---------------------------------------------------------------------------- reachable while idle

async def test_alert_and_mcp_volume_reach_an_idle_device(start_hub):
    hub = await mqtt_hub(start_hub)
    ctx = hub.ctx
    async with MqttSimulatedDevice(ota_url(hub)) as dev:
        session = ctx.registry.by_device(dev.device_id)
        await asyncio.wait_for(session.link.mcp.ready.wait(), 5)
        assert not dev.audio_channel_open and dev.state is DeviceState.IDLE
        names = [t.name for t in session.link.device_tools()]
        assert "self.audio_speaker.set_volume" in names
        assert await session.link.call_device_tool("self.audio_speaker.set_volume", {"volume": 35}) == "true"
        assert dev.volume == 35
        assert await ctx.mqtt_udp.alert(dev.device_id, "Dinner is ready", status="Kitchen") is True
        alert = await dev.wait_for("alert", timeout=3)
        assert alert.data == {"type": "alert", "status": "Kitchen", "message": "Dinner is ready", "emotion": "neutral"}
        assert not dev.audio_channel_open               # neither opened the audio channel
        assert await ctx.mqtt_udp.alert("02:00:00:00:99:99", "nobody") is False


async def test_an_idle_mqtt_device_is_online_and_an_announcement_shows_at_once_then_is_spoken(start_hub):
    hub = await mqtt_hub(start_hub)
    ctx = hub.ctx
    async with MqttSimulatedDevice(ota_url(hub)) as dev:
        await dev.wait_until(lambda: ctx.registry.by_device(dev.device_id) is not None, 3)
        live = ctx.live.get(dev.device_id)
        assert live is not None and live.online and live.transport == "mqtt" and live.state == "idle"
        result = await ctx.announcements.say(dev.device_id, "The washing machine is done.")
        assert result.status == "queued"                 # no audio channel: spoken when one opens
        alert = await dev.wait_for("alert", timeout=5)
        assert alert.data["message"] == "The washing machine is done."
        assert not dev.audio_channel_open
        since = len(dev.messages)
        await dev.open_audio_channel()
        sentence = await dev.wait_for("tts", state="sentence_start", timeout=10, since=since)
        assert sentence.data["text"] == "The washing machine is done."
        await dev.wait_for("tts", state="stop", timeout=10, since=since)
        assert await ctx.announcements.queue.for_device(dev.device_id) == []
    await asyncio.wait_for(_until(lambda: not ctx.live.is_online(dev.device_id)), 5)


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------- credentials

async def test_revoked_credentials_are_refused_until_the_next_ota_check(start_hub):
    hub = await mqtt_hub(start_hub)
    ctx = hub.ctx
    dev = MqttSimulatedDevice(ota_url(hub), reconnect_delay=0.2)
    await dev.connect()
    try:
        await ctx.devices.revoke(dev.device_id)          # what `xiaozhi-hub devices revoke` does
        await dev.wait_until(lambda: len(dev.refusals) >= 2, 5)
        assert "return code 4" in dev.refusals[-1] and not dev.mqtt_connected
        assert ctx.registry.by_device(dev.device_id) is None
        assert ctx.metrics.counters["mqtt_refused"] >= 2
        # A reboot: a new OTA check mints a new password, which is admitted.
        await dev.close()
        again = MqttSimulatedDevice(ota_url(hub), device_id=dev.device_id, client_id=dev.client_id)
        async with again:
            assert again.mqtt_settings["password"] != dev.mqtt_settings["password"]
            assert_complete(await again.run_turn(SPEECH, mode="manual", timeout=20))
    finally:
        await dev.close()


async def test_blocked_device_loses_its_connection_and_is_refused(start_hub):
    hub = await mqtt_hub(start_hub)
    async with MqttSimulatedDevice(ota_url(hub), reconnect_delay=0.2) as dev:
        await hub.ctx.devices.set_blocked(dev.device_id, True)
        await dev.wait_until(lambda: any("return code 5" in r for r in dev.refusals), 5)
        assert hub.ctx.registry.by_device(dev.device_id) is None


# ---------------------------------------------------------------------------- bad UDP, good neighbour

def _udp_sender() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


async def test_replayed_garbage_and_oversized_packets_are_dropped_beside_a_healthy_device(start_hub):
    hub = await mqtt_hub(start_hub, fake={"llm_reply": " ".join(LONG[:4])}, agent=LONG_BUDGET)
    ctx = hub.ctx
    counters = ctx.metrics.counters
    port = ctx.mqtt_udp.udp_port
    async with MqttSimulatedDevice(ota_url(hub)) as victim, MqttSimulatedDevice(ota_url(hub)) as neighbour:
        await victim.open_audio_channel()
        await victim.start_listening("manual")
        captured: list[bytes] = []
        transport = victim._udp.transport
        real_send = transport.sendto
        transport.sendto = lambda data, addr=None: (captured.append(data), real_send(data))[1]   # tap the wire
        await victim.stream_pcm(pcmlib.voice_like(900))
        transport.sendto = real_send
        assert captured
        neighbour_turn = asyncio.create_task(neighbour.run_turn(SPEECH, mode="manual", timeout=30))
        ssrc = int.from_bytes(victim._nonce[4:8], "big")
        attacker = _udp_sender()
        try:
            for datagram in captured[:5]:                       # replayed from the device's own address
                real_send(datagram)
            attacker.sendto(captured[-1], ("127.0.0.1", port))  # ... and from another address
            forged = crypto.seal(os.urandom(16), ssrc, 10_000, b"x" * 40)
            attacker.sendto(forged, ("127.0.0.1", port))        # right ssrc, wrong sender
            attacker.sendto(b"\x01\x00", ("127.0.0.1", port))   # short
            attacker.sendto(b"\x02" + bytes(15) + b"abc", ("127.0.0.1", port))     # wrong type
            attacker.sendto(crypto.seal(os.urandom(16), 12345, 1, b"y" * 20)[:-5], ("127.0.0.1", port))  # bad length
            attacker.sendto(crypto.seal(os.urandom(16), 77, 1, b"z" * 20), ("127.0.0.1", port))  # unknown ssrc
            attacker.sendto(crypto.seal(os.urandom(16), ssrc, 20_000, os.urandom(5000)), ("127.0.0.1", port))
            for _ in range(50):
                attacker.sendto(os.urandom(300), ("127.0.0.1", port))   # noise
        finally:
            attacker.close()
        await victim.wait_until(lambda: counters["udp_dropped_replay"] >= 5 and counters["udp_dropped_oversized"] >= 1
                                and counters["udp_dropped_wrong_address"] >= 2, 5)
        assert counters["udp_dropped_short"] >= 1 and counters["udp_dropped_bad_type"] >= 1
        assert counters["udp_dropped_bad_length"] >= 1 and counters["udp_dropped_unknown_ssrc"] >= 1
        assert counters["udp_dropped_bad_type"] + counters["udp_dropped_bad_length"] + counters["udp_dropped_short"] >= 40
        turn = await neighbour_turn
        assert_complete(turn, sentences=LONG[:4])
        assert neighbour.udp_dropped == 0
        # The victim's own channel still works.
        await victim.stop_listening()
        await victim.wait_until(lambda: victim.turn.tts_stop_at is not None, 20)
        assert victim.turn.played and victim.turn.decode_errors == 0


async def test_udp_flood_on_a_channel_is_rate_limited(start_hub):
    hub = await mqtt_hub(start_hub, udp={"max_packets_per_second": 30})
    counters = hub.ctx.metrics.counters
    async with MqttSimulatedDevice(ota_url(hub)) as dev:
        await dev.open_audio_channel()
        await dev.start_listening("manual")
        silent = dev._encoder.encode(pcmlib.silence(60, 16000))
        for _ in range(200):
            await dev.send_audio_frame(silent)        # far faster than 60 ms a frame
        await dev.wait_until(lambda: counters["udp_dropped_rate"] > 100, 5)
        assert counters["udp_packets_in"] < 100


# ---------------------------------------------------------------------------- hub restart

def restartable_settings(tmp_path: Any) -> tuple[Any, str]:
    """Fixed ports, so a second hub on the same settings is where the device expects it; the OTA URL."""
    mqtt_port, udp_port, http_port = free_port(), free_port(), free_port()
    settings = fake_settings(tmp_path, device_mqtt={"enabled": True, "port": mqtt_port},
                             udp={"port": udp_port}, devices={"transport": "mqtt"},
                             server={"host": "127.0.0.1", "ws_port": 0, "http_port": http_port})
    return settings, f"http://127.0.0.1:{http_port}/xiaozhi/ota/"


async def test_device_reconnects_after_a_hub_restart(tmp_path):
    settings, ota = restartable_settings(tmp_path)
    hub = Hub(settings)
    await hub.start()
    dev = MqttSimulatedDevice(ota, reconnect_delay=0.3)
    try:
        await dev.connect()
        await dev.run_turn(SPEECH, mode="manual", timeout=20)
        assert dev.audio_channel_open
        await hub.stop()                               # a clean stop says goodbye to the open channel
        await dev.wait_until(lambda: dev.goodbyes_received == 1 and not dev.mqtt_connected, 5)
        assert not dev.audio_channel_open
        hub = Hub(settings)
        await hub.start()
        await dev.wait_until(lambda: dev.mqtt_connected, 10)
        assert dev.reconnects == 1
        await dev.wait_until(lambda: hub.ctx.registry.by_device(dev.device_id) is not None, 3)
        assert_complete(await dev.run_turn(SPEECH, mode="manual", timeout=20))
    finally:
        await dev.close()
        await hub.stop()


async def test_a_channel_left_open_by_a_crashed_hub_is_closed_with_goodbye(tmp_path):
    """The hub died without saying goodbye: the device still thinks its channel is open and sends
    ``listen start`` with the old session id; the hub tells it goodbye, and the next wake works."""
    settings, ota = restartable_settings(tmp_path)
    hub = Hub(settings)
    await hub.start()
    dev = MqttSimulatedDevice(ota, reconnect_delay=0.3)
    try:
        await dev.connect()
        await dev.run_turn(SPEECH, mode="manual", timeout=20)
        old_sid = dev.session_id
        hub.ctx.mqtt_udp.stopping = True               # simulate a crash: nobody is told goodbye
        for client in list(hub.ctx.mqtt_udp.endpoint.clients.values()):
            client.writer.transport.abort()
        await hub.stop()
        hub = Hub(settings)
        await hub.start()
        await dev.wait_until(lambda: dev.mqtt_connected, 10)
        assert dev.audio_channel_open                  # stale: the firmware keeps it for 120 s
        await dev.start_listening("manual")            # reuses the stale channel
        await dev.wait_until(lambda: dev.goodbyes_received == 1, 5)
        goodbye = [m for m in dev.messages if m.type == "goodbye"][-1]
        assert goodbye.data["session_id"] == old_sid and not dev.audio_channel_open
        assert hub.ctx.metrics.counters["mqtt_stale_channel"] == 1
        assert_complete(await dev.run_turn(SPEECH, mode="manual", timeout=20))
    finally:
        await dev.close()
        await hub.stop()


async def test_status_and_health_count_an_idle_mqtt_device(start_hub):
    hub = await mqtt_hub(start_hub)
    async with MqttSimulatedDevice(ota_url(hub)) as dev:
        await dev.wait_until(lambda: hub.ctx.registry.by_device(dev.device_id) is not None, 3)
        session = hub.ctx.registry.by_device(dev.device_id)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{hub.ctx.http_port}/health") as r:
                assert (await r.json())["sessions"] == 1
    await asyncio.wait_for(session.closed.wait(), 3)
    assert hub.ctx.registry.by_device(dev.device_id) is None    # gone with its MQTT connection


async def test_simulator_command_line_on_mqtt(start_hub, capsys):
    from xiaozhi_hub.simulator.__main__ import main

    hub = await mqtt_hub(start_hub)
    code = await asyncio.to_thread(main, ["--ota", ota_url(hub), "--turns", "2", "--mode", "manual", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "over MQTT" in out and out.count('"stt": "turn on the kitchen light"') == 2
    wrong = await asyncio.to_thread(main, ["--ota", f"http://127.0.0.1:{free_port()}/xiaozhi/ota/"])
    assert wrong == 2 and "OTA check" in capsys.readouterr().err
