"""The MQTT 3.1.1 codec of the device endpoint (pure): round trips, the limits checked before a body
is read, and malformed packets refused. paho-mqtt, a real third-party client, talks to the endpoint
over a socket in tests/transport/mqtt/test_endpoint.py."""

from __future__ import annotations

import asyncio

import pytest

from xiaozhi_hub.transport.mqtt import packets as mp


def reader_of(data: bytes) -> asyncio.StreamReader:
    r = asyncio.StreamReader()
    r.feed_data(data)
    r.feed_eof()
    return r


async def test_connect_round_trip() -> None:
    raw = await mp.read_packet(reader_of(mp.connect("GID_x@@@a@@@b", "user", "pass", keepalive=240)), 1024)
    assert raw.type is mp.PacketType.CONNECT
    c = mp.parse_connect(raw.body)
    assert (c.protocol_level, c.client_id, c.username, c.password, c.keepalive, c.clean_session) == \
        (4, "GID_x@@@a@@@b", "user", b"pass", 240, True)


async def test_publish_round_trip_both_qos() -> None:
    for qos, pid in ((0, None), (1, 7)):
        raw = await mp.read_packet(reader_of(mp.publish("t/x", b"\x00payload", qos=qos, packet_id=pid)), 1024)
        pub = mp.parse_publish(raw.flags, raw.body)
        assert (pub.topic, pub.payload, pub.qos, pub.packet_id) == ("t/x", b"\x00payload", qos, pid)


async def test_remaining_length_encodings_up_to_four_bytes() -> None:
    for size in (0, 1, 127, 128, 16383, 16384, 2_097_151, 2_097_152):
        payload = b"a" * max(0, size - 5)       # topic "t" + length prefix = 3 bytes
        packet = mp.publish("t", payload)
        raw = await mp.read_packet(reader_of(packet), 3_000_000)
        assert mp.parse_publish(raw.flags, raw.body).payload == payload


async def test_an_oversized_packet_is_refused_before_its_body_is_read() -> None:
    r = asyncio.StreamReader()
    r.feed_data(bytes([0x30]) + bytes([0xFF, 0xFF, 0xFF, 0x7F]))   # "256 MB follow" and nothing else
    with pytest.raises(mp.MqttError, match="over the limit"):
        await mp.read_packet(r, 32768)


async def test_malformed_packets() -> None:
    with pytest.raises(mp.MqttError, match="longer than 4 bytes"):
        await mp.read_packet(reader_of(bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])), 10)
    with pytest.raises(mp.MqttError, match="does not exist"):
        await mp.read_packet(reader_of(bytes([0xF0, 0x00])), 10)
    with pytest.raises(asyncio.IncompleteReadError):
        await mp.read_packet(reader_of(bytes([0x30, 0x05, 0x00])), 10)
    with pytest.raises(mp.MqttError, match="ends early"):
        mp.parse_publish(0, b"\x00\x09abc")
    with pytest.raises(mp.MqttError, match="UTF-8"):
        mp.parse_publish(0, b"\x00\x02\xff\xfe")
    with pytest.raises(mp.MqttError, match="QoS 3"):
        mp.parse_publish(0x06, b"\x00\x01t\x00\x01")
    with pytest.raises(mp.MqttError, match="not an MQTT CONNECT"):
        mp.parse_connect(b"\x00\x04HTTP\x04\x02\x00\x3c\x00\x00")
    with pytest.raises(mp.MqttError, match="reserved flag"):
        mp.parse_connect(b"\x00\x04MQTT\x04\x03\x00\x3c\x00\x00")
    with pytest.raises(mp.MqttError, match="trailing"):
        mp.parse_connect(b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x00extra")
    with pytest.raises(mp.MqttError, match="without a topic"):
        mp.parse_subscribe(b"\x00\x01")


def test_mqtt5_is_recognised_as_another_level() -> None:
    with pytest.raises(mp.UnsupportedProtocol) as err:
        mp.parse_connect(b"\x00\x04MQTT\x05\x02\x00\x3c\x00")
    assert err.value.level == 5


def test_acknowledgements() -> None:
    assert mp.puback(258) == b"\x40\x02\x01\x02"
    assert mp.suback(3, [0, 0]) == b"\x90\x04\x00\x03\x00\x00"
    assert mp.unsuback(3) == b"\xb0\x02\x00\x03"
    assert mp.connack(mp.ConnackCode.BAD_CREDENTIALS) == b"\x20\x02\x00\x04"
    assert mp.PINGRESP == b"\xd0\x00" and mp.PINGREQ == b"\xc0\x00" and mp.DISCONNECT == b"\xe0\x00"
    assert mp.parse_subscribe(b"\x00\x09\x00\x03a/b\x01") == (9, [("a/b", 1)])
    assert mp.parse_unsubscribe(b"\x00\x09\x00\x03a/b") == (9, ["a/b"])
