"""Every protocol message round-trips; binary headers and MCP shapes parse as the firmware sends them.

The message classes are discovered from the module, so adding a message without a fixture here fails
``test_every_message_class_has_a_fixture`` (the drift Wyoming's round-trip test catches).
"""

from __future__ import annotations

import inspect
import json

import pytest

from xiaozhi_hub.protocol import binary, codec, mcp, messages
from xiaozhi_hub.protocol.messages import (Abort, Alert, AudioParams, Custom, DeviceGoodbye, DeviceHello,
                                           DeviceMcp, Direction, Error, HubGoodbye, HubMcp, IotCommand,
                                           IotUpdate, Listen, ListenMode, ListenState, Llm, Message, Ping,
                                           Pong, ProtocolError, ServerHello, Stt, System, Tts, TtsState)


def discovered_message_classes() -> set[type[Message]]:
    return {cls for _, cls in inspect.getmembers(messages, inspect.isclass)
            if issubclass(cls, Message) and cls is not Message and cls.__module__ == messages.__name__}


# Each class maps to instances covering its optional fields (minimal and full).
FIXTURES: dict[type[Message], list[Message]] = {
    DeviceHello: [
        DeviceHello(),
        DeviceHello(version=3, features={"mcp": True, "aec": True, "glyph_push": True},
                    audio_params=AudioParams(sample_rate=16000, frame_duration=60),
                    text_font={"bundle": "noto-v1", "charset": "common", "size": 20, "bpp": 4}),
    ],
    Listen: [
        Listen(ListenState.START, ListenMode.AUTO, session_id="s1"),
        Listen(ListenState.START, ListenMode.REALTIME),
        Listen(ListenState.STOP, session_id=""),
        Listen(ListenState.DETECT, text="你好小智", session_id="s1"),
    ],
    Abort: [Abort(), Abort(reason="wake_word_detected", session_id="s1")],
    DeviceMcp: [DeviceMcp({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}, session_id="s1")],
    DeviceGoodbye: [DeviceGoodbye(), DeviceGoodbye(session_id="s1")],
    IotUpdate: [
        IotUpdate(descriptors=({"name": "Speaker", "properties": {"volume": {"type": "number"}}},)),
        IotUpdate(states=({"name": "Speaker", "state": {"volume": 50}},), session_id="s1"),
    ],
    Ping: [Ping(), Ping(session_id="s1")],
    ServerHello: [
        ServerHello(session_id="abc"),
        ServerHello(session_id="abc", transport="udp", version=3,
                    audio_params=AudioParams(sample_rate=16000, frame_duration=60),
                    udp={"server": "10.0.0.2", "port": 8884, "key": "0" * 32, "nonce": "01" + "0" * 30}),
    ],
    Stt: [Stt("turn on the light"), Stt("开灯", session_id="s1")],
    Llm: [Llm("happy"), Llm("thinking", text="🤔", session_id="s1")],
    Tts: [Tts(TtsState.START, session_id="s1"), Tts(TtsState.SENTENCE_START, text="Hello."),
          Tts(TtsState.STOP), Tts(TtsState.SENTENCE_END, text="Hello.")],
    HubMcp: [HubMcp(mcp.tools_list_request(2, cursor="self.x").to_wire())],
    System: [System("reboot"), System("reboot", session_id="s1")],
    Alert: [Alert("Error", "Server busy", "cloud_off"), Alert("提示", "忙", "sad", session_id="s1")],
    Custom: [Custom({"anything": [1, 2, {"x": None}]}, session_id="s1")],
    HubGoodbye: [HubGoodbye("s1")],
    IotCommand: [IotCommand(({"name": "Speaker", "method": "SetVolume", "parameters": {"volume": 30}},))],
    Pong: [Pong("2026-01-01 12:00:00")],
    Error: [Error("bad_json", "text frame is not JSON", session_id="s1")],
}


