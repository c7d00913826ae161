"""The parts of the stack that the default hub run does not exercise, one step each, for the sandbox.

    python -m tests.privacy.stack --out FILE [--idle 10] [--models-dir models/installed]

* huggingface_hub (through faster-whisper), with the hub's offline switches: asking for a model by
  hub name (``download_model("tiny")``) must fail at once, without a lookup;
* Vosk: load the installed Vosk model and decode a second of audio;
* paho-mqtt: connect to a Mosquitto started here on 127.0.0.1 (a free port), publish with QoS 1,
  disconnect: the broker the user configured is the only thing it may contact;
* then ``--idle`` seconds for anything started in the background.

(faster-whisper/CTranslate2, llama.cpp, Piper/ONNX Runtime, zeroconf and aiohttp run in the hub
scenario.) Writes ``{"steps": {name: "ok" | "skipped: ..." | "failed: ..."}}`` to FILE.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from xiaozhi_hub import offline

offline.apply()     # as the hub's entry point does, before huggingface_hub is imported


def hub_name_is_refused() -> str:
    from faster_whisper import download_model

    t0 = time.monotonic()
    try:
        download_model("tiny")
    except Exception as err:  # huggingface_hub's offline error (LocalEntryNotFoundError or similar)
        return f"ok: refused in {time.monotonic() - t0:.2f}s ({type(err).__name__})"
    return "failed: a model was fetched by hub name"


def vosk_decodes(models_dir: Path) -> str:
    model_dir = models_dir / "vosk-ko" / "model"
    if not model_dir.exists():
        return "skipped: vosk-ko not installed"
    import numpy as np
    import vosk

    vosk.SetLogLevel(-1)
    rec = vosk.KaldiRecognizer(vosk.Model(str(model_dir)), 16000)
    noise = (np.random.default_rng(1).normal(0, 800, 16000)).astype("<i2").tobytes()
    rec.AcceptWaveform(noise)
    json.loads(rec.FinalResult())
    return "ok"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mqtt_round_trip(folder: Path) -> str:
    broker = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if broker is None:
        return "skipped: mosquitto not installed"
    import paho.mqtt.client as mqtt

    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([broker, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="privacy-check")
        connected = threading.Event()
        client.on_connect = lambda *a: connected.set()
        for _ in range(100):                     # the broker needs a moment to listen
            try:
                client.connect("127.0.0.1", port)
                break
            except ConnectionRefusedError:
                if proc.poll() is not None:
                    return f"failed: mosquitto exited with {proc.returncode}"
                time.sleep(0.1)
        client.loop_start()
        if not connected.wait(10):
            return "failed: no CONNACK"
        client.publish("xiaozhi/privacy", b"hello", qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        return "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.privacy.stack")
    p.add_argument("--out", required=True)
    p.add_argument("--idle", type=float, default=10.0)
    p.add_argument("--models-dir", default="models/installed")
    args = p.parse_args(argv)
    steps: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="xiaozhi-stack-") as tmp:
        for name, step in (("huggingface_hub", hub_name_is_refused),
                           ("vosk", lambda: vosk_decodes(Path(args.models_dir))),
                           ("paho-mqtt", lambda: mqtt_round_trip(Path(tmp)))):
            try:
                steps[name] = step()
            except Exception as err:
                steps[name] = f"failed: {err!r}"
        time.sleep(args.idle)                    # the idle period is what is being watched
    Path(args.out).write_text(json.dumps({"steps": steps}, indent=1))
    return 0 if all(not v.startswith("failed") for v in steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
