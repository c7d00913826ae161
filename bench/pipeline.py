"""A household at once, on the default offline models: 1, 2 and 4 devices asking together.

Each round starts a fresh hub process (``python -m xiaozhi_hub``, models installed, as `make run`
does) and connects simulated devices (real Opus, stock-firmware behaviour, auto mode: the hub's VAD
ends each turn). The questions are the bench set below, spoken by the hub's own Piper voice; the
devices of a round start speaking within the same second (250 ms apart), and the next turn starts
when every device has heard its answer. The first turn begins right after "ready": the first
question after start-up counts like any other (and is also shown on its own line).

Measured from the device's side: end of speech (the last microphone frame sent) → first audio frame
heard; whether every turn got a real answer (no busy phrase), the "One moment." fillers, audible
gaps (> 160 ms between two frames of a reply, the filler's wait excepted), device buffer underruns
and 40-packet queue overflows, the transcripts against the spoken words, the hub's RSS (ready and
peak). The hub's own per-stage latencies (from its VAD end of speech) come from ``/api/status``.

Also: the bench set through the ASR alone (the fitted window against faster-whisper's 30 s window,
one by one and four in one pass), and the Vosk streaming path (the only registry Vosk model is
Korean, so its transcripts of English speech are meaningless: latency only).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.pipeline.phrases import BUSY_TEXT, ERROR_TEXT, FILLER_TEXT
from xiaozhi_hub.settings import from_mapping
from xiaozhi_hub.simulator import SimulatedDevice

from .common import ROOT, ReplyAudio, RssPeak, hub_metrics, hub_process, hub_status, normalise, pct, reply_audio

INSTALLED = ROOT / "models" / "installed"

# (what the device says, the words a correct transcript has). Whisper writes numbers as digits.
BENCH_SET = (
    ("Turn on the kitchen light.", "turn on the kitchen light"),
    ("What time is it?", "what time is it"),
    ("Set a timer for five minutes.", "set a timer for 5 minutes"),
    ("Play some music in the living room.", "play some music in the living room"),
    ("What will the weather be like tomorrow?", "what will the weather be like tomorrow"),
    ("Turn off all the lights.", "turn off all the lights"),
    ("What is the capital of France?", "what is the capital of france"),
    ("Tell me a story about a dragon.", "tell me a story about a dragon"),
    ("Set the volume to thirty.", "set the volume to 30"),
    ("Good morning.", "good morning"),
    ("Tell me a joke about cats.", "tell me a joke about cats"),   # base hears "the joke" in any window
    ("How far away is the moon?", "how far away is the moon"),
)
FIXED = {BUSY_TEXT, ERROR_TEXT, FILLER_TEXT}
STAGES = ("asr_final", "first_token", "first_sentence", "first_synth", "first_audio")
VOSK = {"provider": "vosk", "model": "vosk-ko", "language": "ko"}


def config(asr: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"models_dir": str(INSTALLED), "log_level": "warning", "mdns": {"enabled": False},
            "wyoming": {"enabled": False},
            "asr": {"provider": "whisper", **(asr or {})}, "llm": {"provider": "llamacpp", "max_tokens": 64},
            "tts": {"provider": "piper"}, "session": {"idle_timeout": 600}}


async def speech_set(texts: tuple[str, ...]) -> list[bytes]:
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


@dataclass
class TurnResult:
    device: int
    turn: int
    latency: float | None
    heard: str
    expected: str
    sentences: list[str]
    audio: ReplyAudio
    overflow: int

    @property
    def transcript_ok(self) -> bool:
        return normalise(self.heard) == self.expected

    @property
    def busy(self) -> bool:
        return BUSY_TEXT in self.sentences

    @property
    def filler(self) -> bool:
        return FILLER_TEXT in self.sentences

    @property
    def real_answer(self) -> bool:
        return any(s and s not in FIXED for s in self.sentences)


@dataclass
class Round:
    devices: int
    turns: list[TurnResult] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    rss_ready_mb: float = 0.0
    rss_peak_mb: float = 0.0
    startup_s: float = 0.0
    seconds: float = 0.0


async def household(devices: int, turns: int, speech: list[bytes], asr: dict[str, Any] | None = None,
                    stagger: float = 0.25) -> Round:
    """``devices`` devices asking together, ``turns`` times, on a fresh hub (see the module docstring)."""
    result = Round(devices)
    with hub_process(config(asr), ready_timeout=180) as proc:
        result.startup_s = proc.startup_s
        result.rss_ready_mb = proc.rss_kb() / 1024
        t0 = time.monotonic()
        async with RssPeak(proc.proc.pid) as rss:
            sims = [SimulatedDevice(proc.ws_url, mcp=False) for _ in range(devices)]
            await asyncio.gather(*(d.connect() for d in sims))
            try:
                for turn in range(turns):
                    picks = [(turn * devices + i) % len(speech) for i in range(devices)]
                    result.turns += await asyncio.gather(*(
                        _ask(sims[i], i, turn, speech[k], BENCH_SET[k][1], i * stagger) for i, k in enumerate(picks)))
                    await asyncio.sleep(0.5)
            finally:
                await asyncio.gather(*(d.close() for d in sims), return_exceptions=True)
        result.seconds = time.monotonic() - t0
        result.rss_peak_mb = rss.peak_kb / 1024
        result.status = hub_status(proc)
        result.metrics = hub_metrics(proc)
    return result


async def _ask(dev: SimulatedDevice, index: int, turn: int, pcm: bytes, expected: str, delay: float) -> TurnResult:
    await asyncio.sleep(delay)
    rec = await dev.run_turn(pcm, mode="auto", timeout=120)
    return TurnResult(index, turn, rec.first_audio_latency, rec.stt_text or "", expected, rec.sentences,
                      reply_audio(rec, FILLER_TEXT), rec.overflow)


def round_rows(name: str, r: Round, p50_target: str = "", p95_target: str = "") -> list[tuple[str, str, str]]:
    lat = [t.latency for t in r.turns if t.latency is not None]
    first = [t.latency for t in r.turns if t.turn == 0 and t.latency is not None]
    n = len(r.turns)
    rows = [
        (f"{name}: end of speech -> first audio", f"p50 {pct(lat, 50)} / p95 {pct(lat, 95)} / max {pct(lat, 100)} ms",
         " ".join(x for x in (p50_target, p95_target) if x)),
        (f"{name}: the first turn after start-up", " / ".join(f"{x * 1000:.0f}" for x in first) + " ms", "like any other"),
        (f"{name}: real answers / busy answers / 'One moment.' fillers",
         f"{sum(t.real_answer for t in r.turns)}/{n} / {sum(t.busy for t in r.turns)} / {sum(t.filler for t in r.turns)}",
         f"{n}/{n} / 0 / only when late"),
        (f"{name}: audible gaps (> 160 ms) / underruns / queue overflows",
         f"{sum(t.audio.gaps for t in r.turns)} / {sum(t.audio.underruns for t in r.turns)} / "
         f"{sum(t.overflow for t in r.turns)} (longest pause {max((t.audio.longest for t in r.turns), default=0) * 1000:.0f} ms)",
         "0 / 0 / 0"),
        (f"{name}: transcripts exact (bench set)", f"{sum(t.transcript_ok for t in r.turns)}/{n}", ""),
        (f"{name}: hub RSS ready / peak", f"{r.rss_ready_mb:.0f} / {r.rss_peak_mb:.0f} MB", "<= 900 MB"),
    ]
    stages = r.status.get("latency", {})
    parts = [f"{s} {stages[s]['p50'] * 1000:.0f}/{stages[s]['p95'] * 1000:.0f}" for s in STAGES
             if stages.get(s, {}).get("count")]
    if parts:
        rows.append((f"{name}: hub stages from its VAD end of speech, p50/p95 ms", ", ".join(parts), ""))
    rows += _gap_rows(name, r.metrics)
    rows += _estimate_rows(name, r.metrics)
    for t in r.turns:
        if not t.transcript_ok:
            rows.append((f"{name}: transcript of device {t.device} turn {t.turn}", repr(t.heard), repr(t.expected)))
    return rows


def _gap_rows(name: str, m: dict[str, float]) -> list[tuple[str, str, str]]:
    """The hub's own count of the audible pauses it sent, by what the answer waited for (the longest
    as the 99th percentile; a hub from before it counted them shows 0 / 0 / 0)."""
    parts = []
    for cause in ("text", "audio", "frames"):
        n = m.get(f"xiaozhi_reply_gap_{cause}_seconds_count", 0)
        longest = m.get(f'xiaozhi_reply_gap_{cause}_seconds{{quantile="0.99"}}')
        parts.append(f"{n:.0f}" + (f" ({longest * 1000:.0f} ms)" if longest is not None else ""))
    promoted = m.get("xiaozhi_llm_promoted_total", 0)
    return [(f"{name}: hub-side pauses > 160 ms, waiting for the next sentence's text / its audio / mid-sentence",
             " / ".join(parts), "0 / 0 / 0"),
            (f"{name}: LLM turns given to an answer running out of audio, ahead of new questions",
             f"{promoted:.0f}", "")]


def _estimate_rows(name: str, m: dict[str, float]) -> list[tuple[str, str, str]]:
    """The LLM queue's busy estimate against what happened (hubs from before it was checked: none)."""
    def q(metric: str, quantile: str) -> str:
        v = m.get(f'xiaozhi_{metric}_seconds{{quantile="{quantile}"}}')
        return "-" if v is None else f"{v * 1000:.0f}"

    if "xiaozhi_llm_wait_estimates_total" not in m:
        return []
    rows = [(f"{name}: LLM queue wait, estimated / real / |error|, p50 (p95) ms",
             f"{q('llm_wait_predicted', '0.5')} ({q('llm_wait_predicted', '0.95')}) / {q('llm_wait', '0.5')} "
             f"({q('llm_wait', '0.95')}) / {q('llm_wait_error', '0.5')} ({q('llm_wait_error', '0.95')}), "
             f"{m['xiaozhi_llm_wait_estimates_total']:.0f} waits", "")]
    refusals = m.get("xiaozhi_llm_busy_refusals_total", 0)
    if refusals:
        rows.append((f"{name}: LLM busy refusals: estimated wait / real drain of the work ahead, p50 ms",
                     f"{refusals:.0f} refused: {q('llm_busy_predicted', '0.5')} / {q('llm_busy_actual', '0.5')}",
                     "estimate > llm.max_wait only when the real wait is"))
    return rows


