"""Sentence splitting of streamed LLM text, speech clean-up and emoji → emotion (pipeline/sentences.py)."""

from __future__ import annotations

import pytest

from xiaozhi_hub.pipeline.sentences import EMOTIONS, EMOJI_EMOTIONS, SentenceSplitter, clean_for_speech, emotion_of


def split(text: str, step: int = 3, **kw) -> list[str]:
    """Feed ``text`` in ``step``-sized deltas (like an LLM stream), then flush."""
    s = SentenceSplitter(**kw)
    out: list[str] = []
    for i in range(0, len(text), step):
        out += s.feed(text[i:i + step])
    return out + s.flush()


SPLITS = [
    # English terminators
    ("Okay. The kitchen light is on now.", ["Okay.", "The kitchen light is on now."]),
    ("Really? Yes! Sure; fine: done.", ["Really?", "Yes!", "Sure;", "fine:", "done."]),
    ("Wow... really?! Yes.", ["Wow...", "really?!", "Yes."]),
    ("Line one\nLine two\n\nLine three", ["Line one", "Line two", "Line three"]),
    # not sentence ends
    ("It costs 3.5 dollars. Next.", ["It costs 3.5 dollars.", "Next."]),
    ("Meet at 10:30 today. Bye.", ["Meet at 10:30 today.", "Bye."]),
    ("Mr. Smith and Dr. Jones agree. Good.", ["Mr. Smith and Dr. Jones agree.", "Good."]),
    ("Use e.g. this one. Fine.", ["Use e.g. this one.", "Fine."]),
    ("Ask J. Smith now. Ok.", ["Ask J. Smith now.", "Ok."]),
    ("I saw the sun. It was hot.", ["I saw the sun.", "It was hot."]),
    ("Go to example.com. It works.", ["Go to example.com.", "It works."]),
    ("1. First item\n2. Second item", ["1. First item", "2. Second item"]),
    ("It is 1,000 meters away. Ok.", ["It is 1,000 meters away.", "Ok."]),
    # closers and emoji stay with their sentence
    ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
    ("Done! 😊 Anything else?", ["Done! 😊", "Anything else?"]),
    ("**Note:** turn it off.", ["**Note:**", "turn it off."]),
    # early first chunk at a comma (>= 8 chars), only for the first piece
    ("Hello there, my friend, how are you? Fine, thanks, bye.",
     ["Hello there,", "my friend, how are you?", "Fine, thanks, bye."]),
    ("Hi, there friend.", ["Hi, there friend."]),                  # "Hi" is shorter than 8 chars
    # Chinese
    ("你好，我是小智。今天天气很好！你想做什么？", ["你好，我是小智。", "今天天气很好！", "你想做什么？"]),
    ("好的，已经为你打开客厅的灯了。还有别的吗", ["好的，已经为你打开客厅的灯了。", "还有别的吗"]),
    ("现在的温度是二十五度，湿度百分之四十，适合出门。", ["现在的温度是二十五度，", "湿度百分之四十，适合出门。"]),
    ("注意：明天下雨；记得带伞。", ["注意：", "明天下雨；", "记得带伞。"]),
    ("价格是3.5元。好的", ["价格是3.5元。", "好的"]),
    ("我买了苹果、香蕉、橙子和葡萄。", ["我买了苹果、香蕉、", "橙子和葡萄。"]),   # 、 once >= 8 chars
    # mixed
    ("OK.好的。", ["OK.", "好的。"]),
    # nothing speakable is dropped
    ("...\n***\nReal text.", ["Real text."]),
    ("", []),
]


@pytest.mark.parametrize("text,expected", SPLITS, ids=[t[:24] for t, _ in SPLITS])
@pytest.mark.parametrize("step", [1, 3, 1000])
def test_split(text: str, expected: list[str], step: int) -> None:
    assert split(text, step) == expected


def test_first_piece_is_released_before_the_stream_ends() -> None:
    s = SentenceSplitter()
    assert s.feed("Sure thing, ") == ["Sure thing,"]             # speech can start now
    assert s.feed("I will turn") == []
    assert s.feed(" it on, right away") == []                     # later commas do not split
    assert s.feed(". Done") == ["I will turn it on, right away."]
    assert s.flush() == ["Done"]


def test_ascii_terminator_waits_for_the_next_character() -> None:
    s = SentenceSplitter()
    assert s.feed("It costs 3.") == []                            # 3. or 3.5? not known yet
    assert s.feed("5 euros. ") == []                              # an emoji may still follow the space
    assert s.feed("Next") == ["It costs 3.5 euros."]


