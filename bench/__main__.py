"""`make bench`: run every benchmark and print one table each.

    python -m bench                 # all, except the opt-in long suites
    python -m bench connections     # one or more by name
    python -m bench soak            # the 30-minute household run (opt-in, never in the default)
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time

SUITES = {
    "connections": ("1,000 idle connections (fake providers)", "bench.connections"),
    "conversations": ("50 devices conversing (fake providers, zero delay)", "bench.conversations"),
    "pipeline": ("Per-stage latency with the default offline models", "bench.pipeline"),
    "intents": ("Intent path vs LLM path", "bench.intents"),
    "tts": ("Piper alone: first audio and real-time factor (default voice)", "bench.tts"),
    "quality": ("Answer quality per installed LLM (bench/questions.yaml)", "bench.quality"),
    "wyoming": ("Wyoming STT/TTS next to the devices' path (default models)", "bench.wyoming"),
    "mqtt": ("MQTT say → first audio frame, 1 and 50 devices (fake providers, real Mosquitto)", "bench.mqtt"),
    "mqtt_udp": ("MQTT+UDP beside WebSocket: 200 idle devices, 20 conversing (fake providers)", "bench.mqtt_udp"),
}
# Long suites, run only when named.
OPT_IN = {
    "soak": ("A household for 30 minutes: hub memory over time (default models)", "bench.soak"),
}


def main(argv: list[str]) -> int:
    names = argv or list(SUITES)
    suites = {**SUITES, **OPT_IN}
    unknown = [n for n in names if n not in suites]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(suites)}", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        title, module_name = suites[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                print(f"\n## {title}\n\n(not available: {module_name} is missing)")
                continue
            raise
        from .common import print_table

        t0 = time.monotonic()
        try:
            rows = asyncio.run(module.run())
        except Exception as err:  # one failing suite must not hide the others' tables
            failed += 1
            print(f"\n## {title}\n\nFAILED: {err!r}")
            continue
        print_table(f"{title}  ({time.monotonic() - t0:.0f} s)", rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
