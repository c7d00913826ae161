"""What the simulated device observes and reports: its errors, its state, and per-turn records of
everything the hub sent (with monotonic timestamps, so tests can assert order, latency and pacing)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


class SimulatorError(Exception):
    """The session could not proceed the way a real device would."""


class DeviceCrash(SimulatorError):
    """The hub sent something that crashes stock firmware (e.g. a hello without ``transport``)."""


class HelloTimeout(SimulatorError):
    """No valid server hello within 10 s; a real device shows "server timeout" and goes idle."""


class DeviceClosed(SimulatorError):
    """The connection closed while the caller was waiting for something."""


class DeviceState(str, enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    LISTENING = "listening"
    SPEAKING = "speaking"


@dataclass(frozen=True)
class ReceivedMessage:
    t: float                         # time.monotonic() at arrival
    data: Mapping[str, Any]          # the JSON object ({} for a non-JSON text frame)
    raw: str

    @property
    def type(self) -> str | None:
        v = self.data.get("type")
        return v if isinstance(v, str) else None


@dataclass(frozen=True)
class AudioArrival:
    t: float
    size: int                        # Opus payload bytes
    while_speaking: bool
    samples: int = 0                 # decoded samples (0 if dropped or undecodable)
    timestamp: int = 0               # v2 header timestamp


@dataclass
class TurnRecord:
    """Everything observed during one listening turn (listen start → tts stop)."""

    index: int
    mode: str
    started_at: float
    downlink_rate: int = 24000
    messages: list[ReceivedMessage] = field(default_factory=list)
    audio: list[AudioArrival] = field(default_factory=list)
    pcm: bytearray = field(default_factory=bytearray)
    frames_sent: int = 0
    speech_sent_until: float | None = None   # when the last real (non-silence) mic frame was sent
    listen_stop_at: float | None = None
    tts_start_at: float | None = None
    tts_stop_at: float | None = None
    abort_at: float | None = None
    dropped: int = 0                         # audio received while not speaking
    decode_errors: int = 0
    overflow: int = 0                        # audio the 40-packet queue would have dropped

    # -- derived

    @property
    def end_of_speech_at(self) -> float | None:
        """The moment the user "stopped talking": ``listen stop`` (manual) or end of the clip."""
        return self.listen_stop_at if self.listen_stop_at is not None else self.speech_sent_until

    def texts(self, type_: str, state: str | None = None, key: str = "text") -> list[str]:
        return [str(m.data.get(key, "")) for m in self.messages
                if m.type == type_ and (state is None or m.data.get("state") == state)]

    @property
    def stt_text(self) -> str | None:
        texts = self.texts("stt")
        return texts[-1] if texts else None

    @property
    def sentences(self) -> list[str]:
        return self.texts("tts", "sentence_start")

    @property
    def emotions(self) -> list[str]:
        return self.texts("llm", key="emotion")

    @property
    def played(self) -> list[AudioArrival]:
        """Frames that arrived while speaking (overflowed/undecodable ones included, ``samples == 0``)."""
        return [a for a in self.audio if a.while_speaking]

    @property
    def first_audio_at(self) -> float | None:
        played = self.played
        return played[0].t if played else None

    @property
    def first_audio_latency(self) -> float | None:
        """Seconds from end of speech to the first audio frame (the latency users feel)."""
        first, end = self.first_audio_at, self.end_of_speech_at
        return None if first is None or end is None else first - end

    @property
    def intervals(self) -> list[float]:
        """Seconds between consecutive downlink audio frames (pacing)."""
        ts = [a.t for a in self.played]
        return [b - a for a, b in zip(ts, ts[1:])]

    @property
    def audio_seconds(self) -> float:
        return len(self.pcm) / 2 / self.downlink_rate

    @property
    def abort_to_stop(self) -> float | None:
        if self.abort_at is None or self.tts_stop_at is None or self.tts_stop_at < self.abort_at:
            return None
        return self.tts_stop_at - self.abort_at

    def summary(self) -> dict[str, Any]:
        iv = self.intervals
        return {
            "turn": self.index, "mode": self.mode, "stt": self.stt_text, "sentences": self.sentences,
            "emotions": self.emotions, "first_audio_latency_ms": _ms(self.first_audio_latency),
            "frames": len(self.played), "audio_seconds": round(self.audio_seconds, 3),
            "max_interval_ms": _ms(max(iv) if iv else None),
            "mean_interval_ms": _ms(sum(iv) / len(iv) if iv else None),
            "dropped": self.dropped, "decode_errors": self.decode_errors, "overflow": self.overflow,
            "abort_to_stop_ms": _ms(self.abort_to_stop),
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


def random_mac() -> str:
    """A locally administered unicast MAC, lowercase and colon-separated like the firmware's."""
    b = bytearray(uuid.uuid4().bytes[:6])
    b[0] = (b[0] & 0xFC) | 0x02
    return ":".join(f"{x:02x}" for x in b)


MessageMatch = str | Callable[[Mapping[str, Any]], bool]


def message_matcher(match: MessageMatch, fields: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate on received JSON: its type (or ``match`` itself as a predicate) and field values."""
    def pred(data: Mapping[str, Any]) -> bool:
        if isinstance(match, str):
            if data.get("type") != match:
                return False
        elif not match(data):
            return False
        return all(data.get(k) == v for k, v in fields.items())
    return pred
