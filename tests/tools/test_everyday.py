"""The everyday parsers and answers (tools/everyday): spoken expressions and their exact values,
quantities, unit conversions, day references and what is said about them."""

from __future__ import annotations

import datetime as dt

import pytest

from xiaozhi_hub.tools.everyday import (CalcError, UnitError, calculate, convert, find_units, format_number, parse_day,
                                        parse_quantity, spoken_expression)
from xiaozhi_hub.tools.everyday.dates import say_day, say_until

WEDNESDAY = dt.date(2025, 5, 14)


@pytest.mark.parametrize("text, expression, value", [
    ("twelve times seven", "12 * 7", 84), ("15 plus 27", "15 + 27", 42), ("17 times 23", "17 * 23", 391),
    ("one hundred divided by four", "100 / 4", 25), ("a hundred and twenty minus twenty", "120 - 20", 100),
    ("15 percent of 80", "15% * 80", 12), ("20% of 150", "20% * 150", 30), ("3 x 4", "3 * 4", 12),
    ("six x four", "6 * 4", 24), ("2.5 multiplied by 4", "2.5 * 4", 10), ("1,000 times 3", "1000 * 3", 3000),
    ("three point five times two", "3.5 * 2", 7), ("minus 5 plus 3", "- 5 + 3", -2),
    ("2 plus 3 times 4", "2 + 3 * 4", 14), ("10 minus 4 minus 3", "10 - 4 - 3", 3),
    ("三加五", "3 + 5", 8), ("十二乘以三", "12 * 3", 36), ("一百除以四", "100 / 4", 25),
    ("二十减去七", "20 - 7", 13), ("八十的百分之十五", "15% * 80", 12),
])
def test_spoken_expressions_have_exact_values(text, expression, value):
    assert spoken_expression(text) == expression
    assert calculate(expression).value == value


@pytest.mark.parametrize("text", ["the capital of france", "five", "minus five", "15 percent", "what time",
                                  "two to the power of three", "times seven", "七", "今天星期几"])
def test_what_is_not_an_expression_is_none(text):
    assert spoken_expression(text) is None


def test_answers_are_said_in_words_around_exact_numbers():
    assert calculate("12 * 7").say("en") == "12 times 7 is 84."
    assert calculate("15% * 80").say("en") == "15 percent of 80 is 12."
    assert calculate("100 / 3").say("en") == "100 divided by 3 is about 33.33."
    assert calculate("1 / 8").say("en") == "1 divided by 8 is 0.125."
    assert calculate("3 + 5").say("zh") == "3加5等于8。"
    assert calculate("15% * 80").say("zh") == "80的百分之15等于12。"
    assert calculate("2 / 3").say("zh") == "2除以3约等于0.667。"
    with pytest.raises(CalcError, match="zero"):
        calculate("1 / 0")
    with pytest.raises(CalcError):
        calculate("2 +")


@pytest.mark.parametrize("text, value", [
    ("5", 5), ("-40", -40), ("minus forty", -40), ("negative 3.5", -3.5), ("three point two five", 3.25),
    ("1,500", 1500), ("a hundred", 100), ("零下十", -10), ("负五", -5), ("三点五", 3.5), ("two thousand", 2000),
])
def test_quantities(text, value):
    assert parse_quantity(text) == value


def test_numbers_are_said_without_needless_decimals():
    assert [format_number(x) for x in (84.0, 2.5, -40.0, 0.125)] == ["84", "2.5", "-40", "0.125"]


@pytest.mark.parametrize("value, src, dst, en, zh", [
    (1, "meter", "centimeters", "1 meter is 100 centimeters.", "1米等于100厘米。"),
    (1, "kilogram", "grams", "1 kilogram is 1000 grams.", "1公斤等于1000克。"),
    (100, "fahrenheit", "celsius", "100 degrees Fahrenheit is about 37.78 degrees Celsius.", "100华氏度约等于37.78摄氏度。"),
    (-40, "celsius", "fahrenheit", "-40 degrees Celsius is -40 degrees Fahrenheit.", "-40摄氏度等于-40华氏度。"),
    (0, "celsius", "kelvin", "0 degrees Celsius is 273.15 kelvin.", "0摄氏度等于273.15开尔文。"),
    (5, "miles", "km", "5 miles is about 8.05 kilometers.", "5英里约等于8.05公里。"),
    (1, "mile", "feet", "1 mile is 5280 feet.", "1英里等于5280英尺。"),
    (1, "pound", "ounces", "1 pound is 16 ounces.", "1磅等于16盎司。"),
    (1, "cup", "ounces", "1 cup is 8 fluid ounces.", "1杯等于8液量盎司。"),      # a volume: the fluid ounce
    (1, "gallon", "liters", "1 gallon is about 3.79 liters.", "1加仑约等于3.79升。"),
    (100, "km/h", "mph", "100 kilometers per hour is about 62.14 miles per hour.",
     "100公里每小时约等于62.14英里每小时。"),
    (10, "m/s", "km/h", "10 meters per second is 36 kilometers per hour.", "10米每秒等于36公里每小时。"),
    (1, "斤", "克", "1 jin is 500 grams.", "1斤等于500克。"),
])
def test_conversions_are_exact_in_both_languages(value, src, dst, en, zh):
    c = convert(value, src, dst)
    assert c.say("en") == en and c.say("zh") == zh


