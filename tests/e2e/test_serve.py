"""The hub as a user runs it: `xiaozhi-hub --config examples/fake.yaml` in a subprocess serves a
complete turn to the simulator CLI, and SIGTERM shuts it down cleanly (sessions closed with 1001)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from xiaozhi_hub.simulator import SimulatedDevice

from ..conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def start_hub_process(tmp_path: Path) -> tuple[subprocess.Popen[str], int, int]:
    ws_port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xiaozhi_hub", "--config", str(ROOT / "examples" / "fake.yaml"),
         "--ws-port", str(ws_port), "--http-port", str(http_port), "--data-dir", str(tmp_path / "data")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    out = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if " ready in " in line:
            return proc, ws_port, http_port
    proc.kill()
    raise AssertionError("hub did not become ready:\n" + "".join(out))


def test_fake_config_serves_a_turn_to_the_simulator_cli(tmp_path):
    proc, ws_port, http_port = start_hub_process(tmp_path)
    try:
        sim = subprocess.run(
            [sys.executable, "-m", "xiaozhi_hub.simulator", "--url", f"ws://127.0.0.1:{ws_port}/xiaozhi/v1/",
             "--mode", "manual", "--turns", "2", "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=90)
        assert sim.returncode == 0, sim.stdout + sim.stderr
        turns = [json.loads(line) for line in sim.stdout.splitlines() if line.startswith("{")]
        assert len(turns) == 2
        for t in turns:
            assert t["stt"] == "turn on the kitchen light"
            assert t["sentences"] == ["Okay.", "The kitchen light is on now."]
            assert t["frames"] > 10 and t["decode_errors"] == 0 and t["dropped"] == 0
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


async def test_sigterm_closes_sessions_with_1001_and_exits_0(tmp_path):
    proc, ws_port, http_port = start_hub_process(tmp_path)
    try:
        async with SimulatedDevice(f"ws://127.0.0.1:{ws_port}/xiaozhi/v1/") as dev:
            async with aiohttp.ClientSession() as s:
                token = (tmp_path / "data" / "admin_token").read_text().strip()   # every /api/ path needs it
                async with s.get(f"http://127.0.0.1:{http_port}/api/status",
                                 headers={"Authorization": f"Bearer {token}"}) as r:
                    status = await r.json()
            assert [x["device_id"] for x in status["sessions"]] == [dev.device_id]
            proc.send_signal(signal.SIGTERM)
            await dev.wait_until(lambda: dev.closed, 10)
            assert dev.close_code == 1001
        code = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 15)
        assert code == 0
        out = proc.stdout.read() if proc.stdout else ""
        assert "Traceback" not in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
