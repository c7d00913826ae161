"""Piper TTS (piper-tts 1.8, ONNX Runtime + its own espeak-ng): one sentence per call.

Audio comes out at the voice's native rate (``sample_rate``, 22050 Hz for the medium voices); the
speaker resamples it to the downlink rate and encodes Opus. Each step of Piper's per-sentence
generator runs as its own compute job, so the TTS slot is held only while audio is being made,
never while the consumer paces it out to a device.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

from ..models import DEFAULT_TTS, resolve_model
from .base import ProviderError

if TYPE_CHECKING:
    from ..compute import ComputePool
    from ..settings import Settings

log = logging.getLogger(__name__)

CHUNK_MS = 200   # PCM chunk size handed to the speaker (small enough to start encoding early)


class PiperTTS:
    """A loaded Piper voice shared by all sessions."""

    name = "piper"

    def __init__(self, voice: Any, compute: "ComputePool", *, speaker: int | None = None,
                 length_scale: float = 1.0) -> None:
        from piper import SynthesisConfig

        self.voice = voice
        self.compute = compute
        self.sample_rate: int = int(voice.config.sample_rate)
        self._config = SynthesisConfig(speaker_id=speaker, length_scale=length_scale)
        self._chunk_bytes = self.sample_rate * CHUNK_MS // 1000 * 2

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Yield 16-bit mono PCM at :attr:`sample_rate` for ``text`` (normally one sentence)."""
        text = text.strip()
        if not text:
            return
        if self.voice is None:
            raise ProviderError("piper voice is closed")
        sentences = iter(self.voice.synthesize(text, self._config))   # lazy: nothing runs yet
        while True:
            try:
                chunk = await self.compute.run("tts", next, sentences, None)
            except ProviderError:
                raise
            except Exception as err:
                raise ProviderError(f"piper synthesis failed: {err}") from err
            if chunk is None:
                return
            pcm = chunk.audio_int16_bytes
            for i in range(0, len(pcm), self._chunk_bytes):
                yield pcm[i:i + self._chunk_bytes]

    async def aclose(self) -> None:
        self.voice = None


def load_voice(model_path: str, config_path: str) -> Any:
    """Load the ONNX voice and warm it up (the first inference initialises ONNX Runtime).

    The session is built here rather than by ``PiperVoice.load`` to turn off ONNX Runtime's
    thread spinning: after each sentence its idle workers would otherwise busy-wait, burning
    ~60 ms of CPU per sentence that Whisper or llama.cpp on the same two cores need.
    """
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with open(config_path, encoding="utf-8") as f:
        config = PiperConfig.from_dict(json.load(f))
    session = onnxruntime.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])
    voice = PiperVoice(config=config, session=session)
    for _ in voice.synthesize("Ready."):
        pass
    return voice


async def create(settings: "Settings", compute: "ComputePool") -> PiperTTS:
    """Resolve the voice (manifest id or ``.onnx`` path), load it once in the compute pool."""
    path = resolve_model(settings.tts.voice, role="tts", default_id=DEFAULT_TTS, models_dir=settings.models_dir)
    if path.is_dir():
        onnx = sorted(path.glob("*.onnx"))
        if not onnx:
            raise ProviderError(f"tts voice folder {path} has no .onnx voice")
        path = onnx[0]
    config = Path(f"{path}.json")
    if not config.exists():
        raise ProviderError(f"tts voice {path}: its config {config.name} is missing (Piper needs both files)")
    compute.set_limit("tts", settings.tts.concurrency)
    t0 = time.monotonic()
    try:
        voice = await compute.run("load", load_voice, str(path), str(config))
    except Exception as err:
        raise ProviderError(f"tts voice {path}: cannot load with Piper ({err})") from err
    log.info("piper voice %s loaded in %.2fs (%d Hz)", path.name, time.monotonic() - t0, voice.config.sample_rate)
    return PiperTTS(voice, compute, speaker=settings.tts.speaker, length_scale=settings.tts.length_scale)
