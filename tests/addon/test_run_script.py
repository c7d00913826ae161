"""The add-on's start script, run with plain bash (no bashio here) against sample options.json files
and the hub's ``--check-config``: every option lands in the effective settings; a bad option stops
the start with a clear line; inside the add-on the Supervisor's MQTT broker is looked up."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from xiaozhi_hub.settings import section_names

from .conftest import ADDON, MQTT, TOKEN, FakeSupervisor

RUN = ADDON / "rootfs" / "etc" / "s6-overlay" / "s6-rc.d" / "xiaozhi-hub" / "run"
DEFAULTS = yaml.safe_load((ADDON / "config.yaml").read_text())["options"]


async def run_script(data: Path, options: dict[str, Any], *args: str, env: dict[str, str] | None = None,
                     ) -> tuple[int, str, str]:
    (data / "options.json").write_text(json.dumps(options))
    bindir = str(Path(sys.executable).parent)            # python3 = the hub's venv, as in the image
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("XIAOZHI_", "SUPERVISOR_"))}
    environ.update({"HUB_ADDON_DATA": str(data), "PATH": f"{bindir}:{environ.get('PATH', '')}", **(env or {})})
    proc = await asyncio.create_subprocess_exec("bash", str(RUN), *args, env=environ,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


def effective(out: str) -> dict[str, Any]:
    return yaml.safe_load(out)


async def test_every_option_is_mapped_into_the_hub_settings(tmp_path):
    options = {**DEFAULTS, "language": "zh", "asr_model": "vosk-ko", "tts_voice": "piper-zh_CN-huayan-medium",
               "llm_model": "qwen2.5-0.5b-instruct-q4_k_m", "log_level": "debug", "wyoming": False,
               "ota_activation": True}
    code, out, err = await run_script(tmp_path, options, "--check-config")
    assert code == 0, err
    s = effective(out)
    assert s["asr"]["provider"] == "vosk" and s["asr"]["model"] == "vosk-ko" and s["asr"]["language"] == "zh"
    assert s["agent"]["default_language"] == "zh"
    assert s["tts"]["provider"] == "piper" and s["tts"]["voice"] == "piper-zh_CN-huayan-medium"
    assert s["llm"]["provider"] == "llamacpp" and s["llm"]["model"] == "qwen2.5-0.5b-instruct-q4_k_m"
    assert s["log_level"] == "debug"
    assert s["wyoming"]["enabled"] is False and s["wyoming"]["port"] == 10300
    assert s["ota"]["activation"] is True
    assert s["data_dir"] == str(tmp_path) and s["models_dir"] == str(tmp_path / "models")
    assert (s["server"]["ws_port"], s["server"]["http_port"], s["server"]["host"]) == (8000, 8003, "0.0.0.0")
    written = tmp_path / "hub.yaml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600          # it may hold the broker's password
    assert "checking the configuration" in err and "models:" not in err   # --check-config installs nothing


async def test_the_defaults_give_the_default_models(tmp_path):
    code, out, err = await run_script(tmp_path, DEFAULTS, "--check-config")
    assert code == 0, err
    s = effective(out)
    assert (s["asr"]["provider"], s["asr"]["model"], s["asr"]["language"]) == ("whisper", "whisper-base", "en")
    assert (s["tts"]["voice"], s["llm"]["model"]) == ("piper-en_US-joe-medium", "smollm2-135m-instruct")
    assert s["wyoming"]["enabled"] is True and s["log_level"] == "info" and s["agent"]["default_language"] == "en"


@pytest.mark.parametrize("change,fragment", [
    ({"asr_model": "no-such-model"}, "asr_model: must be one of"),
    ({"log_level": "loud"}, "log_level"),
    ({"wyoming": "yes"}, "wyoming"),
    ({"surprise": 1}, "surprise: unknown option"),
])
async def test_a_bad_option_stops_the_start_with_a_clear_line(tmp_path, change, fragment):
    code, out, err = await run_script(tmp_path, {**DEFAULTS, **change}, "--check-config")
    assert code == 2 and fragment in err, err
    assert not (tmp_path / "hub.yaml").exists() and "checking the configuration" not in err


async def test_inside_the_add_on_the_supervisors_broker_is_used(tmp_path, supervisor: FakeSupervisor):
    env = {"SUPERVISOR_TOKEN": TOKEN, "HUB_SUPERVISOR_URL": supervisor.url}
    code, out, err = await run_script(tmp_path, DEFAULTS, "--check-config", env=env)
    assert code == 0, err
    assert ("GET", "/services/mqtt", None) in supervisor.requests
    assert f"{MQTT['host']}:{MQTT['port']} as {MQTT['username']}" in err
    assert MQTT["password"] not in out + err and TOKEN not in out + err     # never printed
    s = effective(out)
    assert s["addon"]["supervisor_url"] == supervisor.url
    if "mqtt" in section_names():        # the MQTT bridge's settings (issue 10) exist in this hub
        assert (s["mqtt"]["host"], s["mqtt"]["port"], s["mqtt"]["username"]) == ("core-mosquitto", 1883, "addons")
        assert s["mqtt"]["password"] == "***"
        assert MQTT["password"] in (tmp_path / "hub.yaml").read_text()
    else:
        assert "no MQTT bridge yet" in err


async def test_a_broker_the_user_set_wins_and_no_lookup_is_made(tmp_path, supervisor: FakeSupervisor):
    env = {"SUPERVISOR_TOKEN": TOKEN, "HUB_SUPERVISOR_URL": supervisor.url}
    options = {**DEFAULTS, "mqtt_host": "broker.lan", "mqtt_port": 8883, "mqtt_username": "me",
               "mqtt_password": "user-password-7", "mqtt_tls": True}
    code, out, err = await run_script(tmp_path, options, "--check-config", env=env)
    assert code == 0, err
    assert not supervisor.requests and "user-password-7" not in out + err
    if "mqtt" in section_names():
        s = effective(out)
        assert (s["mqtt"]["host"], s["mqtt"]["port"], s["mqtt"]["tls"]) == ("broker.lan", 8883, True)


async def test_without_an_mqtt_add_on_the_start_says_so(tmp_path, supervisor: FakeSupervisor):
    supervisor.mqtt = None
    env = {"SUPERVISOR_TOKEN": TOKEN, "HUB_SUPERVISOR_URL": supervisor.url}
    code, out, err = await run_script(tmp_path, DEFAULTS, "--check-config", env=env)
    assert code == 0 and "no MQTT broker offered by the Supervisor" in err
