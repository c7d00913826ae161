"""Deterministic providers for pipeline tests and the demo mode (``provider: fake``).

Each fake honours the same Protocol as the real engine and is driven only by :class:`FakeSettings`,
so a test can predict every byte: the ASR returns a fixed sentence (or nothing for silence), the
LLM streams a fixed reply in fixed-size chunks (optionally preceded by one tool call), and the TTS
produces a sine tone whose length is proportional to the text.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any, AsyncIterator, Mapping, Sequence

import numpy as np

from ..settings import FakeSettings
from .base import ChatMessage, LLMEvent, ProviderError, TextDelta, ToolCall, ToolSpec, Transcript

# Audio whose RMS stays below this (in s16 units, ~-54 dBFS) counts as "nothing was said".
SILENCE_RMS = 64.0
FAKE_TTS_RATE = 24000
FAKE_TTS_CHUNK_MS = 60
FAKE_TTS_AMPLITUDE = 0.3


# ---------------------------------------------------------------------------- ASR


class FakeASRStream:
    """Accumulates signal energy only (not the audio), so long utterances cost no memory."""

    def __init__(self, text: str, draft: str | None = None) -> None:
        self._text = text
        self._draft = draft
        self._sum_squares = 0.0
        self._samples = 0
        self._carry = b""
        self.closed = False

    async def feed(self, pcm: bytes) -> Transcript | None:
        data = self._carry + pcm
        usable = len(data) - len(data) % 2
        self._carry = data[usable:]
        a = np.frombuffer(data[:usable], dtype="<i2").astype(np.float64)
        self._sum_squares += float(np.dot(a, a))
        self._samples += a.size
        return None

    @property
    def rms(self) -> float:
        return math.sqrt(self._sum_squares / self._samples) if self._samples else 0.0

    async def finish(self) -> Transcript:
        text = self._text if self.rms >= SILENCE_RMS else ""
        return Transcript(text, final=True)

    async def draft(self) -> Transcript | None:
        """``fake.asr_draft`` (what a streaming engine guessed before the end), if set and heard."""
        if self._draft is None or self.rms < SILENCE_RMS:
            return None
        return Transcript(self._draft, final=False)

    async def close(self) -> None:
        self.closed = True


class FakeASR:
    """Non-streaming ASR that "hears" ``settings.asr_text`` in any non-silent audio."""

    name = "fake"
    streaming = False

    def __init__(self, settings: FakeSettings) -> None:
        self.settings = settings

    def open_stream(self) -> FakeASRStream:
        return FakeASRStream(self.settings.asr_text, self.settings.asr_draft)


# ---------------------------------------------------------------------------- LLM


def _parse_tool_call(raw: str | None) -> tuple[str, Mapping[str, Any]] | None:
    """``fake.llm_tool_call`` JSON → (name, arguments); a bad value is a configuration error."""
    if raw is None or not raw.strip():
        return None
    try:
        obj = json.loads(raw)
    except ValueError as err:
        raise ProviderError(f"fake.llm_tool_call is not valid JSON ({err})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        raise ProviderError('fake.llm_tool_call must be a JSON object like {"name": "...", "arguments": {...}}')
    args = obj.get("arguments", {})
    if not isinstance(args, dict):
        raise ProviderError("fake.llm_tool_call.arguments must be a JSON object")
    return obj["name"], args


class FakeLLM:
    """Streams ``llm_reply`` in ``llm_chunk_chars`` pieces; optionally calls one tool first.

    The tool call is made only when tools are offered and the conversation ends with a user message,
    i.e. on the first round of a turn; after the tool result comes back, the reply text follows.
    """

    name = "fake"
    calls_tools = True

    def __init__(self, settings: FakeSettings) -> None:
        self.settings = settings
        self._tool = _parse_tool_call(settings.llm_tool_call)
        self._calls = 0

    async def stream(self, messages: Sequence[ChatMessage],
                     tools: Sequence[ToolSpec] = ()) -> AsyncIterator[LLMEvent]:
        self._calls += 1
        if self._tool is not None and tools and messages and messages[-1].role == "user":
            name, args = self._tool
            yield ToolCall(id=f"call_{self._calls}", name=name, arguments=dict(args))
            return
        reply, step = self.settings.llm_reply, self.settings.llm_chunk_chars
        delay = self.settings.llm_chunk_delay_ms / 1000.0
        for i in range(0, len(reply), step):
            if i and delay:
                await asyncio.sleep(delay)
            yield TextDelta(reply[i:i + step])


# ---------------------------------------------------------------------------- TTS


class FakeTTS:
    """A sine tone of ``len(text) * tts_ms_per_char`` ms at 24 kHz, yielded in 60 ms chunks."""

    name = "fake"
    sample_rate = FAKE_TTS_RATE

    def __init__(self, settings: FakeSettings) -> None:
        self.settings = settings

    def duration_ms(self, text: str) -> int:
        return len(text) * self.settings.tts_ms_per_char

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        total = self.sample_rate * self.duration_ms(text) // 1000
        chunk = self.sample_rate * FAKE_TTS_CHUNK_MS // 1000
        w = 2 * math.pi * self.settings.tts_frequency / self.sample_rate
        for start in range(0, total, chunk):
            n = min(chunk, total - start)
            x = FAKE_TTS_AMPLITUDE * 32767 * np.sin(w * np.arange(start, start + n))
            yield np.round(x).astype("<i2").tobytes()
            await asyncio.sleep(0)  # let the speaker and other sessions run between chunks
