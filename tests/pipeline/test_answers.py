"""Voice-shaped answers through the agent, with the fake LLM scripted to misbehave as small models do:
prompt and tool text read back, loops, code, long answers; the LLM is stopped where the answer ends,
a model that cannot call tools gets none, and what reaches TTS in a hub has nothing unspeakable."""

from __future__ import annotations

import math
from typing import Any, AsyncIterator, Sequence

from xiaozhi_hub.audio import pcm as pcmlib
from xiaozhi_hub.pipeline.agent import Agent
from xiaozhi_hub.pipeline.phrases import NO_ANSWER
from xiaozhi_hub.providers.base import ChatMessage, LLMEvent, ToolSpec
from xiaozhi_hub.providers.fake import FakeLLM
from xiaozhi_hub.settings import FakeSettings
from xiaozhi_hub.simulator import SimulatedDevice

from ..conftest import ws_url
from .conftest import FakeLink, ScriptedLLM, collect, settings


class CountingLLM(FakeLLM):
    """The fake LLM scripted with ``reply``; counts the chunks it generated and the prompts it got."""

    def __init__(self, reply: str, chunk: int = 6, calls_tools: bool = True) -> None:
        super().__init__(FakeSettings(llm_reply=reply, llm_chunk_chars=chunk))
        self.calls_tools = calls_tools
        self.total = math.ceil(len(reply) / chunk)
        self.generated = 0
        self.closed = False
        self.seen: list[tuple[list[ChatMessage], list[ToolSpec]]] = []

    async def stream(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> AsyncIterator[LLMEvent]:
        self.seen.append((list(messages), list(tools)))
        try:
            async for event in super().stream(messages, tools):
                self.generated += 1
                yield event
        finally:
            self.closed = True


async def answer(reply: str, question: str = "Tell me something.", **sections: Any) -> tuple[str, CountingLLM, Agent]:
    llm = CountingLLM(reply)
    agent = Agent(settings(**sections), llm)
    return (await collect(agent.reply(FakeLink(), question))), llm, agent


# ---------------------------------------------------------------------------- the budget


async def test_the_default_answer_is_two_sentences_and_the_llm_is_stopped_there():
    reply = ("Paris is the capital of France. It lies on the Seine. It has many museums. "
             "The Louvre is the biggest. Millions visit it every year.")
    said, llm, _ = await answer(reply, "What is the capital of France?")
    assert said == "Paris is the capital of France. It lies on the Seine."
    assert llm.closed and llm.generated < llm.total - 5        # the rest was never generated


async def test_a_story_or_a_list_may_run_longer_in_english_and_chinese():
    story = ("A small dragon lived in a cave. Every night it counted the stars. One night a star fell. "
             "The dragon flew to find it. It found a child holding the star. They became friends.")
    said, llm, _ = await answer(story, "Tell me a short story about a dragon.")
    assert said == story and llm.generated == llm.total
    said, _, _ = await answer("Apples. Cherries. Strawberries. Raspberries.", "List four red fruits.")
    assert said == "Apples. Cherries. Strawberries. Raspberries."
    said, _, _ = await answer("从前有一只小兔子。它住在森林里。它每天都去河边喝水。有一天它遇到了一只乌龟。",
                              "给我讲一个小兔子的故事")
    assert said == "从前有一只小兔子。它住在森林里。它每天都去河边喝水。有一天它遇到了一只乌龟。"
    said, _, _ = await answer("北京是中国的首都。它有很多名胜古迹。长城就在北京附近。", "中国的首都是哪里？")
    assert said == "北京是中国的首都。它有很多名胜古迹。"


async def test_the_budget_is_a_setting():
    said, _, _ = await answer("One. Two. Three.", "Count.", agent={"answer_sentences": 1})
    assert said == "One."


# ---------------------------------------------------------------------------- leaks, loops, code


async def test_the_system_prompt_read_back_is_never_said_and_an_honest_sentence_replaces_it():
    said, llm, _ = await answer("You're a helpful voice assistant in the home. Your answers are spoken aloud: "
                                "answer in one or two short sentences.", "I do. I think that America do it very well.")
    assert said == NO_ANSWER["en"]
    assert llm.closed and llm.generated < llm.total


async def test_the_guard_knows_the_prompt_this_model_was_given_not_a_fixed_text():
    reply = "Hello! I am Pip, a cheerful kitchen robot who loves soup. What shall we cook?"
    said, _, _ = await answer(reply, "Who are you?", llm={"system_prompt": "You are Pip, a cheerful kitchen robot who "
                                                                         "loves soup. Keep answers short."})
    assert said == "Hello!"
    said, _, _ = await answer(reply, "Who are you?")                   # the default prompt says nothing of Pip
    assert said == "Hello! I am Pip, a cheerful kitchen robot who loves soup."


async def test_tool_instructions_and_tool_names_are_never_said():
    said, _, agent = await answer("Good morning! To call a function, reply with only this, and nothing else: A: A:",
                                  "Good morning!")
    assert agent.llm_tools and said == "Good morning!"
    said, _, _ = await answer("Sure, I can use list timers for that. You have none.", "What timers do I have going?")
    assert said == NO_ANSWER["en"]


async def test_a_loop_is_cut_before_the_repeat_and_the_llm_is_stopped():
    said, llm, _ = await answer("Good morning! " + "A: " * 40, "Good morning!")
    assert said == "Good morning!" and llm.generated < llm.total
    said, _, _ = await answer("Once there was a cat. Once there was a cat. Once there was a cat.", "Tell me a story.")
    assert said == "Once there was a cat."


async def test_code_is_not_said_and_the_words_around_it_are():
    reply = ("A week has seven days.\n```python\nfrom datetime import timedelta\nprint(timedelta(days=7))\n```\n"
             "That is all.")
    said, _, _ = await answer(reply, "How many days are in a week?")
    assert said == "A week has seven days. That is all."
    said, _, _ = await answer("Use `timedelta(days=7)` for that. Seven days make a week.", "How many days in a week?")
    assert said == "Seven days make a week."


async def test_when_everything_is_cut_the_answer_is_short_and_honest_in_the_users_language():
    said, _, _ = await answer("```\nprint('hi')\n```", "Say hi in Python.")
    assert said == NO_ANSWER["en"]
    said, _, _ = await answer("User: 你好 User: 你好", "你好")
    assert said == NO_ANSWER["zh"]
    said, _, _ = await answer("", "Hello?")                   # a model that wrote nothing at all
    assert said == NO_ANSWER["en"]


async def test_what_is_stored_is_what_was_said():
    llm = CountingLLM("Hi there. You're a helpful voice assistant in the home. Bye.")
    agent = Agent(settings(), llm)
    link = FakeLink()
    assert await collect(agent.reply(link, "hello")) == "Hi there."
    history = [(m.role, m.content) for m in (await agent.dialogue.messages(link.device_id))[1:]]
    assert history == [("user", "hello"), ("assistant", "Hi there.")]


# ---------------------------------------------------------------------------- tools per model


async def test_a_model_that_cannot_call_tools_gets_no_tools_and_no_tool_instructions():
    llm = CountingLLM("Okay.", calls_tools=False)
    agent = Agent(settings(), llm)
    assert await collect(agent.reply(FakeLink(), "Tell me a joke.")) == "Okay."
    messages, tools = llm.seen[0]
    assert tools == [] and not agent.llm_tools
    assert [m.content for m in messages if m.role == "system"] == [agent.settings.llm.system_prompt]
    # The intents still carry the tools: a timer or the volume needs no LLM.
    assert await collect(agent.reply(FakeLink(), "set the volume to thirty")) == "Volume set to 30."


async def test_llm_tools_on_and_off_override_what_the_model_says_of_itself():
    for mode, calls_tools, offered in (("on", False, True), ("off", True, False), ("auto", True, True)):
        llm = ScriptedLLM(calls_tools=calls_tools)
        agent = Agent(settings(llm={"tools": mode}), llm)
        await collect(agent.reply(FakeLink(), "hello"))
        assert bool(llm.seen[0][1]) is offered, mode


# ---------------------------------------------------------------------------- what reaches TTS in a hub


async def test_nothing_unspeakable_reaches_tts_and_faces_still_show(start_hub):
    reply = ("**Paris** is the capital 🤔 of France.\nSee https://en.wikipedia.org/wiki/Paris and paris.org.\n"
             "```\ncapital = 'Paris'\n```\n"
             "Use `city.name` there. Its # motto is *tossed but not sunk*.")
    hub = await start_hub(fake={"llm_reply": reply, "asr_text": "what is the capital of france"},
                          agent={"answer_sentences": 5})
    async with SimulatedDevice(ws_url(hub)) as dev:
        turn = await dev.run_turn(pcmlib.voice_like(900), mode="manual")
    # What the device was told TTS is saying (tts sentence_start): no markdown, emoji, URL or code.
    assert turn.sentences == ["Paris is the capital of France.", "See and paris dot org.", "Its motto is tossed but not sunk."]
    assert "thinking" in [m.data.get("emotion") for m in turn.messages if m.type == "llm"]   # the emoji's face
