"""A simulated stock device on the MQTT+UDP transport (docs/mqtt-udp.md), for tests and demos.

It boots like the firmware: an OTA check (``POST`` with the device's headers and system info) whose
reply must carry an ``mqtt`` section, then an MQTT connection that stays up while idle
(:mod:`.mqtt_link`, reconnecting by itself after ``reconnect_delay`` when it drops). Waking it
(:meth:`start_listening`, :meth:`run_turn`) opens an audio channel first, as the firmware does:
``hello`` (version 3, ``transport: "udp"``) published, 10 s for a server hello with ``transport: "udp"``
and a valid ``udp`` block (32-hex key and nonce), then a UDP socket to the server. Uplink audio is
sealed with the nonce as header template (sequence from 1); downlink packets are accepted only with
type 0x01, a matching length and a sequence newer than the last one, then decrypted and played like
WebSocket audio. A server ``goodbye`` closes the channel only when its ``session_id`` is the current
one, without an answer; :meth:`close_audio_channel` sends the device's own ``goodbye``. The channel
counts as gone after 120 s without any incoming message or packet (the firmware's rule), and a
channel left open across a lost MQTT connection stays "open" on the device until then.

Everything else (turn records, playback queue, MCP answers, ``wait_for``) is the WebSocket simulator's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from typing import Any, Mapping, cast

import aiohttp

from ..audio.opus import OpusDecoder
from ..protocol.binary import encode_audio
from ..transport.mqtt import crypto
from .device import SimulatedDevice
from .firmware import UPLINK_FRAME_MS, UPLINK_RATE, HelloTimeout
from .mqtt_link import MqttLink
from .records import DeviceClosed, DeviceState, SimulatorError

CHANNEL_TIMEOUT = 120.0        # FW Protocol::IsTimeout
FIRMWARE_VERSION = "2.4.2"
BOARD = "bread-compact-wifi"


async def ota_check(url: str, device_id: str, client_id: str, version: str = FIRMWARE_VERSION) -> dict[str, Any]:
    """The firmware's OTA check: POST its system info, return the JSON reply."""
    headers = {"Device-Id": device_id, "Client-Id": client_id, "Activation-Version": "1",
               "User-Agent": f"{BOARD}/{version}", "Accept-Language": "en-US", "Content-Type": "application/json"}
    body = {"version": 2, "language": "en-US", "mac_address": device_id, "uuid": client_id,
            "chip_model_name": "esp32s3", "application": {"name": "xiaozhi", "version": version},
            "board": {"type": BOARD, "name": BOARD}}
    try:
        async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as resp:
            if resp.status != 200:
                raise SimulatorError(f"OTA check failed: HTTP {resp.status} {await resp.text()}")
            reply = await resp.json()
    except (aiohttp.ClientError, OSError, ValueError) as err:
        raise SimulatorError(f"OTA check at {url} failed: {err}") from err
    if not isinstance(reply, dict):
        raise SimulatorError("OTA reply is not a JSON object")
    return reply


class _UdpSocket(asyncio.DatagramProtocol):
    def __init__(self, device: "MqttSimulatedDevice") -> None:
        self.device = device
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.device._on_datagram(data)


