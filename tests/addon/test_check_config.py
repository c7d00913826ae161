"""``xiaozhi-hub --check-config``: validates, prints the effective settings with secrets hidden, and
starts nothing (the add-on's start script and its tests rely on it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import yaml


def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("XIAOZHI_")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "xiaozhi_hub", "--check-config", *args], env=environ,
                          capture_output=True, text=True, timeout=120)


def test_effective_settings_are_printed_with_secrets_hidden(tmp_path):
    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump({"auth": {"tokens": ["static-token-123456"]},
                                      "llm": {"api_key": "sk-very-secret"}, "wyoming": {"port": 10400}}))
    t0 = time.monotonic()
    done = check("--config", str(config), "--data-dir", str(tmp_path / "data"),
                 env={"XIAOZHI_AUTH__SECRET": "hmac-secret-abcdef"})
    assert done.returncode == 0, done.stderr
    for secret in ("static-token-123456", "sk-very-secret", "hmac-secret-abcdef"):
        assert secret not in done.stdout + done.stderr
    s = yaml.safe_load(done.stdout)
    assert s["auth"]["tokens"] == "***" and s["auth"]["secret"] == "***" and s["llm"]["api_key"] == "***"
    assert s["wyoming"]["port"] == 10400 and s["wyoming"]["enabled"] is True     # file and defaults merged
    assert s["data_dir"] == str(tmp_path / "data")                               # and the flag applied
    assert not (tmp_path / "data").exists()                                      # nothing was started
    assert time.monotonic() - t0 < 60


def test_a_bad_setting_exits_2_naming_it(tmp_path):
    config = tmp_path / "hub.yaml"
    config.write_text("wyoming:\n  port: 99999\n")
    done = check("--config", str(config))
    assert done.returncode == 2 and "wyoming.port" in done.stderr
