"""Vosk (Kaldi) streaming ASR: partial results while the user speaks, the final one at the end.

Vosk decodes incrementally, so almost all the work is done by the time the user stops; ``finish``
only flushes the last frames. That makes it the low-latency path (the issue's 0.8 s target) at the
cost of accuracy. The model is loaded once and shared.

**Recognizers are pooled and reused.** The small Vosk models decode with a lookahead composition of
two graphs (``HCLr.fst`` and ``Gr.fst``) that each ``KaldiRecognizer`` expands lazily into a cache of
its own. A fresh recognizer therefore decodes at about real time (the first 60 ms chunk of speech
alone took 0.6 s with the Korean model on a 2-core machine), while a recognizer that has already
decoded a few utterances runs at a real-time factor of about 0.05–0.15. Each stream borrows a warm
recognizer from the pool and gives it back, reset, when the utterance ends.

The cache only grows (about 5 MB for each utterance with new words, levelling off as the vocabulary
repeats), so a recognizer is retired after ``asr.recognizer_uses`` utterances and the pool keeps at
most ``asr.recognizer_pool`` idle ones.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..models import VOSK_BY_LANGUAGE, resolve_model
from .base import UPLINK_SAMPLE_RATE, ProviderError, Transcript

if TYPE_CHECKING:
    from ..compute import ComputePool
    from ..settings import Settings

log = logging.getLogger(__name__)

WARM_UP_SECONDS = 2.0     # noise decoded by each pooled recognizer at start-up, to expand its graph cache


class _Recognizer:
    """A KaldiRecognizer and how many utterances it has decoded."""

    __slots__ = ("kaldi", "uses")

    def __init__(self, kaldi: Any) -> None:
        self.kaldi = kaldi
        self.uses = 0


class VoskASR:
    """The shared Vosk model and the pool of warm recognizers; hands out one :class:`VoskStream` per utterance."""

    name = "vosk"
    streaming = True

    def __init__(self, model: Any, compute: "ComputePool", *, language: str | None,
                 pool_size: int = 1, max_uses: int = 200) -> None:
        self.model = model
        self.compute = compute
        self.language = language
        self.pool_size = max(0, pool_size)
        self.max_uses = max(1, max_uses)
        self._idle: list[_Recognizer] = []          # most recently used last
        self._lock = threading.Lock()               # the pool is used from compute threads
        self.created = 0                             # recognizers built (for tests and metrics)

    def open_stream(self) -> "VoskStream":
        return VoskStream(self)

    # -- the pool (called on compute threads) ------------------------------------------------------
    def take(self) -> _Recognizer:
        """A warm recognizer from the pool, or a new one (~70 ms to build)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        from vosk import KaldiRecognizer

        rec = _Recognizer(KaldiRecognizer(self.model, UPLINK_SAMPLE_RATE))
        with self._lock:
            self.created += 1
        return rec

    def give_back(self, rec: _Recognizer) -> None:
        """Return a recognizer after its utterance; it must already be reset."""
        rec.uses += 1
        if rec.uses >= self.max_uses:
            return          # retired: its graph cache has grown for long enough
        with self._lock:
            self._idle.append(rec)
            if len(self._idle) > self.pool_size:
                # Keep the warmest ones: drop the recognizer that has decoded the fewest utterances.
                self._idle.remove(min(self._idle, key=lambda r: r.uses))

    @property
    def idle(self) -> int:
        return len(self._idle)

    def warm_up(self, seconds: float = WARM_UP_SECONDS) -> None:
        """Fill the pool with recognizers that have each decoded some noise (blocking; start-up only)."""
        noise = (np.random.default_rng(7).standard_normal(int(UPLINK_SAMPLE_RATE * seconds)) * 3000)
        pcm = noise.astype("<i2").tobytes()
        chunk = UPLINK_SAMPLE_RATE * 60 // 1000 * 2
        recs = [self.take() for _ in range(self.pool_size)]
        for rec in recs:
            for i in range(0, len(pcm), chunk):
                rec.kaldi.AcceptWaveform(pcm[i:i + chunk])
            rec.kaldi.FinalResult()
        with self._lock:
            self._idle.extend(recs)

    async def aclose(self) -> None:
        with self._lock:
            self._idle.clear()
        self.model = None


