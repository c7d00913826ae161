"""Piper's speed through the hub's own TTS provider: first audio and real-time factor.

    .venv/bin/python -m tests.privacy.tts_speed [--rounds 5]

Loads the default voice the way the hub does (``tts_piper.create``: no ONNX Runtime thread
spinning), then for each sentence times the first PCM chunk (what the ``first_synth`` stage of
``make bench`` waits for) and the whole synthesis. Prints the ONNX Runtime version, the median first
audio of the short command, and the real-time factor over all sentences (synthesis time / audio
time). Used to compare ONNX Runtime versions (issue 15); a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

SHORT = "Turn on the kitchen light."
SENTENCES = (SHORT, "What time is it?", "Set a timer for five minutes.", "The volume is thirty now.",
             "Tomorrow will be sunny in the morning, with some clouds and a light breeze in the afternoon.",
             "Here is a joke about cats: why did the cat sit on the computer? To keep an eye on the mouse.")
INSTALLED = Path(__file__).resolve().parents[2] / "models" / "installed"


async def measure(rounds: int) -> dict[str, float]:
    import onnxruntime

    from xiaozhi_hub.compute import ComputePool
    from xiaozhi_hub.providers import tts_piper
    from xiaozhi_hub.settings import from_mapping

    compute = ComputePool()
    tts = await tts_piper.create(from_mapping({"models_dir": str(INSTALLED)}), compute)
    first: list[float] = []
    synth_s = audio_s = 0.0
    try:
        for _ in range(rounds):
            for text in SENTENCES:
                t0 = time.perf_counter()
                n = 0
                async for chunk in tts.synthesize(text):
                    if n == 0 and text == SHORT:
                        first.append(time.perf_counter() - t0)
                    n += len(chunk)
                synth_s += time.perf_counter() - t0
                audio_s += n / 2 / tts.sample_rate
    finally:
        await tts.aclose()
        compute.shutdown()
    return {"onnxruntime": onnxruntime.__version__, "first_audio_ms": statistics.median(first) * 1000,
            "rtf": synth_s / audio_s}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.privacy.tts_speed")
    p.add_argument("--rounds", type=int, default=5)
    r = asyncio.run(measure(p.parse_args().rounds))
    print(f"onnxruntime {r['onnxruntime']}: first audio (short command, median) {r['first_audio_ms']:.0f} ms, "
          f"RTF {r['rtf']:.3f}")


if __name__ == "__main__":
    main()
