"""A real hub process (fake providers) and real simulated devices, for the component tests.

The hub runs from the hub's own venv (``.venv`` of this clone, Python 3.11) as a user runs it:
``python -m xiaozhi_hub --config <yaml>``, on free ports on 127.0.0.1, with a fresh data folder.
Simulated devices are the hub's device simulator, driven by ``sim_driver.py`` in the same venv.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
import re
import socket
import subprocess
import time
from typing import Any
from collections.abc import Callable

import yaml

ROOT = Path(__file__).resolve().parents[1]
HUB_PYTHON = Path(os.environ.get("HA_TEST_HUB_PYTHON", ROOT / ".venv" / "bin" / "python"))
# The hub's source tree the processes run from (this clone unless told otherwise, e.g. to try the
# component against another checkout of the hub with HA_TEST_HUB_ROOT=/path/to/it).
HUB_ROOT = Path(os.environ.get("HA_TEST_HUB_ROOT", ROOT))
# XIAOZHI_* variables are hub settings: a developer's shell must not change the test hubs.
_ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("XIAOZHI_")},
        "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(HUB_ROOT)}
READY_TIMEOUT = 90.0  # a busy shared machine can be slow to start Python and open the database


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubProcess:
    """``xiaozhi-hub`` in a subprocess; stop/start keep the ports and the data folder."""

    def __init__(self, workdir: Path, **overrides: Any) -> None:
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.ws_port = free_port()
        self.http_port = free_port()
        self.config = workdir / "hub.yaml"
        self.log = workdir / "hub.log"
        raw = yaml.safe_load((ROOT / "examples" / "fake.yaml").read_text())
        raw["server"] = {**raw.get("server", {}), "host": self.host, "ws_port": self.ws_port,
                         "http_port": self.http_port}
        raw["data_dir"] = str(workdir / "data")
        raw["mdns"] = {"enabled": False}
        raw.setdefault("fake", {})["llm_chunk_delay_ms"] = 0
        for section, values in overrides.items():
            raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
        self.config.write_text(yaml.safe_dump(raw))
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}/xiaozhi/v1/"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(HUB_PYTHON), "-m", "xiaozhi_hub", "--config", str(self.config)], cwd=HUB_ROOT,
                stdout=out, stderr=subprocess.STDOUT, env=_ENV)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[offset:].decode(errors="replace")
            if " ready in " in text:
                break
            if self.proc.poll() is not None:
                raise AssertionError(f"the hub exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        else:
            self.stop()
            raise AssertionError(f"the hub did not become ready:\n{self.log.read_text(errors='replace')}")
        self.token = self.read_token()

    def read_token(self) -> str:
        """The admin token, as a user gets it: ``xiaozhi-hub token``."""
        out = subprocess.run([str(HUB_PYTHON), "-m", "xiaozhi_hub", "token", "--config", str(self.config)],
                             cwd=HUB_ROOT, env=_ENV, capture_output=True, text=True, timeout=60, check=True)
        tokens = re.findall(r"\S{16,}", out.stdout)
        if not tokens:
            raise AssertionError(f"`xiaozhi-hub token` printed no token: {out.stdout!r} {out.stderr!r}")
        return tokens[-1]

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Sim:
    """One simulated ESP32 in a subprocess; ``events`` collects what it reported."""

    def __init__(self, proc: asyncio.subprocess.Process, device_id: str) -> None:
        self.proc = proc
        self.device_id = device_id
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, url: str, device_id: str | None = None, timeout: float = 60.0) -> Sim:
        args = [str(HUB_PYTHON), str(ROOT / "tests_ha" / "sim_driver.py"), "--url", url]
        if device_id:
            args += ["--device-id", device_id]
        proc = await asyncio.create_subprocess_exec(*args, cwd=HUB_ROOT, env=_ENV, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE)
        sim = cls(proc, device_id or "")
        sim._reader = asyncio.create_task(sim._read())
        first = await sim.wait_event(lambda e: e["event"] in ("connected", "error", "closed"), timeout)
        if first["event"] != "connected":
            await sim.close()
            raise AssertionError(f"the simulator did not connect: {first}")
        sim.device_id = first["device_id"]
        sim.connected_at = first["t"]
        return sim

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        async with self._changed:
            self.events.append({"event": "eof", "t": time.monotonic()})
            self._changed.notify_all()

    async def wait_event(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 30.0,
                         since: int = 0) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            async with self._changed:
                while True:
                    for event in self.events[since:]:
                        if pred(event):
                            return event
                    if self.events and self.events[-1]["event"] == "eof" and not pred(self.events[-1]):
                        raise AssertionError(f"the simulator exited; events: {self.events[-5:]}")
                    await self._changed.wait()
        return await asyncio.wait_for(wait(), timeout)

    async def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()

    async def turn(self, text: str | None = None, timeout: float = 90.0) -> dict[str, Any]:
        """One spoken turn (or a typed one with ``text``); returns the simulator's turn record."""
        mark = len(self.events)
        await (self.send(cmd="text", text=text) if text is not None else self.send(cmd="turn"))
        event = await self.wait_event(lambda e: e["event"] in ("turn", "error"), timeout, since=mark)
        assert event["event"] == "turn", event
        return event

    async def wait_heard(self, text: str, timeout: float = 60.0) -> dict[str, Any]:
        """The device played an announcement whose sentences make up ``text``."""
        def heard(e: dict[str, Any]) -> bool:
            return e["event"] == "heard" and " ".join(e["sentences"]).strip() == text
        return await self.wait_event(heard, timeout)

    async def close(self) -> float:
        """Drop the connection like the firmware; returns the time the simulator closed it."""
        closed_at = time.monotonic()
        if self.proc.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self.send(cmd="close")
            try:
                ev = await self.wait_event(lambda e: e["event"] in ("closed", "eof"), 30)
                closed_at = ev["t"]
            except (TimeoutError, AssertionError):
                pass
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            await self._reader
        return closed_at
