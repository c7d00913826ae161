"""The quality bench's judgments (bench/quality_checks.py) on the answers issue 16 quotes, and its
measuring path through a hub with a scripted fake LLM."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from bench.quality import PromptRecorder, Question, _ask, load_questions
from bench.quality_checks import LeakGuard, expected_pattern, find_loop, unspeakable, word_count
from xiaozhi_hub.providers.base import ChatMessage, ToolSpec
from xiaozhi_hub.providers.llm_llamacpp import tools_system_block
from xiaozhi_hub.settings import LLMSettings

VOLUME_TOOL = ToolSpec("self_audio_speaker_set_volume", "Set the volume of the audio speaker (0-100).",
                       {"type": "object", "properties": {"volume": {"type": "integer"}}})


@pytest.fixture
def guard() -> LeakGuard:
    """Fed the way the bench feeds it: the hub's own system prompt and tool convention."""
    g = LeakGuard()
    g.add_text(LLMSettings.system_prompt)
    g.add_text(tools_system_block([VOLUME_TOOL]))
    g.add_tool(VOLUME_TOOL.name, VOLUME_TOOL.description)
    g.add_text("What you remember from earlier in this conversation:")
    return g


@pytest.mark.parametrize("answer", [
    # The "good morning": the tool instructions spoken aloud.
    "Here's a summary of the previous response: A: To call a function, reply with only this, and nothing else:",
    # A real speaker's words answered with the system prompt.
    "You're a helpful voice assistant in the home. I think so too.",
    "Sure, I will answer in one or two short sentences of plain spoken language.",
    "I can call self audio speaker set volume for you.",          # a tool name, as TTS reads it
    "User: good morning Assistant: good morning",                  # the summary's role labels
])
def test_leaks_of_the_prompt_tools_and_summaries_are_found(guard: LeakGuard, answer: str):
    assert guard.find(answer, "good morning") is not None


@pytest.mark.parametrize("answer, question", [
    ("The capital of France is Paris.", "What is the capital of France?"),
    ("Okay, I have set the volume of the speaker to 30.", "Set the volume to thirty."),
    ("A spider has eight legs.", "How many legs does a spider have?"),
    # The user's own words echoed back are not a leak.
    ("You asked whether I am a helpful voice assistant in the home: I try to be.",
     "Are you a helpful voice assistant in the home?"),
])
def test_ordinary_answers_are_not_leaks(guard: LeakGuard, answer: str, question: str):
    assert guard.find(answer, question) is None


@pytest.mark.parametrize("answer, loop", [
    ("A: To call a function, reply with only this: A: A: A: A: A:", True),
    ("早上好））））））））））））！", True),
    ("It is sunny. It is sunny today. It is sunny. It is sunny today.", True),
    ("The story of Romeo and Juliet is a Romeo and Juliet, a Romeo and Juliet, a Romeo and Juliet.", True),
    ("The Pacific is about 7,978,760,000,000,000 cubic kilometers.", False),
    ("Once upon a time a dragon lived in a cave. One day he met a knight. They became friends.", False),
    ("哈哈，早上好！今天天气很好。", False),
    ("今天天气很好。今天天气很好。", True),
    ("Use datetime. Then call datetime.", False),
])
def test_repetition_loops(answer: str, loop: bool):
    assert (find_loop(answer) is not None) is loop


def test_code_markdown_urls_and_emoji_are_told_apart():
    assert unspeakable(['"name": "set time to next hour", "description": "Set the time"']).keys() == {"code"}
    found = unspeakable(["There are 7 days.", "from datetime import timedelta", "week = timedelta(days=7)",
                         "See **this** page.", "Visit www.example.com for more.", "Have a nice day 🙂"])
    assert found == {"code": "from datetime import timedelta", "markdown": "See **this** page.",
                     "url": "Visit www.example.com for more.", "emoji": "Have a nice day 🙂"}
    assert unspeakable(["Two plus two = 4.", "A cat (named Tom) sat down.", "It's 4:52 PM."]) == {}
    # Prose that starts like a Python line is not code (a long sentence cut before "from ...").
    assert unspeakable(["from managing calendars to giving advice.", "class is over at noon."]) == {}
    assert unspeakable(["import os", "def main():", "class Timer(object):"]).keys() == {"code"}