ASR_REPEATS = 3   # Piper's voice differs a little per synthesis: each phrase is spoken this many times


async def asr_alone(speech: list[bytes]) -> list[tuple[str, str, str]]:
    """The bench set through the Whisper provider alone: fitted window against the 30 s window,
    each phrase in ``ASR_REPEATS`` syntheses (``speech`` and more)."""
    from xiaozhi_hub.compute import ComputePool
    from xiaozhi_hub.providers import asr_whisper

    texts = tuple(text for text, _ in BENCH_SET)
    for _ in range(ASR_REPEATS - 1):
        speech = speech + await speech_set(texts)
    compute = ComputePool()
    asr = await asr_whisper.create(from_mapping({"models_dir": str(INSTALLED)}), compute)
    audio = [asr_whisper._to_float(p) for p in speech]
    decoder = getattr(asr, "decoder", None)
    if decoder is None:     # a hub from before the fitted window: its one decode is the 30 s window
        def full(batch: list[Any]) -> list[str]:
            return [asr.transcribe_blocking(a)[0] for a in batch]   # type: ignore[attr-defined]
        fitted = full
    else:
        def full(batch: list[Any]) -> list[str]:
            return [decoder.transcribe_full(a).text for a in batch]

        def fitted(batch: list[Any]) -> list[str]:
            return [d.text for d in decoder.transcribe(batch)]
    try:
        full_t, full_s = await _timed(compute, [[a] for a in audio], full)
        one_t, one_s = await _timed(compute, [[a] for a in audio], fitted)
        four_t, four_s = await _timed(compute, [audio[i:i + 4] for i in range(0, len(audio), 4)], fitted)
    finally:
        await asr.aclose()
        compute.shutdown()
    expected = [e for _, e in BENCH_SET] * ASR_REPEATS

    def exact(texts: list[str]) -> str:
        return f"{sum(normalise(t) == e for t, e in zip(texts, expected))}/{len(expected)}"

    same = sum(a == b for a, b in zip(full_t, one_t))
    return [
        (f"ASR bench set ({len(BENCH_SET)} phrases x {ASR_REPEATS}), words exact: 30 s window / fitted / fitted, 4 per pass",
         f"{exact(full_t)} / {exact(one_t)} / {exact(four_t)}", "no worse"),
        ("ASR bench set: fitted-window transcripts identical to the 30 s window's", f"{same}/{len(expected)}", ""),
        ("ASR decode per command: 30 s window / fitted window (median)",
         f"{statistics.median(full_s) * 1000:.0f} / {statistics.median(one_s) * 1000:.0f} ms", ""),
        ("ASR decode of 4 commands in one pass (median)", f"{statistics.median(four_s) * 1000:.0f} ms", ""),
    ]


