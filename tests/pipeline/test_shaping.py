"""The answer guards one by one (pipeline/shaping): prompt leaks, loops, code, the budget and the
asks for a longer answer, the speech estimate."""

from __future__ import annotations

import pytest

from xiaozhi_hub.memory.conversation import SUMMARY_HEADER
from xiaozhi_hub.pipeline.sentences import clean_for_speech
from xiaozhi_hub.pipeline.shaping import (AnswerShaper, Budget, CodeFilter, LoopGuard, PromptGuard, asks_for_long,
                                          shaper_for, speech_seconds, tokens)
from xiaozhi_hub.providers.base import ChatMessage, ToolSpec

from .conftest import settings

PROMPT = "You are a helpful voice assistant in the home. Answer in one or two short sentences."


def shape(text: str, shaper: AnswerShaper, chunk: int = 5) -> list[str]:
    """Feed ``text`` in chunks as an LLM streams it; the pieces said, until the shaper stops."""
    out: list[str] = []
    for i in range(0, len(text), chunk):
        out += shaper.feed(text[i:i + chunk])
        if shaper.stopped:
            return out
    return out + shaper.flush()


def shaper(prompt: str = PROMPT, question: str = "hello", sentences: int = 2, seconds: float = 12.0,
           tools: tuple[str, ...] = ()) -> AnswerShaper:
    return AnswerShaper(PromptGuard([prompt], tools, question), Budget(sentences, seconds))


# ---------------------------------------------------------------------------- tokens and speech time


def test_tokens_spell_out_contractions_and_split_chinese_into_characters():
    assert tokens("You're a HELPFUL assistant!") == ["you", "are", "a", "helpful", "assistant"]
    assert tokens("蜘蛛有8条腿。") == ["蜘", "蛛", "有", "8", "条", "腿"]


def test_speech_estimate_grows_with_the_text_and_errs_long():
    short, long = speech_seconds("Paris."), speech_seconds("The capital of France is Paris, on the Seine.")
    assert 0 < short < long
    # Piper (joe, length_scale 1) said this 22-word sentence in 5.7 s; the estimate is not shorter.
    story = "Once upon a time, a small dragon lived in a cave high above the village and dreamed of flying over the sea."
    assert speech_seconds(story) >= 5.7
    assert speech_seconds(story, length_scale=2.0) == pytest.approx(2 * speech_seconds(story))
    assert speech_seconds("") == 0 and speech_seconds("...") == 0
    assert speech_seconds("一周有七天。") > speech_seconds("七天。")


# ---------------------------------------------------------------------------- leaks


def test_the_prompt_read_back_is_a_leak_but_the_users_own_words_are_not():
    guard = PromptGuard([PROMPT], question="You are a helpful voice assistant in the home, right?")
    assert guard.leak("You're a helpful voice assistant, in the home!") is None     # the user said it
    guard = PromptGuard([PROMPT])
    assert guard.leak("You're a helpful voice assistant in the home.") == "you are a helpful voice"
    assert guard.leak("I help around the home.") is None


def test_a_leak_across_two_pieces_is_found_with_the_words_before_it():
    guard = PromptGuard([PROMPT])
    assert guard.leak("assistant in the home.") is None
    assert guard.leak("assistant in the home.", before=["so", "a", "helpful", "voice"]) == "a helpful voice assistant in"


def test_tool_names_as_tts_reads_them_role_labels_and_template_tokens_are_leaks():
    guard = PromptGuard([PROMPT], tool_names=["get_time", "self.audio_speaker.set_volume", "mute"])
    assert guard.leak("I will use get time for that.") == "get time"
    assert guard.leak("Calling self audio speaker set volume now.") == "self audio speaker set volume"
    assert guard.leak("Mute is on.") is None          # a one-word name is an ordinary word
    assert guard.leak("User: what time is it?") == "User"
    assert guard.leak("A: To call a function") == "A" and guard.leak("Plan A: rest.") is None
    assert guard.leak("<|im_start|>assistant") is not None
    assert guard.leak("The timer is set.") is None


def test_a_piece_ending_in_prompt_text_waits_for_the_next_one():
    guard = PromptGuard([PROMPT])
    assert guard.holds("Sure, you are a helpful")
    assert not guard.holds("Sure, here you go")
    s = shaper()
    out = s.feed("Well, you are a helpful,") + s.feed(" voice assistant in the home. Bye.")
    assert out == [] and s.stopped and "prompt text" in s.stopped


