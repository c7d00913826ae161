"""A long-lived simulated device for the component tests, driven over stdin/stdout (JSON lines).

Runs in the **hub's** venv (``.venv/bin/python tests_ha/sim_driver.py --url ws://...``): it is the
hub's own device simulator (xiaozhi_hub.simulator), which the Home Assistant venv cannot import.

Commands on stdin:  {"cmd": "turn"}            speak (voice-like audio; the fake ASR hears its text)
                    {"cmd": "text", "text": ...} a typed question (listen detect)
                    {"cmd": "detect", "text": ...} the wake word (listen start + detect)
                    {"cmd": "close"}           drop the connection like the firmware and exit
Events on stdout:   {"event": "connected", "device_id", "t"}
                    {"event": "message", "data", "t"}       every JSON message the hub sent
                    {"event": "heard", "sentences", "frames", "samples", "t"}  speech played (tts start…stop)
                    {"event": "turn", "stt", "sentences", "frames", "t"}      a finished turn
                    {"event": "error", "error"}             and "closed"
``t`` is ``time.monotonic()``, comparable across processes on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.simulator import SimulatedDevice, SimulatorError


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}, ensure_ascii=False), flush=True)


async def watch(dev: SimulatedDevice) -> None:
    """Report every hub message, and every stretch of speech (tts start … stop) the device played:
    announcements and replies alike, with the sentences shown and the audio frames received."""
    seen = 0
    started: float | None = None
    sentences: list[str] = []
    while not dev.closed:
        try:
            await dev.wait_until(lambda n=seen: len(dev.messages) > n, timeout=3600)
        except (TimeoutError, SimulatorError):
            return
        for msg in dev.messages[seen:]:
            emit("message", data=dict(msg.data))
            if msg.type != "tts":
                continue
            state = msg.data.get("state")
            if state == "start" and started is None:
                started, sentences = msg.t, []
            elif state == "sentence_start":
                sentences.append(str(msg.data.get("text", "")))
            elif state == "stop" and started is not None:
                played = [a for turn in dev.turns for a in turn.played if started <= a.t <= msg.t]
                emit("heard", sentences=sentences, frames=len(played), samples=sum(a.samples for a in played))
                started = None
        seen = len(dev.messages)


async def commands(dev: SimulatedDevice) -> None:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            cmd = json.loads(line)
            if cmd["cmd"] == "close":
                return
            if cmd["cmd"] == "turn":
                turn = await dev.run_turn(pcmlib.voice_like(1500, 16000), mode="auto", timeout=60)
            elif cmd["cmd"] == "text":
                turn = await dev.run_turn(None, mode="auto", text=str(cmd["text"]), timeout=60)
            elif cmd["cmd"] == "detect":   # a wake word heard on the device; no turn is awaited
                await dev.start_listening("auto")
                await dev.detect(str(cmd["text"]))
                emit("sent", cmd="detect")
                continue
            else:
                emit("error", error=f"unknown command {cmd['cmd']!r}")
                continue
            emit("turn", stt=turn.stt_text, sentences=turn.sentences, frames=len(turn.played))
        except (ValueError, KeyError, TimeoutError, SimulatorError) as err:
            emit("error", error=f"{type(err).__name__}: {err}")


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--device-id")
    args = p.parse_args()
    try:
        dev = SimulatedDevice(args.url, device_id=args.device_id)
        await dev.connect()
    except SimulatorError as err:
        emit("error", error=str(err))
        return 2
    emit("connected", device_id=dev.device_id)
    watcher = asyncio.create_task(watch(dev))
    try:
        await commands(dev)
    finally:
        await dev.close()
        watcher.cancel()
        emit("closed")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
