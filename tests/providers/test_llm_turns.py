"""llama.cpp devices take turns: a reply gives the model up after a sentence when another device waits.

Real SmolLM2-135M (greedy decoding), real compute pool; the order is observed, never timed."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio

from xiaozhi_hub.compute import ComputePool
from xiaozhi_hub.providers.base import ChatMessage, TextDelta

from tests.models.test_real_models import need, settings

pytestmark = [pytest.mark.models, pytest.mark.asyncio(loop_scope="module")]

STORY = [ChatMessage("system", "You are a storyteller. Tell long stories of many sentences."),
         ChatMessage("user", "Tell me a long story about a dragon who learns to bake bread.")]
CAPITAL = [ChatMessage("system", "Answer in one short sentence."),
           ChatMessage("user", "What is the capital of France?")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def llama() -> AsyncIterator[Any]:
    need("smollm2-135m-instruct")
    from xiaozhi_hub.providers import llm_llamacpp

    compute = ComputePool()
    llm = await llm_llamacpp.create(settings(llm={"model": "smollm2-135m-instruct", "temperature": 0,
                                                  "max_tokens": 96, "max_wait": 600}), compute)
    yield llm
    await llm.aclose()
    compute.shutdown()


async def collect(llm: Any, messages: list[ChatMessage], log: list[tuple[str, str]], name: str) -> str:
    text = ""
    async with contextlib.aclosing(llm.stream(messages)) as events:
        async for event in events:
            if isinstance(event, TextDelta) and event.text:
                log.append((name, event.text))
                text += event.text
    log.append((name, "<end>"))
    return text


async def test_a_long_answer_lets_a_waiting_device_have_the_model_after_a_sentence(llama: Any):
    alone: list[tuple[str, str]] = []
    story_alone = await collect(llama, STORY, alone, "story")
    assert story_alone.count(".") >= 2, story_alone          # long enough to be interrupted

    log: list[tuple[str, str]] = []
    story = asyncio.create_task(collect(llama, STORY, log, "story"))
    while not log:                                           # the story has begun
        await asyncio.sleep(0.01)
    capital = await collect(llama, CAPITAL, log, "capital")
    story_text = await story

    order = [name for name, piece in log]
    assert "paris" in capital.lower()
    # The capital question was answered while the story was still being written...
    assert log.index(("capital", "<end>")) < log.index(("story", "<end>"))
    # ...and the story gave the model up only after the end of a sentence, once the next word had
    # begun (so the sentence splitter could release that sentence for the wait).
    before = "".join(piece for name, piece in log[:order.index("capital")] if name == "story")
    assert before.rsplit(None, 1)[0].rstrip(" \"'").endswith((".", "!", "?")), before
    # It went on from where it stopped: the same opening sentence, and more after it.
    first_sentence = story_alone.split(".")[0]
    assert story_text.startswith(first_sentence) and len(story_text) > len(before)


async def test_an_answer_alone_never_gives_the_model_up(llama: Any):
    log: list[tuple[str, str]] = []
    await collect(llama, CAPITAL, log, "capital")
    assert llama.compute.limit("llm").active == 0
    assert not llama.last_stats.yielded
