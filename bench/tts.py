"""Piper on its own: time to the first audio of a sentence and the real-time factor.

The voice is loaded as the hub loads it (``providers.tts_piper.load_voice``: ONNX Runtime with its
thread spinning off) and asked for the same short household sentences, several rounds; reported are
medians. It isolates the speech engine from the rest of the pipeline, so a change of ONNX Runtime
(the telemetry-free pin, README "Privacy") or of Piper shows here first. Runs against the default
voice in ``models/installed`` (``make bench`` installs it).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from .common import ROOT

VOICE = ROOT / "models" / "installed" / "piper-en_US-joe-medium" / "en_US-joe-medium.onnx"
SENTENCES = [
    "Okay.",
    "The kitchen light is on now.",
    "It is twenty past seven in the evening.",
    "Your timer for ten minutes has started, I will tell you when it is done.",
    "Paris is the capital of France.",
]
ROUNDS = 5


def _measure(voice: object) -> tuple[list[float], list[float], list[float]]:
    first: list[float] = []
    rtf: list[float] = []
    short_first: list[float] = []
    rate = int(voice.config.sample_rate)  # type: ignore[attr-defined]
    for _ in range(ROUNDS):
        for text in SENTENCES:
            t0 = time.perf_counter()
            t_first = None
            samples = 0
            for chunk in voice.synthesize(text):  # type: ignore[attr-defined]
                if t_first is None:
                    t_first = time.perf_counter() - t0
                samples += len(chunk.audio_int16_bytes) // 2
            total = time.perf_counter() - t0
            assert t_first is not None and samples > 0, f"no audio for {text!r}"
            first.append(t_first)
            rtf.append(total / (samples / rate))
            if text == "The kitchen light is on now.":
                short_first.append(t_first)
    return first, rtf, short_first


async def run() -> list[tuple[str, str, str]]:
    try:
        from xiaozhi_hub import offline
        offline.apply()                 # as the hub does before any engine loads
    except ImportError:                 # a tree from before the privacy switches (for before/after runs)
        pass
    import onnxruntime

    from xiaozhi_hub.providers.tts_piper import load_voice

    if not VOICE.exists():
        raise RuntimeError(f"{VOICE} is missing: run `xiaozhi-hub models install --defaults`")
    t0 = time.perf_counter()
    voice = load_voice(str(VOICE), f"{VOICE}.json")
    load_s = time.perf_counter() - t0
    first, rtf, short_first = _measure(voice)
    ms = 1000.0
    return [
        ("onnxruntime version", onnxruntime.__version__, ""),
        ("voice load + warm-up", f"{load_s * ms:.0f} ms", ""),
        (f"first audio chunk, 'The kitchen light is on now.' (median of {ROUNDS})",
         f"{statistics.median(short_first) * ms:.1f} ms", ""),
        (f"first audio chunk, {len(SENTENCES)} sentences x {ROUNDS}: median / max",
         f"{statistics.median(first) * ms:.1f} / {max(first) * ms:.1f} ms", ""),
        ("real-time factor: median / max", f"{statistics.median(rtf):.3f} / {max(rtf):.3f}", "< 0.1"),
    ]
