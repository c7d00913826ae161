"""hub.yaml validation, environment and flag overrides, and the CLI's exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest

from xiaozhi_hub.settings import ConfigError, from_mapping, load

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_documented_ones():
    s = from_mapping({})
    assert (s.server.ws_port, s.server.http_port, s.server.ws_path) == (8000, 8003, "/xiaozhi/v1/")
    assert s.audio.downlink_sample_rate == 24000 and s.audio.frame_duration_ms == 60
    assert s.session.idle_timeout == 120 and s.auth.enabled is False


def test_example_fake_config_loads_and_selects_fakes():
    s = load(ROOT / "examples" / "fake.yaml", environ={})
    assert (s.asr.provider, s.llm.provider, s.tts.provider) == ("fake", "fake", "fake")


@pytest.mark.parametrize("raw, expected", [
    ({"server": {"ws_port": 70000}}, "server.ws_port: must be a port number"),
    ({"server": {"wsport": 1}}, "server.wsport: unknown key"),
    ({"bogus": {}}, "bogus: unknown key"),
    ({"asr": {"provider": "cloud"}}, "asr.provider: value must be one of"),
    ({"audio": {"downlink_sample_rate": 22050}}, "audio.downlink_sample_rate: must be an Opus rate"),
    ({"session": {"idle_timeout": -1}}, "session.idle_timeout:"),
    ({"auth": "yes"}, "auth: must be a mapping"),
    ({"log_level": "loud"}, "log_level: must be one of"),
])
def test_bad_values_name_the_key_and_problem(raw, expected):
    with pytest.raises(ConfigError) as err:
        from_mapping(raw)
    assert str(err.value).startswith(expected), str(err.value)
    assert "\n" not in str(err.value)


def test_precedence_file_then_env_then_flags(tmp_path):
    cfg = tmp_path / "hub.yaml"
    cfg.write_text("server:\n  ws_port: 9000\n  http_port: 9003\nsession:\n  idle_timeout: 30\n")
    env = {"XIAOZHI_WS_PORT": "9100", "XIAOZHI_SESSION__IDLE_TIMEOUT": "45", "XIAOZHI_AUTH__TOKENS": "[a, b]"}
    s = load(cfg, environ=env, overrides={"server": {"ws_port": 9200}})
    assert s.server.ws_port == 9200          # flag beats env
    assert s.server.http_port == 9003        # file value kept
    assert s.session.idle_timeout == 45      # env beats file
    assert s.auth.tokens == ("a", "b")


def test_unknown_env_variable_is_an_error():
    with pytest.raises(ConfigError, match="XIAOZHI_NOPE"):
        load(None, environ={"XIAOZHI_NOPE": "1"})


def test_config_yaml_name_is_refused(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text("{}")
    with pytest.raises(ConfigError, match="hub.yaml"):
        load(p, environ={})


def test_invalid_yaml_names_the_line(tmp_path):
    p = tmp_path / "hub.yaml"
    p.write_text("server:\n  ws_port: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(p, environ={})


def test_settings_are_frozen():
    s = from_mapping({})
    with pytest.raises(Exception):
        s.server.ws_port = 1  # type: ignore[misc]


def test_cli_bad_config_exits_2_with_one_line(tmp_path):
    p = tmp_path / "hub.yaml"
    p.write_text("server:\n  ws_port: nope\n")
    proc = subprocess.run([sys.executable, "-m", "xiaozhi_hub", "--config", str(p)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "server.ws_port" in lines[0], proc.stderr


def test_cli_help_lists_the_flags():
    proc = subprocess.run([sys.executable, "-m", "xiaozhi_hub", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for flag in ("--config", "--ws-port", "--http-port", "--data-dir", "--log-level"):
        assert flag in proc.stdout
