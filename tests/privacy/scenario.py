"""What the no-egress test does inside the sandbox: a user's first minutes with the default models.

    python -m tests.privacy.scenario --out FILE [--idle 25] [--models-dir models/installed]

1. speaks a command to a WAV with the installed Piper voice (as the other real-model tests do), in
   this process and without the hub's offline switches (xiaozhi_hub.offline is not applied here, and
   the test removes them from the environment): this checks the installed ONNX Runtime itself;
2. starts the hub as a user does (``python -m xiaozhi_hub --config hub.yaml``; a temp data folder,
   free ports, ``llm.max_tokens`` 16 to keep the turns short, everything else at its defaults,
   mDNS on) and waits for "ready" and for the LLM's prompt-cache warm-up;
3. holds two spoken turns with the device simulator (``python -m xiaozhi_hub.simulator --wav``), one
   answered by the intent path (a volume command: an MCP call to the device), one by the LLM;
4. leaves the hub idle for ``--idle`` seconds, then stops it with SIGTERM.

Writes ``{"turns": [...], "simulator_rc": N, "hub_rc": N, "hub_log": "...", "timings": {...}}``
to FILE. Run it through :mod:`tests.privacy.sandbox`; by itself it proves nothing.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# One turn on the intent path (no LLM, quick), one that goes to the LLM (no lights are configured).
COMMANDS = ("Set the volume to thirty.", "Turn on the kitchen light.")
READY_TIMEOUT = 180.0
TURN_TIMEOUT = 60.0
WARM_TIMEOUT = 60.0
WARM_LINE = "prompt cache warmed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_wavs(models_dir: Path, folder: Path) -> list[Path]:
    """Each command in the installed Piper voice, with 300 ms of silence either side."""
    from xiaozhi_hub.audio import pcm as pcmlib
    from xiaozhi_hub.models import DEFAULT_TTS, load_manifest
    from xiaozhi_hub.providers.tts_piper import load_voice

    onnx = load_manifest().get(DEFAULT_TTS).main_path(models_dir)
    voice = load_voice(str(onnx), f"{onnx}.json")
    rate = int(voice.config.sample_rate)
    pad = pcmlib.silence(300, rate)
    paths = []
    for i, command in enumerate(COMMANDS):
        speech = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(command))
        paths.append(folder / f"command{i}.wav")
        pcmlib.write_wav(paths[-1], pad + speech + pad, rate)
    return paths


def write_config(folder: Path, models_dir: Path) -> tuple[Path, int]:
    ws_port, http_port = free_port(), free_port()
    config = folder / "hub.yaml"
    config.write_text(json.dumps({"server": {"ws_port": ws_port, "http_port": http_port}, "llm": {"max_tokens": 16},
                                  "data_dir": str(folder / "data"), "models_dir": str(models_dir)}))
    return config, ws_port


class HubProcess:
    """``python -m xiaozhi_hub`` with its output collected; :meth:`wait_ready` blocks on "ready"."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "xiaozhi_hub", "--config", str(config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._warm = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if " ready in " in line:
                self._ready.set()
            if WARM_LINE in line:
                self._warm.set()
        self._ready.set()                                   # exited: wake the waiters
        self._warm.set()

    def wait_ready(self) -> bool:
        self._ready.wait(READY_TIMEOUT)
        return self.proc.poll() is None and any(" ready in " in line for line in self.lines)

    def wait_warm(self) -> bool:
        """Wait for the LLM's prompt-cache warm-up, so the turns do not compete with it (the
        answers would be "busy" then); go on anyway after WARM_TIMEOUT."""
        return self._warm.wait(WARM_TIMEOUT)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._reader.join(timeout=5)
        return rc


def talk(wavs: list[Path], ws_port: int) -> tuple[int, list[dict[str, Any]], str]:
    """One spoken turn per WAV by the simulator; the worst exit status, the turns' summaries, the
    simulator's output."""
    rc, turns, log = 0, [], ""
    for wav in wavs:
        out = subprocess.run([sys.executable, "-m", "xiaozhi_hub.simulator", "--url",
                              f"ws://127.0.0.1:{ws_port}/xiaozhi/v1/", "--wav", str(wav), "--json",
                              "--timeout", str(TURN_TIMEOUT)],
                             capture_output=True, text=True, timeout=3 * TURN_TIMEOUT)
        rc = max(rc, out.returncode)
        turns += [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        log += out.stdout + out.stderr
    return rc, turns, log


def run(models_dir: Path, idle: float) -> dict[str, Any]:
    timings: dict[str, float] = {}
    result: dict[str, Any] = {"turns": [], "simulator_rc": None, "hub_rc": None, "timings": timings}
    with tempfile.TemporaryDirectory(prefix="xiaozhi-privacy-") as tmp:
        folder = Path(tmp)
        t0 = time.monotonic()
        wavs = make_wavs(models_dir, folder)
        config, ws_port = write_config(folder, models_dir)
        hub = HubProcess(config)
        try:
            ready = hub.wait_ready()
            timings["ready"] = time.monotonic() - t0
            if ready:
                hub.wait_warm()
                timings["warm"] = time.monotonic() - t0
                result["simulator_rc"], result["turns"], result["simulator_log"] = talk(wavs, ws_port)
                timings["turns"] = time.monotonic() - t0
                time.sleep(idle)                            # the idle period is what is being watched
                timings["idle_end"] = time.monotonic() - t0
        finally:
            result["hub_rc"] = hub.stop()
            result["hub_log"] = "".join(hub.lines)
            timings["stopped"] = time.monotonic() - t0
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.privacy.scenario")
    p.add_argument("--out", required=True)
    p.add_argument("--idle", type=float, default=25.0)
    p.add_argument("--models-dir", default="models/installed")
    args = p.parse_args(argv)
    result = run(Path(args.models_dir).resolve(), args.idle)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0 if result["simulator_rc"] == 0 and result["hub_rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
