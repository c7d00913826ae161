"""The MQTT+UDP transport as one hub service (``ctx.mqtt_udp``): the device MQTT endpoint, the UDP
audio socket, and which address devices are told (docs/mqtt-udp.md).

Started by the composition root after the WebSocket server when some device may use it
(``device_mqtt.enabled: auto``, the default; ``true`` always), or by the first OTA reply that names MQTT
(:func:`for_device`); stopped first at shutdown, so open audio channels are told ``goodbye`` and no device gets a new
session while the hub goes down. The addresses follow the WebSocket URL's: the host of
``server.public_ws_url`` when it is set, else the address the device reached the hub at (the OTA
request's ``Host``, the MQTT connection's local address), else the LAN address; the ports are the bound
ones unless ``device_mqtt.public_port`` / ``udp.public_port`` say otherwise (Docker, port forwarding).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ...protocol import codec
from ...protocol.close import CloseCode
from ...protocol.messages import Alert
from ...settings import ConfigError
from ...store.devices import Device
from .credentials import ota_section
from .device import MqttDevice
from .endpoint import DeviceMqttEndpoint, MqttClient
from .udp import UdpAudioServer

if TYPE_CHECKING:
    from ...context import HubContext

log = logging.getLogger(__name__)

SHUTDOWN_WAIT = 3.0


class MqttUdpTransport:
    def __init__(self, ctx: "HubContext") -> None:
        self.ctx = ctx
        self.endpoint = DeviceMqttEndpoint(ctx, self._admitted)
        self.udp = UdpAudioServer(ctx.settings.udp, ctx.metrics, ctx.settings.audio.frame_duration_ms)
        self.devices: dict[str, MqttDevice] = {}
        self.stopping = False
        self.mqtt_port = 0
        self.udp_port = 0

    async def start(self) -> None:
        settings = self.ctx.settings
        server_host = settings.server.host
        self.udp_port = await self.udp.start(settings.udp.host or server_host)
        try:
            self.mqtt_port = await self.endpoint.start(settings.device_mqtt.host or server_host)
        except BaseException:
            self.udp.close()
            raise
        log.info("device MQTT endpoint on port %d (%s), UDP audio on port %d", self.mqtt_port,
                 "TLS" if settings.device_mqtt.tls_cert else "plain TCP", self.udp_port)

    async def stop(self) -> None:
        """Tell open channels goodbye, then close every device connection and both sockets."""
        self.stopping = True
        sessions = [d.session for d in self.devices.values() if d.session is not None]
        if sessions:
            await asyncio.wait([asyncio.ensure_future(s.close(CloseCode.GOING_AWAY, "hub shutting down"))
                                for s in sessions], timeout=SHUTDOWN_WAIT)
        await self.endpoint.stop()
        self.udp.close()

    async def _admitted(self, client: MqttClient) -> None:
        device = MqttDevice(self, client)
        self.devices[client.device_id] = device
        try:
            await device.run()
        finally:
            if self.devices.get(client.device_id) is device:
                del self.devices[client.device_id]

    # -- reaching an idle device -----------------------------------------------------------------------
    def connected(self, device_id: str) -> bool:
        """The device has its MQTT connection (with or without an audio channel)."""
        device = self.devices.get(device_id)
        return device is not None and not device.client.closed.is_set()

    async def alert(self, device_id: str, message: str, status: str = "Message", emotion: str = "neutral") -> bool:
        """Show ``message`` on the device's screen now (with its notification sound), even while idle.
        False when the device has no MQTT connection."""
        device = self.devices.get(device_id)
        if device is None or device.client.closed.is_set():
            return False
        payload = codec.encode(Alert(status=status, message=message, emotion=emotion))
        try:
            await device.client.publish(payload.encode("utf-8"))
        except (ConnectionError, TimeoutError):
            return False
        self.ctx.metrics.inc("mqtt_alerts")
        return True

    # -- what devices are told -------------------------------------------------------------------------
    def _public_host(self) -> str | None:
        url = self.ctx.settings.server.public_ws_url
        return urlsplit(url).hostname if url else None

    @staticmethod
    def _host_text(host: str) -> str:
        return host.strip("[]")

    def mqtt_endpoint(self, request_host: str | None) -> str:
        port = self.ctx.settings.device_mqtt.public_port or self.mqtt_port
        host = self._public_host() or request_host or self.ctx.host_ip
        return f"{self._host_text(host)}:{port}"

    def udp_host_for(self, client: MqttClient) -> str:
        return self._public_host() or client.local_host or self.ctx.host_ip

    def udp_public_port(self) -> int:
        return self.ctx.settings.udp.public_port or self.udp_port

    def ota_mqtt(self, device: Device, client_uuid: str, now: float, request_host: str | None) -> dict[str, Any]:
        """The ``mqtt`` section of this device's OTA reply (fresh credentials)."""
        return ota_section(self.ctx.auth.secret, device, client_uuid, now, self.mqtt_endpoint(request_host),
                           self.ctx.settings.device_mqtt.keepalive)


def check_settings(ctx: "HubContext") -> None:
    """``devices.transport: mqtt`` needs the endpoint."""
    settings = ctx.settings
    if settings.devices.transport == "mqtt" and settings.device_mqtt.enabled is False:
        raise ConfigError("devices.transport: mqtt needs device_mqtt.enabled: true (or auto)")


async def start(ctx: "HubContext") -> "MqttUdpTransport | None":
    """Start the transport at boot: always with ``device_mqtt.enabled: true``; with ``auto`` (the default)
    only when some device may use it (``devices.transport: mqtt``, or a device set to mqtt), so a hub
    whose devices all use WebSocket opens no MQTT or UDP port. The app stores it in ``ctx.mqtt_udp``."""
    check_settings(ctx)
    enabled = ctx.settings.device_mqtt.enabled
    if enabled is False:
        log.info("device MQTT endpoint disabled (device_mqtt.enabled: false)")
        return None
    if enabled == "auto" and ctx.settings.devices.transport != "mqtt" \
            and not await ctx.devices.count_with_transport("mqtt"):
        log.debug("device MQTT endpoint not started: no device uses MQTT (it starts when one is switched)")
        return None
    transport = MqttUdpTransport(ctx)
    await transport.start()
    return transport


_starting: dict[int, "asyncio.Task[MqttUdpTransport | None]"] = {}     # id(ctx) -> the start in progress


async def for_device(ctx: "HubContext") -> "MqttUdpTransport | None":
    """The running transport for an OTA reply that names MQTT, started now if ``auto`` left it off;
    None when it is disabled or cannot start (the device is then told WebSocket, and the log says why)."""
    if ctx.mqtt_udp is not None or ctx.settings.device_mqtt.enabled != "auto":
        return ctx.mqtt_udp
    task = _starting.get(id(ctx))
    if task is None:                      # one start, however many OTA checks arrive meanwhile
        task = _starting[id(ctx)] = asyncio.ensure_future(_start_late(ctx))
        task.add_done_callback(lambda _: _starting.pop(id(ctx), None))
    return await asyncio.shield(task)


async def _start_late(ctx: "HubContext") -> "MqttUdpTransport | None":
    transport = MqttUdpTransport(ctx)
    try:
        await transport.start()
    except OSError as err:
        log.error("cannot start the device MQTT endpoint for a device set to mqtt: %s", err)
        return None
    ctx.mqtt_udp = transport
    return transport
