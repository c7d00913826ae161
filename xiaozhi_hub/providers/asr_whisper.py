"""faster-whisper ASR (CTranslate2, int8 on CPU): batch decode at the end of speech.

Whisper pads every input to 30 s, so decoding costs about the same for 1 s or 5 s of speech
(~0.8 s for Whisper base on 2 cores). That makes it worth starting the decode *before* the end
of speech is declared: the segmenter waits ``vad.silence_ms`` (600 ms) of silence before calling
``finish()``, and that wait is mostly wasted. A stream therefore starts an *early decode* once it
has seen ``asr.early_decode_ms`` of trailing non-speech; if nothing but silence arrives after it,
``finish()`` returns (or awaits) that result instead of decoding again. If the user speaks again
the early result is discarded. Early decodes only run when the ASR engine is idle, so they never
make another device wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import webrtcvad

from ..models import DEFAULT_ASR_WHISPER, resolve_model
from .base import UPLINK_SAMPLE_RATE, BusyError, ProviderError, Transcript

if TYPE_CHECKING:
    from ..compute import ComputePool
    from ..settings import Settings

log = logging.getLogger(__name__)

_FRAME_MS = 30
_FRAME_BYTES = UPLINK_SAMPLE_RATE * _FRAME_MS // 1000 * 2


class WhisperASR:
    """The shared faster-whisper model; hands out one :class:`WhisperStream` per utterance."""

    name = "whisper"
    streaming = False

    def __init__(self, model: Any, compute: "ComputePool", *, language: str | None, beam_size: int,
                 early_decode_ms: int = 150, vad_aggressiveness: int = 2) -> None:
        self.model = model
        self.compute = compute
        self.language = language
        self.beam_size = beam_size
        self.early_decode_ms = early_decode_ms
        self.vad_aggressiveness = vad_aggressiveness

    def open_stream(self) -> "WhisperStream":
        return WhisperStream(self)

    def transcribe_blocking(self, audio: np.ndarray) -> tuple[str, str | None]:
        """Decode float32 16 kHz audio (runs on a compute thread)."""
        segments, info = self.model.transcribe(
            audio, language=self.language, beam_size=self.beam_size, temperature=0.0,
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False)
        text = "".join(s.text for s in segments).strip()
        return text, getattr(info, "language", self.language)

    def engine_idle(self) -> bool:
        lim = self.compute.limit("asr")
        return lim.active < lim.limit and not lim.waiting

    async def aclose(self) -> None:
        self.model = None


class WhisperStream:
    """Collects one utterance's PCM; decodes it on :meth:`finish` (or early, during trailing silence)."""

    def __init__(self, asr: WhisperASR) -> None:
        self._asr = asr
        self._pcm = bytearray()
        self._vad = webrtcvad.Vad(asr.vad_aggressiveness)
        self._vad_pos = 0                    # bytes of _pcm already classified
        self._last_voiced_end = 0            # byte offset just after the last voiced frame
        self._early: asyncio.Task[tuple[str, str | None]] | None = None
        self._early_end = 0                  # byte length of the audio the early decode covers
        self._closed = False
        self.early_hits = 0                  # finish() used an early result (for tests and metrics)

    async def feed(self, pcm: bytes) -> Transcript | None:
        if self._closed:
            raise ProviderError("ASR stream is closed")
        self._pcm += pcm
        if self._asr.early_decode_ms > 0:
            self._classify()
            self._maybe_start_early()
        return None

    async def draft(self) -> Transcript | None:
        """None: a batch engine has no transcript before it decodes (its early decode covers that)."""
        return None

    def _classify(self) -> None:
        while self._vad_pos + _FRAME_BYTES <= len(self._pcm):
            frame = bytes(self._pcm[self._vad_pos:self._vad_pos + _FRAME_BYTES])
            self._vad_pos += _FRAME_BYTES
            if self._vad.is_speech(frame, UPLINK_SAMPLE_RATE):
                self._last_voiced_end = self._vad_pos

    def _maybe_start_early(self) -> None:
        if self._last_voiced_end == 0 or (self._early is not None and not self._early.done()):
            return
        silence_ms = (self._vad_pos - self._last_voiced_end) * 1000 // (UPLINK_SAMPLE_RATE * 2)
        if silence_ms < self._asr.early_decode_ms:
            return
        if self._early is not None and self._early_end >= self._last_voiced_end:
            return  # the current early result already covers every voiced frame
        if not self._asr.engine_idle():
            return  # never make another device wait for a speculative decode
        self._early_end = len(self._pcm)
        audio = _to_float(bytes(self._pcm))
        self._early = asyncio.ensure_future(self._early_decode(audio))

    async def _early_decode(self, audio: np.ndarray) -> tuple[str, str | None]:
        # max_wait=0: a speculative decode takes the engine only when it is free right now.
        async with self._asr.compute.slot("asr", max_wait=0.0):
            return await self._asr.compute.run_in_slot("asr", self._asr.transcribe_blocking, audio)

    async def finish(self) -> Transcript:
        if self._closed:
            raise ProviderError("ASR stream is closed")
        if self._asr.early_decode_ms > 0:
            self._classify()
        early = self._early
        if early is not None and self._early_end >= self._last_voiced_end > 0:
            try:
                text, lang = await asyncio.shield(early)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # busy or failed early decode: fall back to the normal one
                log.debug("early decode not used: %s", err)
            else:
                self.early_hits += 1
                return Transcript(text=text, final=True, language=lang)
        if not self._pcm:
            return Transcript(text="", final=True, language=self._asr.language)
        audio = _to_float(bytes(self._pcm))
        try:
            text, lang = await self._asr.compute.run("asr", self._asr.transcribe_blocking, audio)
        except BusyError:
            raise
        except Exception as err:
            raise ProviderError(f"whisper decode failed: {err}") from err
        return Transcript(text=text, final=True, language=lang)

    async def close(self) -> None:
        self._closed = True
        self._pcm = bytearray()
        early, self._early = self._early, None
        if early is not None and not early.done():
            # The decode itself cannot be interrupted; let it finish in the pool, ignore its result.
            early.add_done_callback(lambda t: t.cancelled() or t.exception())


