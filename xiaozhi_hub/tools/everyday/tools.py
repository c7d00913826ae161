"""The everyday tools: ``calculate``, ``convert_units`` and ``date_info``, each with an exact spoken answer.

Intent-only (``for_llm=False``): the intents catch these questions before any LLM, and a model that
can call tools gets a shorter prompt without them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from ..registry import Tool, ToolContext, ToolError, ToolResult, schema
from .arithmetic import CalcError, calculate
from .dates import say_day, say_until
from .numbers import rounded
from .units import BY_ID, UnitError, convert


async def calculate_tool(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    try:
        result = calculate(str(args["expression"]))
    except CalcError as err:
        say = tctx.pick("You can't divide by zero.", "不能除以零。") if "zero" in str(err) else \
            tctx.pick("Sorry, I can't work that out.", "抱歉，我算不出来。")
        raise ToolError(str(err), say) from None
    return ToolResult({"expression": result.expression, "value": rounded(result.value)}, result.say(tctx.lang))


async def convert_tool(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    try:
        c = convert(float(args["value"]), str(args["from"]), str(args["to"]))
    except UnitError as err:
        a, b = _unit_name(str(args["from"]), tctx.lang), _unit_name(str(args["to"]), tctx.lang)
        raise ToolError(str(err), tctx.pick(f"Sorry, I can't convert {a} to {b}.", f"抱歉，{a}不能换算成{b}。")) from None
    return ToolResult({"value": c.value, "from": c.src.id, "to": c.dst.id, "result": rounded(c.result)},
                      c.say(tctx.lang))


def _unit_name(name: str, lang: str) -> str:
    unit = BY_ID.get(name)
    if unit is None:
        return name
    return unit.zh if lang == "zh" else unit.en[1]


async def date_tool(tctx: ToolContext, args: Mapping[str, Any]) -> ToolResult:
    try:
        day = dt.date.fromisoformat(str(args["date"]))
    except ValueError:
        raise ToolError(f"not a date: {args['date']!r}", tctx.pick("Sorry, I don't know that date.",
                                                                   "抱歉，我不知道是哪一天。")) from None
    today = tctx.env.now().date()
    name = str(args.get("name") or "")
    say = (say_until if args.get("what") == "until" else say_day)(day, today, name, tctx.lang)
    return ToolResult({"date": day.isoformat(), "weekday": f"{day:%A}", "days_from_today": (day - today).days}, say)


def everyday_tools() -> list[Tool]:
    return [
        Tool("calculate", "Work out arithmetic: digits with + - * / % and parentheses, e.g. 15% * 80.",
             schema({"expression": {"type": "string"}}, ["expression"]), calculate_tool, for_llm=False),
        Tool("convert_units", "Convert a temperature, length, weight, volume or speed to another unit.",
             schema({"value": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}},
                    ["value", "from", "to"]), convert_tool, for_llm=False),
        Tool("date_info", "The weekday and date of a day, or the days until it.",
             schema({"date": {"type": "string", "description": "YYYY-MM-DD"},
                     "what": {"type": "string", "enum": ["day", "until"]}, "name": {"type": "string"}},
                    ["date"]), date_tool, for_llm=False),
    ]
