"""The device MQTT endpoint over real sockets on 127.0.0.1: paho-mqtt (a real third-party MQTT 3.1.1
client, the one py-xiaozhi uses) with the credentials of a real OTA reply, and raw sockets for what a
well-behaved client never sends (no CONNECT, MQTT 5, oversized packets, floods, QoS 2, silence)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import paho.mqtt.client as paho

from xiaozhi_hub.simulator.mqtt_device import ota_check
from xiaozhi_hub.transport.mqtt import packets as mp

DEVICE = "02:00:00:00:02:01"
MQTT = {"device_mqtt": {"enabled": True, "port": 0, "connect_timeout": 1.0}, "udp": {"port": 0},
        "devices": {"transport": "mqtt"}}


async def mqtt_hub(start_hub: Any, **over: Any) -> Any:
    sections = {k: {**v, **over.get(k, {})} for k, v in MQTT.items()}
    return await start_hub(**sections)


async def credentials(hub: Any, device: str = DEVICE) -> dict[str, Any]:
    reply = await ota_check(f"http://127.0.0.1:{hub.ctx.http_port}/xiaozhi/ota/", device, "uuid-" + device[-2:])
    return reply["mqtt"]


class Paho:
    """paho's threaded client, with what arrives collected for the test's event loop."""

    def __init__(self, creds: dict[str, Any], password: str | None = None, client_id: str | None = None) -> None:
        self.creds = creds
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id or creds["client_id"],
                                  protocol=paho.MQTTv311)
        self.client.username_pw_set(creds["username"], creds["password"] if password is None else password)
        self.connected = threading.Event()
        self.reason: Any = None
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.acked: list[int] = []
        self.granted: list[Any] = []
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, json.loads(m.payload)))
        self.client.on_publish = lambda c, u, mid, rc, props: self.acked.append(mid)
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.granted.extend(codes)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.reason = reason
        self.connected.set()

    async def start(self, port: int) -> Any:
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        assert await asyncio.to_thread(self.connected.wait, 5)
        return self.reason

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    async def wait(self, condition: Any, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.02)


async def test_paho_connects_and_gets_messages_without_subscribing(start_hub):
    hub = await mqtt_hub(start_hub)
    creds = await credentials(hub)
    client = Paho(creds)
    try:
        reason = await client.start(hub.ctx.mqtt_udp.mqtt_port)
        assert not reason.is_failure
        # The hub asks the device for its MCP tools at once, on the device's own topic.
        await client.wait(lambda: any(m[1].get("type") == "mcp" for m in client.messages))
        assert client.messages[0][0] == creds["subscribe_topic"]
        hello = {"type": "hello", "version": 3, "transport": "udp", "features": {"mcp": True},
                 "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}}
        info = client.client.publish(creds["publish_topic"], json.dumps(hello), qos=1)
        await client.wait(lambda: any(m[1].get("type") == "hello" for m in client.messages))
        await client.wait(lambda: info.mid in client.acked)          # QoS 1 is acknowledged
        server_hello = next(m[1] for m in client.messages if m[1].get("type") == "hello")
        assert server_hello["transport"] == "udp" and len(server_hello["udp"]["key"]) == 32
        # py-xiaozhi subscribes to subscribe_topic: acknowledged (granted QoS 0), nothing else changes.
        client.client.subscribe(creds["subscribe_topic"], qos=1)
        await client.wait(lambda: len(client.granted) == 1)
        assert client.granted[0].value == 0
    finally:
        client.stop()


async def test_wrong_credentials_are_refused_with_the_right_return_code(start_hub):
    hub = await mqtt_hub(start_hub)
    creds = await credentials(hub)
    port = hub.ctx.mqtt_udp.mqtt_port
    sig, _, ts = creds["password"].rpartition(".")
    cases = [({"password": sig[::-1] + "." + ts}, "Bad user name or password"),
             ({"client_id": "some-other-client"}, "Client identifier not valid"),
             ({"client_id": creds["client_id"].replace("02_00_00_00_02_01", "02_00_00_00_02_99")},
              "Bad user name or password")]
    for change, expected in cases:
        client = Paho(creds, password=change.get("password"), client_id=change.get("client_id"))
        try:
            reason = await client.start(port)
            assert reason.is_failure and str(reason) == expected, (change, reason)
        finally:
            client.stop()
    assert hub.ctx.metrics.counters["mqtt_refused"] == 3


async def test_a_password_minted_for_a_websocket_token_does_not_work_as_mqtt_password(start_hub):
    hub = await mqtt_hub(start_hub)
    reply = await ota_check(f"http://127.0.0.1:{hub.ctx.http_port}/xiaozhi/ota/", DEVICE, "uuid-01")
    client = Paho(reply["mqtt"], password=reply["websocket"]["token"])
    try:
        assert (await client.start(hub.ctx.mqtt_udp.mqtt_port)).is_failure
    finally:
        client.stop()


# ---------------------------------------------------------------------------- raw sockets

async def raw(hub: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", hub.ctx.mqtt_udp.mqtt_port)


async def connected(hub: Any, creds: dict[str, Any], keepalive: int = 60) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await raw(hub)
    writer.write(mp.connect(creds["client_id"], creds["username"], creds["password"], keepalive))
    packet = await asyncio.wait_for(mp.read_packet(reader, 64), 5)
    assert packet.type is mp.PacketType.CONNACK and mp.parse_connack(packet.body) == (False, 0)
    return reader, writer


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> None:
    """Read (and ignore) until the hub closes the connection."""
    async with asyncio.timeout(seconds):
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass


async def test_no_connect_in_time_closes_and_mqtt5_gets_connack_1(start_hub):
    hub = await mqtt_hub(start_hub)
    reader, writer = await raw(hub)
    t0 = time.monotonic()
    await closed_within(reader, 4)
    assert 0.8 < time.monotonic() - t0 < 3.5                 # device_mqtt.connect_timeout is 1 s here
    writer.close()
    reader, writer = await raw(hub)
    writer.write(b"\x10\x0d\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x00")   # an MQTT 5 CONNECT
    packet = await asyncio.wait_for(mp.read_packet(reader, 64), 5)
    assert packet.type is mp.PacketType.CONNACK and mp.parse_connack(packet.body)[1] == 1
    await closed_within(reader, 3)
    writer.close()


async def test_keepalive_is_enforced_and_pings_answered(start_hub):
    hub = await mqtt_hub(start_hub)
    creds = await credentials(hub)
    reader, writer = await connected(hub, creds, keepalive=1)
    writer.write(mp.PINGREQ)
    while True:                                               # MCP requests arrive first; then the answer
        packet = await asyncio.wait_for(mp.read_packet(reader, 1 << 16), 3)
        if packet.type is mp.PacketType.PINGRESP:
            break
    t0 = time.monotonic()
    await closed_within(reader, 5)                            # nothing for 1.5 x 1 s
    assert time.monotonic() - t0 < 3.0
    assert hub.ctx.metrics.counters["mqtt_keepalive_timeouts"] == 1
    await asyncio.sleep(0.1)
    assert hub.ctx.registry.by_device(DEVICE) is None
    writer.close()


async def test_oversized_packet_closes_before_the_body_is_sent(start_hub):
    hub = await mqtt_hub(start_hub, device_mqtt={"max_packet_bytes": 2048})
    creds = await credentials(hub)
    reader, writer = await connected(hub, creds)
    writer.write(b"\x30\xff\xff\xff\x7f")                     # a header announcing 256 MB
    await closed_within(reader, 3)
    assert hub.ctx.metrics.counters["mqtt_protocol_errors"] == 1
    writer.close()


async def test_flood_is_dropped_then_closed_and_wrong_topics_ignored(start_hub):
    hub = await mqtt_hub(start_hub, device_mqtt={"max_messages_per_second": 5, "flood_grace_seconds": 0.5})
    counters = hub.ctx.metrics.counters
    creds = await credentials(hub)
    reader, writer = await connected(hub, creds)
    writer.write(mp.publish("xiaozhi/020000000299/up", b'{"type":"hello"}'))   # another device's topic
    writer.write(mp.publish(creds["publish_topic"], b'{"type":"listen","state":"start"}'))
    await asyncio.sleep(0.2)
    assert counters["mqtt_wrong_topic"] == 1
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 5:
            writer.write(mp.publish(creds["publish_topic"], b"{}"))
            await writer.drain()
            await asyncio.sleep(0.01)
    except ConnectionError:
        pass
    await closed_within(reader, 3)
    assert counters["mqtt_floods"] == 1 and counters["mqtt_messages_dropped"] > 0
    writer.close()


async def test_qos2_and_garbage_close_the_connection_and_other_devices_carry_on(start_hub):
    hub = await mqtt_hub(start_hub)
    good = await credentials(hub, "02:00:00:00:02:02")
    creds = await credentials(hub)
    reader, writer = await connected(hub, creds)
    writer.write(b"\x34\x08\x00\x03a/b\x00\x01xx")             # PUBLISH QoS 2
    await closed_within(reader, 3)
    writer.close()
    reader, writer = await raw(hub)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")                   # not MQTT at all
    await closed_within(reader, 3)
    writer.close()
    client = Paho(good)
    try:
        assert not (await client.start(hub.ctx.mqtt_udp.mqtt_port)).is_failure
        await client.wait(lambda: any(m[1].get("type") == "mcp" for m in client.messages))
    finally:
        client.stop()


async def test_a_second_connection_with_the_same_client_id_replaces_the_first(start_hub):
    hub = await mqtt_hub(start_hub)
    creds = await credentials(hub)
    reader1, writer1 = await connected(hub, creds)
    first = hub.ctx.registry.by_device(DEVICE)
    reader2, writer2 = await connected(hub, creds)
    await closed_within(reader1, 3)
    await asyncio.sleep(0.1)
    current = hub.ctx.registry.by_device(DEVICE)
    assert current is not None and current is not first and len(hub.ctx.mqtt_udp.endpoint.clients) == 1
    writer1.close()
    writer2.close()
