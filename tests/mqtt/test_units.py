"""The bridge's pure parts and its settings: topic ids and command topics, the ``mqtt`` section
(defaults, environment, bad values, the password kept out of reprs and --check-config)."""

from __future__ import annotations

import pytest

from xiaozhi_hub.config_check import effective
from xiaozhi_hub.mqtt.topics import Command, Topics, topic_id
from xiaozhi_hub.settings import ConfigError, from_mapping, load


def test_topic_ids() -> None:
    assert topic_id("aa:bb:cc:dd:ee:01") == "aabbccddee01"
    assert topic_id("AA-BB-CC-DD-EE-01") == "aa-bb-cc-dd-ee-01"
    assert topic_id("a/b+c#d") == "abcd"                     # no level separator or wildcard reaches a topic
    assert topic_id("::") == "unnamed"


def test_command_topics() -> None:
    t = Topics("xiaozhi", "homeassistant")
    assert t.command("xiaozhi/aabbccddee01/say") == Command("aabbccddee01", "say")
    assert t.command("xiaozhi/all/say") == Command("all", "say")
    assert t.command("xiaozhi/aabbccddee01/volume/set") == Command("aabbccddee01", "volume/set")
    assert t.command("xiaozhi/aabbccddee01/stop") == Command("aabbccddee01", "stop")
    for other in ("xiaozhi/aabbccddee01/state", "xiaozhi//say", "xiaozhi/a/b/say", "other/aabbccddee01/say",
                  "xiaozhi/aabbccddee01/volume"):
        assert t.command(other) is None, other
    assert set(t.subscriptions()) == {"xiaozhi/+/say", "xiaozhi/+/volume/set", "xiaozhi/+/stop",
                                      "homeassistant/status"}


def test_settings_defaults_and_environment(tmp_path) -> None:
    s = from_mapping({}).mqtt
    assert (s.host, s.port, s.username, s.password, s.tls, s.base_topic, s.discovery, s.discovery_prefix) == \
        ("", 1883, "", "", False, "xiaozhi", True, "homeassistant")
    assert not s.enabled
    env = {"XIAOZHI_MQTT__HOST": "broker.lan", "XIAOZHI_MQTT__PORT": "8883", "XIAOZHI_MQTT__TLS": "true",
           "XIAOZHI_MQTT__PASSWORD": "pw-from-env", "XIAOZHI_MQTT__DISCOVERY": "false"}
    s = load(None, environ=env).mqtt
    assert (s.host, s.port, s.tls, s.password, s.discovery, s.enabled) == ("broker.lan", 8883, True, "pw-from-env",
                                                                            False, True)
    assert "pw-from-env" not in repr(s)
    assert effective(load(None, environ=env))["mqtt"]["password"] == "***"


@pytest.mark.parametrize("section, key", [
    ({"base_topic": "xiaozhi/#"}, "mqtt.base_topic"),
    ({"base_topic": "/xiaozhi"}, "mqtt.base_topic"),
    ({"discovery_prefix": ""}, "mqtt.discovery_prefix"),
    ({"port": 0}, "mqtt.port"),
    ({"tls": "maybe"}, "mqtt.tls"),
    ({"hostname": "x"}, "mqtt.hostname"),
])
def test_bad_settings_name_the_key(section, key) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_mapping({"mqtt": section})
