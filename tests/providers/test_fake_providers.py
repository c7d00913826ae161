"""Deterministic fakes (providers/fake.py) and the provider registry (providers/registry.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np
import pytest

from xiaozhi_hub.audio import pcm
from xiaozhi_hub.compute import ComputePool
from xiaozhi_hub.providers import registry
from xiaozhi_hub.providers.base import (ASR, LLM, TTS, ChatMessage, ProviderError, Providers, TextDelta,
                                        ToolCall, ToolSpec, Transcript)
from xiaozhi_hub.providers.fake import FakeASR, FakeLLM, FakeTTS
from xiaozhi_hub.providers.registry import ProviderUnavailable, close_providers, create_providers
from xiaozhi_hub.providers.vad_webrtc import WebRtcVAD
from xiaozhi_hub.settings import ASRSettings, FakeSettings, LLMSettings, Settings, TTSSettings

USER = ChatMessage("user", "turn on the light")
LIGHT = ToolSpec("light_on", "Turn a light on", {"type": "object", "properties": {"room": {"type": "string"}}})


async def collect(aiter) -> list:
    return [x async for x in aiter]


# ---------------------------------------------------------------------------- ASR


async def test_fake_asr_hears_its_text_in_voice() -> None:
    asr = FakeASR(FakeSettings(asr_text="what time is it"))
    assert isinstance(asr, ASR) and asr.streaming is False and asr.name == "fake"
    stream = asr.open_stream()
    for frame in pcm.frames(pcm.voice_like(900), 16000, 60):
        assert await stream.feed(frame) is None
    assert await stream.finish() == Transcript("what time is it", final=True)
    await stream.close()
    await stream.close()                                         # idempotent


@pytest.mark.parametrize("audio", [b"", pcm.silence(2000, 16000), pcm.tone(300, 500, 16000, amplitude=0.001)])
async def test_fake_asr_returns_empty_text_for_silence(audio: bytes) -> None:
    stream = FakeASR(FakeSettings()).open_stream()
    await stream.feed(audio)
    assert await stream.finish() == Transcript("", final=True)


async def test_fake_asr_streams_are_independent_and_accept_odd_chunks() -> None:
    asr = FakeASR(FakeSettings())
    loud, quiet = asr.open_stream(), asr.open_stream()
    voice = pcm.voice_like(300)
    for i in range(0, len(voice), 333):                           # odd sizes split samples
        await loud.feed(voice[i:i + 333])
    await quiet.feed(pcm.silence(300, 16000))
    assert (await loud.finish()).text == FakeSettings().asr_text
    assert (await quiet.finish()).text == ""


# ---------------------------------------------------------------------------- LLM


async def test_fake_llm_streams_reply_in_fixed_chunks() -> None:
    s = FakeSettings(llm_reply="Okay. The kitchen light is on now.", llm_chunk_chars=6)
    llm = FakeLLM(s)
    assert isinstance(llm, LLM)
    events = await collect(llm.stream([USER]))
    assert all(isinstance(e, TextDelta) for e in events)
    assert [e.text for e in events] == ["Okay. ", "The ki", "tchen ", "light ", "is on ", "now."]
    assert "".join(e.text for e in events) == s.llm_reply


async def test_fake_llm_sleeps_between_chunks() -> None:
    llm = FakeLLM(FakeSettings(llm_reply="abcdefghij", llm_chunk_chars=2, llm_chunk_delay_ms=30))
    t0 = time.monotonic()
    stamps = [time.monotonic() - t0 async for _ in llm.stream([USER])]
    assert len(stamps) == 5
    assert stamps[0] < 0.02                                       # the first chunk is not delayed
    assert stamps[-1] >= 4 * 0.03 * 0.9


async def test_fake_llm_calls_tool_then_answers_after_result() -> None:
    s = FakeSettings(llm_reply="Done.", llm_tool_call=json.dumps({"name": "light_on", "arguments": {"room": "kitchen"}}))
    llm = FakeLLM(s)
    first = await collect(llm.stream([ChatMessage("system", "be brief"), USER], [LIGHT]))
    assert len(first) == 1 and isinstance(first[0], ToolCall)
    call = first[0]
    assert (call.name, dict(call.arguments)) == ("light_on", {"room": "kitchen"}) and call.id
    history = [USER, ChatMessage("assistant", tool_calls=(call,)),
               ChatMessage("tool", "ok", tool_call_id=call.id, name=call.name)]
    second = await collect(llm.stream(history, [LIGHT]))
    assert "".join(e.text for e in second) == "Done."
    assert all(isinstance(e, TextDelta) for e in second)


async def test_fake_llm_does_not_call_tools_when_none_are_offered() -> None:
    llm = FakeLLM(FakeSettings(llm_reply="Hi.", llm_tool_call='{"name": "light_on"}'))
    assert [e.text for e in await collect(llm.stream([USER]))] == ["Hi."]


@pytest.mark.parametrize("raw", ["{not json", '["light_on"]', '{"name": ""}', '{"name": "x", "arguments": [1]}'])
def test_fake_llm_rejects_bad_tool_call_setting(raw: str) -> None:
    with pytest.raises(ProviderError, match="llm_tool_call"):
        FakeLLM(FakeSettings(llm_tool_call=raw))


# ---------------------------------------------------------------------------- TTS


async def test_fake_tts_tone_length_chunks_and_pitch() -> None:
    tts = FakeTTS(FakeSettings(tts_ms_per_char=60, tts_frequency=440))
    assert isinstance(tts, TTS) and tts.sample_rate == 24000
    text = "Hello world."                                         # 12 chars → 720 ms
    chunks = await collect(tts.synthesize(text))
    assert [len(c) for c in chunks] == [2880] * 12
    audio = b"".join(chunks)
    assert len(audio) == 24000 * 720 // 1000 * 2
    x = np.frombuffer(audio, dtype="<i2").astype(float)
    peak = np.argmax(np.abs(np.fft.rfft(x))) * 24000 / len(x)
    assert peak == pytest.approx(440, abs=3)
    assert np.max(np.abs(np.diff(x))) < 0.3 * 32767 * 2 * np.pi * 440 / 24000 * 1.05   # phase-continuous


async def test_fake_tts_last_chunk_is_short_and_empty_text_is_silent() -> None:
    tts = FakeTTS(FakeSettings(tts_ms_per_char=25))
    assert [len(c) for c in await collect(tts.synthesize("abc"))] == [2880, 720]   # 75 ms = 60 + 15
    assert await collect(tts.synthesize("")) == []


async def test_fake_tts_yields_to_other_tasks_between_chunks() -> None:
    tts = FakeTTS(FakeSettings(tts_ms_per_char=60))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    chunks = await collect(tts.synthesize("x" * 20))
    task.cancel()
    assert ticks >= len(chunks) - 1


# ---------------------------------------------------------------------------- registry


def fake_settings(**fake) -> Settings:
    return Settings(asr=ASRSettings(provider="fake"), llm=LLMSettings(provider="fake"),
                    tts=TTSSettings(provider="fake"), fake=FakeSettings(**fake))


@pytest.fixture
def compute():
    pool = ComputePool(workers=2)
    yield pool
    pool.shutdown()


async def test_create_providers_builds_fakes_and_webrtc(compute) -> None:
    providers = await create_providers(fake_settings(asr_text="hi there"), compute)
    assert isinstance(providers, Providers)
    assert isinstance(providers.vad, WebRtcVAD)
    assert isinstance(providers.asr, FakeASR) and providers.asr.settings.asr_text == "hi there"
    assert isinstance(providers.llm, FakeLLM) and isinstance(providers.tts, FakeTTS)
    await close_providers(providers)                              # fakes have no aclose: a no-op


@pytest.fixture
def fake_engine_module(monkeypatch, tmp_path):
    """Install a throwaway provider module whose ``create`` behaviour the test chooses."""
    created: list = []

    def install(body: str, kind: str = "asr", name: str = "fancy") -> None:
        (tmp_path / f"engine_{name}.py").write_text(body)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setitem(registry.REAL, (kind, name), f"engine_{name}:create")
        created.append(f"engine_{name}")

    yield install
    for mod in created:
        sys.modules.pop(mod, None)


async def test_unknown_provider_name_lists_the_choices(compute) -> None:
    settings = fake_settings().replace(asr=ASRSettings(provider="nope"))
    with pytest.raises(ProviderError, match=r"asr\.provider: unknown provider 'nope' \(choose one of fake, whisper, vosk"):
        await create_providers(settings, compute)


async def test_missing_provider_module_is_unavailable(monkeypatch, compute) -> None:
    monkeypatch.setitem(registry.REAL, ("asr", "fancy"), "xiaozhi_hub.providers.asr_does_not_exist:create")
    settings = fake_settings().replace(asr=ASRSettings(provider="fancy"))
    with pytest.raises(ProviderUnavailable, match="asr provider 'fancy': module xiaozhi_hub.providers.asr_does_not_exist"):
        await create_providers(settings, compute)


async def test_missing_python_package_names_the_package(fake_engine_module, compute) -> None:
    fake_engine_module("import surely_not_installed_pkg\nasync def create(settings, compute):\n    return None\n")
    with pytest.raises(ProviderUnavailable, match="package 'surely_not_installed_pkg' is not installed; install"):
        await registry.create_provider("asr", fake_settings().replace(asr=ASRSettings(provider="fancy")), compute)


async def test_missing_model_file_is_unavailable(fake_engine_module, compute) -> None:
    fake_engine_module("async def create(settings, compute):\n"
                       "    raise FileNotFoundError(2, 'No such file', '/models/x.bin')\n", kind="tts")
    with pytest.raises(ProviderUnavailable, match=r"tts provider 'fancy': model file /models/x.bin not found; install it with `make models`"):
        await registry.create_provider("tts", fake_settings().replace(tts=TTSSettings(provider="fancy")), compute)


async def test_engine_crash_is_wrapped_with_the_provider_name(fake_engine_module, compute) -> None:
    fake_engine_module("async def create(settings, compute):\n    raise RuntimeError('boom')\n", kind="llm")
    with pytest.raises(ProviderError, match=r"llm provider 'fancy': failed to load \(RuntimeError: boom\)") as info:
        await registry.create_provider("llm", fake_settings().replace(llm=LLMSettings(provider="fancy")), compute)
    assert not isinstance(info.value, ProviderUnavailable)


async def test_factory_must_be_async_and_return_the_right_shape(fake_engine_module, compute) -> None:
    settings = fake_settings().replace(asr=ASRSettings(provider="fancy"))
    fake_engine_module("def create(settings, compute):\n    return None\n")
    with pytest.raises(ProviderError, match="has no `async def create"):
        await registry.create_provider("asr", settings, compute)
    sys.modules.pop("engine_fancy", None)
    fake_engine_module("closed = []\nclass NotAnASR:\n    async def aclose(self):\n        closed.append(1)\n"
                       "async def create(settings, compute):\n    return NotAnASR()\n")
    with pytest.raises(ProviderError, match="does not implement the ASR protocol"):
        await registry.create_provider("asr", settings, compute)
    assert sys.modules["engine_fancy"].closed == [1]


async def test_failed_start_closes_the_providers_already_loaded(fake_engine_module, compute) -> None:
    fake_engine_module("closed = []\n"
                       "class Good:\n    name = 'good'\n    streaming = False\n"
                       "    def open_stream(self):\n        return None\n"
                       "    async def aclose(self):\n        closed.append('asr')\n"
                       "async def create(settings, compute):\n    return Good()\n", kind="asr", name="good")
    fake_engine_module("import asyncio\nasync def create(settings, compute):\n"
                       "    await asyncio.sleep(0.01)\n    raise RuntimeError('no gpu')\n", kind="tts", name="bad")
    settings = fake_settings().replace(asr=ASRSettings(provider="good"), tts=TTSSettings(provider="bad"))
    with pytest.raises(ProviderError, match="no gpu"):
        await create_providers(settings, compute)
    assert sys.modules["engine_good"].closed == ["asr"]


async def test_close_providers_calls_each_aclose_once() -> None:
    calls: list[str] = []

    class Closable:
        def __init__(self, tag: str) -> None:
            self.tag = tag

        async def aclose(self) -> None:
            calls.append(self.tag)

    class SyncClosable:
        def aclose(self) -> None:
            calls.append("sync")

    class Broken:
        async def aclose(self) -> None:
            raise RuntimeError("ignored")

    shared = Closable("shared")
    await close_providers(Providers(vad=Broken(), asr=shared, llm=shared, tts=SyncClosable()))  # type: ignore[arg-type]
    assert calls == ["shared", "sync"]