class VoskStream:
    """One utterance. ``feed``/``finish`` calls are sequential, as the ASR protocol implies; a lock
    also keeps a job that outlived its cancelled caller from overlapping the recognizer's return.

    ``feed`` returns a partial :class:`Transcript` whenever the recognised text changes;
    ``draft`` finalises everything fed so far; ``last_partial`` keeps Vosk's raw result.
    """

    def __init__(self, asr: VoskASR) -> None:
        self._asr = asr
        self._rec: _Recognizer | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._segments: list[str] = []     # text of segments Kaldi already finalised (endpoints)
        self._shown = ""
        self.last_partial: dict[str, Any] = {}

    def _accept(self, pcm: bytes) -> dict[str, Any]:
        with self._lock:
            if self._closed:
                raise ProviderError("ASR stream is closed")
            if self._rec is None:
                self._rec = self._asr.take()
            kaldi = self._rec.kaldi
            if kaldi.AcceptWaveform(pcm):
                return json.loads(kaldi.Result())
            return json.loads(kaldi.PartialResult())

    def _text(self, tail: str = "") -> str:
        return " ".join(t for t in (*self._segments, tail) if t).strip()

    async def feed(self, pcm: bytes) -> Transcript | None:
        if self._closed:
            raise ProviderError("ASR stream is closed")
        if not pcm:
            return None
        result = await self._asr.compute.run("asr", self._accept, pcm)
        self.last_partial = result
        if "text" in result:        # Kaldi found an endpoint inside the utterance
            if result["text"]:
                self._segments.append(result["text"])
            text = self._text()
        else:
            text = self._text(result.get("partial", ""))
        if text and text != self._shown:
            self._shown = text
            return Transcript(text=text, final=False, language=self._asr.language)
        return None

    def _cut(self) -> dict[str, Any]:
        with self._lock:
            if self._closed or self._rec is None:
                return {"text": ""}
            return json.loads(self._rec.kaldi.FinalResult())   # ends the segment; the recognizer goes on

    async def draft(self) -> Transcript | None:
        """Finalise what was heard so far as a segment (30–80 ms) and return the whole text.

        Vosk's partial result is no substitute: it trails the audio by a decoding chunk plus the
        network's right context (~0.3 s), and it lacks the final-state scoring that often adds or
        changes the last word. Audio fed afterwards starts a new segment, so ``finish`` returns the
        draft's words plus anything said after it.
        """
        if self._closed:
            raise ProviderError("ASR stream is closed")
        if self._rec is None:
            return None
        result = await self._asr.compute.run("asr", self._cut)
        if result.get("text"):
            self._segments.append(result["text"])
        text = self._text()
        return Transcript(text=text, final=False, language=self._asr.language) if text else None

    def _final(self) -> dict[str, Any]:
        with self._lock:
            rec, self._rec = self._rec, None
            if rec is None:       # nothing was fed
                return {"text": ""}
            result = json.loads(rec.kaldi.FinalResult())   # also resets the recognizer
            self._asr.give_back(rec)                       # (not reached if Kaldi failed: dropped)
            return result

    async def finish(self) -> Transcript:
        if self._closed:
            raise ProviderError("ASR stream is closed")
        result = await self._asr.compute.run("asr", self._final)
        return Transcript(text=self._text(result.get("text", "")), final=True, language=self._asr.language)

    def _recycle(self) -> None:
        with self._lock:
            rec, self._rec = self._rec, None
            if rec is not None:
                # FinalResult, not Reset: after Reset() mid-word, the next utterance began with a
                # phantom word from the abandoned audio; finalising cleans the decoder up completely.
                rec.kaldi.FinalResult()
                self._asr.give_back(rec)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._rec is not None:
            # An abandoned utterance (barge-in, abort, disconnect): reset its recognizer and return it.
            try:
                await self._asr.compute.run("asr", self._recycle)
            except Exception as err:   # busy pool or shutdown: the recognizer is simply dropped
                log.debug("vosk recognizer not returned to the pool: %s", err)
                self._rec = None


def load_model(path: str) -> Any:
    """Load the Kaldi model (blocking, 1–3 s; run it in the compute pool)."""
    from vosk import Model, SetLogLevel

    SetLogLevel(-1)
    return Model(path)


async def create(settings: "Settings", compute: "ComputePool") -> VoskASR:
    """Resolve the model (default chosen by ``asr.language``), load it once, warm the pool, return the provider."""
    language = settings.asr.language
    default_id = VOSK_BY_LANGUAGE.get(language.split("-")[0].lower(), VOSK_BY_LANGUAGE["en"])
    path = resolve_model(settings.asr.model, role="asr", default_id=default_id, models_dir=settings.models_dir)
    compute.set_limit("asr", settings.asr.concurrency)
    t0 = time.monotonic()
    try:
        model = await compute.run("load", load_model, str(path))
    except Exception as err:
        raise ProviderError(f"asr model {path}: cannot load with Vosk ({err})") from err
    asr = VoskASR(model, compute, language=None if language in ("", "auto") else language,
                  pool_size=settings.asr.recognizer_pool, max_uses=settings.asr.recognizer_uses)
    t1 = time.monotonic()
    await compute.run("load", asr.warm_up)
    log.info("vosk model %s loaded in %.2fs, %d recognizer(s) warmed in %.2fs", path, t1 - t0,
             asr.idle, time.monotonic() - t1)
    return asr