def test_words_count_chinese_characters_as_half_words():
    assert word_count("A spider has eight legs.") == 5
    assert word_count("一周有七天。") == 2.5
    assert word_count("今天是2026年12月1日") == 3 + 3


def test_date_and_time_placeholders_are_filled_in_when_asked():
    tuesday = dt.datetime(2026, 12, 1, 16, 52)
    in_three_days = expected_pattern("{weekday+3}", tuesday)
    assert in_three_days.search("It will be Friday.") and in_three_days.search("三天后是星期五。")
    assert not in_three_days.search("It will be Thursday.") and not in_three_days.search("星期四")
    assert expected_pattern("{weekday+5}", tuesday).search("那天是周日")
    now = expected_pattern("{hour}", tuesday)
    assert now.search("It's 4:52 PM.") and now.search("现在是下午4点52分。") and now.search("16:52")
    assert not now.search("It's 5:52 PM.") and not now.search("There are 4 legs.")


def test_the_question_set_has_what_the_bench_reports_on():
    questions = load_questions()
    assert len(questions) >= 30
    assert {q.kind for q in questions} == {"fact", "command", "chit-chat", "story", "list"}
    assert sum(q.zh for q in questions) >= 10 and sum(not q.zh for q in questions) >= 20
    assert {q.tag for q in questions} >= {"arithmetic", "conversion", "date", "time"}
    now = dt.datetime.now().astimezone()
    for q in questions:
        if q.kind == "fact":
            assert q.expect, q.q
        if q.expect:
            expected_pattern(q.expect, now)          # compiles
    spider = next(q for q in questions if q.q == "How many legs does a spider have?")
    assert expected_pattern(spider.expect or "", now).search("Spiders have 8 legs.")
    assert not expected_pattern(spider.expect or "", now).search("typically 12 legs, up to 18")


async def test_prompt_recorder_keeps_instructions_not_conversation():
    class Provider:
        async def stream(self, messages, tools=()):
            yield "ok"

    provider, guard = Provider(), LeakGuard()
    PromptRecorder(provider, guard)
    messages = [ChatMessage("system", "You are a careful assistant who never speaks of the secret garden."),
                ChatMessage("system", "What you remember from earlier in this conversation:\nUser: my cat is "
                                      "called Felix and she likes to sleep on the sofa"),
                ChatMessage("user", "hello")]
    assert [x async for x in provider.stream(messages, [VOLUME_TOOL])] == ["ok"]
    assert guard.find("I never speaks of the secret garden at all") is not None
    assert guard.find("What you remember from earlier in this conversation: nothing") is not None
    assert guard.find("your cat is called Felix and she likes to sleep on the sofa") is None
    assert guard.find("It sets the volume of the audio speaker (0-100) for you") is not None


async def test_an_answer_is_measured_through_the_hub_and_judged(start_hub):
    """The bench's own path (a device per question, `listen detect` text, what reached TTS, the audio
    the device got), with a scripted fake LLM saying the prompt, looping and reading code: the hub's
    answer guards (pipeline/shaping) let none of it reach TTS, and the bench, which had the prompt
    recorded, would have seen each of them."""
    reply = ("You are a helpful voice assistant in the home. A: A: A: A: A: "
             "Use timedelta(days=n) for a week.")
    hub = await start_hub(fake={"llm_reply": reply, "llm_chunk_delay_ms": 0, "tts_ms_per_char": 10})
    guard = LeakGuard()
    PromptRecorder(hub.ctx.providers.llm, guard)
    url = f"ws://127.0.0.1:{hub.ctx.ws_port}/xiaozhi/v1/"
    answer = await _ask(hub, url, Question("How many days are in a week?", "fact", expect=r"\b(seven|7)\b"),
                        asyncio.Lock())
    answer.judge(guard)
    assert answer.error is None and answer.sentences
    assert answer.seconds > 0.3 and answer.first_audio is not None
    assert answer.text == "Sorry, I don't have a good answer to that."
    assert answer.leak is None and answer.loop is None and answer.unspeakable == {}
    assert answer.right is False
    assert guard.find(reply) == "you are a helpful voice assistant"      # what the bench would have caught
    assert find_loop(reply) is not None and "code" in unspeakable([reply])