def test_chinese_terminator_releases_immediately() -> None:
    s = SentenceSplitter()
    assert s.feed("好的。") == ["好的。"]


def test_closing_quote_after_chinese_terminator() -> None:
    assert split("“你好！”他说。", 1000) == ["“你好！”", "他说。"]
    # Streamed, the sentence is released before the quote arrives; the quote is not spoken alone.
    assert split("“你好！”他说。", 1) == ["“你好！", "他说。"]


@pytest.mark.parametrize("text,max_chars,expected_len", [
    ("word " * 60, 120, [119, 119, 59]),
    ("中文" * 100, 120, [120, 80]),
])
def test_long_runs_are_cut_near_max_chars(text: str, max_chars: int, expected_len: list[int]) -> None:
    pieces = split(text, 7, max_chars=max_chars, first_max_chars=max_chars)
    assert [len(p) for p in pieces] == expected_len
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")


def test_a_long_first_sentence_is_cut_after_a_whole_word_for_a_quick_start() -> None:
    text = "The provided tools are designed to enhance the experience of every user in the home."
    pieces = split(text, 4)
    assert pieces == ["The provided tools are designed to", "enhance the experience of every user in the home."]
    # Only the first piece: later long sentences wait for their punctuation.
    assert split("Okay. " + text, 4) == ["Okay.", text]
    # A first sentence that ends in time is not cut; nor is text without spaces (Chinese).
    assert split("The kitchen light is on now, as asked.", 4) == ["The kitchen light is on now,", "as asked."]
    assert split("好" * 60 + "。", 4) == ["好" * 60 + "。"]


def test_long_run_prefers_a_comma() -> None:
    text = "这是一段很长的没有句号的文字" * 3 + "，" + "真的很长" * 40
    pieces = split(text, 5, max_chars=60, first_min_chars=100)
    assert pieces[0] == "这是一段很长的没有句号的文字" * 3 + "，"
    assert all(len(p) <= 60 for p in pieces)


def test_splitter_rejects_silly_limits() -> None:
    with pytest.raises(ValueError):
        SentenceSplitter(first_min_chars=0)
    with pytest.raises(ValueError):
        SentenceSplitter(max_chars=5)


CLEAN = [
    ("**Bold** and *italic* text 😊", "Bold and italic text"),
    ("# Heading\n- item one\n- item two", "Heading item one item two"),
    ("1. First\n2) Second", "First Second"),
    ("[the docs](https://example.com/x) and ![logo](a.png)", "the docs and logo"),
    ("Visit https://example.com/page now", "Visit now"),
    ("Run `make test` please", "Run make test please"),
    ("```python\nprint(1)\n```", "print(1)"),
    ("> quoted line", "quoted line"),
    ("| a | b |\n|---|---|\n| 1 | 2 |", "a, b 1, 2"),
    ("snake_case_name and __init__", "snake case name and init"),
    ("Hello 👋🏽, world! ❤️", "Hello, world!"),
    ("Temperature: 25°C, 40% humidity & $5", "Temperature: 25°C, 40% humidity & $5"),
    ("温度是25°C，很舒服😄", "温度是25°C，很舒服"),
    ("**好的！**我已经打开了灯。✨", "好的！我已经打开了灯。"),
    ("Use <b>this</b> ~~not that~~", "Use this not that"),
    ("😊😊", ""),
    ("***", ""),
    ("...", ""),
    ("   ", ""),
]


@pytest.mark.parametrize("text,expected", CLEAN, ids=[t[:20] for t, _ in CLEAN])
def test_clean_for_speech(text: str, expected: str) -> None:
    assert clean_for_speech(text) == expected


EMOTION = [
    ("Great news! 😊", "happy"),
    ("Haha 😂 that is funny", "funny"),
    ("Oh no 😭", "crying"),
    ("Let me think 🤔", "thinking"),
    ("Sleep well 😴", "sleepy"),
    ("Cool 😎 and 😭", "cool"),                                   # the first one wins
    ("🚀 then 😉", "winking"),                                    # emoji without an emotion are skipped
    ("❤️ love it", "loving"),
    ("太好吃了🤤", "delicious"),
    ("好的😘", "kissy"),
    ("No emoji here.", None),
    ("", None),
]


@pytest.mark.parametrize("text,expected", EMOTION)
def test_emotion_of(text: str, expected: str | None) -> None:
    assert emotion_of(text) == expected


def test_emotion_table_only_uses_firmware_names() -> None:
    assert set(EMOJI_EMOTIONS.values()) <= set(EMOTIONS)
    assert len(EMOTIONS) == 21
