"""`make bench`: run every benchmark and print one table each.

    python -m bench                 # all
    python -m bench connections     # one or more by name
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
    "quality": ("Answer quality per installed LLM (bench/questions.yaml)", "bench.quality"),
    "wyoming": ("Wyoming STT/TTS next to the devices' path (default models)", "bench.wyoming"),
    "mqtt": ("MQTT say → first audio frame, 1 and 50 devices (fake providers, real Mosquitto)", "bench.mqtt"),
}


def main(argv: list[str]) -> int:
    names = argv or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(SUITES)}", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        title, module_name = SUITES[name]
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