def _to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def load_model(path: str, threads: int) -> Any:
    """Load the CTranslate2 model and decode once (blocking; run it in the compute pool).

    The first decode after loading is ~50% slower (allocations, page faults); paying it at start-up
    keeps it off the first user's turn.
    """
    from faster_whisper import WhisperModel

    logging.getLogger("faster_whisper").setLevel(logging.WARNING)   # it logs every decode at INFO
    model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1)
    segments, _info = model.transcribe(np.zeros(UPLINK_SAMPLE_RATE, dtype=np.float32), language="en",
                                       beam_size=1, without_timestamps=True, vad_filter=False)
    for _ in segments:
        pass
    return model


async def create(settings: "Settings", compute: "ComputePool") -> WhisperASR:
    """Resolve and load the model once (in the compute pool) and return the shared provider."""
    path = resolve_model(settings.asr.model, role="asr", default_id=DEFAULT_ASR_WHISPER,
                         models_dir=settings.models_dir)
    compute.set_limit("asr", settings.asr.concurrency)
    t0 = time.monotonic()
    try:
        model = await compute.run("load", load_model, str(path), settings.asr.threads)
    except Exception as err:
        raise ProviderError(f"asr model {path}: cannot load with faster-whisper ({err})") from err
    log.info("whisper model %s loaded in %.2fs", path, time.monotonic() - t0)
    language = None if settings.asr.language in ("", "auto") else settings.asr.language
    return WhisperASR(model, compute, language=language, beam_size=settings.asr.beam_size,
                      early_decode_ms=settings.asr.early_decode_ms,
                      vad_aggressiveness=settings.vad.aggressiveness)