def test_units_of_different_kinds_or_below_absolute_zero_are_errors():
    with pytest.raises(UnitError, match="length to weight"):
        convert(1, "meter", "kilogram")
    with pytest.raises(UnitError):
        convert(1, "parsec", "meter")
    with pytest.raises(UnitError, match="absolute zero"):
        convert(-300, "celsius", "kelvin")
    assert find_units("ounces") == ("oz", "floz") and find_units("furlong") == ()


@pytest.mark.parametrize("text, date", [
    ("today", "2025-05-14"), ("tomorrow", "2025-05-15"), ("the day after tomorrow", "2025-05-16"),
    ("yesterday", "2025-05-13"), ("in three days", "2025-05-17"), ("3 days from now", "2025-05-17"),
    ("two weeks ago", "2025-04-30"), ("in a week", "2025-05-21"), ("in a fortnight", "2025-05-28"),
    ("friday", "2025-05-16"), ("on friday", "2025-05-16"), ("next friday", "2025-05-16"),
    ("this wednesday", "2025-05-14"), ("next wednesday", "2025-05-21"), ("last friday", "2025-05-09"),
    ("friday next week", "2025-05-23"), ("next week friday", "2025-05-23"), ("christmas", "2025-12-25"),
    ("christmas eve", "2025-12-24"), ("new year's day", "2026-01-01"), ("halloween", "2025-10-31"),
    ("december 25th", "2025-12-25"), ("the 4th of july", "2025-07-04"), ("march first", "2026-03-01"),
    ("july twenty first", "2025-07-21"),
    ("今天", "2025-05-14"), ("明天", "2025-05-15"), ("后天", "2025-05-16"), ("大后天", "2025-05-17"),
    ("三天后", "2025-05-17"), ("3天前", "2025-05-11"), ("两周后", "2025-05-28"), ("下周五", "2025-05-23"),
    ("这周一", "2025-05-12"), ("周五", "2025-05-16"), ("星期天", "2025-05-18"), ("圣诞节", "2025-12-25"),
    ("国庆节", "2025-10-01"), ("十二月二十五号", "2025-12-25"), ("12月25日", "2025-12-25"),
])
def test_day_references_resolve_from_today(text, date):
    ref = parse_day(text)
    assert ref is not None and ref.resolve(WEDNESDAY).isoformat() == date


@pytest.mark.parametrize("text", ["the capital", "in three", "my birthday", "february thirtieth", "周八"])
def test_what_is_not_a_day_is_none(text):
    assert parse_day(text) is None


def test_what_is_said_about_a_day():
    day = dt.date(2025, 5, 17)
    assert say_day(day, WEDNESDAY, "", "en") == "In 3 days it will be Saturday, May 17."
    assert say_day(day, WEDNESDAY, "", "zh") == "3天后是5月17日，星期六。"
    assert say_day(dt.date(2025, 5, 15), WEDNESDAY, "", "en") == "Tomorrow is Thursday, May 15."
    assert say_day(dt.date(2025, 5, 11), WEDNESDAY, "", "en") == "3 days ago it was Sunday, May 11."
    assert say_day(dt.date(2025, 5, 16), WEDNESDAY, "Next Friday", "en") == \
        "Next Friday is May 16, the day after tomorrow."
    assert say_day(dt.date(2025, 12, 25), WEDNESDAY, "December 25", "en") == "December 25 is a Thursday, in 225 days."
    assert say_day(dt.date(2025, 5, 23), WEDNESDAY, "下周五", "zh") == "下周五是5月23日。"
    xmas = dt.date(2025, 12, 25)
    assert say_until(xmas, WEDNESDAY, "Christmas", "en") == "Christmas is in 225 days, on Thursday, December 25."
    assert say_until(xmas, WEDNESDAY, "圣诞节", "zh") == "离圣诞节还有225天，是12月25日，星期四。"
    assert say_until(xmas, xmas, "Christmas", "en") == "Christmas is today."
    assert say_until(dt.date(2026, 1, 1), WEDNESDAY, "New Year's Day", "en") == \
        "New Year's Day is in 232 days, on Thursday, January 1, 2026."
