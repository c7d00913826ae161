"""PCM helpers: resampling, framing, test signals and WAV I/O.

All PCM in the hub is signed 16-bit little-endian mono (``bytes``); rates are plain ints. TTS engines
produce audio at their own rate (piper: 22050 Hz) while the downlink runs at 24 kHz, so
:class:`Resampler` converts a stream chunk by chunk without clicks at chunk boundaries, which
resampling each chunk on its own would cause.
"""

from __future__ import annotations

import math
import os
import struct
import wave
from typing import Iterator

import numpy as np
import soxr

SAMPLE_WIDTH = 2  # s16le
_FULL_SCALE = 32767


def samples_for(ms: float, rate: int) -> int:
    """Number of samples in ``ms`` milliseconds at ``rate`` (rounded down)."""
    return int(rate * ms // 1000)


def bytes_for(ms: float, rate: int) -> int:
    return samples_for(ms, rate) * SAMPLE_WIDTH


def duration_ms(pcm: bytes, rate: int) -> float:
    return len(pcm) / SAMPLE_WIDTH * 1000.0 / rate


def _as_array(pcm: bytes) -> np.ndarray:
    """View PCM bytes as int16 samples (a trailing odd byte is ignored)."""
    return np.frombuffer(pcm, dtype="<i2", count=len(pcm) // SAMPLE_WIDTH)


def _to_bytes(samples: np.ndarray) -> bytes:
    return np.asarray(samples, dtype="<i2").tobytes()


def _float_to_pcm(x: np.ndarray) -> bytes:
    return _to_bytes(np.clip(np.round(x * _FULL_SCALE), -32768, 32767))


# ---------------------------------------------------------------------------- resampling


def resample(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Resample a whole clip (soxr "HQ"); same rate returns the input unchanged."""
    if src_rate == dst_rate or not pcm:
        return pcm
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    out = soxr.resample(_as_array(pcm), src_rate, dst_rate, quality="HQ")
    return _to_bytes(out)


class Resampler:
    """Streaming resampler for chunked audio (TTS output).

    ``process`` may be fed chunks of any byte length (an odd trailing byte is kept for the next
    call); ``flush`` returns the filter's tail at the end of the stream. The total output length is
    the same as :func:`resample` on the concatenated input, within a sample or two.
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._carry = b""
        self._stream = None if src_rate == dst_rate else soxr.ResampleStream(
            src_rate, dst_rate, 1, dtype="int16", quality="HQ")

    def process(self, chunk: bytes) -> bytes:
        data = self._carry + bytes(chunk)
        cut = len(data) - (len(data) % SAMPLE_WIDTH)
        self._carry = data[cut:]
        data = data[:cut]
        if self._stream is None or not data:
            return data
        return _to_bytes(self._stream.resample_chunk(_as_array(data)))

    def flush(self) -> bytes:
        """End of stream: drain the filter delay. The resampler can be reused afterwards."""
        self._carry = b""
        if self._stream is None:
            return b""
        out = _to_bytes(self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True))
        self._stream.clear()
        return out


# ---------------------------------------------------------------------------- signals


def silence(ms: float, rate: int) -> bytes:
    return bytes(bytes_for(ms, rate))


def tone(freq: float, ms: float, rate: int, amplitude: float = 0.5, phase: float = 0.0) -> bytes:
    """A sine tone; ``amplitude`` is a fraction of full scale (0..1)."""
    n = samples_for(ms, rate)
    t = (np.arange(n) + phase) / rate
    return _float_to_pcm(amplitude * np.sin(2 * math.pi * freq * t))


def voice_like(ms: float, rate: int = 16000, f0: float = 140.0, amplitude: float = 0.4,
               syllable_hz: float = 4.0, seed: int = 7) -> bytes:
    """A deterministic signal that voice-activity detectors accept as speech.

    A pure tone is not speech to a VAD; a glottal-like pulse train is. This is a sum of harmonics of
    a slowly gliding ``f0`` with speech-like spectral tilt and two formant bumps, amplitude-modulated
    at a syllable rate, plus a little noise. Used by tests and by the simulator when no WAV is given.
    """
    n = samples_for(ms, rate)
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    pitch = f0 * (1.0 + 0.08 * np.sin(2 * math.pi * 0.7 * t))          # intonation
    phase = 2 * math.pi * np.cumsum(pitch) / rate
    x = np.zeros(n)
    for k in range(1, int((rate / 2) // (f0 * 1.1))):
        fk = f0 * k
        formants = 1.0 + 2.5 * math.exp(-((fk - 600) / 250) ** 2) + 1.5 * math.exp(-((fk - 1700) / 350) ** 2)
        x += formants / k * np.sin(k * phase)
    envelope = 0.55 + 0.45 * np.sin(2 * math.pi * syllable_hz * t - math.pi / 2)
    x = x * envelope + 0.02 * rng.standard_normal(n)
    peak = float(np.max(np.abs(x))) or 1.0
    return _float_to_pcm(amplitude * x / peak)


def rms(pcm: bytes) -> float:
    """Root mean square in sample units (0..32768); 0.0 for empty input."""
    a = _as_array(pcm)
    if a.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))


def frames(pcm: bytes, rate: int, frame_ms: int, pad: bool = True) -> Iterator[bytes]:
    """Split PCM into ``frame_ms`` frames; the short last frame is zero-padded (or kept short)."""
    size = bytes_for(frame_ms, rate)
    if size <= 0:
        raise ValueError(f"frame of {frame_ms} ms at {rate} Hz is empty")
    for i in range(0, len(pcm), size):
        chunk = pcm[i:i + size]
        if pad and len(chunk) < size:
            chunk = chunk + bytes(size - len(chunk))
        yield chunk


# ---------------------------------------------------------------------------- WAV I/O

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


class WavError(ValueError):
    """A file that is not a WAV this module can read."""


def _riff_chunks(data: bytes, path: str) -> dict[bytes, bytes]:
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        raise WavError(f"{path}: not a RIFF/WAVE file")
    chunks: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8:pos + 8 + size]
        chunks.setdefault(cid, body)
        pos += 8 + size + (size & 1)
    if b"fmt " not in chunks or b"data" not in chunks:
        raise WavError(f"{path}: WAV file lacks a fmt or data chunk")
    return chunks


def _decode_samples(raw: bytes, fmt: int, width: int, path: str) -> np.ndarray:
    """Raw interleaved samples → float64 in -1..1."""
    if fmt == _WAVE_FORMAT_FLOAT and width in (4, 8):
        return np.frombuffer(raw[:len(raw) - len(raw) % width], dtype=f"<f{width}").astype(np.float64)
    if fmt != _WAVE_FORMAT_PCM:
        raise WavError(f"{path}: unsupported WAV encoding (format tag {fmt}); use PCM or float")
    if width == 1:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 2:
        return _as_array(raw).astype(np.float64) / 32768.0
    if width == 3:
        b = np.frombuffer(raw[:len(raw) - len(raw) % 3], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float64) / float(1 << 23)
    if width == 4:
        return np.frombuffer(raw[:len(raw) - len(raw) % 4], dtype="<i4").astype(np.float64) / float(1 << 31)
    raise WavError(f"{path}: unsupported sample width {width * 8} bits")


def read_wav(path: str | os.PathLike[str]) -> tuple[bytes, int]:
    """Read a WAV as mono s16le: multi-channel is averaged, 8/24/32-bit and float are converted."""
    p = os.fspath(path)
    with open(p, "rb") as f:
        data = f.read()
    chunks = _riff_chunks(data, p)
    fmt_chunk = chunks[b"fmt "]
    if len(fmt_chunk) < 16:
        raise WavError(f"{p}: fmt chunk too short")
    fmt, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt_chunk)
    if fmt == _WAVE_FORMAT_EXTENSIBLE and len(fmt_chunk) >= 26:
        fmt = struct.unpack_from("<H", fmt_chunk, 24)[0]  # first two bytes of the subformat GUID
    if channels < 1 or rate <= 0:
        raise WavError(f"{p}: invalid WAV header ({channels} channels, {rate} Hz)")
    x = _decode_samples(chunks[b"data"], fmt, bits // 8, p)
    if channels > 1:
        x = x[:len(x) - len(x) % channels].reshape(-1, channels).mean(axis=1)
    return _float_to_pcm(x * (32768.0 / _FULL_SCALE)), rate


def write_wav(path: str | os.PathLike[str], pcm: bytes, rate: int) -> None:
    """Write mono s16le PCM as a WAV file."""
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(SAMPLE_WIDTH)
        w.setframerate(rate)
        w.writeframes(pcm)
