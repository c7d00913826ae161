"""Where a llama.cpp reply gives the model up to a waiting device, and that what it wrote by then can
be spoken during the wait.

A reply that stopped right at a full stop left its last sentence inside the reply's sentence
splitter (which must see the next character to tell "light." from "3.5") for the whole wait: audible
gaps of 0.7-1.4 s with 2 and 4 devices. Scripted model (llama-cpp-python's streaming and stopping
semantics), real provider code, real compute pool, real sentence splitter and answer shaper; the
order of events is observed, never timed."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any, Iterator

import pytest

from xiaozhi_hub.compute import ComputePool
from xiaozhi_hub.pipeline.sentences import SentenceSplitter
from xiaozhi_hub.pipeline.shaping import shaper_for
from xiaozhi_hub.providers.base import ChatMessage, TextDelta
from xiaozhi_hub.providers.llm_llamacpp import YIELD_AFTER_CHARS, LlamaCppLLM, may_give_up
from xiaozhi_hub.settings import Settings

pytest.importorskip("llama_cpp")

LIGHT_Q = "Turn on the kitchen light."
LIGHT_A = ["Sure", "!", " I", " can", " turn", " on", " the", " kitchen", " light", " for", " you", ".",
           " The", " light", " is", " on", " now", "."]
TIME_Q = "What time is it?"
TIME_A = ["It", " is", " ten", " past", " nine", " in", " the", " morning", " right", " now", ".",
          " Have", " a", " nice", " day", "!"]


# ---------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("text", [
    "Sure! I can turn on the kitchen light for you. The",
    "Sure! I can turn on the kitchen light for you.\n\nThe",
    'He said: "I can turn on the kitchen light for you." Then',
    "I can turn on the kitchen light for you, right away! 😊 Now",
    "好的，厨房的灯已经打开了。现在客厅的灯也打开了，还有卧室的灯和书房的灯也都打开了，祝您晚上愉快。",
])
def test_a_reply_may_give_the_model_up_once_a_sentence_is_complete(text: str):
    assert len(text) >= YIELD_AFTER_CHARS
    assert may_give_up(text)


@pytest.mark.parametrize("text", [
    "Sure! I can turn on the kitchen light for you.",       # the full stop alone: "3.5" or "3. " may follow
    "Sure! I can turn on the kitchen light for you. ",
    "Sure! I can turn on the kitchen light for 3.5",        # a decimal, not a sentence end
    "Sure. The",                                            # too little written to cover a wait
    "I will turn on the kitchen light for you. <tool_call>",
    'I will do it now. <tool_call>{"name": "light_on"}. The',   # inside a tool call
    "I can turn on the kitchen light for you right away and",
])
def test_a_reply_keeps_the_model_anywhere_else(text: str):
    assert not may_give_up(text)


@pytest.mark.parametrize("answer", [LIGHT_A, TIME_A, [
    "The", " capital", " of", " France", " is", " Paris", ".", " It", " is", " known", " for", " the", " Eiffel",
    " Tower", ".", " Many", " people", " visit", " it", "."]])
def test_everything_written_before_giving_up_leaves_the_splitter_except_the_next_words(answer: list[str]):
    """Streamed token by token into the reply's sentence splitter and into the answer shaper (the
    splitter the LLM's text meets first), the text up to the first point the rule allows comes out
    whole but its last word: nothing written waits for the continuation."""
    splitter = SentenceSplitter()
    shaper = shaper_for(Settings(), [ChatMessage("system", "You are a voice assistant.")], [], "Hello there")
    text, released, shaped = "", [], []
    for token in answer:
        text += token
        released += splitter.feed(token)
        shaped += shaper.feed(token)
        if may_give_up(text):
            break
    else:
        pytest.fail("the rule never allows giving the model up")
    spoken_part, next_word = text.rsplit(" ", 1)
    assert " ".join(released) == spoken_part
    assert " ".join(shaped) == spoken_part
    assert splitter.flush() == [next_word]


# ---------------------------------------------------------------------------- the provider taking turns


class ScriptedLlama:
    """llama-cpp-python's ``Llama`` as the provider uses it: one byte per token, no chat template in
    the metadata (ChatML), and ``create_completion(stream=True)`` that checks the stopping criteria
    after each sampled token before yielding it. The answer is chosen by the question in the prompt
    and continued from the assistant text the prompt already ends with."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.metadata: dict[str, str] = {}
        self.hold = threading.Event()       # the first generation waits for this before its first token
        self.started = threading.Event()
        self.hold_on: dict[str, threading.Event] = {}   # a question's first generation waits for its event
        self.prompts: list[str] = []

    def token_eos(self) -> int:
        return 2

    def token_bos(self) -> int:
        return 1

    def detokenize(self, tokens: list[int], special: bool = False) -> bytes:
        return {2: b"<|im_end|>", 1: b"<s>"}[tokens[0]] if tokens[0] in (1, 2) else bytes(tokens)

    def tokenize(self, text: bytes, add_bos: bool = False, special: bool = False) -> list[int]:
        return list(text)

    def n_ctx(self) -> int:
        return 4096

    def create_completion(self, tokens: list[int], max_tokens: int, temperature: float, stream: bool,
                          stop: list[str], stopping_criteria: Any) -> Iterator[dict[str, Any]]:
        prompt = bytes(tokens).decode()
        self.prompts.append(prompt)
        question = next(q for q in self.answers if q in prompt)
        written = prompt.rsplit("<|im_start|>assistant\n", 1)[1]
        answer = self.answers[question]
        done = 0
        while "".join(answer[:done]) != written:
            done += 1
            assert done <= len(answer), f"the continuation does not go on from the text so far: {written!r}"
        if not self.started.is_set():
            self.started.set()
            assert self.hold.wait(30)
        if question in self.hold_on:
            assert self.hold_on.pop(question).wait(30)
        for token in answer[done:]:
            if stopping_criteria(None, None):      # checked before the sampled token is yielded
                return
            yield {"choices": [{"text": token}]}


