"""What a matched intent does: the built-in tool it calls, with arguments from its slots."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping

from ...tools.builtin import next_occurrence
from ...tools.everyday import DayRef, UnitError, pick
from ...tools.spoken import ClockTime
from .matcher import IntentMatch


@dataclass(frozen=True)
class IntentCall:
    """The built-in tool an intent runs, with its arguments."""

    tool: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


def _alarm_args(slots: Mapping[str, Any], now: dt.datetime) -> dict[str, Any] | None:
    clock: ClockTime = slots["time"]
    h24 = clock.hour24()
    at = next_occurrence(now, clock.hour if h24 is None else h24, clock.minute, ambiguous=h24 is None)
    args: dict[str, Any] = {"hour": at.hour, "minute": at.minute}
    if slots.get("label"):
        args["label"] = slots["label"]
    return args


def _everyday_call(match: IntentMatch, now: dt.datetime) -> IntentCall | None:
    """Arithmetic, conversions and dates (tools/everyday)."""
    s, i = match.slots, match.intent
    if i == "calculate":
        return IntentCall("calculate", {"expression": s["expr"]})
    if i == "convert":
        try:
            src, dst = pick(s["src"], s["dst"])
            names = (src.id, dst.id)
        except UnitError:
            names = (s["src"][0], s["dst"][0])     # two kinds: the tool says it cannot convert them
        return IntentCall("convert_units", {"value": s.get("amount", 1), "from": names[0], "to": names[1]})
    day: DayRef = s["when"]
    try:
        date = day.resolve(now.date())
    except ValueError:
        return None
    return IntentCall("date_info", {"date": date.isoformat(), "what": "until" if i == "date_until" else "day",
                                    "name": day.name})


EVERYDAY = ("calculate", "convert", "date_day", "date_until")


def intent_call(match: IntentMatch, now: dt.datetime) -> IntentCall | None:
    """Map a matched intent to its tool call; None when the slots are out of range (→ the LLM)."""
    s = match.slots
    i = match.intent
    if i == "volume_set":
        v = s["volume"]
        return IntentCall("set_volume", {"volume": int(v)}) if 0 <= v <= 100 else None
    if i in ("volume_up", "volume_down"):
        step = s.get("step")
        return IntentCall(i, {"step": int(step)} if step else {})
    if i in ("mute", "unmute", "get_volume"):
        return IntentCall(i)
    if i == "time":
        return IntentCall("get_time")
    if i == "date":
        return IntentCall("get_date")
    if i == "timer_set":
        args: dict[str, Any] = {"seconds": s["duration"]}
        if s.get("label"):
            args["label"] = s["label"]
        return IntentCall("set_timer", args)
    if i == "alarm_set":
        alarm = _alarm_args(s, now)
        return IntentCall("set_alarm", alarm) if alarm else None
    if i == "timer_cancel":
        return IntentCall("cancel_timer", {"label": s["label"]} if s.get("label") else {"kind": "timer"})
    if i == "alarm_cancel":
        return IntentCall("cancel_timer", {"kind": "alarm"})
    if i == "timer_cancel_all":
        return IntentCall("cancel_timer", {"all": True})
    if i == "timer_list":
        return IntentCall("list_timers")
    if i == "stop":
        return IntentCall("end_conversation")
    if i == "forget":
        return IntentCall("forget_conversation")
    if i == "entity_on":
        return IntentCall("home_control", {"entity": s["entity"], "action": "turn_on"})
    if i == "entity_off":
        return IntentCall("home_control", {"entity": s["entity"], "action": "turn_off"})
    if i == "entity_set":
        return IntentCall("home_control", {"entity": s["entity"], "action": "set", "value": s["value"]})
    if i in EVERYDAY:
        return _everyday_call(match, now)
    return None  # an intent from a sentences file with no built-in action
