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


# ---------------------------------------------------------------------------- shared by the household benches

GAP_S = 0.160          # a pause this long between two downlink frames of one reply is audible (issue 13)


def normalise(text: str) -> str:
    """Lower case, words only: how a transcript is compared with the words that were spoken."""
    return " ".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def hub_status(proc: HubProcess) -> dict[str, Any]:
    """The hub's ``/api/status`` (latency summaries from the hub's end of speech, counters)."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{proc.http_port}/api/status", timeout=10) as resp:
        return json.loads(resp.read())


class RssPeak:
    """The highest RSS of a process, sampled every ``period`` seconds while the ``with`` block runs."""

    def __init__(self, pid: int, period: float = 0.5) -> None:
        self.pid = pid
        self.period = period
        self.peak_kb = 0
        self.samples: list[tuple[float, int]] = []     # (monotonic time, kB)
        self._task: Any = None

    async def __aenter__(self) -> "RssPeak":
        import asyncio

        async def sample() -> None:
            while True:
                self.sample()
                await asyncio.sleep(self.period)

        self._task = asyncio.create_task(sample())
        return self

    def sample(self) -> int:
        kb = rss_kb(self.pid)
        self.peak_kb = max(self.peak_kb, kb)
        self.samples.append((time.monotonic(), kb))
        return kb

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        self.sample()


@dataclass
class ReplyAudio:
    gaps: int = 0            # pauses longer than GAP_S between two frames
    longest: float = 0.0     # the longest pause between two frames (seconds)
    underruns: int = 0       # times the device's playback buffer ran dry after the first frame


def reply_audio(turn: Any, filler_text: str, frame_s: float = 0.060) -> ReplyAudio:
    """How one reply sounded on the device: its pauses between frames and buffer underruns.

    The wait between "One moment." and the answer is what the filler is for and is not counted."""
    played = [a.t for a in turn.played]
    out = ReplyAudio()
    if len(played) < 2:
        return out
    answer_start = None
    if filler_text in turn.sentences:
        later = [m.t for m in turn.messages
                 if m.type == "tts" and m.data.get("state") == "sentence_start" and m.data.get("text") != filler_text]
        answer_start = later[0] if later else None
    play_end = played[0] + frame_s
    for a, b in zip(played, played[1:]):
        excused = answer_start is not None and a <= answer_start <= b
        if not excused:
            out.longest = max(out.longest, b - a)
            out.gaps += b - a > GAP_S
            out.underruns += b > play_end + 0.005
        play_end = max(play_end, b) + frame_s
    return out


def hub_metrics(proc: HubProcess) -> dict[str, float]:
    """The hub's ``/metrics`` as ``{name{labels}: value}`` (Prometheus text, as the hub writes it)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{proc.http_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out
