"""CLI: ``python -m xiaozhi_hub.simulator --url ws://HUB:8000/xiaozhi/v1/ --wav hello.wav --turns 2``
(``--ota http://HUB:8003/xiaozhi/ota/`` for a device on MQTT+UDP).

Runs conversation turns like a stock device and prints per-turn timings. Without ``--wav`` or
``--text`` it speaks a synthetic voice-like signal, which is enough for the hub's VAD and the fake
ASR. Exit status: 0 if every turn got a reply, 1 if not, 2 on connection/hello failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from ..audio import pcm as pcmlib
from .device import SimulatedDevice, SimulatorError, TurnRecord
from .mqtt_device import MqttSimulatedDevice

DEFAULT_URL = "ws://127.0.0.1:8000/xiaozhi/v1/"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m xiaozhi_hub.simulator",
                                description="Simulate a stock xiaozhi ESP32 device against a hub.")
    p.add_argument("--url", default=DEFAULT_URL, help=f"WebSocket URL (default {DEFAULT_URL})")
    p.add_argument("--ota", metavar="URL", help="boot on MQTT+UDP instead: OTA check at this URL (e.g. "
                   "http://HUB:8003/xiaozhi/ota/; the device must be set to mqtt), then MQTT and UDP audio")
    p.add_argument("--wav", help="WAV file to speak (any rate/channels; resampled to 16 kHz mono)")
    p.add_argument("--text", help="send this text as 'listen detect' instead of audio")
    p.add_argument("--mode", choices=("auto", "manual", "realtime"), default="auto")
    p.add_argument("--turns", type=int, default=1, help="number of turns (default 1)")
    p.add_argument("--token", help="access token (sent as 'Authorization: Bearer <token>')")
    p.add_argument("--device-id", help="MAC address, e.g. a1:b2:c3:d4:e5:f6 (default: random)")
    p.add_argument("--client-id", help="client UUID (default: random)")
    p.add_argument("--protocol-version", type=int, choices=(1, 2, 3), default=1)
    p.add_argument("--abort-after-ms", type=float, help="send 'abort' this long after the first reply audio")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each reply")
    p.add_argument("--save-audio", metavar="DIR", help="write each turn's decoded reply as turn_N.wav")
    p.add_argument("--json", action="store_true", help="print one JSON summary per turn")
    return p.parse_args(argv)


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} ms"


def print_turn(turn: TurnRecord, as_json: bool) -> None:
    s = turn.summary()
    if as_json:
        print(json.dumps(s, ensure_ascii=False))
        return
    print(f"turn {s['turn']} ({s['mode']}): stt={s['stt']!r}")
    print(f"  first audio {_fmt_ms(s['first_audio_latency_ms'])} after end of speech; "
          f"{s['frames']} frames, {s['audio_seconds']:.2f} s audio; "
          f"interval mean {_fmt_ms(s['mean_interval_ms'])}, max {_fmt_ms(s['max_interval_ms'])}")
    print(f"  sentences {s['sentences']}  emotions {s['emotions']}")
    print(f"  dropped {s['dropped']}, decode errors {s['decode_errors']}, queue overflow {s['overflow']}"
          + (f", abort->stop {_fmt_ms(s['abort_to_stop_ms'])}" if s["abort_to_stop_ms"] is not None else ""))


def load_speech(args: argparse.Namespace) -> tuple[bytes | None, int]:
    if args.text is not None and args.wav is None:
        return None, 16000
    if args.wav:
        return pcmlib.read_wav(args.wav)
    return pcmlib.voice_like(1500, 16000), 16000


async def run(args: argparse.Namespace) -> int:
    speech, rate = load_speech(args)
    ok = True
    try:
        device: SimulatedDevice
        if args.ota:
            device = MqttSimulatedDevice(args.ota, device_id=args.device_id, client_id=args.client_id)
        else:
            device = SimulatedDevice(args.url, device_id=args.device_id, client_id=args.client_id,
                                     token=args.token, protocol_version=args.protocol_version)
        async with device as dev:
            if isinstance(dev, MqttSimulatedDevice):
                print(f"connected as {dev.device_id} over MQTT to {dev.mqtt_settings['endpoint']}; "
                      "the audio channel opens with the first turn")
            else:
                print(f"connected as {dev.device_id}; session {dev.session_id!r}; downlink "
                      f"{dev.downlink_rate} Hz / {dev.downlink_frame_ms} ms")
            for _ in range(args.turns):
                try:
                    turn = await dev.run_turn(speech, mode=args.mode, text=args.text, sample_rate=rate,
                                              timeout=args.timeout, abort_after_ms=args.abort_after_ms)
                except TimeoutError:
                    print(f"turn {len(dev.turns)}: no complete reply within {args.timeout:g} s")
                    ok = False
                    break
                print_turn(turn, args.json)
                if args.save_audio:
                    out = Path(args.save_audio)
                    out.mkdir(parents=True, exist_ok=True)
                    pcmlib.write_wav(out / f"turn_{turn.index}.wav", bytes(turn.pcm), turn.downlink_rate)
            if dev.mcp_calls:
                print(f"MCP calls: {[c.method for c in dev.mcp_calls]}; volume now {dev.volume}")
            for err in dev.errors:
                print(f"warning: {err}", file=sys.stderr)
    except SimulatorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.turns < 1:
        print("error: --turns must be at least 1", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