class MqttSimulatedDevice(SimulatedDevice):
    """``async with MqttSimulatedDevice(ota_url) as dev:`` boots (OTA + MQTT); turns open the channel."""

    def __init__(self, ota_url: str, *, mqtt: Mapping[str, Any] | None = None, reconnect_delay: float = 10.0,
                 tls: ssl.SSLContext | None = None, aec: bool = False, **kw: Any) -> None:
        # What UDP delivers is handed to the shared playback code as a version-2 frame (it carries the
        # packet's timestamp); the device's own hello says version 3, as the firmware's does.
        kw["protocol_version"] = 2
        super().__init__(ota_url, **kw)
        if aec:
            self.features["aec"] = True
        self.ota_url = ota_url
        self.mqtt_settings: dict[str, Any] = dict(mqtt) if mqtt is not None else {}
        self.reconnect_delay = reconnect_delay
        self.link = MqttLink(self._on_mqtt, self._on_lost, tls)
        self.ota_reply: dict[str, Any] | None = None
        self.reconnects = 0
        self.refusals: list[str] = []          # why reconnect attempts failed (e.g. CONNACK 4)
        self.udp_dropped = 0                   # downlink packets the firmware's checks dropped
        self.goodbyes_received = 0
        self._udp: _UdpSocket | None = None
        self._key = b""
        self._nonce = b""
        self._local_seq = 0
        self._remote_seq = 0
        self._last_incoming = 0.0
        self._reconnect: asyncio.Task[None] | None = None
        self._hello_wait: asyncio.Future[Mapping[str, Any]] | None = None
        self._notifying: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ boot and MQTT

    async def connect(self) -> Mapping[str, Any]:
        """Boot: OTA check (unless ``mqtt`` settings were given), then the MQTT connection."""
        if not self.mqtt_settings:
            self.ota_reply = await ota_check(self.ota_url, self.device_id, self.client_id)
            section = self.ota_reply.get("mqtt")
            if not isinstance(section, dict):
                raise SimulatorError("the OTA reply has no mqtt section (the hub tells this device WebSocket)")
            self.mqtt_settings = dict(section)
        self.closed_at, self.close_code = None, None
        try:
            await self._mqtt_connect()
        except (OSError, TimeoutError) as err:
            raise SimulatorError(f"cannot connect to MQTT at {self.mqtt_settings.get('endpoint')}: {err}") from err
        self.state = DeviceState.IDLE
        return self.mqtt_settings

    async def _mqtt_connect(self) -> None:
        s = self.mqtt_settings
        host, _, port = str(s["endpoint"]).rpartition(":")
        if not host:
            host, port = str(s["endpoint"]), "8883"          # FW: no port means 8883 (and TLS)
        await self.link.connect(host, int(port), str(s["client_id"]), str(s["username"]), str(s["password"]),
                                int(s.get("keepalive", 240)))

    def _on_lost(self) -> None:
        if not self.closed and (self._reconnect is None or self._reconnect.done()):
            self._reconnect = asyncio.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.reconnect_delay)
            try:
                await self._mqtt_connect()
            except (OSError, TimeoutError) as err:
                self.refusals.append(str(err))
                continue
            self.reconnects += 1
            await self._notify()
            return

    @property
    def mqtt_connected(self) -> bool:
        return self.link.connected

    async def close(self) -> None:
        """Power off: drop TCP and the UDP socket, say nothing."""
        if self._reconnect is not None:
            self._reconnect.cancel()
        for task in (self._relisten,):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
        await self.link.drop()
        self._close_udp()
        self._mark_closed(None)
        await self._notify()

    # ------------------------------------------------------------------ the audio channel

    @property
    def audio_channel_open(self) -> bool:
        """FW ``IsAudioChannelOpened``: a UDP socket, and something heard within 120 s."""
        return self._udp is not None and time.monotonic() - self._last_incoming <= CHANNEL_TIMEOUT

    async def open_audio_channel(self) -> Mapping[str, Any]:
        if not self.link.connected:
            await self._mqtt_connect()
        self.session_id = ""
        self._hello_wait = asyncio.get_running_loop().create_future()
        self._hello = self._hello_wait
        await self.send_json({"type": "hello", "version": 3, "transport": "udp", "features": self.features,
                              "audio_params": {"format": "opus", "sample_rate": UPLINK_RATE, "channels": 1,
                                               "frame_duration": UPLINK_FRAME_MS}})
        try:
            async with asyncio.timeout(self.hello_timeout):
                hello = await asyncio.shield(self._hello_wait)
        except TimeoutError:
            raise HelloTimeout(f"no valid server hello within {self.hello_timeout:g} s") from None
        udp = hello["udp"]
        self._close_udp()
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(lambda: _UdpSocket(self),
                                                       remote_addr=(str(udp["server"]), int(udp["port"])))
        self._udp = proto
        self._key, self._nonce = bytes.fromhex(udp["key"]), bytes.fromhex(udp["nonce"])
        self._local_seq = self._remote_seq = 0
        self._last_incoming = time.monotonic()
        return hello

    async def close_audio_channel(self, send_goodbye: bool = True) -> None:
        """The device ends the channel (toggle while listening): UDP closed, ``goodbye`` published."""
        self._close_udp()
        if send_goodbye:
            await self.send_json({"session_id": self.session_id, "type": "goodbye"})
        self._set_state(DeviceState.IDLE)
        await self._notify()

    def _close_udp(self) -> None:
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        self._udp = None

    async def start_listening(self, mode: str = "auto") -> Any:
        if not self.audio_channel_open:
            self.state = DeviceState.CONNECTING
            try:
                await self.open_audio_channel()
            except BaseException:
                self.state = DeviceState.IDLE
                raise
        return await super().start_listening(mode)

    # ------------------------------------------------------------------ sending

    async def send_json(self, obj: Mapping[str, Any]) -> None:
        if self.closed:
            raise DeviceClosed("the device is off")
        try:
            await self.link.publish(str(self.mqtt_settings["publish_topic"]),
                                    json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())
        except ConnectionError as err:
            raise DeviceClosed(f"MQTT: {err}") from err

    async def send_audio_frame(self, opus_packet: bytes) -> None:
        udp = self._udp
        if udp is None or udp.transport is None:
            raise DeviceClosed("no audio channel")
        ts = self._echo_ts.popleft() if self._echo_ts else 0
        self._local_seq += 1
        ssrc = int.from_bytes(self._nonce[4:8], "big")
        datagram = crypto.seal(self._key, ssrc, self._local_seq, opus_packet, timestamp=ts, flags=self._nonce[1])
        udp.transport.sendto(datagram)
        if self.turn is not None:
            self.turn.frames_sent += 1

    # ------------------------------------------------------------------ receiving

    async def _on_mqtt(self, topic: str, payload: bytes) -> None:
        self._last_incoming = time.monotonic()
        await self._on_text(payload.decode("utf-8", "replace"))
        await self._notify()

    async def _on_text(self, raw: str) -> None:
        await super()._on_text(raw)
        with contextlib.suppress(ValueError):
            data = json.loads(raw)
            if isinstance(data, dict) and data.get("type") == "goodbye":
                self.goodbyes_received += 1
                # FW >= 2.3: only the current channel's goodbye counts, and it is not answered.
                if data.get("session_id") == self.session_id and self._udp is not None:
                    await self.close_audio_channel(send_goodbye=False)

    def _on_hello(self, data: Mapping[str, Any]) -> None:
        wait = self._hello_wait
        if wait is None or wait.done():
            return
        problem = _check_server_hello(data)
        if problem:
            self.errors.append(f"ignored server hello: {problem}")
            return                                   # the firmware ignores it and times out
        self.server_hello = data
        sid = data.get("session_id")
        if isinstance(sid, str):
            self.session_id = sid
        params = data.get("audio_params")
        if isinstance(params, dict):
            self.downlink_rate = int(params.get("sample_rate", self.downlink_rate))
            self.downlink_frame_ms = int(params.get("frame_duration", self.downlink_frame_ms))
        self._decoder = OpusDecoder(self.downlink_rate, 1, self.downlink_frame_ms, strict=True)
        wait.set_result(data)

    def _on_datagram(self, data: bytes) -> None:
        """FW ``udp->OnMessage``: type, length and sequence checks, then decrypt and play."""
        try:
            header = crypto.peek(data, 65535)
        except crypto.PacketError as err:
            self.udp_dropped += 1
            self.errors.append(f"udp: {err}")
            return
        if header.sequence <= self._remote_seq:
            self.udp_dropped += 1
            return
        payload = crypto.open_payload(self._key, data)
        self._remote_seq = header.sequence
        self._last_incoming = time.monotonic()
        self._on_binary(encode_audio(payload, 2, header.timestamp))
        if self._notifying is None or self._notifying.done():
            self._notifying = asyncio.create_task(self._notify())   # waiters re-check their condition


def _check_server_hello(data: Mapping[str, Any]) -> str:
    """FW ``ParseServerHello``: what makes the device ignore a hello ("" when it is usable)."""
    if data.get("transport") != "udp":
        return f"transport {data.get('transport')!r} is not 'udp'"
    udp = data.get("udp")
    if not isinstance(udp, dict):
        return "no udp object"
    port = udp.get("port")
    if not isinstance(udp.get("server"), str) or not isinstance(port, int) or not 0 < port <= 65535:
        return "bad udp server or port"
    for name in ("key", "nonce"):
        value = udp.get(name)
        try:
            ok = isinstance(value, str) and len(bytes.fromhex(value)) == 16
        except ValueError:
            ok = False
        if not ok:
            return f"udp.{name} is not 32 hex digits"
    return ""

