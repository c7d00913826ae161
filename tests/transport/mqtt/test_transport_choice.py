"""Which transport a device is told: the settings (``devices``, ``device_mqtt``, ``udp``), the per-device
override in the store (a migration on a real SQLite file), the API route and the CLI command."""

from __future__ import annotations

import aiohttp
import pytest

from xiaozhi_hub.__main__ import main
from xiaozhi_hub.app import Hub
from xiaozhi_hub.settings import ConfigError, from_mapping
from xiaozhi_hub.simulator.mqtt_device import ota_check
from xiaozhi_hub.store import devices as dev

from ...conftest import fake_settings

DEVICE = "02:00:00:00:03:01"


def test_defaults_leave_mosquitto_and_the_tls_port_alone() -> None:
    s = from_mapping({})
    assert s.devices.transport == "websocket"
    assert s.device_mqtt.enabled == "auto" and s.device_mqtt.port not in (1883, 8883) and s.device_mqtt.keepalive == 240
    assert s.udp.port not in (1883, 8883)


@pytest.mark.parametrize("raw, message", [
    ({"devices": {"transport": "udp"}}, "devices.transport: must be websocket or mqtt"),
    ({"device_mqtt": {"tls_cert": "/x.pem"}}, "device_mqtt.tls_key: tls_cert and tls_key go together"),
    ({"device_mqtt": {"port": 70000}}, "device_mqtt.port: must be a port number"),
    ({"udp": {"max_packet_bytes": 10}}, "udp.max_packet_bytes"),
    ({"device_mqtt": {"keepalive": 1}}, "device_mqtt.keepalive"),
    ({"device_mqtt": {"enabled": "sometimes"}}, "device_mqtt.enabled: must be auto, true or false"),
])
def test_bad_settings_name_the_key(raw, message) -> None:
    with pytest.raises(ConfigError) as err:
        from_mapping(raw)
    assert str(err.value).startswith(message), err.value


async def test_mqtt_as_default_needs_the_endpoint(tmp_path) -> None:
    hub = Hub(fake_settings(tmp_path, devices={"transport": "mqtt"}, device_mqtt={"enabled": False}))
    with pytest.raises(ConfigError, match="device_mqtt.enabled"):
        await hub.start()
    await hub.stop()


async def test_override_in_store_api_and_ota(start_hub) -> None:
    hub = await start_hub(device_mqtt={"enabled": True, "port": 0}, udp={"port": 0})
    base = f"http://127.0.0.1:{hub.ctx.http_port}"
    await ota_check(f"{base}/xiaozhi/ota/", DEVICE, "uuid-3")
    # The device API needs the hub's admin token (docs/api.md).
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {hub.ctx.admin.current()}"}) as http:
        async with http.post(f"{base}/api/devices/{DEVICE}/transport", json={"transport": "mqtt"}) as r:
            assert r.status == 200
            assert (await r.json())["device"]["transport_override"] == "mqtt"
        assert "mqtt" in await ota_check(f"{base}/xiaozhi/ota/", DEVICE, "uuid-3")
        async with http.post(f"{base}/api/devices/{DEVICE}/transport", json={"transport": "carrier pigeon"}) as r:
            assert r.status == 400 and "websocket" in (await r.json())["error"]
        async with http.post(f"{base}/api/devices/{DEVICE}/transport", json={}) as r:
            assert r.status == 400
        async with http.post(f"{base}/api/devices/02:00:00:00:03:99/transport", json={"transport": "mqtt"}) as r:
            assert r.status == 404
        async with http.post(f"{base}/api/devices/{DEVICE}/transport", json={"transport": None}) as r:
            assert r.status == 200 and (await r.json())["device"]["transport_override"] is None
    assert "mqtt" not in await ota_check(f"{base}/xiaozhi/ota/", DEVICE, "uuid-3")


