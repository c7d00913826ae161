"""Per-stage latency with the default offline models, for 1 and 4 simultaneous devices.

The command "Turn on the kitchen light." is spoken by the hub's own Piper voice and streamed by
simulated devices in auto mode (the hub's VAD ends the turn). Every stage is measured from the
real end of speech (when the last voiced frame left the device), which is what a user feels:

  VAD end detected → ASR final → LLM first token → first sentence ready → first sentence
  synthesized → first audio frame on the wire.

Also: the Vosk streaming path (the only registry Vosk model is Korean, so its transcript of English
speech is meaningless: latency only), ASR/TTS real-time factors, LLM tokens/s, start-up time and
hub RSS with the models loaded (a separate hub process, after one turn).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from xiaozhi_hub.app import Hub
from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.settings import from_mapping, merge
from xiaozhi_hub.simulator import SimulatedDevice

from .common import ROOT, hub_process, pct

INSTALLED = ROOT / "models" / "installed"
COMMAND = "Turn on the kitchen light."
STAGES = ("end_of_speech", "asr_final", "first_token", "first_sentence", "first_synth", "first_audio")
LABELS = {"end_of_speech": "VAD end of speech detected", "asr_final": "ASR final",
          "first_token": "LLM first token", "first_sentence": "first sentence ready",
          "first_synth": "first answer sentence synthesized",
          "first_audio": "first audio frame on the wire (answer, or 'One moment.')"}


def _config(data_dir: str, asr: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"server": {"host": "127.0.0.1", "ws_port": 0, "http_port": 0}, "mdns": {"enabled": False},
            "data_dir": data_dir, "models_dir": str(INSTALLED), "log_level": "warning",
            "asr": {"provider": "whisper", **(asr or {})}, "llm": {"provider": "llamacpp", "max_tokens": 64},
            "tts": {"provider": "piper"}, "session": {"idle_timeout": 600}}


async def _speech(hub: Hub) -> bytes:
    tts = hub.ctx.providers.tts
    pcm = b"".join([c async for c in tts.synthesize(COMMAND)])
    return pcmlib.silence(300, 16000) + pcmlib.resample(pcm, tts.sample_rate, 16000)


async def _device(hub: Hub, speech: bytes, turns: int, samples: dict[str, list[float]], stt: list[str],
                  answered: list[int]) -> None:
    async with SimulatedDevice(f"ws://127.0.0.1:{hub.ctx.ws_port}/xiaozhi/v1/", mcp=False) as dev:
        session = hub.ctx.registry.by_device(dev.device_id)
        for _ in range(turns):
            n_before = len(session.turn_log)
            turn = await dev.run_turn(speech, mode="auto", timeout=120)
            spoken_end = turn.speech_sent_until
            if turn.played:
                answered.append(1)
            stt.append(turn.stt_text or "")
            if len(session.turn_log) > n_before and spoken_end is not None:
                stamps = session.turn_log[-1]
                for stage in STAGES:
                    if stage in stamps:
                        samples[stage].append(stamps[stage] - spoken_end)
            await asyncio.sleep(0.3)


async def _round(asr: dict[str, Any] | None, devices: int, turns: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(from_mapping(_config(tmp, asr)))
        await hub.start()
        try:
            speech = await _speech(hub)
            compute = hub.ctx.compute
            asr0 = dict(compute.stats["asr"])
            tts0 = dict(compute.stats["tts"])
            llm0 = dict(compute.stats["llm"])
            samples: dict[str, list[float]] = {s: [] for s in STAGES}
            stt: list[str] = []
            answered: list[int] = []
            await asyncio.gather(*(_device(hub, speech, turns, samples, stt, answered) for _ in range(devices)))
            m = hub.ctx.extras["metrics"]
            speech_s = (len(speech) / 32000) * devices * turns
            asr_run = compute.stats["asr"]["run_s"] - asr0.get("run_s", 0)
            tts_run = compute.stats["tts"]["run_s"] - tts0.get("run_s", 0)
            llm_run = compute.stats["llm"]["run_s"] - llm0.get("run_s", 0)
            audio_out = m.counters["frames_out"] * hub.settings.audio.frame_duration_ms / 1000
            llm_stats = getattr(hub.ctx.providers.llm, "last_stats", None)
            return {"speech": speech, "samples": samples, "stt": stt, "answered": len(answered), "busy": m.counters["busy_answers"], "fillers": m.counters["fillers"],
                    "asr_rtf": asr_run / speech_s if speech_s else 0.0,
                    "tts_rtf": tts_run / audio_out if audio_out else 0.0,
                    "llm_run": llm_run, "llm_stats": llm_stats}
        finally:
            await hub.stop()


def _stage_rows(prefix: str, r: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for stage in STAGES:
        v = r["samples"][stage]
        target = ""
        if stage == "first_audio" and prefix.startswith("1 device, whisper"):
            target = "p50 <= 1500 ms"
        if stage == "first_audio" and prefix.startswith("1 device, vosk"):
            target = "p50 <= 800 ms"
        rows.append((f"{prefix}: {LABELS[stage]}", f"p50 {pct(v, 50)} / p95 {pct(v, 95)} ms", target))
    return rows


async def run() -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    one = await _round(None, devices=1, turns=5)
    # Start-up and memory: a separate hub process, like `make run`, measured after one real turn.
    with hub_process(_config("unused"), ready_timeout=180) as proc:
        rss_ready = proc.rss_kb() / 1024
        async with SimulatedDevice(proc.ws_url, mcp=False) as dev:
            await dev.run_turn(one["speech"], mode="auto", timeout=120)
        rss_turn = proc.rss_kb() / 1024
        startup = proc.startup_s
    rows.append(("start-up to ready (process launch, models installed)", f"{startup:.1f} s", "<= 10 s"))
    rows.append(("hub RSS with default models: ready / after a turn", f"{rss_ready:.0f} MB / {rss_turn:.0f} MB",
                 "<= 900 MB"))

    rows += _stage_rows("1 device, whisper", one)
    ok = sum(1 for t in one["stt"] if "kitchen light" in t.lower())
    rows.append(("1 device, whisper: transcripts correct", f"{ok}/{len(one['stt'])}", ""))
    rows.append(("ASR real-time factor (whisper base, int8)", f"{one['asr_rtf']:.2f}", ""))
    rows.append(("TTS real-time factor (piper joe medium)", f"{one['tts_rtf']:.3f}", ""))
    st = one["llm_stats"]
    if st is not None and st.seconds:
        rows.append(("LLM tokens/s (SmolLM2-135M Q4_1, last reply)", f"{st.completion_tokens / st.seconds:.0f}", ""))

    four = await _round(None, devices=4, turns=3)
    rows += _stage_rows("4 devices, whisper", four)
    rows.append(("4 devices: turns answered with audio / busy answers / 'One moment.' fillers",
                 f"{four['answered']}/{4 * 3} / {four['busy']} / {four['fillers']}", "all answered"))
    rows.append(("4 devices: longest silence after end of speech",
                 f"{max(four['samples']['first_audio']) * 1000:.0f} ms" if four["samples"]["first_audio"] else "-", ""))

    if (INSTALLED / "vosk-ko").exists():
        vosk = await _round({"provider": "vosk", "model": "vosk-ko", "language": "ko"}, devices=1, turns=5)
        rows += _stage_rows("1 device, vosk (ko model, latency only)", vosk)
        rows.append(("ASR real-time factor (vosk ko, streaming)", f"{vosk['asr_rtf']:.2f}", ""))
    else:
        rows.append(("vosk path", "skipped: run `xiaozhi-hub models install vosk-ko`", ""))
    return rows
