"""faster-whisper ASR (CTranslate2, int8 on CPU): decoded at the end of speech, in a fitted window.

Each utterance is decoded in an encoder window fitted to it (:mod:`.whisper_window`: ~0.15 s for a
command instead of ~0.7 s for the padded 30 s), and utterances from several devices that wait for
the engine at the same time are decoded together in one pass (:class:`DecodeBatcher`).

The decode can start *before* the end of speech is declared: the segmenter waits ``vad.silence_ms``
of silence before calling ``finish()``, and that wait is mostly wasted. A stream therefore starts an
*early decode* once it has seen ``asr.early_decode_ms`` of trailing non-speech; if nothing but
silence arrives after it, ``finish()`` returns (or awaits) that result instead of decoding again, and
:meth:`WhisperStream.draft` hands it to the session, which starts the answer on it while the VAD is
still waiting. If the user speaks again the early result is discarded. Early decodes only run when
the ASR engine is idle, so they never make another device wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import webrtcvad

from ..models import DEFAULT_ASR_WHISPER, resolve_model
from .base import UPLINK_SAMPLE_RATE, BusyError, ProviderError, Transcript
from .whisper_window import Decoded, WindowDecoder

if TYPE_CHECKING:
    from ..compute import ComputePool
    from ..settings import Settings

log = logging.getLogger(__name__)

_FRAME_MS = 30
_FRAME_BYTES = UPLINK_SAMPLE_RATE * _FRAME_MS // 1000 * 2

_Waiter = tuple[np.ndarray, "asyncio.Future[Decoded]"]


class DecodeBatcher:
    """Utterances waiting for the ASR engine are decoded together: one pass for up to ``batch_max``.

    Whoever finishes first starts a runner; it takes the engine's slot (FIFO with every other ASR
    user), then everything that queued up meanwhile. A waiter that is cancelled keeps nothing: its
    utterance is dropped from the next batch (one already being decoded cannot be interrupted).
    """

    def __init__(self, compute: "ComputePool", decode: Callable[[Sequence[np.ndarray]], list[Decoded]],
                 batch_max: int) -> None:
        self.compute = compute
        self.decode = decode
        self.batch_max = max(1, batch_max)
        self._waiting: list[_Waiter] = []
        self._runner: asyncio.Task[None] | None = None
        self.batches = 0               # decode passes run
        self.utterances = 0            # utterances they decoded

    def idle(self) -> bool:
        lim = self.compute.limit("asr")
        return not self._waiting and lim.active < lim.limit and not lim.waiting

    async def transcribe(self, audio: np.ndarray) -> Decoded:
        fut: asyncio.Future[Decoded] = asyncio.get_running_loop().create_future()
        self._waiting.append((audio, fut))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="whisper-batches")
        return await fut

    async def _run(self) -> None:
        while any(not fut.done() for _, fut in self._waiting):
            try:
                async with self.compute.slot("asr"):
                    await self._one_batch()
            except BusyError as err:
                self._fail(self._take(len(self._waiting)), err)

    def _take(self, n: int) -> list[_Waiter]:
        live = [w for w in self._waiting if not w[1].done()]
        self._waiting = live[n:]
        return live[:n]

    async def _one_batch(self) -> None:
        batch = self._take(self.batch_max)
        if not batch:
            return
        try:
            results = await self.compute.run_in_slot("asr", self.decode, [audio for audio, _ in batch])
        except Exception as err:
            self._fail(batch, ProviderError(f"whisper decode failed: {err}"))
            return
        self.batches += 1
        self.utterances += len(batch)
        for (_, fut), result in zip(batch, results):
            if not fut.done():
                fut.set_result(result)

    @staticmethod
    def _fail(batch: list[_Waiter], err: Exception) -> None:
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(err)

    def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        self._fail(self._take(len(self._waiting)), ProviderError("whisper model is closed"))


class WhisperASR:
    """The shared faster-whisper model; hands out one :class:`WhisperStream` per utterance."""

    name = "whisper"
    streaming = False

    def __init__(self, model: Any, compute: "ComputePool", *, language: str | None, beam_size: int,
                 early_decode_ms: int = 150, vad_aggressiveness: int = 2, window_s: float = 10.0,
                 batch_max: int = 4) -> None:
        self.model = model
        self.compute = compute
        self.language = language
        self.beam_size = beam_size
        self.early_decode_ms = early_decode_ms
        self.vad_aggressiveness = vad_aggressiveness
        self.decoder = WindowDecoder(model, language=language, beam_size=beam_size, window_s=window_s)
        self.batcher = DecodeBatcher(compute, self.decoder.transcribe, batch_max)

    def open_stream(self) -> "WhisperStream":
        return WhisperStream(self)

    async def transcribe(self, audio: np.ndarray) -> Decoded:
        """Decode float32 16 kHz audio, batched with whatever else is waiting."""
        if self.model is None:
            raise ProviderError("whisper model is closed")
        return await self.batcher.transcribe(audio)

    def engine_idle(self) -> bool:
        return self.batcher.idle()

    async def aclose(self) -> None:
        self.batcher.close()
        self.model = None


class WhisperStream:
    """Collects one utterance's PCM; decodes it on :meth:`finish` (or early, during trailing silence)."""

    def __init__(self, asr: WhisperASR) -> None:
        self._asr = asr
        self._pcm = bytearray()
        self._vad = webrtcvad.Vad(asr.vad_aggressiveness)
        self._vad_pos = 0                    # bytes of _pcm already classified
        self._last_voiced_end = 0            # byte offset just after the last voiced frame
        self._early: asyncio.Task[Decoded] | None = None
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
        """The early decode's transcript (started now if the engine is idle and none covers the
        speech yet), or None when the engine is busy: the session may start the answer on it."""
        if self._closed or self._asr.early_decode_ms <= 0:
            return None
        self._classify()
        if not self._early_covers_speech():
            self._start_early()
        if self._early is None or not self._early_covers_speech():
            return None
        try:
            decoded = await asyncio.shield(self._early)
        except asyncio.CancelledError:
            raise
        except Exception:           # the final decode will report it
            return None
        return Transcript(text=decoded.text, final=False, language=decoded.language)

    def _classify(self) -> None:
        while self._vad_pos + _FRAME_BYTES <= len(self._pcm):
            frame = bytes(self._pcm[self._vad_pos:self._vad_pos + _FRAME_BYTES])
            self._vad_pos += _FRAME_BYTES
            if self._vad.is_speech(frame, UPLINK_SAMPLE_RATE):
                self._last_voiced_end = self._vad_pos

    def _early_covers_speech(self) -> bool:
        return self._early is not None and self._early_end >= self._last_voiced_end > 0

    def _maybe_start_early(self) -> None:
        if self._last_voiced_end == 0 or (self._early is not None and not self._early.done()):
            return
        silence_ms = (self._vad_pos - self._last_voiced_end) * 1000 // (UPLINK_SAMPLE_RATE * 2)
        if silence_ms < self._asr.early_decode_ms or self._early_covers_speech():
            return
        self._start_early()

    def _start_early(self) -> None:
        if self._last_voiced_end == 0 or (self._early is not None and not self._early.done()):
            return
        if not self._asr.engine_idle():
            return  # never make another device wait for a speculative decode
        self._early_end = len(self._pcm)
        self._early = asyncio.ensure_future(self._asr.transcribe(_to_float(bytes(self._pcm))))

    async def finish(self) -> Transcript:
        if self._closed:
            raise ProviderError("ASR stream is closed")
        if self._asr.early_decode_ms > 0:
            self._classify()
        early = self._early
        if early is not None and self._early_covers_speech():
            try:
                decoded = await asyncio.shield(early)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # failed early decode: fall back to the normal one
                log.debug("early decode not used: %s", err)
            else:
                self.early_hits += 1
                return Transcript(text=decoded.text, final=True, language=decoded.language)
        if not self._pcm:
            return Transcript(text="", final=True, language=self._asr.language)
        decoded = await self._asr.transcribe(_to_float(bytes(self._pcm)))
        return Transcript(text=decoded.text, final=True, language=decoded.language)

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
    asr = WhisperASR(model, compute, language=language, beam_size=settings.asr.beam_size,
                     early_decode_ms=settings.asr.early_decode_ms,
                     vad_aggressiveness=settings.vad.aggressiveness, window_s=settings.asr.window_s,
                     batch_max=settings.asr.batch_max)
    # The fitted window's first pass allocates its buffers: pay that now, not on the first turn.
    await compute.run("load", asr.decoder.transcribe, [np.zeros(UPLINK_SAMPLE_RATE, dtype=np.float32)])
    return asr
