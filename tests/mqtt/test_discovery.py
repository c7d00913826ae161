"""Home Assistant MQTT discovery over a real Mosquitto broker: the payloads of a simulator device and
of the hub appear retained and validate (tests/mqtt/ha_schema.py, written from HA's docs); they are
republished on HA's birth message; ``mqtt.discovery: false`` publishes none; a registered Home
Assistant component (the real /api/events socket) makes the hub clear them, and its leaving brings
them back."""

from __future__ import annotations

import asyncio
import copy
import json

import aiohttp
import pytest

from xiaozhi_hub.mqtt.discovery import device_config
from xiaozhi_hub.mqtt.topics import Topics, topic_id

from .conftest import BASE, Watcher, device, device_topic, known
from .ha_schema import Invalid, validate_device_discovery

PREFIX = "homeassistant"


def config_topic(device_id: str) -> str:
    return f"{PREFIX}/device/xiaozhi_{topic_id(device_id)}/config"


def hub_topic(hub) -> str:
    return f"{PREFIX}/device/xiaozhi_hub_{hub.ctx.hub_id}/config"


async def test_a_devices_discovery_appears_retained_and_validates(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as dev:
        await known(hub, dev.device_id)
        msg = await watcher.until(lambda m: m.topic == config_topic(dev.device_id) and m.payload)
        stored = await watcher.retained(config_topic(dev.device_id))
        assert stored is not None and stored.json() == msg.json()            # retained
        config = msg.json()
        validate_device_discovery(msg.topic, config)
        comps = config["components"]
        assert {c["platform"] for c in comps.values()} == {"notify", "number", "button", "sensor", "event",
                                                           "binary_sensor"}
        tid = topic_id(dev.device_id)
        assert comps["say"]["command_topic"] == f"{BASE}/{tid}/say"
        assert comps["volume"]["command_topic"] == f"{BASE}/{tid}/volume/set"
        assert (comps["volume"]["min"], comps["volume"]["max"]) == (0, 100)
        assert comps["stop"]["command_topic"] == f"{BASE}/{tid}/stop"
        assert set(comps["events"]["event_types"]) == {"wake", "turn_finished", "announcement"}
        assert comps["state"]["options"] == ["idle", "listening", "speaking", "thinking", "offline"]
        assert comps["connectivity"]["device_class"] == "connectivity"
        assert config["device"]["connections"] == [["mac", dev.device_id]]
        assert config["origin"]["name"] == "xiaozhi-hub"
        # the hub is the via_device, and has its own discovery
        hub_msg = await watcher.until(lambda m: m.topic == hub_topic(hub) and m.payload)
        validate_device_discovery(hub_msg.topic, hub_msg.json())
        assert config["device"]["via_device"] in hub_msg.json()["device"]["identifiers"]
        # every state topic the entities read is there (retained), with a value they accept
        await watcher.value(device_topic(dev, "availability"), "online")
        assert (await watcher.retained(comps["state"]["state_topic"])).text in comps["state"]["options"]
        assert (await watcher.retained(comps["connectivity"]["state_topic"])).text == "online"
        assert (await watcher.retained(config["availability"][0]["topic"])).text == "online"


async def test_discovery_is_republished_when_home_assistant_comes_online(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as dev:
        await known(hub, dev.device_id)
        await watcher.until(lambda m: m.topic == config_topic(dev.device_id) and m.payload)
        mark = watcher.mark()
        watcher.publish(f"{PREFIX}/status", "online")
        again = await watcher.until(lambda m: m.topic == config_topic(dev.device_id) and m.payload, since=mark)
        validate_device_discovery(again.topic, again.json())
        await watcher.until(lambda m: m.topic == device_topic(dev, "state"), since=mark)   # then the states


async def test_no_discovery_with_the_setting_off(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub(mqtt={"discovery": False})
    async with device(hub) as dev:
        await known(hub, dev.device_id)
        await watcher.value(device_topic(dev, "state"), "idle")
        watcher.publish(f"{PREFIX}/status", "online")
        mark = watcher.mark()
        await hub.ctx.mqtt.republish()                      # everything once more, as after a reconnect
        await watcher.until(lambda m: m.topic == device_topic(dev, "availability"), since=mark)
    configs = [m for m in watcher.messages if m.topic.startswith(f"{PREFIX}/") and m.topic.endswith("/config")]
    assert configs and all(m.payload == b"" for m in configs)          # only clearing, never a payload
    assert await watcher.retained(config_topic(dev.device_id)) is None


async def test_a_registered_component_stops_discovery_and_its_leaving_restores_it(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as dev, aiohttp.ClientSession() as http:
        await known(hub, dev.device_id)
        await watcher.until(lambda m: m.topic == config_topic(dev.device_id) and m.payload)
        ws = await http.ws_connect(f"http://127.0.0.1:{hub.ctx.http_port}/api/events",
                                   headers={"Authorization": f"Bearer {hub.ctx.admin.current()}"})
        hello = json.loads((await ws.receive(timeout=10)).data)
        assert hello["type"] == "hello" and hello["mqtt_discovery"] is True
        mark = watcher.mark()
        await ws.send_str(json.dumps({"type": "register", "mqtt_discovery": False}))
        await watcher.until(lambda m: m.topic == config_topic(dev.device_id) and m.payload == b"", since=mark)
        await watcher.until(lambda m: m.topic == hub_topic(hub) and m.payload == b"", since=mark)
        assert await watcher.retained(config_topic(dev.device_id)) is None   # cleared on the broker
        watcher.publish(f"{PREFIX}/status", "online")                        # HA restarts: still nothing
        await watcher.until(lambda m: m.topic == device_topic(dev, "state"), since=watcher.mark())
        assert not [m for m in watcher.messages[mark:] if m.topic.endswith("/config") and m.payload]
        mark = watcher.mark()
        await ws.close()                                                     # the component goes away
        back = await watcher.until(lambda m: m.topic == config_topic(dev.device_id) and m.payload, since=mark)
        validate_device_discovery(back.topic, back.json())


def _sample() -> tuple[str, dict]:
    from xiaozhi_hub.store.devices import Device
    dev = Device(device_id="aa:bb:cc:dd:ee:01", client_id="c", name="Kitchen", board="bread", board_name=None,
                 chip=None, firmware_version="2.4.2", language=None, serial_number=None, ip=None, info={},
                 blocked=False, activated=True, activated_at=None, activation_code=None, activation_challenge=None,
                 code_issued_at=None, tokens_not_before=None, hmac_key=None, first_seen=0.0, last_seen=0.0,
                 last_ota=None)
    return config_topic(dev.device_id), device_config(Topics(BASE, PREFIX), dev, "aabbccddee01", "hub1")


@pytest.mark.parametrize("spoil", [
    lambda c: c["components"]["say"].__setitem__("object_id", "kitchen_say"),
    lambda c: c["components"]["say"].pop("command_topic"),
    lambda c: c["components"]["volume"].__setitem__("comand_topic", "x"),
    lambda c: c["components"]["events"].__setitem__("event_types", "wake"),
    lambda c: c["components"]["state"].__setitem__("default_entity_id", "switch.kitchen_state"),
    lambda c: c.pop("origin"),
    lambda c: c["components"]["stop"].pop("unique_id"),
    lambda c: c["components"]["volume"].__setitem__("max", "100"),
], ids=["object_id", "no-command_topic", "misspelt-key", "event_types-not-list", "wrong-domain", "no-origin",
        "no-unique_id", "max-as-string"])
def test_the_schema_check_catches_what_ha_would_reject_or_ignore(spoil) -> None:
    topic, config = _sample()
    validate_device_discovery(topic, config)                 # the real payload passes
    bad = copy.deepcopy(config)
    spoil(bad)
    with pytest.raises(Invalid):
        validate_device_discovery(topic, bad)


async def test_a_component_that_registers_soon_after_a_start_sees_no_discovery(mqtt_hub, watcher: Watcher,
                                                                               monkeypatch) -> None:
    """After a start, discovery waits out a grace (the broker retains the last run's meanwhile): a Home
    Assistant component reconnecting within it never sees the devices created and then removed."""
    from xiaozhi_hub.mqtt import bridge
    monkeypatch.setattr(bridge, "DISCOVERY_GRACE", 2.0)
    hub = await mqtt_hub()
    async with device(hub) as dev, aiohttp.ClientSession() as http:
        await known(hub, dev.device_id)
        await watcher.value(device_topic(dev, "state"), "idle")            # states flow during the grace
        ws = await http.ws_connect(f"http://127.0.0.1:{hub.ctx.http_port}/api/events",
                                   headers={"Authorization": f"Bearer {hub.ctx.admin.current()}"})
        await ws.receive(timeout=10)
        await ws.send_str(json.dumps({"type": "register", "mqtt_discovery": False}))
        await watcher.until(lambda m: m.topic == config_topic(dev.device_id) and m.payload == b"")
        while hub.ctx.mqtt.in_grace:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        configs = [m for m in watcher.messages if m.topic.endswith("/config")]
        assert configs and all(m.payload == b"" for m in configs)
        await ws.close()


async def test_without_a_component_discovery_follows_the_grace(mqtt_hub, watcher: Watcher, monkeypatch) -> None:
    from xiaozhi_hub.mqtt import bridge
    monkeypatch.setattr(bridge, "DISCOVERY_GRACE", 1.0)
    hub = await mqtt_hub()
    async with device(hub) as dev:
        await known(hub, dev.device_id)
        assert hub.ctx.mqtt.in_grace
        msg = await watcher.until(lambda m: m.topic == config_topic(dev.device_id) and m.payload)
        assert not hub.ctx.mqtt.in_grace
        validate_device_discovery(msg.topic, msg.json())


async def test_a_rename_is_published(mqtt_hub, watcher: Watcher) -> None:
    hub = await mqtt_hub()
    async with device(hub) as dev:
        await known(hub, dev.device_id)
        await watcher.until(lambda m: m.topic == config_topic(dev.device_id) and m.payload)
        mark = watcher.mark()
        await hub.ctx.devices.rename(dev.device_id, "Kitchen")
        renamed = await watcher.until(lambda m: m.topic == config_topic(dev.device_id) and m.payload, since=mark)
        assert renamed.json()["device"]["name"] == "Kitchen"
        validate_device_discovery(renamed.topic, renamed.json())
        watcher.publish(f"{BASE}/Kitchen/say", "Named.")                 # a unique name works in topics too
        await dev.wait_until(lambda: any("Named." in " ".join(t.sentences) and t.tts_stop_at for t in dev.turns), 15)
