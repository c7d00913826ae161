"""Per-stage latency with the default offline models, for 1 and 4 simultaneous devices.

The command "Turn on the kitchen light." is spoken by the hub's own Piper voice and streamed by
simulated devices in auto mode (the hub's VAD ends the turn). Every stage is measured from the
real end of speech (when the last voiced frame left the device), which is what a user feels:

  VAD end detected → ASR final → LLM first token → first sentence ready → first sentence
  synthesized → first audio frame on the wire.

Each device first says the command once unmeasured (the first turn after start-up competes with the
LLM's prompt-cache warm-up; it is reported on its own line), then the measured turns follow.

Also: the Vosk streaming path (the only registry Vosk model is Korean, so its transcript of English
speech is meaningless: latency only), where the answer starts on the draft transcript during the
end-of-speech silence; ASR/TTS real-time factors, LLM tokens/s, start-up time and hub RSS with the
models loaded (a separate hub process, after one turn).
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

from xiaozhi_hub.app import Hub
from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.settings import from_mapping
from xiaozhi_hub.simulator import SimulatedDevice

from .common import ROOT, hub_process, pct

INSTALLED = ROOT / "models" / "installed"
COMMAND = "Turn on the kitchen light."
STAGES = ("draft", "end_of_speech", "asr_final", "first_token", "first_sentence", "first_synth", "first_audio")
LABELS = {"draft": "draft transcript, speculative answer started",
          "end_of_speech": "VAD end of speech detected", "asr_final": "ASR final",
          "first_token": "LLM first token", "first_sentence": "first sentence ready",
          "first_synth": "first answer sentence synthesized",
          "first_audio": "first audio frame on the wire (answer, or 'One moment.')"}


def _config(data_dir: str, asr: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"server": {"host": "127.0.0.1", "ws_port": 0, "http_port": 0}, "mdns": {"enabled": False},
            "data_dir": data_dir, "models_dir": str(INSTALLED), "log_level": "warning",
            "asr": {"provider": "whisper", **(asr or {})}, "llm": {"provider": "llamacpp", "max_tokens": 64},
            "tts": {"provider": "piper"}, "session": {"idle_timeout": 600}}


VOSK = {"provider": "vosk", "model": "vosk-ko", "language": "ko"}
VARIED = ("What time is it?", "Set a timer for five minutes.", "Play some music in the living room.",
          "What will the weather be like tomorrow?", "Turn off all the lights.", "Tell me a joke about cats.")


async def _phrases(texts: tuple[str, ...]) -> list[bytes]:
    """16 kHz speech for ``texts`` from the Piper voice, loaded here just for that."""
    from xiaozhi_hub.compute import ComputePool
    from xiaozhi_hub.providers import tts_piper

    compute = ComputePool()
    tts = await tts_piper.create(from_mapping({"models_dir": str(INSTALLED)}), compute)
    try:
        out = []
        for text in texts:
            pcm = b"".join([c async for c in tts.synthesize(text)])
            out.append(pcmlib.silence(300, 16000) + pcmlib.resample(pcm, tts.sample_rate, 16000))
        return out
    finally:
        await tts.aclose()
        compute.shutdown()


async def _vosk_memory() -> tuple[float, float]:
    """RSS of a separate hub on the Vosk path: ready, and after six different questions (each
    recognizer's graph cache grows with new words)."""
    phrases = await _phrases(VARIED)
    with hub_process(_config("unused", VOSK), ready_timeout=180) as proc:
        ready = proc.rss_kb() / 1024
        async with SimulatedDevice(proc.ws_url, mcp=False) as dev:
            for pcm in phrases:
                await dev.run_turn(pcm, mode="auto", timeout=120)
        return ready, proc.rss_kb() / 1024


async def _speech(hub: Hub) -> bytes:
    tts = hub.ctx.providers.tts
    pcm = b"".join([c async for c in tts.synthesize(COMMAND)])
    return pcmlib.silence(300, 16000) + pcmlib.resample(pcm, tts.sample_rate, 16000)


def _first_audio(session: Any, turn: Any) -> float | None:
    stamps = session.turn_log[-1] if session.turn_log else {}
    if "first_audio" not in stamps or turn.speech_sent_until is None:
        return None
    return stamps["first_audio"] - turn.speech_sent_until


async def _device(hub: Hub, speech: bytes, turns: int, samples: dict[str, list[float]], stt: list[str],
                  answered: list[int], cold: list[float]) -> None:
    async with SimulatedDevice(f"ws://127.0.0.1:{hub.ctx.ws_port}/xiaozhi/v1/", mcp=False) as dev:
        session = hub.ctx.registry.by_device(dev.device_id)
        warm_up = await dev.run_turn(speech, mode="auto", timeout=120)
        latency = _first_audio(session, warm_up)
        if latency is not None:
            cold.append(latency)
        await asyncio.sleep(0.3)
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
            cold: list[float] = []
            m = hub.ctx.metrics
            await asyncio.gather(*(_device(hub, speech, turns, samples, stt, answered, cold) for _ in range(devices)))
            speech_s = (len(speech) / 32000) * devices * (turns + 1)
            asr_run = compute.stats["asr"]["run_s"] - asr0.get("run_s", 0)
            tts_run = compute.stats["tts"]["run_s"] - tts0.get("run_s", 0)
            llm_run = compute.stats["llm"]["run_s"] - llm0.get("run_s", 0)
            audio_out = m.counters["frames_out"] * hub.settings.audio.frame_duration_ms / 1000
            llm_stats = getattr(hub.ctx.providers.llm, "last_stats", None)
            return {"speech": speech, "samples": samples, "stt": stt, "answered": len(answered), "cold": cold,
                    "busy": m.counters["busy_answers"], "fillers": m.counters["fillers"],
                    "speculations": m.counters["speculations"], "hits": m.counters["speculation_hits"],
                    "asr_rtf": asr_run / speech_s if speech_s else 0.0,
                    "tts_rtf": tts_run / audio_out if audio_out else 0.0,
                    "llm_run": llm_run, "llm_stats": llm_stats}
        finally:
            await hub.stop()


def _stage_rows(prefix: str, r: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for stage in STAGES:
        v = r["samples"][stage]
        if not v:
            continue
        target = ""
        if stage == "first_audio" and prefix.startswith("1 device, whisper"):
            target = "p50 <= 1500 ms"
        if stage == "first_audio" and prefix.startswith("1 device, vosk"):
            target = "p50 <= 800 ms"
        rows.append((f"{prefix}: {LABELS[stage]}", f"p50 {pct(v, 50)} / p95 {pct(v, 95)} ms", target))
    if r["cold"]:
        rows.append((f"{prefix}: first audio of the first turn after start-up (not in the p50)",
                     " / ".join(f"{c * 1000:.0f}" for c in r["cold"]) + " ms", ""))
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
        vosk = await _round(VOSK, devices=1, turns=7)
        rows += _stage_rows("1 device, vosk (ko model, latency only)", vosk)
        rows.append(("1 device, vosk: speculative answers started / adopted",
                     f"{vosk['speculations']:.0f} / {vosk['hits']:.0f}", ""))
        rows.append(("ASR real-time factor (vosk ko, streaming, warm recognizers)", f"{vosk['asr_rtf']:.2f}", ""))
        ready, after = await _vosk_memory()
        rows.append(("hub RSS, vosk path: ready / after six different questions",
                     f"{ready:.0f} MB / {after:.0f} MB", ""))
    else:
        rows.append(("vosk path", "skipped: run `xiaozhi-hub models install vosk-ko`", ""))
    return rows