async def test_ota_falls_back_to_websocket_when_the_endpoint_is_off(start_hub) -> None:
    hub = await start_hub()                                    # device_mqtt off in the test base settings
    base = f"http://127.0.0.1:{hub.ctx.http_port}"
    await ota_check(f"{base}/xiaozhi/ota/", DEVICE, "uuid-3")
    await hub.ctx.devices.set_transport(DEVICE, "mqtt")
    reply = await ota_check(f"{base}/xiaozhi/ota/", DEVICE, "uuid-3")
    assert "mqtt" not in reply and reply["websocket"]["url"]


async def test_cli_sets_lists_and_clears_the_override(start_hub, capsys) -> None:
    hub = await start_hub()
    base = f"http://127.0.0.1:{hub.ctx.http_port}"
    await ota_check(f"{base}/xiaozhi/ota/", DEVICE, "uuid-3")
    data = ["--data-dir", hub.settings.data_dir]
    assert main(["devices", "transport", DEVICE, "mqtt", *data]) == 0
    assert "told mqtt at its next OTA check" in capsys.readouterr().out
    assert main(["devices", "transport", DEVICE, "mqtt", *data, "--config", str(write_config(hub))]) == 0
    assert "device_mqtt.enabled is false" in capsys.readouterr().out    # that hub.yaml has it off
    assert main(["devices", "list", *data]) == 0
    assert "TRANSPORT" in (listing := capsys.readouterr().out) and "mqtt" in listing
    assert main(["devices", "transport", DEVICE, "default", *data]) == 0
    assert "told websocket (devices.transport)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        main(["devices", "transport", DEVICE, "pigeon", *data])
    assert err.value.code == 2
    assert main(["devices", "transport", "nobody", "mqtt", *data]) == 1


def write_config(hub: Hub):
    from pathlib import Path
    path = Path(hub.settings.data_dir).parent / "hub.yaml"
    path.write_text("device_mqtt:\n  enabled: false\n")
    return path


def test_store_function_validates(tmp_path) -> None:
    from xiaozhi_hub.store.db import Database
    db = Database(tmp_path / "hub.db").open_sync()
    try:
        db.transaction_sync(lambda c: dev.touch_device(c, DEVICE, "", 1.0, True))
        device = db.transaction_sync(lambda c: dev.set_transport(c, DEVICE, "mqtt"))
        assert device.transport == "mqtt" and device.transport_or("websocket") == "mqtt"
        assert device.to_json()["transport_override"] == "mqtt"
        with pytest.raises(dev.InvalidValue):
            db.transaction_sync(lambda c: dev.set_transport(c, DEVICE, "udp"))
        cleared = db.transaction_sync(lambda c: dev.set_transport(c, DEVICE, None))
        assert cleared.transport is None and cleared.transport_or("websocket") == "websocket"
    finally:
        db.conn.close()


async def test_auto_opens_no_port_until_a_device_is_switched(start_hub, tmp_path) -> None:
    from xiaozhi_hub.simulator.mqtt_device import MqttSimulatedDevice
    from xiaozhi_hub.audio import pcm as pcmlib

    auto = {"device_mqtt": {"enabled": "auto", "port": 0}, "udp": {"port": 0}}
    hub = await start_hub(**auto)
    assert hub.ctx.mqtt_udp is None                            # every device on WebSocket: no MQTT/UDP port
    ota = f"http://127.0.0.1:{hub.ctx.http_port}/xiaozhi/ota/"
    await ota_check(ota, DEVICE, "uuid-3")
    await hub.ctx.devices.set_transport(DEVICE, "mqtt")        # switched while the hub runs
    replies = [await ota_check(ota, DEVICE, "uuid-3") for _ in range(2)]
    assert all("mqtt" in r for r in replies) and hub.ctx.mqtt_udp is not None
    async with MqttSimulatedDevice(ota, device_id=DEVICE, client_id="uuid-3") as dev:
        turn = await dev.run_turn(pcmlib.voice_like(1200), mode="manual", timeout=20)
        assert turn.stt_text == "turn on the kitchen light" and turn.played
    await hub.stop()
    again = await start_hub(**auto)                            # same database: a device uses MQTT
    assert again.ctx.mqtt_udp is not None