def test_the_summary_and_tool_instructions_the_model_was_given_are_guarded():
    messages = [ChatMessage("system", PROMPT),
                ChatMessage("system", f"{SUMMARY_HEADER}\nUser: my cat Miso only eats tuna on Sundays.")]
    tools = [ToolSpec("set_timer", "Start a countdown timer; the device announces it when it ends.")]
    s = shaper_for(settings(), messages, tools, "hi")
    assert shape("What you remember from earlier in this conversation is nice.", s) == []
    s = shaper_for(settings(), messages, tools, "hi")
    assert shape("Your cat Miso only eats tuna on Sundays.", s) == []        # the summary, read back
    s = shaper_for(settings(), messages, tools, "hi")
    assert shape("To call a function, reply with only this, and nothing else.", s) == []
    s = shaper_for(settings(), messages, tools, "hi")
    assert shape("I started a countdown timer; the device announces it when it ends.", s) == \
        ["I started a countdown timer;"]
    assert s.stopped is not None and s.stopped.startswith("prompt text")
    s = shaper_for(settings(), messages, [], "hi")      # no tools offered: no tool text in the prompt
    assert shape("To call a function, reply with only this.", s) == ["To call a function,", "reply with only this."]


# ---------------------------------------------------------------------------- loops


@pytest.mark.parametrize("text, said", [
    ("I like cats. I like cats. I like cats.", ["I like cats."]),
    ("Okay. Yes yes yes yes yes yes.", ["Okay."]),
    ("Okay. Ha. Ha. Ha.", ["Okay.", "Ha."]),
    ("It is sunny and warm today, sunny and warm today, sunny and warm today.", ["It is sunny and warm today,"]),
    ("Wow!!!! Great.", []),
    ("一二三四五六七八。一二三四五六七八。一二三四五六七八。", ["一二三四五六七八。"]),
    ("从前有一个小舟子，献给一个活性，献给一个舟子，献给一个父毛，献给一个茨嵌。", ["从前有一个小舟子，"]),
])
def test_repetition_is_cut_before_the_repeat_is_said(text, said):
    s = shaper(sentences=50, seconds=600)
    assert shape(text, s) == said
    assert s.stopped and "repetition" in s.stopped


def test_a_chinese_story_may_say_its_hero_often():
    s = shaper(sentences=50, seconds=600)
    story = "从前有一只小兔子。它住在森林里。小兔子每天都去河边。有一天小兔子遇到了乌龟。乌龟说你好小兔子。小兔子说你好。"
    assert "".join(shape(story, s)) == story and not s.stopped


def test_numbers_and_a_phrase_said_twice_are_not_loops():
    g = LoopGuard()
    for piece in ("It is 1 000 000 000 000 km away.", "It is far, very far away.", "Very far away indeed."):
        assert g.loop(piece) is None
        g.said(piece)


# ---------------------------------------------------------------------------- code


def test_fenced_code_is_dropped_and_the_words_after_it_are_said():
    text = "Here is how:\n```python\nfrom datetime import timedelta\nweek = timedelta(days=7)\n```\nA week has seven days."
    s = shaper()
    assert shape(text, s) == ["Here is how:", "A week has seven days."]
    assert s.codes.dropped > 0 and not s.stopped


@pytest.mark.parametrize("piece", [
    "Use `ls -la` to list the files.", "print(timedelta(days=7))", "days = 7", "import datetime",
    'The answer is {"name": "get_time", "arguments": {}}', "<tool_call>", "x == y", "from datetime import date",
])
def test_code_and_tool_syntax_are_not_speakable(piece):
    assert CodeFilter().speakable(piece) == ""


@pytest.mark.parametrize("piece", [
    "Let me think about that.", "The Mariana Trench (in the Pacific) is deep.", "2 + 2 = 4.",
    "Class starts at nine.", "Return the book by Friday.",
])
def test_ordinary_sentences_are_speakable(piece):
    assert CodeFilter().speakable(piece) == piece


def test_an_answer_of_nothing_but_code_ends_and_counts_as_cut_to_nothing():
    s = shaper()
    code = "".join(f"    total_{i} = total_{i - 1} * 2 + offset\n" for i in range(1, 12))
    shape(f"```\nfor i in range(10):\n{code}```\nDone.", s, 3)
    assert s.text == "" and s.stopped == "code and nothing else" and s.cut_everything