async def until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_a_reply_that_gives_the_model_up_has_all_it_wrote_spoken_during_the_wait():
    compute = ComputePool(workers=2)
    compute.set_limit("llm", 1)
    model = ScriptedLlama({LIGHT_Q: LIGHT_A, TIME_Q: TIME_A})
    llm = LlamaCppLLM(model, compute, system_prompt="You are a voice assistant.", max_tokens=100,
                      temperature=0.0, max_wait=60.0, timeout=60.0)
    log: list[tuple[str, str]] = []

    async def ask(name: str, question: str) -> str:
        text = ""
        async with contextlib.aclosing(llm.stream([ChatMessage("user", question)])) as events:
            async for event in events:
                if isinstance(event, TextDelta) and event.text:
                    log.append((name, event.text))
                    text += event.text
        return text

    try:
        light = asyncio.create_task(ask("light", LIGHT_Q))
        await until(model.started.is_set)
        clock = asyncio.create_task(ask("clock", TIME_Q))
        await until(lambda: compute.limit("llm").queued() > 0)     # the second device waits for the model
        model.hold.set()
        light_text, clock_text = await asyncio.wait_for(asyncio.gather(light, clock), 60)
    finally:
        model.hold.set()
        compute.shutdown()

    assert light_text == "".join(LIGHT_A) and clock_text == "".join(TIME_A)
    names = [name for name, _ in log]
    first_clock = names.index("clock")
    assert "light" in names[first_clock:], "the light answer kept the model to its end"
    before = "".join(text for name, text in log[:first_clock] if name == "light")
    # It gave the model up after the next sentence had begun, and went on from there.
    assert before == "Sure! I can turn on the kitchen light for you. The"
    assert any(p.endswith("<|im_start|>assistant\n" + before) for p in model.prompts)
    # Everything it wrote before the wait leaves the reply's sentence splitter before the wait.
    assert " ".join(SentenceSplitter().feed(before)) == "Sure! I can turn on the kitchen light for you."


async def test_an_answer_that_gave_the_model_up_is_never_refused_as_busy_when_it_queues_again():
    """Its answer has begun: however long the queue looks, the rest of it waits for the model (and
    goes ahead of new questions once its audio runs low, compute.PROMOTE_BELOW_S), and the device
    never hears "busy" in the middle of an answer. Only a new question meets ``llm.max_wait``."""
    from xiaozhi_hub.providers.base import BusyError

    france_q = "What is the capital of France?"
    compute = ComputePool(workers=2)
    compute.set_limit("llm", 1, max_wait=5.0)
    model = ScriptedLlama({LIGHT_Q: LIGHT_A, TIME_Q: TIME_A, france_q: ["Paris", "."]})
    llm = LlamaCppLLM(model, compute, system_prompt="You are a voice assistant.", max_tokens=100,
                      temperature=0.0, max_wait=5.0, timeout=60.0)
    lim = compute.limit("llm")

    async def ask(question: str) -> str:
        async with contextlib.aclosing(llm.stream([ChatMessage("user", question)])) as events:
            return "".join([e.text async for e in events if isinstance(e, TextDelta)])

    clock_runs = model.hold_on[TIME_Q] = threading.Event()
    try:
        light = asyncio.create_task(ask(LIGHT_Q))
        await until(model.started.is_set)
        clock = asyncio.create_task(ask(TIME_Q))
        france = asyncio.create_task(ask(france_q))
        await until(lambda: lim.queued() == 2)      # two devices wait for the model
        lim.hold_ewma = 100.0                       # from now on the queue looks 100 s long
        with pytest.raises(BusyError):              # a new question is refused...
            await ask("Tell me a joke about cats.")
        model.hold.set()                            # the light answer gives the model up to the clock
        await until(lambda: lim.queued() == 2 or light.done())   # ...and queues again, behind France
        assert not light.done(), "the answer under way was refused"
        clock_runs.set()
        texts = await asyncio.wait_for(asyncio.gather(light, clock, france), 60)
    finally:
        model.hold.set()
        clock_runs.set()
        compute.shutdown()
    assert texts == ["".join(LIGHT_A), "".join(TIME_A), "Paris."]
    assert any(p.endswith("<|im_start|>assistant\nSure! I can turn on the kitchen light for you. The")
               for p in model.prompts), "the light answer did not give the model up"
