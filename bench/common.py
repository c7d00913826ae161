"""Helpers shared by the benchmarks: a hub in a subprocess, RSS, percentiles, table printing."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import yaml

from xiaozhi_hub.metrics import percentile

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@dataclass
class HubProcess:
    proc: subprocess.Popen[str]
    ws_port: int
    http_port: int
    startup_s: float
    data_dir: str

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/xiaozhi/v1/"

    def rss_kb(self) -> int:
        return rss_kb(self.proc.pid)


@contextlib.contextmanager
def hub_process(config: dict[str, Any], ready_timeout: float = 120.0) -> Iterator[HubProcess]:
    """Start ``python -m xiaozhi_hub`` with ``config`` (ports are chosen here) and stop it after."""
    with tempfile.TemporaryDirectory(prefix="xiaozhi-bench-") as tmp:
        ws_port, http_port = free_port(), free_port()
        cfg = {**config, "data_dir": tmp,
               "server": {**config.get("server", {}), "host": "127.0.0.1", "ws_port": ws_port, "http_port": http_port}}
        cfg.setdefault("mdns", {"enabled": False})
        cfg.setdefault("log_level", "warning")
        path = Path(tmp) / "hub.yaml"
        path.write_text(yaml.safe_dump(cfg))
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "xiaozhi_hub", "--config", str(path)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert proc.stdout is not None
        lines = []
        try:
            while True:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError("hub exited before ready:\n" + "".join(lines))
                lines.append(line)
                if " ready in " in line:
                    break
                if time.monotonic() - t0 > ready_timeout:
                    raise RuntimeError("hub not ready in time:\n" + "".join(lines))
            startup = time.monotonic() - t0
            yield HubProcess(proc, ws_port, http_port, startup, tmp)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def pct(values: Sequence[float], p: float, scale: float = 1000.0) -> str:
    return f"{percentile(values, p) * scale:.1f}" if values else "-"


def print_table(title: str, rows: Iterable[tuple[str, str, str]]) -> None:
    rows = list(rows)
    w1 = max(len(r[0]) for r in rows + [("metric", "", "")])
    w2 = max(len(r[1]) for r in rows + [("", "value", "")])
    print(f"\n## {title}\n")
    print(f"| {'metric'.ljust(w1)} | {'value'.ljust(w2)} | target |")
    print(f"|{'-' * (w1 + 2)}|{'-' * (w2 + 2)}|--------|")
    for name, value, target in rows:
        print(f"| {name.ljust(w1)} | {value.ljust(w2)} | {target} |")
    sys.stdout.flush()