def test_every_message_class_has_a_fixture() -> None:
    classes = discovered_message_classes()
    missing = sorted(c.__name__ for c in classes - FIXTURES.keys())
    assert not missing, f"add round-trip fixtures for: {', '.join(missing)}"
    assert classes == set(messages.all_message_classes())


def test_every_class_declares_type_and_direction() -> None:
    seen: dict[tuple[Direction, str], str] = {}
    for cls in discovered_message_classes():
        assert cls.TYPE and isinstance(cls.DIRECTION, Direction), cls.__name__
        key = (cls.DIRECTION, cls.TYPE)
        assert key not in seen, f"{cls.__name__} and {seen.get(key)} share {key}"
        seen[key] = cls.__name__


@pytest.mark.parametrize("msg", [m for ms in FIXTURES.values() for m in ms],
                         ids=lambda m: f"{type(m).__name__}")
def test_round_trip(msg: Message) -> None:
    text = codec.encode(msg)
    obj = json.loads(text)
    assert obj["type"] == msg.TYPE
    if getattr(msg, "session_id", None) is not None:
        assert next(iter(obj)) == "session_id" or msg.TYPE == "hello"   # the firmware's field order
    back = codec.decode(text, msg.DIRECTION)
    assert type(back) is type(msg)
    assert back == msg


def test_utf8_is_kept_unescaped() -> None:
    assert "开灯" in codec.encode(Stt("开灯"))


def test_same_type_decodes_by_direction() -> None:
    hello = '{"type":"hello","version":1,"transport":"websocket","session_id":"x"}'
    assert isinstance(codec.decode(hello, Direction.FROM_DEVICE), DeviceHello)
    assert isinstance(codec.decode(hello, Direction.TO_DEVICE), ServerHello)


@pytest.mark.parametrize("text,kind", [
    ("not json", "not_json"),
    ("[1, 2]", "not_object"),
    ('{"state": "start"}', "missing_type"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "listen"}', "missing_field"),
    ('{"type": "listen", "state": "sing"}', "bad_field"),
    ('{"type": "listen", "state": "start", "mode": 3}', "bad_field"),
    ('{"type": "hello", "version": 7}', "bad_field"),
    ('{"type": "hello", "version": true}', "bad_field"),
    ('{"type": "mcp", "payload": []}', "bad_field"),
])
def test_malformed_device_messages(text: str, kind: str) -> None:
    with pytest.raises(ProtocolError) as info:
        codec.decode(text, Direction.FROM_DEVICE)
    assert info.value.kind == kind


def test_server_hello_requires_transport() -> None:
    with pytest.raises(ProtocolError, match="transport"):
        codec.decode('{"type":"hello","session_id":"x"}', Direction.TO_DEVICE)


# ---------------------------------------------------------------------------- binary


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("payload", [b"", b"\x01", bytes(range(256)) * 3])
def test_binary_round_trip(version: int, payload: bytes) -> None:
    ts = 123456 if version == 2 else 0
    frame = binary.encode_audio(payload, version, timestamp=ts)
    assert len(frame) == len(payload) + {1: 0, 2: 16, 3: 4}[version]
    assert binary.decode_audio(frame, version) == binary.AudioFrame(payload, ts)


def test_binary_v2_layout_is_big_endian() -> None:
    frame = binary.encode_audio(b"abc", 2, timestamp=0x01020304)
    assert frame[:16] == bytes([0, 2, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 3])


def test_binary_v3_layout_is_big_endian() -> None:
    assert binary.encode_audio(b"x" * 258, 3)[:4] == bytes([0, 0, 1, 2])


def test_binary_trailing_bytes_beyond_payload_size_are_ignored() -> None:
    assert binary.decode_audio(bytes([0, 0, 0, 2]) + b"abXX", 3).payload == b"ab"


