"""The simulated device (xiaozhi_hub.simulator) against a small scripted hub on a real socket.

The scripted hub is deliberately dumb and fully controlled by each test, so these tests pin the
*device* behaviour (handshake, hello rules, speaking/listening gates, playback queue, MCP answers,
pacing records) independently of the real hub, which has its own end-to-end tests.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from xiaozhi_hub.audio import pcm
from xiaozhi_hub.audio.opus import OpusDecoder, OpusEncoder
from xiaozhi_hub.protocol.binary import decode_audio, encode_audio
from xiaozhi_hub.providers.base import VADEvent
from xiaozhi_hub.providers.vad_webrtc import WebRtcVAD
from xiaozhi_hub.settings import VADSettings
from xiaozhi_hub.simulator import (DeviceCrash, DeviceState, FirmwareMcpServer, HelloTimeout, SimulatedDevice,
                                   SimulatorError)
from xiaozhi_hub.simulator.__main__ import main as cli_main

SPEECH = pcm.voice_like(900)


@dataclass
class ScriptedHub:
    """A minimal hub: hello, a scripted reply per turn, abort → tts stop, everything recorded."""

    hello: dict[str, Any] | None = None            # None = a correct hello
    version: int = 1
    reply_frames: int = 10
    pace: bool = True                              # False = send all frames at once (overflow test)
    early_frames: int = 0                          # audio sent *before* tts start (device must drop)
    garbage_frame: bool = False
    stamp: bool = False                            # v2: put timestamps on downlink frames
    on_hello: Callable[["ScriptedHub", web.WebSocketResponse], Awaitable[None]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    received: list[tuple[float, Any]] = field(default_factory=list)     # JSON objects
    uplink: list[tuple[float, bytes]] = field(default_factory=list)     # raw binary frames
    close_code: int | None = None
    listen_starts: list[float] = field(default_factory=list)
    reply_done: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.session_id = uuid.uuid4().hex
        self._reply: asyncio.Task | None = None
        self._enc = OpusEncoder(24000)

    def frame(self, i: int) -> bytes:
        payload = self._enc.encode(pcm.tone(440, 60, 24000, phase=i * 1440))
        return encode_audio(payload, self.version, timestamp=1000 + i if self.stamp else 0)

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        self.headers = dict(request.headers)
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        dec, vad = OpusDecoder(16000), WebRtcVAD(VADSettings(silence_ms=300)).open_stream()
        async for msg in ws:
            now = time.monotonic()
            if msg.type == aiohttp.WSMsgType.BINARY:
                self.uplink.append((now, msg.data))
                audio = decode_audio(msg.data, self.version).payload
                if VADEvent.SPEECH_END in vad.feed(dec.decode(audio)):
                    self._start_reply(ws)
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            obj = json.loads(msg.data)
            self.received.append((now, obj))
            kind, state = obj.get("type"), obj.get("state")
            if kind == "hello":
                await ws.send_json(self.hello if self.hello is not None else {
                    "type": "hello", "version": self.version, "transport": "websocket",
                    "session_id": self.session_id,
                    "audio_params": {"format": "opus", "sample_rate": 24000, "channels": 1, "frame_duration": 60}})
                if self.on_hello:
                    await self.on_hello(self, ws)
            elif kind == "listen" and state == "start":
                self.listen_starts.append(now)
                vad.reset()
            elif kind == "listen" and state == "stop":
                self._start_reply(ws)
            elif kind == "abort":
                if self._reply is not None:
                    self._reply.cancel()
                await ws.send_json({"type": "tts", "state": "stop", "session_id": self.session_id})
        self.close_code = ws.close_code
        return ws

    def _start_reply(self, ws: web.WebSocketResponse) -> None:
        self._reply = asyncio.create_task(self._speak(ws))

    async def _speak(self, ws: web.WebSocketResponse) -> None:
        sid = self.session_id
        for i in range(self.early_frames):
            await ws.send_bytes(self.frame(i))
        await ws.send_json({"session_id": sid, "type": "stt", "text": "turn on the light"})
        await ws.send_json({"session_id": sid, "type": "tts", "state": "start"})
        await asyncio.sleep(0.03)
        await ws.send_json({"session_id": sid, "type": "llm", "text": "😊", "emotion": "happy"})
        await ws.send_json({"session_id": sid, "type": "tts", "state": "sentence_start", "text": "Okay."})
        t0 = time.monotonic()
        for i in range(self.reply_frames):
            if self.pace and i >= 3:
                await asyncio.sleep(max(0.0, t0 + (i - 3) * 0.06 - time.monotonic()))
            await ws.send_bytes(self.frame(i))
            if self.garbage_frame and i == 1:
                await ws.send_bytes(encode_audio(b"\xff" * 10, self.version))
        self.reply_done.append(time.monotonic())
        await ws.send_json({"session_id": sid, "type": "tts", "state": "stop"})

    def types(self) -> list[str]:
        return [f"{o.get('type')}:{o.get('state')}" if o.get("state") else o.get("type") for _, o in self.received]


@pytest.fixture
async def serve():
    runners: list[web.AppRunner] = []

    async def start(hub: ScriptedHub) -> str:
        app = web.Application()
        app.router.add_get("/xiaozhi/v1/", hub.handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"ws://127.0.0.1:{port}/xiaozhi/v1/"

    yield start
    for r in runners:
        await r.cleanup()


# ---------------------------------------------------------------------------- handshake and hello


async def test_handshake_headers_and_hello_are_firmware_like(serve) -> None:
    hub = ScriptedHub()
    async with SimulatedDevice(await serve(hub), protocol_version=2) as dev:
        assert dev.session_id == hub.session_id and dev.state == DeviceState.IDLE
    h = {k.lower(): v for k, v in hub.headers.items()}
    assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", h["device-id"])
    assert uuid.UUID(h["client-id"]).version == 4
    assert h["protocol-version"] == "2"
    assert h["host"] == "127.0.0.1"                                     # host only, like the firmware
    for absent in ("authorization", "sec-websocket-protocol", "sec-websocket-extensions", "user-agent", "origin"):
        assert absent not in h, absent
    assert hub.received[0][1] == {"type": "hello", "version": 2, "features": {"mcp": True}, "transport": "websocket",
                                  "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1,
                                                   "frame_duration": 60}}


@pytest.mark.parametrize("token,header", [("abc", "Bearer abc"), ("Bearer xyz", "Bearer xyz")])
async def test_token_is_sent_as_bearer(serve, token: str, header: str) -> None:
    hub = ScriptedHub()
    async with SimulatedDevice(await serve(hub), token=token, device_id="A1:B2:C3:D4:E5:F6"):
        pass
    assert hub.headers["Authorization"] == header
    assert hub.headers["Device-Id"] == "a1:b2:c3:d4:e5:f6"


async def test_hello_without_transport_crashes_the_device(serve) -> None:
    url = await serve(ScriptedHub(hello={"type": "hello", "session_id": "x"}))
    with pytest.raises(DeviceCrash, match="transport"):
        await SimulatedDevice(url).connect()


async def test_hello_with_other_transport_is_ignored_until_timeout(serve) -> None:
    url = await serve(ScriptedHub(hello={"type": "hello", "transport": "udp", "session_id": "x"}))
    dev = SimulatedDevice(url, hello_timeout=0.3)
    with pytest.raises(HelloTimeout):
        await dev.connect()
    assert dev.closed and "ignored server hello" in dev.errors[0]


async def test_rejected_connection_reports_the_servers_text() -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()
        await ws.send_str("认证失败")
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with pytest.raises(SimulatorError, match="认证失败"):
            await SimulatedDevice(f"ws://127.0.0.1:{port}/").connect()
    finally:
        await runner.cleanup()


async def test_unreachable_hub_is_a_clear_error() -> None:
    with pytest.raises(SimulatorError, match="cannot connect"):
        await SimulatedDevice("ws://127.0.0.1:1/xiaozhi/v1/").connect()


# ---------------------------------------------------------------------------- turns


async def test_manual_turn_records_messages_audio_and_latency(serve) -> None:
    hub = ScriptedHub(reply_frames=12, early_frames=2, garbage_frame=True)
    async with SimulatedDevice(await serve(hub)) as dev:
        turn = await dev.run_turn(SPEECH, mode="manual", timeout=10)
        assert dev.state == DeviceState.IDLE                          # manual: tts stop → idle
    assert hub.types()[1:3] == ["listen:start", "listen:stop"]
    assert all(o["session_id"] == hub.session_id for _, o in hub.received[1:])
    assert len(hub.uplink) == 15                                      # 900 ms of speech = 15 frames
    assert turn.stt_text == "turn on the light" and turn.sentences == ["Okay."] and turn.emotions == ["happy"]
    assert turn.dropped == 2                                          # audio before tts start
    assert turn.decode_errors == 1 and turn.overflow == 0
    assert len(turn.played) == 13 and {a.samples for a in turn.played if a.samples} == {1440}
    assert turn.audio_seconds == pytest.approx(12 * 0.06)
    assert 0 < turn.first_audio_latency < 0.5
    assert turn.first_audio_at > turn.tts_start_at and turn.tts_stop_at >= turn.played[-1].t
    assert max(turn.intervals) < 0.2 and len(turn.intervals) == 12
    summary = turn.summary()
    assert summary["frames"] == 13 and summary["stt"] == "turn on the light"
    assert pcm.rms(bytes(turn.pcm)) > 1000                            # the tone decoded


async def test_auto_turns_end_by_server_vad_and_relisten_after_playback(serve) -> None:
    hub = ScriptedHub(reply_frames=10)
    async with SimulatedDevice(await serve(hub)) as dev:
        first = await dev.run_turn(SPEECH, mode="auto", timeout=10)
        await dev.wait_until(lambda: len(hub.listen_starts) == 2, 3)
        second = await dev.run_turn(SPEECH, mode="auto", timeout=10)
    # Silence kept flowing after the clip until the hub answered (tiny DTX packets among them).
    assert first.frames_sent > 15 and min(len(f) for _, f in hub.uplink) <= 3
    assert first.speech_sent_until < first.tts_start_at
    # The mic re-opened only once the pre-buffered audio could have played out.
    assert hub.listen_starts[1] >= first.played[-1].t + 0.04
    assert [t.index for t in dev.turns] == [1, 2] and second.stt_text == "turn on the light"
    assert hub.types().count("listen:start") == 2 and "listen:stop" not in hub.types()


async def test_burst_beyond_the_device_queue_is_counted_as_overflow(serve) -> None:
    hub = ScriptedHub(reply_frames=60, pace=False)
    async with SimulatedDevice(await serve(hub)) as dev:
        turn = await dev.run_turn(SPEECH, mode="manual", timeout=10)
    assert 15 <= turn.overflow <= 20                                  # 60 sent at once, 40 fit (+ what played)
    assert len(turn.played) == 60


async def test_abort_is_sent_and_timed(serve) -> None:
    hub = ScriptedHub(reply_frames=100)
    async with SimulatedDevice(await serve(hub)) as dev:
        turn = await dev.run_turn(SPEECH, mode="manual", abort_after_ms=200, timeout=10)
    aborts = [o for _, o in hub.received if o["type"] == "abort"]
    assert aborts == [{"session_id": hub.session_id, "type": "abort"}]
    assert turn.abort_to_stop is not None and turn.abort_to_stop < 0.2
    assert len(turn.played) < 30


async def test_v2_frames_carry_headers_and_echo_downlink_timestamps(serve) -> None:
    hub = ScriptedHub(version=2, stamp=True, reply_frames=5)
    async with SimulatedDevice(await serve(hub), protocol_version=2) as dev:
        turn = await dev.run_turn(SPEECH, mode="manual", timeout=10)
        assert [a.timestamp for a in turn.played] == [1000, 1001, 1002, 1003, 1004]
        await dev.start_listening("manual")
        await dev.stream_pcm(pcm.voice_like(300), realtime=False)
    stamps = [decode_audio(f, 2).timestamp for _, f in hub.uplink]
    assert stamps[:15] == [0] * 15                                     # nothing played yet in turn 1
    assert stamps[15:18] == [1002, 1003, 1004]                         # FW keeps the 3 newest


async def test_audio_outside_speaking_is_dropped_not_decoded(serve) -> None:
    async def push_audio(hub: ScriptedHub, ws: web.WebSocketResponse) -> None:
        for i in range(3):
            await ws.send_bytes(hub.frame(i))

    hub = ScriptedHub(on_hello=push_audio)
    async with SimulatedDevice(await serve(hub)) as dev:
        await dev.start_listening("auto")
        await asyncio.sleep(0.1)
        assert dev.dropped_outside_turns + (dev.turn.dropped if dev.turn else 0) == 3


async def test_device_close_drops_tcp_without_a_close_frame(serve) -> None:
    hub = ScriptedHub()
    dev = SimulatedDevice(await serve(hub))
    await dev.connect()
    await dev.close()
    for _ in range(50):
        if hub.close_code is not None:
            break
        await asyncio.sleep(0.02)
    assert hub.close_code == 1006 and dev.closed


async def test_wait_for_consumes_messages_in_order(serve) -> None:
    hub = ScriptedHub(reply_frames=2)
    async with SimulatedDevice(await serve(hub)) as dev:
        await dev.run_turn(SPEECH, mode="manual", timeout=10)
        first = await dev.wait_for("tts")
        assert first.data["state"] == "start"
        stop = await dev.wait_for("tts", state="stop")
        with pytest.raises(asyncio.TimeoutError):
            await dev.wait_for("tts", state="stop", timeout=0.2)      # already consumed
        again = await dev.wait_for(lambda d: d.get("type") == "tts", since=0, state="stop")
        assert again is stop


# ---------------------------------------------------------------------------- MCP


def rpc(id_: Any, method: str, params: dict | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        d["params"] = params
    return d


def test_mcp_initialize_and_paged_tools_list() -> None:
    server = FirmwareMcpServer(page_size=1)
    init = server.handle(rpc(1, "initialize", {"capabilities": {"vision": {"url": "http://hub/v", "token": "t"}}}))
    assert init["result"]["protocolVersion"] == "2024-11-05" and init["result"]["serverInfo"]["name"]
    assert server.vision == {"url": "http://hub/v", "token": "t"}
    page1 = server.handle(rpc(2, "tools/list", {"cursor": ""}))["result"]
    assert [t["name"] for t in page1["tools"]] == ["self.get_device_status"]
    assert page1["nextCursor"] == "self.audio_speaker.set_volume"
    page2 = server.handle(rpc(2, "tools/list", {"cursor": page1["nextCursor"]}))["result"]
    assert [t["name"] for t in page2["tools"]] == ["self.audio_speaker.set_volume"] and "nextCursor" not in page2
    schema = page2["tools"][0]["inputSchema"]
    assert schema["required"] == ["volume"]
    assert schema["properties"]["volume"] == {"type": "integer", "description": "", "minimum": 0, "maximum": 100}
    everything = FirmwareMcpServer().handle(rpc(3, "tools/list"))["result"]
    assert len(everything["tools"]) == 2 and "nextCursor" not in everything


@pytest.mark.parametrize("args,reply", [
    ({"volume": 30}, {"result": {"content": [{"type": "text", "text": "true"}], "isError": False}}),
    ({"volume": 42.9}, {"result": {"content": [{"type": "text", "text": "true"}], "isError": False}}),
    ({"volume": 101}, {"error": {"message": "Value exceeds maximum allowed: 100"}}),
    ({"volume": -1}, {"error": {"message": "Value is below minimum allowed: 0"}}),
    ({"volume": "30"}, {"error": {"message": "Missing valid argument: volume"}}),
    ({"volume": True}, {"error": {"message": "Missing valid argument: volume"}}),
    ({}, {"error": {"message": "Missing valid argument: volume"}}),
])
def test_mcp_set_volume_argument_checks(args: dict, reply: dict) -> None:
    server = FirmwareMcpServer(volume=70)
    out = server.handle(rpc(7, "tools/call", {"name": "self.audio_speaker.set_volume", "arguments": args}))
    assert out == {"jsonrpc": "2.0", "id": 7, **reply}
    assert server.volume == (int(args["volume"]) if "result" in reply else 70)


def test_mcp_status_unknown_and_dropped() -> None:
    server = FirmwareMcpServer(volume=55)
    status = server.handle(rpc(4, "tools/call", {"name": "self.get_device_status", "arguments": {}}))
    assert json.loads(status["result"]["content"][0]["text"])["audio_speaker"]["volume"] == 55
    assert server.handle(rpc(5, "tools/call", {"name": "self.nope"}))["error"] == {"message": "Unknown tool: self.nope"}
    assert server.handle(rpc(6, "resources/list"))["error"] == {"message": "Method not implemented: resources/list"}
    assert server.handle(rpc("7", "tools/list")) is None                # string ids: silently dropped
    assert server.handle({"jsonrpc": "2.0", "method": "notifications/initialized"}) is None
    assert server.handle({"jsonrpc": "1.0", "id": 8, "method": "tools/list"}) is None
    assert [c.method for c in server.calls] == ["tools/call", "tools/call", "resources/list"]
    assert len(server.dropped) == 2 and server.notifications == ["notifications/initialized"]


def test_mcp_camera_board_lists_take_photo_and_hands_its_call_over() -> None:
    from xiaozhi_hub.simulator.mcp import PhotoRequest
    server = FirmwareMcpServer(camera=True)
    tools = server.handle(rpc(1, "tools/list"))["result"]["tools"]
    camera = next(t for t in tools if t["name"] == "self.camera.take_photo")
    assert camera["inputSchema"]["required"] == ["question"]
    assert camera["inputSchema"]["properties"]["question"]["type"] == "string"
    assert "self.camera.take_photo" not in [t["name"] for t in FirmwareMcpServer().handle(rpc(1, "tools/list"))["result"]["tools"]]
    request = server.handle(rpc(9, "tools/call", {"name": "self.camera.take_photo", "arguments": {"question": "what?"}}))
    assert request == PhotoRequest(9, "what?")
    assert server.handle(rpc(10, "tools/call", {"name": "self.camera.take_photo", "arguments": {"question": 3}})) == \
        {"jsonrpc": "2.0", "id": 10, "error": {"message": "Missing valid argument: question"}}
    assert server.photo_reply(request, True, '{"success":true}') == \
        {"jsonrpc": "2.0", "id": 9, "result": {"content": [{"type": "text", "text": '{"success":true}'}], "isError": False}}
    assert server.photo_reply(request, False, "Failed to upload photo") == \
        {"jsonrpc": "2.0", "id": 9, "error": {"message": "Failed to upload photo"}}
    assert [ok for _, ok, _ in server.photos] == [True, False]


async def test_mcp_over_the_socket(serve) -> None:
    replies: list[dict] = []

    async def ask(hub: ScriptedHub, ws: web.WebSocketResponse) -> None:
        await ws.send_json({"type": "mcp", "payload": rpc(1, "initialize", {})})
        await ws.send_json({"type": "mcp", "payload": rpc(2, "tools/call", {"name": "self.audio_speaker.set_volume",
                                                                           "arguments": {"volume": 12}})})

    hub = ScriptedHub(on_hello=ask)
    async with SimulatedDevice(await serve(hub)) as dev:
        await dev.wait_until(lambda: dev.volume == 12, 3)
        await asyncio.sleep(0.05)
        replies = [o for _, o in hub.received if o["type"] == "mcp"]
        assert [c.method for c in dev.mcp_calls] == ["initialize", "tools/call"]
    assert [r["payload"]["id"] for r in replies] == [1, 2]
    assert all(r["session_id"] == hub.session_id for r in replies)


# ---------------------------------------------------------------------------- CLI


async def test_cli_runs_turns_and_prints_timings(serve, capsys) -> None:
    url = await serve(ScriptedHub(reply_frames=5))
    code = await asyncio.to_thread(cli_main, ["--url", url, "--mode", "manual", "--turns", "2", "--json"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    summaries = [json.loads(line) for line in out if line.startswith("{")]
    assert [s["turn"] for s in summaries] == [1, 2]
    assert all(s["stt"] == "turn on the light" and s["frames"] == 5 and s["first_audio_latency_ms"] > 0
               for s in summaries)


async def test_cli_exit_code_on_connection_failure(capsys) -> None:
    code = await asyncio.to_thread(cli_main, ["--url", "ws://127.0.0.1:1/"])
    assert code == 2 and "cannot connect" in capsys.readouterr().err


async def test_reconnect_after_close_starts_a_fresh_channel(serve) -> None:
    hub = ScriptedHub()
    dev = SimulatedDevice(await serve(hub))
    await dev.connect()
    with pytest.raises(SimulatorError, match="already connected"):
        await dev.connect()
    await dev.close()
    await dev.connect()
    try:
        assert not dev.closed and dev.close_code is None
        turn = await dev.run_turn(SPEECH, mode="manual", timeout=10)
        assert turn.stt_text == "turn on the light"
    finally:
        await dev.close()
    assert hub.types().count("hello") == 2