def test_markdown_urls_and_emoji_are_cleaned_before_speech():
    assert clean_for_speech("**Paris** is the capital 🇫🇷 of France.") == "Paris is the capital of France."
    assert clean_for_speech("See https://example.org/x?y=1 or example.com.") == "See or example dot com."
    assert clean_for_speech("- apples\n- pears") == "apples pears"
    assert clean_for_speech("😊") == ""


# ---------------------------------------------------------------------------- the budget


def test_the_budget_stops_after_two_sentences():
    s = shaper()
    assert shape("Paris is the capital of France. It is on the Seine. It has many museums.", s) == \
        ["Paris is the capital of France.", "It is on the Seine."]
    assert s.stopped == "budget of 2 sentences"


def test_the_llm_is_stopped_as_soon_as_the_sentence_after_the_budget_begins():
    # It would be written in full and thrown away, while another device may wait for the model.
    s = shaper()
    said = s.feed("Paris is the capital of France. It is on the Seine.")
    assert said == ["Paris is the capital of France."] and not s.stopped
    assert s.feed(" It") == ["It is on the Seine."]
    assert s.stopped == "budget of 2 sentences"
    # An answer that ends by itself at its budget was not cut.
    s = shaper()
    assert s.feed("Paris is the capital of France. It is on the Seine.") + s.flush() == \
        ["Paris is the capital of France.", "It is on the Seine."]
    assert not s.stopped


def test_the_seconds_budget_cuts_between_sentences():
    long = "The Pacific Ocean is the largest and deepest of the five oceans on Earth by far."
    more = "It covers about a third of the surface of the planet, more than all the land."
    s = shaper(sentences=5, seconds=8)
    said = shape(f"It is the Pacific. {long} {more}", s)
    assert said == ["It is the Pacific.", long]          # a third sentence would run past 8 s
    assert s.stopped == "budget of 8 s"


def test_a_sentence_without_an_end_is_cut_once_it_runs_past_the_budget():
    s = shaper(seconds=6)
    said = shape("the fox ran over the hill and the hen ran down to the river while the dog slept in the barn "
                 "and the cat watched the birds from the roof of the old house near the wood", s)
    assert said and s.stopped == "budget of 6 s"
    assert sum(speech_seconds(clean_for_speech(p)) for p in said) <= 6


def test_a_sentence_cut_off_by_the_end_of_the_generation_is_not_said():
    s = shaper(sentences=10, seconds=100)
    assert shape("The dragon slept. The villagers were happy. Soon after, they invited the", s) == \
        ["The dragon slept.", "The villagers were happy."]
    assert shape("Good morning", shaper()) == ["Good morning"]            # the only words: said
    assert shape("Well, sure, I think I can", shaper()) == ["Well, sure,", "I think I can"]   # a sentence begun


def test_the_first_words_are_said_even_when_they_alone_exceed_the_budget():
    s = shaper(seconds=1)
    assert shape("The capital of France is Paris. More.", s) == ["The capital of France is Paris."]


def test_a_face_only_piece_passes_and_costs_nothing():
    s = shaper(sentences=1)
    assert shape("Sure! 😊 It is sunny. It is warm.", s) == ["Sure! 😊"]


@pytest.mark.parametrize("question", [
    "Tell me a short story about a dragon.", "List three fruits that are red.", "Can you explain how rain forms?",
    "Why is the sky blue?", "What are the colours of the rainbow?", "Name five animals.", "How do I boil an egg?",
    "给我讲一个小兔子的故事", "列举三种水果", "为什么天是蓝的", "解释一下光合作用",
])
def test_a_story_a_list_or_an_explanation_gets_the_long_budget(question):
    assert asks_for_long(question)
    b = Budget.for_question(question, settings())
    assert b.long and b.sentences == 12 and b.seconds == 60


@pytest.mark.parametrize("question", [
    "What is the capital of France?", "Good morning!", "How are you today?", "How many legs does a spider have?",
    "中国的首都是哪里？", "早上好", "你好吗",
])
def test_other_questions_get_the_short_budget(question):
    assert not asks_for_long(question)
    assert Budget.for_question(question, settings()) == Budget(2, 12.0)


def test_the_budget_comes_from_the_settings():
    b = Budget.for_question("hi", settings(agent={"answer_sentences": 1, "answer_seconds": 5}))
    assert (b.sentences, b.seconds) == (1, 5)
    b = Budget.for_question("tell me a story", settings(agent={"long_answer_sentences": 30, "long_answer_seconds": 90}))
    assert (b.sentences, b.seconds) == (30, 90)
