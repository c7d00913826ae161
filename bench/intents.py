"""Intent path vs LLM path: how much the fast local intents save.

Two measurements:

* **match time** — the intent matcher alone over a corpus of English and Chinese commands and
  non-commands (in process; the budget is 50 ms per utterance);
* **end of speech → first audio frame** — a simulated device in push-to-talk mode (end of speech =
  ``listen stop``) against a hub subprocess with the fake ASR and TTS, for the same spoken command
  ("set the volume to thirty") answered by the intent path, by the LLM path with the fake LLM
  calling the device tool, and by a plain fake-LLM reply of the same length. The fake LLM is
  instant, so the LLM rows are a lower bound; when the default small model is installed, a row with
  the real llama.cpp LLM shows what a real model costs.

    python -m bench intents          # as part of make bench
    python -m bench.intents          # alone
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.pipeline.intents import BUILTIN_TEMPLATES, IntentMatcher
from xiaozhi_hub.simulator import SimulatedDevice

from .common import ROOT, hub_process, pct

TURNS = 8
REPLY = "Volume set to 30."          # every path speaks the same text, so TTS costs the same
COMMAND = "set the volume to thirty"
VOLUME_CALL = json.dumps({"name": "self_audio_speaker_set_volume", "arguments": {"volume": 30}})

CORPUS = [
    "set the volume to thirty five", "turn it down a bit", "set a timer for one hour and thirty minutes",
    "remind me in ten minutes to take out the trash", "wake me up at seven thirty", "what time is it",
    "goodbye", "tell me a long story about a dragon who lived in the mountains", "what is the capital of france",
    "音量调到三十", "一个半小时后提醒我关火", "明天早上七点叫我起床", "请问今天的天气怎么样呢我想出去走走", "讲个笑话",
]


def match_rows() -> list[tuple[str, str, str]]:
    t0 = time.perf_counter()
    matcher = IntentMatcher(BUILTIN_TEMPLATES)
    compile_ms = (time.perf_counter() - t0) * 1000
    for text in CORPUS:
        matcher.match(text)  # warm up
    samples: list[float] = []
    for _ in range(50):
        for text in CORPUS:
            t = time.perf_counter()
            matcher.match(text)
            samples.append(time.perf_counter() - t)
    return [
        ("intent templates compiled at startup", f"{compile_ms:.0f} ms", "once"),
        (f"intent match p50 / p95 / max over {len(CORPUS)} sentences (µs)",
         f"{pct(samples, 50, 1e6)} / {pct(samples, 95, 1e6)} / {max(samples) * 1e6:.0f}", "< 50 ms"),
    ]


async def _turns(url: str, turns: int, speech: bytes) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    sentences: list[str] = []
    async with SimulatedDevice(url) as dev:
        await asyncio.sleep(0.5)  # the hub lists the device's MCP tools right after the hello
        for _ in range(turns):
            turn = await dev.run_turn(speech, mode="manual", timeout=60)
            if turn.first_audio_latency is not None:
                latencies.append(turn.first_audio_latency)
            sentences = turn.sentences
            await asyncio.sleep(0.2)
    return latencies, sentences


def _real_llm_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return False
    from xiaozhi_hub.models import load_manifest

    entry = load_manifest().get("smollm2-135m-instruct")
    return entry.main_path(ROOT / "models" / "installed").exists()


async def run(turns: int = TURNS) -> list[tuple[str, str, str]]:
    rows = match_rows()
    speech = pcmlib.voice_like(1000)
    base: dict[str, Any] = {"asr": {"provider": "fake"}, "llm": {"provider": "fake"}, "tts": {"provider": "fake"},
                            "session": {"idle_timeout": 600}}
    paths: list[tuple[str, dict[str, Any]]] = [
        ("intent path", {"fake": {"asr_text": COMMAND}}),
        ("LLM path, fake LLM calls the device tool", {
            "fake": {"asr_text": COMMAND, "llm_reply": REPLY, "llm_tool_call": VOLUME_CALL},
            "intents": {"enabled": False}}),
        ("LLM path, fake LLM text only", {
            "fake": {"asr_text": "how loud can you be", "llm_reply": REPLY}}),
    ]
    if _real_llm_available():
        paths.append(("LLM path, real smollm2-135m (llama.cpp)", {
            "fake": {"asr_text": "how loud can you be"},
            "llm": {"provider": "llamacpp", "model": "smollm2-135m-instruct", "max_tokens": 24,
                    "temperature": 0}}))
    medians: dict[str, float] = {}
    for name, extra in paths:
        config = {**base, **{k: {**base.get(k, {}), **v} for k, v in extra.items()}}
        with hub_process(config) as hub:
            latencies, sentences = await _turns(hub.ws_url, turns, speech)
        if not latencies:
            rows.append((f"{name}: end of speech → first audio", "no audio", ""))
            continue
        medians[name] = statistics.median(latencies)
        rows.append((f"{name}: end of speech → first audio p50 / p95 (ms)",
                     f"{pct(latencies, 50)} / {pct(latencies, 95)}",
                     f"said {' '.join(sentences)!r}"[:60]))
    intent = medians.get("intent path")
    if intent is not None:
        for name, median in medians.items():
            if name != "intent path":
                rows.append((f"saved by the intent path vs {name.removeprefix('LLM path, ')} (p50)",
                             f"{(median - intent) * 1000:.0f} ms", ""))
    return rows


if __name__ == "__main__":
    from .common import print_table

    print_table("Intent path vs LLM path", asyncio.run(run()))