async def _timed(compute: Any, batches: list[list[Any]], fn: Any) -> tuple[list[str], list[float]]:
    texts: list[str] = []
    seconds: list[float] = []
    await compute.run("asr", fn, batches[0])          # first call: allocations
    for batch in batches:
        t0 = time.perf_counter()
        texts += await compute.run("asr", fn, batch)
        seconds.append(time.perf_counter() - t0)
    return texts, seconds


async def run() -> list[tuple[str, str, str]]:
    speech = await speech_set(tuple(text for text, _ in BENCH_SET))
    rows = await asr_alone(speech)
    one = await household(1, 8, speech)
    rows.append(("start-up to ready (process launch, models installed)", f"{one.startup_s:.1f} s", "<= 10 s"))
    rows += round_rows("1 device", one, "p50 <= 800", "p95 <= 1100")
    rows += round_rows("2 devices", await household(2, 3, speech))
    rows += round_rows("4 devices", await household(4, 3, speech), "", "p95 <= 2500")
    if (INSTALLED / "vosk-ko").exists():
        vosk = await household(1, 5, speech, VOSK)
        lat = [t.latency for t in vosk.turns if t.latency is not None]
        rows.append(("1 device, vosk (ko model, latency only): end of speech -> first audio",
                     f"p50 {pct(lat, 50)} / p95 {pct(lat, 95)} ms", ""))
        rows.append(("1 device, vosk: hub RSS ready / peak", f"{vosk.rss_ready_mb:.0f} / {vosk.rss_peak_mb:.0f} MB", ""))
    else:
        rows.append(("vosk path", "skipped: run `xiaozhi-hub models install vosk-ko`", ""))
    return rows
