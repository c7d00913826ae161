"""Wyoming audio in any format → the 16 kHz mono 16-bit PCM the hub's ASR engines take.

Wyoming clients announce ``rate``, ``width`` (bytes per sample) and ``channels`` in ``audio-start``
and in every ``audio-chunk``. Width 1 is unsigned 8-bit (as in WAV files and the library's own
converter), widths 2–4 are signed little-endian. Channels are averaged; the rate is converted by the
hub's streaming resampler (audio/pcm.py), so chunk boundaries leave no clicks. Chunks may split a
sample frame anywhere: the remainder is carried to the next chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...audio.pcm import Resampler
from ...providers.base import UPLINK_SAMPLE_RATE

MIN_RATE, MAX_RATE = 1000, 384000
MAX_CHANNELS = 32


@dataclass(frozen=True)
class AudioFormat:
    rate: int
    width: int
    channels: int

    @classmethod
    def parse(cls, data: dict[str, object]) -> "AudioFormat":
        """From an event's data; raises ValueError naming the bad field."""
        values: dict[str, int] = {}
        for key in ("rate", "width", "channels"):
            value = data.get(key, 1 if key == "channels" else None)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"audio {key} must be an integer, got {value!r}")
            values[key] = value
        fmt = cls(**values)
        if not MIN_RATE <= fmt.rate <= MAX_RATE:
            raise ValueError(f"audio rate {fmt.rate} Hz is outside {MIN_RATE}-{MAX_RATE}")
        if fmt.width not in (1, 2, 3, 4):
            raise ValueError(f"audio width {fmt.width} is not 1, 2, 3 or 4 bytes")
        if not 1 <= fmt.channels <= MAX_CHANNELS:
            raise ValueError(f"audio channels {fmt.channels} is outside 1-{MAX_CHANNELS}")
        return fmt

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels

    def seconds(self, nbytes: int) -> float:
        return nbytes / (self.frame_bytes * self.rate)


def _to_float(raw: bytes, width: int) -> np.ndarray:
    """Interleaved samples → float64 in -1..1."""
    if width == 1:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float64) / float(1 << 23)
    return np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)


class PcmConverter:
    """One audio stream's conversion state (the carried partial frame and the resampler)."""

    def __init__(self, fmt: AudioFormat, dst_rate: int = UPLINK_SAMPLE_RATE) -> None:
        self.fmt = fmt
        self._carry = b""
        self._resampler = Resampler(fmt.rate, dst_rate)
        self.passthrough = fmt.width == 2 and fmt.channels == 1

    def convert(self, audio: bytes) -> bytes:
        data = self._carry + audio
        cut = len(data) - len(data) % self.fmt.frame_bytes
        self._carry, data = data[cut:], data[:cut]
        if not data:
            return b""
        if not self.passthrough:
            x = _to_float(data, self.fmt.width)
            if self.fmt.channels > 1:
                x = x.reshape(-1, self.fmt.channels).mean(axis=1)
            data = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
        return self._resampler.process(data)

    def flush(self) -> bytes:
        """End of the stream: the resampler's tail (a trailing partial frame is dropped)."""
        self._carry = b""
        return self._resampler.flush()
