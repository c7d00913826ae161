"""hub.yaml validation, environment and flag overrides, and the CLI's exit code 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xiaozhi_hub.settings import ConfigError, environment_notes, from_mapping, load

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


# What py-xiaozhi (a desktop xiaozhi client, often run on the hub's machine) reads from the environment.
PY_XIAOZHI_ENV = {"XIAOZHI_CACHE_DIR": "/tmp/pyxz/cache", "XIAOZHI_LOG_DIR": "/tmp/pyxz/logs",
                  "XIAOZHI_DISABLE_AUDIO": "1", "XIAOZHI_HOME": "/tmp/pyxz"}


def test_foreign_env_variables_are_ignored_and_named():
    s = load(None, environ={**PY_XIAOZHI_ENV, "XIAOZHI_WS_PORT": "9100", "XIAOZHI_NOPE__X": "1"})
    assert s.server.ws_port == 9100                                # the hub's own still apply
    assert s.env_ignored == ("XIAOZHI_CACHE_DIR", "XIAOZHI_DISABLE_AUDIO", "XIAOZHI_HOME", "XIAOZHI_LOG_DIR",
                             "XIAOZHI_NOPE__X")
    notes = environment_notes(s)
    assert len(notes) == 1 and all(name in notes[0] for name in s.env_ignored)
    assert environment_notes(load(None, environ={"XIAOZHI_WS_PORT": "9100"})) == []


@pytest.mark.parametrize("env, expected", [
    ({"XIAOZHI_SESSION__IDLE_TIMOUT": "30"}, "session.idle_timout: unknown key"),   # a known section's typo
    ({"XIAOZHI_SESSION__IDLE_TIMEOUT": "soon"}, "session.idle_timeout:"),
    ({"XIAOZHI_WS_PORT": "70000"}, "server.ws_port: must be a port number"),
    ({"XIAOZHI_LOG_LEVEL": "loud"}, "log_level: must be one of"),
])
def test_known_env_names_stay_strict(env, expected):
    with pytest.raises(ConfigError) as err:
        load(None, environ={**PY_XIAOZHI_ENV, **env})
    assert str(err.value).startswith(expected), str(err.value)


def test_unknown_key_in_the_file_stays_an_error(tmp_path):
    cfg = tmp_path / "hub.yaml"
    cfg.write_text("session:\n  idle_timout: 30\n")
    with pytest.raises(ConfigError, match="session.idle_timout: unknown key"):
        load(cfg, environ=PY_XIAOZHI_ENV)


def test_data_dir_from_the_environment_is_never_silent(tmp_path):
    alone = load(None, environ={"XIAOZHI_DATA_DIR": str(tmp_path / "d")})       # Docker-style: as documented
    assert alone.data_dir == str(tmp_path / "d") and alone.data_dir_origin == "XIAOZHI_DATA_DIR"
    assert environment_notes(alone) == []                                       # (the ready banner names it)
    shared = load(None, environ={**PY_XIAOZHI_ENV, "XIAOZHI_DATA_DIR": str(tmp_path / "pyxz")})
    assert shared.data_dir == str(tmp_path / "pyxz")
    assert any("XIAOZHI_DATA_DIR" in n and "--data-dir" in n and "py-xiaozhi" in n for n in environment_notes(shared))
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'hubdata'}\n")
    overriding = load(cfg, environ={"XIAOZHI_DATA_DIR": str(tmp_path / "pyxz")})
    assert overriding.data_dir == str(tmp_path / "pyxz")                        # precedence unchanged ...
    assert any(f"overriding {cfg}" in n for n in environment_notes(overriding))  # ... but said out loud
    flagged = load(cfg, environ={**PY_XIAOZHI_ENV, "XIAOZHI_DATA_DIR": "x"}, overrides={"data_dir": str(tmp_path / "f")})
    assert flagged.data_dir_origin == "--data-dir"
    assert not any("data folder" in n for n in environment_notes(flagged))
    assert load(cfg, environ={}).data_dir_origin == str(cfg)


def test_hub_starts_with_py_xiaozhi_variables_and_warns_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOZHI_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "xiaozhi_hub", "--config", str(ROOT / "examples" / "fake.yaml"), "--ws-port", "0",
         "--http-port", "0", "--data-dir", str(tmp_path / "data")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**env, **PY_XIAOZHI_ENV, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    out: list[str] = []
    try:
        for line in proc.stdout:                      # until the last line of the ready banner (or EOF)
            out.append(line)
            if "data folder:" in line:
                break
        text = "".join(out)
        assert "data folder:" in text and str(tmp_path / "data") in text, text
        warnings = [line for line in out if "XIAOZHI_CACHE_DIR" in line]
        assert len(warnings) == 1 and "XIAOZHI_DISABLE_AUDIO" in warnings[0] and "WARNING" in warnings[0], text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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
