"""Vosk (Kaldi) streaming ASR: partial results while the user speaks, the final one at the end.

Vosk decodes incrementally, so almost all the work is done by the time the user stops; ``finish``
only flushes the last frames. That makes it the low-latency path (the issue's 0.8 s target) at the
cost of accuracy. The model is loaded once; each utterance gets its own ``KaldiRecognizer``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ..models import VOSK_BY_LANGUAGE, resolve_model
from .base import UPLINK_SAMPLE_RATE, ProviderError, Transcript

if TYPE_CHECKING:
    from ..compute import ComputePool
    from ..settings import Settings

log = logging.getLogger(__name__)


class VoskASR:
    """The shared Vosk model; hands out one :class:`VoskStream` per utterance."""

    name = "vosk"
    streaming = True

    def __init__(self, model: Any, compute: "ComputePool", *, language: str | None) -> None:
        self.model = model
        self.compute = compute
        self.language = language

    def open_stream(self) -> "VoskStream":
        return VoskStream(self)

    def new_recognizer(self) -> Any:
        """A KaldiRecognizer (~60 ms to build, so it is made on a compute thread, not the event loop)."""
        from vosk import KaldiRecognizer

        return KaldiRecognizer(self.model, UPLINK_SAMPLE_RATE)

    async def aclose(self) -> None:
        self.model = None


class VoskStream:
    """One utterance. Calls must be sequential (the recognizer is not thread-safe), as the ASR protocol implies.

    ``feed`` returns a partial :class:`Transcript` whenever the recognised text changes;
    ``last_partial`` keeps Vosk's raw result dict for diagnostics.
    """

    def __init__(self, asr: VoskASR) -> None:
        self._asr = asr
        self._rec: Any = None
        self._closed = False
        self._segments: list[str] = []     # text of segments Kaldi already finalised (endpoints)
        self._shown = ""
        self.last_partial: dict[str, Any] = {}

    def _accept(self, pcm: bytes) -> dict[str, Any]:
        if self._rec is None:
            self._rec = self._asr.new_recognizer()
        if self._rec.AcceptWaveform(pcm):
            return json.loads(self._rec.Result())
        return json.loads(self._rec.PartialResult())

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

    def _final(self) -> dict[str, Any]:
        if self._rec is None:       # nothing was fed
            return {"text": ""}
        return json.loads(self._rec.FinalResult())

    async def finish(self) -> Transcript:
        if self._closed:
            raise ProviderError("ASR stream is closed")
        result = await self._asr.compute.run("asr", self._final)
        return Transcript(text=self._text(result.get("text", "")), final=True, language=self._asr.language)

    async def close(self) -> None:
        self._closed = True
        self._rec = None


def load_model(path: str) -> Any:
    """Load the Kaldi model (blocking, 1–3 s; run it in the compute pool)."""
    from vosk import Model, SetLogLevel

    SetLogLevel(-1)
    return Model(path)


async def create(settings: "Settings", compute: "ComputePool") -> VoskASR:
    """Resolve the model (default chosen by ``asr.language``), load it once, return the provider."""
    language = settings.asr.language
    default_id = VOSK_BY_LANGUAGE.get(language.split("-")[0].lower(), VOSK_BY_LANGUAGE["en"])
    path = resolve_model(settings.asr.model, role="asr", default_id=default_id, models_dir=settings.models_dir)
    compute.set_limit("asr", settings.asr.concurrency)
    t0 = time.monotonic()
    try:
        model = await compute.run("load", load_model, str(path))
    except Exception as err:
        raise ProviderError(f"asr model {path}: cannot load with Vosk ({err})") from err
    log.info("vosk model %s loaded in %.2fs", path, time.monotonic() - t0)
    return VoskASR(model, compute, language=None if language in ("", "auto") else language)
