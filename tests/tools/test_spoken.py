"""Spoken numbers, durations and clock times in English and Chinese."""

from __future__ import annotations

import pytest

from xiaozhi_hub.tools.spoken import (ClockTime, format_clock, format_duration, parse_clock, parse_duration,
                                      parse_int, parse_number)


@pytest.mark.parametrize("text, value", [
    ("30", 30), ("thirty", 30), ("Thirty-Five", 35), ("thirty five", 35), ("a hundred", 100),
    ("one hundred and twenty", 120), ("two thousand and five", 2005), ("zero", 0), ("one and a half", 1.5),
    ("30%", 30), ("30 percent", 30), ("三十", 30), ("十五", 15), ("十", 10), ("一百零五", 105), ("两千", 2000),
    ("三点五", 3.5), ("百分之五十", 50), ("1万", 10000), ("3.5", 3.5),
])
def test_numbers(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "a", "and", "thirty thirty", "five six", "kitchen", "三十个", "twenty banana"])
def test_not_numbers(text):
    assert parse_number(text) is None


def test_parse_int_refuses_fractions():
    assert parse_int("thirty") == 30 and parse_int("one and a half") is None


@pytest.mark.parametrize("text, seconds", [
    ("ten minutes", 600), ("a minute", 60), ("2 seconds", 2), ("90 seconds", 90), ("half an hour", 1800),
    ("an hour and a half", 5400), ("one and a half hours", 5400), ("1 hour 30 minutes", 5400),
    ("one hour and thirty minutes", 5400), ("a minute and 30 seconds", 90), ("2 days", 172800),
    ("十分钟", 600), ("半小时", 1800), ("一个半小时", 5400), ("两个小时三十分钟", 9000), ("三十秒", 30),
    ("一分半", 90), ("1小时", 3600), ("一小时三十", 5400), ("2秒", 2),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["ten", "minutes", "ten bananas", "分钟", "", "十个"])
def test_not_durations(text):
    assert parse_duration(text) is None


@pytest.mark.parametrize("text, clock", [
    ("7", ClockTime(7, 0)), ("7 am", ClockTime(7, 0, False)), ("7:30 pm", ClockTime(7, 30, True)),
    ("seven thirty", ClockTime(7, 30)), ("seven oh five", ClockTime(7, 5)),
    ("half past seven", ClockTime(7, 30)), ("quarter to eight", ClockTime(7, 45)),
    ("noon", ClockTime(12, 0, True)), ("six in the morning", ClockTime(6, 0, False)), ("19:45", ClockTime(19, 45)),
    ("早上七点半", ClockTime(7, 30, False)), ("下午3点15分", ClockTime(3, 15, True)), ("七点", ClockTime(7, 0)),
    ("晚上十点", ClockTime(10, 0, True)), ("十五点", ClockTime(15, 0)), ("7:30", ClockTime(7, 30)),
])
def test_clock_times(text, clock):
    assert parse_clock(text) == clock


@pytest.mark.parametrize("text", ["banana", "25", "7:75", "thirteen pm", "三十点"])
def test_not_clock_times(text):
    assert parse_clock(text) is None


def test_hour24_resolves_am_pm_and_leaves_ambiguous_hours_open():
    assert ClockTime(7, 0, True).hour24() == 19 and ClockTime(12, 0, False).hour24() == 0
    assert ClockTime(7, 0).hour24() is None and ClockTime(19, 0).hour24() == 19


def test_formatting_is_speakable():
    assert format_duration(5400, "en") == "1 hour and 30 minutes"
    assert format_duration(61, "en") == "1 minute and 1 second"
    assert format_duration(600, "zh") == "10分钟"
    assert format_clock(15, 5, "en") == "3:05 PM" and format_clock(0, 0, "en") == "12 AM"
    assert format_clock(7, 0, "zh") == "上午7点" and format_clock(20, 30, "zh") == "晚上8点30分"
