"""Compatibility with the wyoming library Home Assistant 2025.4 pins (1.5.4; the hub runs the current
one): that release's client calls (ha_2025_4_client.py), in a venv of their own, against the hub.

The venv is made once in ~/.cache/xiaozhi-hub/ with pip from the package index; without the index
the test is skipped and says so."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import wyoming_port

HA_WYOMING = "1.5.4"          # homeassistant 2025.4.4: components/wyoming/manifest.json
VENV = Path.home() / ".cache" / "xiaozhi-hub" / f"wyoming-{HA_WYOMING}"
CLIENT = Path(__file__).with_name("ha_2025_4_client.py")


def old_wyoming_python() -> Path:
    python = VENV / "bin" / "python"
    if (VENV / ".ready").exists() and python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=120)
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           f"wyoming=={HA_WYOMING}"], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"cannot install wyoming=={HA_WYOMING} into {VENV}: {done.stderr.strip()[-300:]}")
    (VENV / ".ready").touch()
    return python


async def test_home_assistant_2025_4_describes_transcribes_and_synthesizes(wyoming_hub):
    python = old_wyoming_python()
    hub = await wyoming_hub()
    proc = await asyncio.create_subprocess_exec(str(python), str(CLIENT), str(wyoming_port(hub)),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    got = json.loads(out.decode().strip().splitlines()[-1])
    assert got["library"] == HA_WYOMING
    assert got["asr"] == "xiaozhi-hub-asr" and got["languages"] == ["en"] and got["voices"] == ["fake"]
    assert got["transcript"] == "turn on the kitchen light"
    assert got["tts"]["rate"] == 24000
    assert abs(got["tts"]["seconds"] - len("Hello from Home Assistant.") * 0.060) < 0.01
