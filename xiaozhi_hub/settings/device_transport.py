"""Settings of the device transports beside WebSocket: ``devices`` (which transport the OTA reply
hands out), ``device_mqtt`` (the hub's own MQTT endpoint for devices) and ``udp`` (the audio socket).

The device MQTT endpoint is not the user's automation broker: devices connect to the hub itself, on a
port that leaves 1883 (a Mosquitto on the same host) and 8883 free. The firmware speaks TLS exactly
when the port it was told is 8883, and then checks the certificate against its built-in public CA
bundle, so TLS needs ``public_port: 8883`` and a certificate from a public CA (docs/mqtt-udp.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import voluptuous as vol

from .validators import opt_str, port, positive

TRANSPORTS = ("websocket", "mqtt")
DEFAULT_DEVICE_MQTT_PORT = 1884
DEFAULT_UDP_PORT = 1884
FIRMWARE_TLS_PORT = 8883


@dataclass(frozen=True)
class DevicesSettings:
    transport: str = "websocket"     # what the OTA reply tells devices; a per-device override wins


DEVICES_SCHEMA = vol.Schema({
    vol.Optional("transport", default="websocket"): vol.In(TRANSPORTS, msg="must be websocket or mqtt"),
})


@dataclass(frozen=True)
class DeviceMqttSettings:
    # "auto": listen only while some device may use MQTT (devices.transport, or a device set to mqtt,
    # also when one is switched while the hub runs); true: always; false: never.
    enabled: bool | str = "auto"
    host: str | None = None           # listen address; None = server.host
    port: int = DEFAULT_DEVICE_MQTT_PORT
    public_port: int | None = None    # the port devices are told, when a proxy or Docker maps another
    keepalive: int = 240              # told to devices (the firmware's default); enforced at 1.5x
    connect_timeout: float = 10.0     # a TCP connection must send CONNECT within this
    max_packet_bytes: int = 32768     # one MQTT packet (device MCP pages are ~8 KB)
    max_messages_per_second: int = 30  # per device; the excess is dropped
    flood_grace_seconds: float = 5.0  # sustained excess for this long closes the connection
    max_connections: int = 1000
    tls_cert: str | None = None       # PEM certificate chain; with tls_key, the endpoint speaks TLS
    tls_key: str | None = None


def _tls_pair(value: dict) -> dict:
    if bool(value.get("tls_cert")) != bool(value.get("tls_key")):
        raise vol.Invalid("tls_cert and tls_key go together", path=["tls_key" if value.get("tls_cert") else "tls_cert"])
    return value


DEVICE_MQTT_SCHEMA = vol.Schema(vol.All(vol.Schema({
    vol.Optional("enabled", default="auto"): vol.Any("auto", vol.Boolean(), msg="must be auto, true or false"),
    vol.Optional("host", default=None): opt_str,
    vol.Optional("port", default=DEFAULT_DEVICE_MQTT_PORT): port,
    vol.Optional("public_port", default=None): vol.Any(None, vol.All(vol.Coerce(int), vol.Range(min=1, max=65535))),
    vol.Optional("keepalive", default=240): vol.All(vol.Coerce(int), vol.Range(min=10, max=3600)),
    vol.Optional("connect_timeout", default=10.0): positive(),
    vol.Optional("max_packet_bytes", default=32768): vol.All(vol.Coerce(int), vol.Range(min=1024, max=1 << 20)),
    vol.Optional("max_messages_per_second", default=30): vol.All(vol.Coerce(int), vol.Range(min=5)),
    vol.Optional("flood_grace_seconds", default=5.0): positive(),
    vol.Optional("max_connections", default=1000): vol.All(vol.Coerce(int), vol.Range(min=1)),
    vol.Optional("tls_cert", default=None): opt_str,
    vol.Optional("tls_key", default=None): opt_str,
}), _tls_pair))


@dataclass(frozen=True)
class UdpSettings:
    host: str | None = None           # listen address; None = server.host
    port: int = DEFAULT_UDP_PORT
    public_port: int | None = None    # the port devices are told, when Docker or a NAT maps another
    max_packet_bytes: int = 4096      # a 60 ms Opus frame is a few hundred bytes
    max_packets_per_second: int = 100  # per channel; a device sends ~17
    first_packet_wait: float = 3.0    # audio for a device waits this long for its first packet (its address)


UDP_SCHEMA = vol.Schema({
    vol.Optional("host", default=None): opt_str,
    vol.Optional("port", default=DEFAULT_UDP_PORT): port,
    vol.Optional("public_port", default=None): vol.Any(None, vol.All(vol.Coerce(int), vol.Range(min=1, max=65535))),
    vol.Optional("max_packet_bytes", default=4096): vol.All(vol.Coerce(int), vol.Range(min=64, max=65535)),
    vol.Optional("max_packets_per_second", default=100): vol.All(vol.Coerce(int), vol.Range(min=20)),
    vol.Optional("first_packet_wait", default=3.0): positive(),
})
