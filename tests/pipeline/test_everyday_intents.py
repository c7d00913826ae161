"""Everyday questions a tiny LLM gets wrong, answered by local intents with exact answers, in English
and Chinese, without the LLM: arithmetic, unit conversions, date arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest

from xiaozhi_hub.pipeline.agent import Agent

from .conftest import FakeLink, ScriptedLLM, collect, settings

NOW = dt.datetime(2025, 5, 14, 9, 30).astimezone()      # a Wednesday morning


@pytest.fixture
def agent() -> Agent:
    a = Agent(settings(), ScriptedLLM(default="(the LLM)"))
    a.env.now = lambda: NOW
    return a


async def ask(agent: Agent, question: str) -> str:
    said = await collect(agent.reply(FakeLink(), question))
    assert agent.llm.seen == [], f"{question!r} went to the LLM"
    return said


@pytest.mark.parametrize("question, answer", [
    ("What is 17 times 23?", "17 times 23 is 391."),
    ("what's 15 percent of 80", "15 percent of 80 is 12."),
    ("What is twelve times seven?", "12 times 7 is 84."),
    ("What is 15 plus 27?", "15 plus 27 is 42."),
    ("What is one hundred divided by four?", "100 divided by 4 is 25."),
    ("How much is 250 minus 75?", "250 minus 75 is 175."),
    ("Calculate 2 plus 3 times 4.", "2 plus 3 times 4 is 14."),
    ("What's 100 divided by 3?", "100 divided by 3 is about 33.33."),
    ("Hey, what is 20% of 150, please?", "20 percent of 150 is 30."),
    ("What is 7 divided by 0?", "You can't divide by zero."),
    ("三加五等于几？", "3加5等于8。"),
    ("十二乘以三是多少？", "12乘以3等于36。"),
    ("一百除以四等于多少", "100除以4等于25。"),
    ("八十的百分之十五是多少", "80的百分之15等于12。"),
    ("请问二十减七等于几", "20减7等于13。"),
])
async def test_arithmetic(agent, question, answer):
    assert await ask(agent, question) == answer


@pytest.mark.parametrize("question, answer", [
    ("What is 100 degrees Fahrenheit in Celsius?", "100 degrees Fahrenheit is about 37.78 degrees Celsius."),
    ("Convert minus 40 celsius to fahrenheit.", "-40 degrees Celsius is -40 degrees Fahrenheit."),
    ("How many centimeters are in a meter?", "1 meter is 100 centimeters."),
    ("How many feet in a mile?", "1 mile is 5280 feet."),
    ("convert 5 miles to kilometers", "5 miles is about 8.05 kilometers."),
    ("How many grams are in a kilogram?", "1 kilogram is 1000 grams."),
    ("What is 2.5 kilograms in pounds?", "2.5 kilograms is about 5.51 pounds."),
    ("How many ounces are in a cup?", "1 cup is 8 fluid ounces."),
    ("How many liters is 3 gallons?", "3 gallons is about 11.36 liters."),
    ("What is 100 km/h in mph?", "100 kilometers per hour is about 62.14 miles per hour."),
    ("How many kilometers per hour is 10 meters per second?", "10 meters per second is 36 kilometers per hour."),
    ("How many meters are in a kilogram?", "Sorry, I can't convert kilograms to meters."),
    ("三十度是多少华氏度", "30摄氏度等于86华氏度。"),
    ("一米等于多少厘米", "1米等于100厘米。"),
    ("五公里是多少英里", "5公里约等于3.11英里。"),
    ("一斤是多少克", "1斤等于500克。"),
    ("两升等于多少毫升", "2升等于2000毫升。"),
    ("一百公里每小时是多少米每秒", "100公里每小时约等于27.78米每秒。"),
])
async def test_unit_conversions(agent, question, answer):
    assert await ask(agent, question) == answer


@pytest.mark.parametrize("question, answer", [
    ("What day is it in three days?", "In 3 days it will be Saturday, May 17."),
    ("What day will it be in three days?", "In 3 days it will be Saturday, May 17."),
    ("What's the date next Friday?", "Next Friday is May 16, the day after tomorrow."),
    ("What date is Friday next week?", "Friday next week is May 23, in 9 days."),
    ("How many days until Christmas?", "Christmas is in 225 days, on Thursday, December 25."),
    ("How long until New Year's Eve?", "New Year's Eve is in 231 days, on Wednesday, December 31."),
    ("What day of the week is Christmas?", "Christmas is Thursday, December 25, in 225 days."),
    ("What day was it three days ago?", "3 days ago it was Sunday, May 11."),
    ("What is the date tomorrow?", "Tomorrow is Thursday, May 15."),
    ("When is Halloween?", "Halloween is in 170 days, on Friday, October 31."),
    ("How many days until December 25th?", "December 25 is in 225 days, on Thursday, December 25."),
    ("三天后是星期几？", "3天后是5月17日，星期六。"),
    ("下周五是几号", "下周五是5月23日。"),
    ("离圣诞节还有几天", "离圣诞节还有225天，是12月25日，星期四。"),
    ("距离国庆节还有多少天", "离国庆节还有140天，是10月1日，星期三。"),
    ("明天是几号", "明天是5月15日，星期四。"),
    ("十二月二十五号是星期几", "12月25日是星期四。"),
])
async def test_date_arithmetic(agent, question, answer):
    assert await ask(agent, question) == answer


@pytest.mark.parametrize("question", [
    "What is the capital of France?", "What is love?", "How many legs does a spider have?",
    "What day is my birthday?", "How many days until my holiday?", "Convert this to French.",
    "What is five?", "一周有几天？", "中国的首都是哪里？",
])
async def test_other_questions_still_go_to_the_llm(agent, question):
    assert await collect(agent.reply(FakeLink(), question)) == "(the LLM)"


async def test_the_time_and_todays_date_stay_the_intents_they_were(agent):
    assert await ask(agent, "What time is it?") == "It's 9:30 AM."
    assert await ask(agent, "What day is it today?") == "Today is Wednesday, May 14, 2025."
    assert await ask(agent, "今天星期几？") == "今天是2025年5月14日，星期三。"
