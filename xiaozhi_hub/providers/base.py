"""The provider Protocols: VAD, ASR, LLM and TTS.

A provider owns one heavy, shared model. Everything that belongs to one utterance lives in a
stream object the provider hands out (``vad.open_stream()``, ``asr.open_stream()``), never on the
session. Blocking inference goes through :class:`xiaozhi_hub.compute.ComputePool`, so a provider
never creates threads of its own.

Audio conventions: PCM is signed 16-bit little-endian mono. Uplink PCM given to VAD and ASR is
16 kHz (what the device sends). TTS returns PCM at its own ``sample_rate``; the speaker resamples
it to the downlink rate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping, Protocol, Sequence, runtime_checkable

UPLINK_SAMPLE_RATE = 16000


class ProviderError(Exception):
    """A provider failed in a way the turn can report (model missing, engine error)."""


class BusyError(ProviderError):
    """A shared engine is saturated; the caller should answer "busy" instead of waiting."""


# ---------------------------------------------------------------------------- VAD


class VADEvent(enum.Enum):
    SPEECH_START = "speech_start"
    SPEECH_END = "speech_end"


@runtime_checkable
class VADStream(Protocol):
    def feed(self, pcm: bytes) -> list[VADEvent]:
        """Feed 16 kHz PCM (any length); returns the events this audio produced, in order."""

    def reset(self) -> None:
        """Forget all state (new utterance)."""

    @property
    def quiet_ms(self) -> int:
        """Trailing silence inside speech so far, in ms (0 while the user talks or outside speech)."""


@runtime_checkable
class VAD(Protocol):
    def open_stream(self) -> VADStream: ...


# ---------------------------------------------------------------------------- ASR


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    final: bool
    language: str | None = None


@runtime_checkable
class ASRStream(Protocol):
    async def feed(self, pcm: bytes) -> Transcript | None:
        """Feed 16 kHz PCM; a streaming engine may return a partial transcript."""

    async def finish(self) -> Transcript:
        """End of speech: return the final transcript (``final=True``)."""

    async def draft(self) -> Transcript | None:
        """The transcript of everything fed so far, when the engine can give it quickly (streaming
        engines), else None. Audio fed afterwards continues the utterance: ``finish`` returns the
        draft's words plus whatever followed. The hub starts the answer on a draft during the
        trailing silence and keeps it only if the final transcript says the same words."""

    async def close(self) -> None:
        """Release per-utterance resources; safe to call twice and after cancellation."""


@runtime_checkable
class ASR(Protocol):
    name: str
    streaming: bool

    def open_stream(self) -> ASRStream: ...


# ---------------------------------------------------------------------------- LLM


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the LLM may call. ``parameters`` is a JSON schema object."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant" | "tool"
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


LLMEvent = TextDelta | ToolCall


@runtime_checkable
class LLM(Protocol):
    name: str
    # Whether this model calls tools reliably; with ``llm.tools: auto`` a model that does not is
    # offered no tools (and no tool instructions in its prompt).
    calls_tools: bool

    def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMEvent]:
        """Stream the reply: text deltas and, when the model calls tools, ToolCall events."""


@runtime_checkable
class PromptCacheLLM(Protocol):
    """An LLM that keeps a prompt prefix cache (llama.cpp in process) and lets the agent fill it
    ahead of time; other LLMs simply lack these two methods."""

    async def warm_up(self, tools: Sequence[ToolSpec] = (), system: str | None = None) -> None:
        """Evaluate the system prompt and the tools once, before the first turn."""

    async def prefill(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = (),
                      only_if_idle: bool = False) -> None:
        """Evaluate ``messages`` now, so the next generation starting with them finds them cached."""


# ---------------------------------------------------------------------------- TTS


@runtime_checkable
class TTS(Protocol):
    name: str
    sample_rate: int

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Synthesize one sentence; yields PCM chunks at ``sample_rate``."""


@dataclass(slots=True)
class Providers:
    """The loaded providers the hub runs with (one instance each, shared by all sessions)."""

    vad: VAD
    asr: ASR
    llm: LLM
    tts: TTS