@pytest.mark.parametrize("version,frame,kind", [
    (2, b"\x00" * 15, "short_frame"),
    (2, bytes([0, 2, 0, 1]) + bytes(12), "bad_field"),                          # type 1 is not audio
    (2, bytes([0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]) + b"abc", "bad_length"),
    (3, b"\x00\x00\x00", "short_frame"),
    (3, bytes([1, 0, 0, 1]) + b"a", "bad_field"),
    (3, bytes([0, 0, 0, 5]) + b"abc", "bad_length"),
    (4, b"abc", "bad_version"),
])
def test_malformed_binary_headers(version: int, frame: bytes, kind: str) -> None:
    with pytest.raises(ProtocolError) as info:
        binary.decode_audio(frame, version)
    assert info.value.kind == kind


def test_binary_v3_payload_limit() -> None:
    with pytest.raises(ProtocolError, match="65535"):
        binary.encode_audio(bytes(70000), 3)


# ---------------------------------------------------------------------------- MCP


def test_mcp_parse_request_notification_response() -> None:
    req = mcp.parse({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                     "params": {"name": "self.audio_speaker.set_volume", "arguments": {"volume": 30}}})
    assert req == mcp.tools_call_request(5, "self.audio_speaker.set_volume", {"volume": 30})
    assert mcp.parse(req.to_wire()) == req
    note = mcp.parse({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert note == mcp.McpNotification("notifications/initialized")
    resp = mcp.parse({"jsonrpc": "2.0", "id": 1, "result": {"protocolVersion": "2024-11-05"}})
    assert isinstance(resp, mcp.McpResponse) and resp.ok and resp.result["protocolVersion"] == "2024-11-05"
    assert mcp.parse(resp.to_wire()) == resp


def test_mcp_error_without_code_as_firmware_sends_it() -> None:
    resp = mcp.parse({"jsonrpc": "2.0", "id": 3, "error": {"message": "Unknown tool: self.x"}})
    assert isinstance(resp, mcp.McpResponse)
    assert not resp.ok and resp.error_message == "Unknown tool: self.x"
    assert mcp.parse(resp.to_wire()) == resp


@pytest.mark.parametrize("payload", [
    {"jsonrpc": "1.0", "id": 1, "method": "x"},
    {"jsonrpc": "2.0", "id": "1", "method": "initialize"},       # the firmware drops string ids
    {"jsonrpc": "2.0", "id": True, "method": "initialize"},
    {"jsonrpc": "2.0", "id": 1, "method": "x", "params": [1]},
    {"jsonrpc": "2.0", "id": 1, "method": 7},
    {"jsonrpc": "2.0", "result": {}},
    {"jsonrpc": "2.0", "id": 1, "error": "bad"},
    [1, 2],
])
def test_mcp_parse_rejects_what_the_firmware_drops(payload) -> None:
    with pytest.raises(ProtocolError):
        mcp.parse(payload)


def test_tools_page_cursor_round_trip() -> None:
    page = mcp.ToolsPage((mcp.McpTool("self.get_device_status", "status"),
                          mcp.McpTool("self.audio_speaker.set_volume", "volume",
                                      {"type": "object", "properties": {"volume": {"type": "integer"}},
                                       "required": ["volume"]})),
                         next_cursor="self.screen.set_brightness")
    result = page.to_result()
    assert result["nextCursor"] == "self.screen.set_brightness"
    assert mcp.ToolsPage.from_result(json.loads(json.dumps(result))) == page
    last = mcp.ToolsPage.from_result({"tools": [], "nextCursor": ""})
    assert last.next_cursor is None and "nextCursor" not in last.to_result()
    assert mcp.tools_list_request(2, cursor=page.next_cursor).params == {"cursor": "self.screen.set_brightness"}


def test_function_names_are_llm_safe() -> None:
    assert mcp.function_name("self.audio_speaker.set_volume") == "self_audio_speaker_set_volume"
    assert mcp.function_name("") == "tool"
    assert len(mcp.function_name("x" * 100)) == 64
