"""One contract for every provider: the fakes and each real engine installed on this machine.

The pipeline only relies on what is asserted here, so a fake that passes stands in faithfully for
the engine it fakes. Adding an engine is one line in ``CASES``; engines that are not installed
(package or model missing → :class:`ProviderUnavailable`) are skipped with the registry's message
saying what to install.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
import pytest_asyncio

from xiaozhi_hub.audio import pcm
from xiaozhi_hub.compute import ComputePool
from xiaozhi_hub.providers import registry
from xiaozhi_hub.providers.base import (ASR, LLM, TTS, VAD, ChatMessage, TextDelta, ToolCall, ToolSpec,
                                        Transcript, VADEvent, VADStream)
from xiaozhi_hub.providers.registry import ProviderUnavailable
from xiaozhi_hub.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

MODELS_DIR = str(Path(__file__).resolve().parents[2] / "models" / "installed")
SPOKEN = "Please turn on the kitchen light."
LIGHT = ToolSpec("light_on", "Turn on the light in a room.",
                 {"type": "object", "properties": {"room": {"type": "string"}}, "required": ["room"]})


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    section: dict[str, Any] = field(default_factory=dict)   # extra settings for the provider's section
    fake: dict[str, Any] = field(default_factory=dict)      # FakeSettings overrides
    real: bool = True                                       # needs packages/models (marker "models")
    hears: tuple[str, ...] = ()                             # words an ASR must find in SPOKEN
    calls_tools: bool = False                               # an LLM that must call the offered tool
    label: str = ""                                         # tells apart two cases of one engine

    @property
    def id(self) -> str:
        return "-".join(filter(None, (self.kind, self.name, self.label)))

    def settings(self) -> Settings:
        base = Settings(models_dir=MODELS_DIR)
        section = dataclasses.replace(getattr(base, self.kind), provider=self.name, **self.section)
        return base.replace(**{self.kind: section, "fake": dataclasses.replace(base.fake, **self.fake)})


CASES = [
    Case("vad", "webrtc", real=False),
    Case("asr", "fake", real=False, fake={"asr_text": SPOKEN}, hears=("kitchen", "light")),
    Case("llm", "fake", real=False, calls_tools=True,
         fake={"llm_tool_call": json.dumps({"name": "light_on", "arguments": {"room": "kitchen"}})}),
    Case("tts", "fake", real=False),
    # Real engines: one line each.
    Case("asr", "whisper", hears=("kitchen", "light")),
    Case("asr", "vosk"),
    Case("asr", "vosk", section={"model": "vosk-ko"}, label="ko"),   # the model installable from PyPI
    Case("llm", "llamacpp", section={"max_tokens": 48}),
    Case("tts", "piper"),
]

UNTESTED = {("llm", "openai"): "needs a running OpenAI-compatible server"}


def cases(kind: str) -> list[Any]:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.models] if c.real else [])
            for c in CASES if c.kind == kind]


async def test_every_registered_provider_has_a_case() -> None:
    known = set(registry.BUILTIN) | set(registry.REAL)
    covered = {(c.kind, c.name) for c in CASES}
    assert known - covered - set(UNTESTED) == set()


# ---------------------------------------------------------------------------- fixtures


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def compute() -> AsyncIterator[ComputePool]:
    pool = ComputePool(workers=2)
    yield pool
    pool.shutdown()


async def _load(case: Case, compute: ComputePool) -> Any:
    try:
        return await registry.create_provider(case.kind, case.settings(), compute)
    except ProviderUnavailable as err:
        pytest.skip(f"{case.id} not installed: {err}")


async def _close(provider: Any) -> None:
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        await aclose()


def _provider_fixture(kind: str) -> Callable[..., Any]:
    @pytest_asyncio.fixture(scope="module", loop_scope="module", params=cases(kind))
    async def fixture(request: pytest.FixtureRequest, compute: ComputePool) -> AsyncIterator[tuple[Case, Any]]:
        provider = await _load(request.param, compute)
        yield request.param, provider
        await _close(provider)
    return fixture


vad = _provider_fixture("vad")
asr = _provider_fixture("asr")
llm = _provider_fixture("llm")
tts = _provider_fixture("tts")


@dataclass(frozen=True)
class Speech:
    pcm: bytes          # 16 kHz
    real: bool          # synthesized words (Piper) rather than a voice-like signal


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def speech(compute: ComputePool) -> Speech:
    """SPOKEN as real synthesized speech when Piper is installed, else a voice-like signal."""
    try:
        provider = await registry.create_provider("tts", Case("tts", "piper").settings(), compute)
    except ProviderUnavailable:
        return Speech(pcm.voice_like(1800), real=False)
    try:
        audio = b"".join([c async for c in provider.synthesize(SPOKEN)])
        return Speech(pcm.resample(audio, provider.sample_rate, 16000), real=True)
    finally:
        await _close(provider)


def utterance(speech: Speech) -> bytes:
    return pcm.silence(400, 16000) + speech.pcm + pcm.silence(1200, 16000)


# ---------------------------------------------------------------------------- VAD


async def test_vad_shape(vad) -> None:
    _, provider = vad
    assert isinstance(provider, VAD)
    assert isinstance(provider.open_stream(), VADStream)


async def test_vad_silence_then_speech(vad, speech) -> None:
    _, provider = vad
    stream = provider.open_stream()
    assert stream.feed(pcm.silence(1000, 16000)) == []
    events = [e for f in pcm.frames(utterance(speech), 16000, 60) for e in stream.feed(f)]
    assert events == [VADEvent.SPEECH_START, VADEvent.SPEECH_END]


async def test_vad_streams_are_independent_and_resettable(vad, speech) -> None:
    _, provider = vad
    a, b = provider.open_stream(), provider.open_stream()
    assert a.feed(speech.pcm[: len(speech.pcm) // 2]) == [VADEvent.SPEECH_START]
    assert b.feed(pcm.silence(600, 16000)) == []
    a.reset()
    assert a.feed(pcm.silence(2000, 16000)) == []


async def test_vad_stream_counts_the_trailing_silence_inside_speech(vad, speech) -> None:
    # quiet_ms is what the utterance asks for a draft by: 0 outside speech, growing in a pause.
    _, provider = vad
    stream = provider.open_stream()
    assert stream.feed(pcm.silence(600, 16000)) == [] and stream.quiet_ms == 0
    events = [e for f in pcm.frames(speech.pcm, 16000, 60) for e in stream.feed(f)]
    assert events == [VADEvent.SPEECH_START]
    before = stream.quiet_ms
    assert stream.feed(pcm.silence(240, 16000)) == []
    assert stream.quiet_ms >= before + 180
    assert stream.feed(pcm.silence(2000, 16000)) == [VADEvent.SPEECH_END]
    assert stream.quiet_ms == 0


# ---------------------------------------------------------------------------- ASR


async def test_asr_shape(asr) -> None:
    case, provider = asr
    assert isinstance(provider, ASR)
    assert provider.name == case.name and isinstance(provider.streaming, bool)


async def _transcribe(provider: Any, audio: bytes) -> tuple[list[Transcript], Transcript]:
    stream = provider.open_stream()
    partials = []
    try:
        for frame in pcm.frames(audio, 16000, 60):
            result = await stream.feed(frame)
            if result is not None:
                partials.append(result)
        return partials, await stream.finish()
    finally:
        await stream.close()


async def test_asr_transcribes_speech(asr, speech) -> None:
    case, provider = asr
    partials, final = await _transcribe(provider, utterance(speech))
    assert isinstance(final, Transcript) and final.final is True and isinstance(final.text, str)
    assert all(isinstance(p, Transcript) and not p.final for p in partials)
    if partials:
        assert provider.streaming, "only streaming engines return partials"
    if case.hears and (speech.real or not case.real):   # a real engine needs real words
        words = final.text.lower()
        assert all(w in words for w in case.hears), final.text


async def test_asr_silence_is_empty(asr) -> None:
    _, provider = asr
    _, final = await _transcribe(provider, pcm.silence(1500, 16000))
    assert final.final and final.text.strip() == ""


async def test_asr_close_is_idempotent_and_works_without_finish(asr, speech) -> None:
    _, provider = asr
    stream = provider.open_stream()
    await stream.feed(speech.pcm[:9600])
    await stream.close()                      # a cancelled turn closes without finishing
    await stream.close()


async def test_asr_draft_is_none_or_a_partial_and_finish_still_covers_everything(asr, speech) -> None:
    # draft() is what a speculative answer starts on; audio after it continues the utterance.
    case, provider = asr
    stream = provider.open_stream()
    try:
        frames = list(pcm.frames(utterance(speech), 16000, 60))
        half = len(frames) // 2
        for frame in frames[:half]:
            await stream.feed(frame)
        draft = await stream.draft()
        assert draft is None or (isinstance(draft, Transcript) and not draft.final)
        for frame in frames[half:]:
            await stream.feed(frame)
        final = await stream.finish()
        assert final.final
        if case.hears and (speech.real or not case.real):
            assert all(w in final.text.lower() for w in case.hears), final.text
    finally:
        await stream.close()


async def test_asr_concurrent_streams_do_not_mix(asr, speech) -> None:
    _, provider = asr
    (_, loud), (_, quiet) = await asyncio.gather(_transcribe(provider, utterance(speech)),
                                                 _transcribe(provider, pcm.silence(1500, 16000)))
    assert quiet.text.strip() == ""
    assert loud.final


# ---------------------------------------------------------------------------- LLM


async def _drain(events: AsyncIterator[Any]) -> list[Any]:
    return [e async for e in events]


async def test_llm_shape_and_text_reply(llm) -> None:
    _, provider = llm
    assert isinstance(provider, LLM)
    events = await _drain(provider.stream([ChatMessage("system", "Answer in one short sentence."),
                                           ChatMessage("user", "Say hello.")]))
    assert events and all(isinstance(e, (TextDelta, ToolCall)) for e in events)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).strip()


async def test_llm_tool_round(llm) -> None:
    case, provider = llm
    history = [ChatMessage("system", "You control the lights. Use the tool when asked."),
               ChatMessage("user", "Turn on the kitchen light.")]
    events = await _drain(provider.stream(history, [LIGHT]))
    calls = [e for e in events if isinstance(e, ToolCall)]
    if case.calls_tools:
        assert calls
    for call in calls:
        assert call.name == LIGHT.name and isinstance(call.arguments, dict) and call.id
    if calls:
        history += [ChatMessage("assistant", tool_calls=tuple(calls))]
        history += [ChatMessage("tool", "ok", tool_call_id=c.id, name=c.name) for c in calls]
        reply = await _drain(provider.stream(history, [LIGHT]))
        assert "".join(e.text for e in reply if isinstance(e, TextDelta)).strip()


async def test_llm_stream_can_be_abandoned(llm) -> None:
    """A barge-in cancels the turn mid-reply: closing the iterator early must be clean."""
    _, provider = llm
    events = provider.stream([ChatMessage("user", "Count from one to twenty.")])
    first = await events.__anext__()
    assert isinstance(first, (TextDelta, ToolCall))
    await events.aclose()
    again = await _drain(provider.stream([ChatMessage("user", "Say hello.")]))   # still usable
    assert again


# ---------------------------------------------------------------------------- TTS


async def _speak(provider: Any, text: str) -> list[bytes]:
    return [c async for c in provider.synthesize(text)]


async def test_tts_shape(tts) -> None:
    _, provider = tts
    assert isinstance(provider, TTS)
    assert 8000 <= provider.sample_rate <= 48000


async def test_tts_synthesizes_a_sentence(tts) -> None:
    _, provider = tts
    chunks = await _speak(provider, "Hello, the kitchen light is on.")
    assert chunks and all(isinstance(c, bytes) and len(c) % 2 == 0 and c for c in chunks)
    audio = b"".join(chunks)
    seconds = len(audio) / 2 / provider.sample_rate
    assert 0.5 < seconds < 10
    assert pcm.rms(audio) > 300


async def test_tts_empty_text_is_quiet(tts) -> None:
    _, provider = tts
    audio = b"".join(await _speak(provider, ""))
    assert len(audio) / 2 / provider.sample_rate < 0.3


async def test_tts_concurrent_and_abandoned_synthesis(tts) -> None:
    _, provider = tts
    stream = provider.synthesize("This sentence is abandoned after the first chunk.")
    assert await stream.__anext__()
    await stream.aclose()                     # barge-in mid-sentence
    a, b = await asyncio.gather(_speak(provider, "One two three."), _speak(provider, "Four five six."))
    assert b"".join(a) and b"".join(b)
