"""The first question after start-up gets a real answer however long the LLM's prompt-cache warm-up
takes (issue 9 item 7). An in-process hub on 127.0.0.1, a simulated device, fake ASR/TTS and a fake
LLM that uses the compute pool the way llama.cpp does (turns and the warm-up share the one "llm"
slot), with a warm-up held until the test lets it go: far longer than ``llm.max_wait``."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Sequence

from xiaozhi_hub.app import Hub
from xiaozhi_hub.providers.base import ChatMessage, LLMEvent, Providers, ToolSpec
from xiaozhi_hub.providers.fake import FakeASR, FakeLLM, FakeTTS
from xiaozhi_hub.providers.registry import create_provider
from xiaozhi_hub.simulator import SimulatedDevice

from ..conftest import fake_settings, ws_url
from .test_turns import SPEECH, assert_complete_turn

MAX_WAIT = 0.3          # llm.max_wait: the warm-up below lasts many times longer
TIMEOUT = 30.0


class SlowWarmUpLLM(FakeLLM):
    """FakeLLM's answers, taking the compute pool's "llm" slot like llama.cpp; its warm-up holds the
    slot (as background work) until ``release`` is set."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub.settings.fake)
        self.hub = hub
        self.warming = asyncio.Event()
        self.release = asyncio.Event()
        self.warm_ups = 0
        self.warm_hold = 0.0          # seconds the warm-up held the slot

    @property
    def compute(self) -> Any:
        assert self.hub.ctx is not None
        return self.hub.ctx.compute

    async def warm_up(self, tools: Sequence[ToolSpec] = (), system: str | None = None) -> None:
        async with self.compute.slot("llm", background=True):
            t0 = time.monotonic()
            self.warm_ups += 1
            self.warming.set()
            await self.release.wait()
            self.warm_hold = time.monotonic() - t0

    async def prefill(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = (),
                      only_if_idle: bool = False) -> None:
        return None

    async def stream(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> AsyncIterator[LLMEvent]:
        async with self.compute.slot("llm"):
            async for event in super().stream(messages, tools):
                yield event


async def test_first_question_waits_for_a_slow_warm_up_and_gets_the_llm_answer(tmp_path) -> None:
    settings = fake_settings(tmp_path, llm={"max_wait": MAX_WAIT, "ready_wait": 0}, session={"filler_after_ms": 0})
    hub = Hub(settings)
    llm = SlowWarmUpLLM(hub)
    providers = Providers(vad=await create_provider("vad", settings, None), asr=FakeASR(settings.fake), llm=llm,
                          tts=FakeTTS(settings.fake))
    await hub.start(providers)
    try:
        async with asyncio.timeout(TIMEOUT):
            await llm.warming.wait()                     # the warm-up holds the LLM from "ready" on
        async with SimulatedDevice(ws_url(hub)) as dev:
            turn_task = asyncio.create_task(dev.run_turn(SPEECH, mode="manual", timeout=TIMEOUT))
            # The question has been heard (stt, then tts start); its answer waits for the LLM.
            await dev.wait_until(lambda: dev.turn is not None and dev.turn.stt_text is not None, TIMEOUT)
            await asyncio.sleep(5 * MAX_WAIT)             # the warm-up outlasts llm.max_wait several times
            assert dev.turn is not None and dev.turn.sentences == [] and not turn_task.done()
            llm.release.set()
            turn = await turn_task
        assert_complete_turn(turn)                       # the fake LLM's answer, not "Sorry, I'm busy"
        assert llm.warm_ups == 1
        assert hub.ctx.metrics.summary("first_token")["count"] == 1
        assert hub.ctx.compute.stats["llm"]["busy"] == 0
        # The busy estimate learned the turn's hold, not the warm-up's (over 5 x max_wait).
        hold = hub.ctx.compute.limit("llm").hold_ewma
        assert hold is not None and llm.warm_hold > 5 * MAX_WAIT and hold < llm.warm_hold
    finally:
        llm.release.set()
        await hub.stop()
