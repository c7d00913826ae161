"""Numbers, durations and clock times as people say them, in English and Chinese.

ASR engines write numbers either as digits ("30") or as words ("thirty", "三十") depending on the
model and the language, so every intent slot that holds a quantity goes through these parsers.
They are pure functions: no I/O, no clock (a clock time is returned as hours and minutes; turning it
into a moment is the caller's job), so they are cheap enough for the 50 ms intent budget and easy to
test exhaustively. Each parser returns ``None`` when the text is not a quantity of its kind, which
makes the intent matcher fall through to the next template (and finally to the LLM).

Modules: ``numbers`` (digits, English words, Chinese characters), ``durations`` and ``clock`` (times of day).
"""

from __future__ import annotations

from .clock import ClockTime, format_clock, parse_clock
from .durations import EN_DURATION_WORDS, format_duration, parse_duration
from .numbers import EN_NUMBER_WORDS, ZH_NUMBER_CHARS, parse_chinese_number, parse_english_number, parse_int, parse_number

__all__ = [
    "EN_DURATION_WORDS", "EN_NUMBER_WORDS", "ZH_NUMBER_CHARS", "ClockTime", "format_clock", "format_duration",
    "parse_chinese_number", "parse_clock", "parse_duration", "parse_english_number", "parse_int", "parse_number",
]
