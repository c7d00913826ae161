"""Days as people name them ("in three days", "next Friday", "Christmas", "三天后", "下周五", "圣诞节")
and what the hub says about them ("In 3 days it will be Sunday, May 18.", "离圣诞节还有224天…").

A :class:`DayRef` is what was said; :meth:`DayRef.resolve` turns it into a date given today. The
rules: a weekday on its own, or "this Friday", is the next one from today on (today included);
"next Friday" is the first one after today; "last Friday" the latest one before today; "Friday next
week" and 下周五 the one in next week's Monday-to-Sunday (这周五 this week's, 上周五 last week's); a
holiday or a date without a year is the next one from today on. Fixed-date holidays only (no lunar
calendar).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from ..spoken import parse_chinese_number, parse_int

WEEKDAYS_EN = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAYS_ZH = "一二三四五六日"
MONTHS_EN = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
             "november", "december")
HOLIDAYS_EN = {
    "christmas": (12, 25, "Christmas"), "christmas day": (12, 25, "Christmas"),
    "christmas eve": (12, 24, "Christmas Eve"), "boxing day": (12, 26, "Boxing Day"),
    "new year's eve": (12, 31, "New Year's Eve"), "new years eve": (12, 31, "New Year's Eve"),
    "new year's day": (1, 1, "New Year's Day"), "new years day": (1, 1, "New Year's Day"),
    "new year": (1, 1, "New Year's Day"), "new year's": (1, 1, "New Year's Day"), "new years": (1, 1, "New Year's Day"),
    "halloween": (10, 31, "Halloween"), "valentine's day": (2, 14, "Valentine's Day"),
    "valentines day": (2, 14, "Valentine's Day"), "independence day": (7, 4, "Independence Day"),
    "the fourth of july": (7, 4, "the Fourth of July"), "fourth of july": (7, 4, "the Fourth of July"),
}
HOLIDAYS_ZH = {"圣诞节": (12, 25), "圣诞": (12, 25), "平安夜": (12, 24), "元旦": (1, 1), "新年": (1, 1),
               "情人节": (2, 14), "万圣节": (10, 31), "国庆节": (10, 1), "国庆": (10, 1), "劳动节": (5, 1),
               "五一": (5, 1), "儿童节": (6, 1), "六一": (6, 1), "妇女节": (3, 8), "教师节": (9, 10), "植树节": (3, 12)}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
             "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
             "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
             "twentieth": 20, "thirtieth": 30}
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_EN_RELATIVE = {"today": 0, "now": 0, "tomorrow": 1, "the day after tomorrow": 2, "day after tomorrow": 2,
                "yesterday": -1, "the day before yesterday": -2, "day before yesterday": -2}
_ZH_RELATIVE = {"今天": 0, "今日": 0, "明天": 1, "明日": 1, "后天": 2, "大后天": 3, "昨天": -1, "昨日": -1,
                "前天": -2, "大前天": -3}


@dataclass(frozen=True)
class DayRef:
    """A day as it was said: ``kind`` is offset (``days`` from today), weekday (``weekday`` 0 = Monday,
    ``mode`` this | next | last | this_week | next_week | last_week) or date (``month``, ``day``,
    the next one); ``name`` is how the answer refers to it ("" for an offset)."""

    kind: str
    days: int = 0
    weekday: int = 0
    mode: str = "this"
    month: int = 0
    day: int = 0
    name: str = ""

    def resolve(self, today: dt.date) -> dt.date:
        if self.kind == "offset":
            return today + dt.timedelta(days=self.days)
        if self.kind == "weekday":
            return _weekday(today, self.weekday, self.mode)
        for year in range(today.year, today.year + 9):      # Feb 29 waits for a leap year
            try:
                day = dt.date(year, self.month, self.day)
            except ValueError:
                continue
            if day >= today:
                return day
        raise ValueError(f"no date {self.month}/{self.day}")


def _valid(month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= _MONTH_DAYS[month - 1]


def _weekday(today: dt.date, weekday: int, mode: str) -> dt.date:
    ahead = (weekday - today.weekday()) % 7
    monday = today - dt.timedelta(days=today.weekday())
    offsets = {"this": ahead, "next": ahead or 7, "last": -((today.weekday() - weekday) % 7 or 7)}
    if mode in offsets:
        return today + dt.timedelta(days=offsets[mode])
    week = {"this_week": 0, "next_week": 7, "last_week": -7}[mode]
    return monday + dt.timedelta(days=week + weekday)


def parse_day(text: str) -> DayRef | None:
    """A day reference in English or Chinese; None when ``text`` is not one."""
    s = " ".join(text.strip().lower().split())
    if re.search(r"[\u4e00-\u9fff]", s):
        return _parse_zh(s.replace(" ", ""))
    return _parse_en(s.removeprefix("on ").strip())


# ---------------------------------------------------------------------------- English


def _en_count(word: str) -> int | None:
    if word in ("a", "an", "one"):
        return 1
    if word in ("a couple of", "a couple", "couple of"):
        return 2
    return parse_int(word)


def _parse_en(s: str) -> DayRef | None:
    if s in _EN_RELATIVE:
        return DayRef("offset", days=_EN_RELATIVE[s])
    m = re.fullmatch(r"(in )?(.+?) (days?|weeks?|fortnights?)(?: (from now|from today|later|time|ago))?", s)
    if m and (m.group(1) or m.group(4)) and not (m.group(1) and m.group(4) == "ago"):
        n = _en_count(m.group(2))
        if n is None:
            return None
        days = n * {"d": 1, "w": 7, "f": 14}[m.group(3)[0]]
        return DayRef("offset", days=-days if m.group(4) == "ago" else days)
    holiday = HOLIDAYS_EN.get(s.removeprefix("the ").removeprefix("next ").removeprefix("this "))
    if holiday is None:
        holiday = HOLIDAYS_EN.get(s.removeprefix("next ").removeprefix("this "))
    if holiday is not None:
        return DayRef("date", month=holiday[0], day=holiday[1], name=holiday[2])
    return _en_weekday(s) or _en_date(s)


def _en_weekday(s: str) -> DayRef | None:
    days = "|".join(WEEKDAYS_EN)
    m = re.fullmatch(rf"(?:(this|next|coming|the coming|the next|last) )?({days})(?: (next|this|last) week)?", s)
    if m is None:
        m2 = re.fullmatch(rf"(next|this|last) week(?:'s)? ({days})", s)
        if m2 is None:
            return None
        return DayRef("weekday", weekday=WEEKDAYS_EN.index(m2.group(2)), mode=f"{m2.group(1)}_week",
                      name=f"{m2.group(2).title()} {m2.group(1)} week")
    before, day, week = m.group(1), m.group(2), m.group(3)
    if before and week:
        return None
    if week:
        mode, name = f"{week}_week", f"{day.title()} {week} week"
    else:
        mode = {"next": "next", "the next": "next", "last": "last"}.get(before or "", "this")
        name = f"{before} {day.title()}" if before else day.title()
    return DayRef("weekday", weekday=WEEKDAYS_EN.index(day), mode=mode, name=name[0].upper() + name[1:])


def _en_day_number(text: str) -> int | None:
    t = re.sub(r"(?<=\d)(?:st|nd|rd|th)$", "", text.strip().removeprefix("the ").replace("-", " "))
    if t in _ORDINALS:
        return _ORDINALS[t]
    words = t.split()
    if len(words) == 2 and words[0] in ("twenty", "thirty") and words[1] in _ORDINALS:
        return (20 if words[0] == "twenty" else 30) + _ORDINALS[words[1]]
    return parse_int(t)


def _en_date(s: str) -> DayRef | None:
    months = "|".join(MONTHS_EN)
    m = re.fullmatch(rf"({months}) (.+)", s) or re.fullmatch(rf"(?:the )?(.+?) (?:of )?({months})", s)
    if m is None:
        return None
    month_word, day_text = (m.group(1), m.group(2)) if m.group(1) in MONTHS_EN else (m.group(2), m.group(1))
    day = _en_day_number(day_text)
    month = MONTHS_EN.index(month_word) + 1
    if day is None or not _valid(month, day):
        return None
    return DayRef("date", month=month, day=day, name=f"{month_word.title()} {day}")


# ---------------------------------------------------------------------------- Chinese

_ZH_NUM = r"[零〇一二两三四五六七八九十百\d]+"


def _zh_int(text: str) -> int | None:
    value = parse_chinese_number(text)
    return int(value) if value is not None and value == int(value) else None


def _parse_zh(s: str) -> DayRef | None:
    if s in _ZH_RELATIVE:
        return DayRef("offset", days=_ZH_RELATIVE[s])
    m = re.fullmatch(rf"(?:再过|过)?({_ZH_NUM})(天|个星期|个礼拜|星期|礼拜|周)(后|以后|之后|前|以前|之前)?", s)
    if m and (m.group(3) or s.startswith("过") or s.startswith("再过")):
        n = _zh_int(m.group(1))
        if n is None:
            return None
        days = n * (1 if m.group(2) == "天" else 7)
        return DayRef("offset", days=-days if m.group(3) and m.group(3).endswith("前") else days)
    if s in HOLIDAYS_ZH:
        month, day = HOLIDAYS_ZH[s]
        return DayRef("date", month=month, day=day, name=s)
    m = re.fullmatch(r"(下|这|本|上)?个?(?:周|星期|礼拜)([一二三四五六日天1-7])", s)
    if m:
        w = m.group(2)
        weekday = int(w) - 1 if w.isdigit() else WEEKDAYS_ZH.index("日" if w == "天" else w)
        mode = {"下": "next_week", "这": "this_week", "本": "this_week", "上": "last_week"}.get(m.group(1) or "", "this")
        return DayRef("weekday", weekday=weekday, mode=mode, name=s)
    m = re.fullmatch(rf"({_ZH_NUM})月({_ZH_NUM})[日号]", s)
    if m:
        month_n, day_n = _zh_int(m.group(1)), _zh_int(m.group(2))
        if month_n is None or day_n is None or not _valid(month_n, day_n):
            return None
        return DayRef("date", month=month_n, day=day_n, name=f"{month_n}月{day_n}日")
    return None


# ---------------------------------------------------------------------------- what the hub says


def _date_en(day: dt.date, today: dt.date, weekday: bool = True) -> str:
    text = f"{MONTHS_EN[day.month - 1].title()} {day.day}" + (f", {day.year}" if day.year != today.year else "")
    return f"{WEEKDAYS_EN[day.weekday()].title()}, {text}" if weekday else text


def _date_zh(day: dt.date, today: dt.date, weekday: bool = True) -> str:
    text = (f"{day.year}年" if day.year != today.year else "") + f"{day.month}月{day.day}日"
    return f"{text}，星期{WEEKDAYS_ZH[day.weekday()]}" if weekday else text


def _days_en(n: int) -> str:
    return "1 day" if abs(n) == 1 else f"{abs(n)} days"


_WHEN_EN = {0: ("Today is", "today"), 1: ("Tomorrow is", "tomorrow"), -1: ("Yesterday was", "yesterday"),
            2: ("The day after tomorrow is", "the day after tomorrow"),
            -2: ("The day before yesterday was", "the day before yesterday")}
_WHEN_ZH = {0: "今天", 1: "明天", 2: "后天", -1: "昨天", -2: "前天"}


def say_day(day: dt.date, today: dt.date, name: str, lang: str) -> str:
    """What day ``day`` is, referred to as ``name`` ("" → relative to today: "In 3 days it will be …")."""
    n = (day - today).days
    if lang == "zh":
        if not name:
            when = _WHEN_ZH.get(n) or (f"{n}天后" if n > 0 else f"{-n}天前")
            return f"{when}是{_date_zh(day, today)}。"
        if "月" in name:
            return f"{name}是{f'{day.year}年的' if day.year != today.year else ''}星期{WEEKDAYS_ZH[day.weekday()]}。"
        return f"{name}是{_date_zh(day, today, weekday=not re.search('周|星期|礼拜', name))}。"
    if not name:
        if n in _WHEN_EN:
            return f"{_WHEN_EN[n][0]} {_date_en(day, today)}."
        return f"In {n} days it will be {_date_en(day, today)}." if n > 0 else f"{-n} days ago it was {_date_en(day, today)}."
    low = name.lower()
    if any(m in low for m in MONTHS_EN):
        what = f"a {WEEKDAYS_EN[day.weekday()].title()}" + (f" in {day.year}" if day.year != today.year else "")
    else:
        what = _date_en(day, today, weekday=WEEKDAYS_EN[day.weekday()] not in low)
    when = _WHEN_EN[n][1] if n in _WHEN_EN else (f"in {_days_en(n)}" if n > 0 else f"{_days_en(n)} ago")
    return f"{name} {'was' if n < 0 else 'is'} {what}, {when}."


def say_until(day: dt.date, today: dt.date, name: str, lang: str) -> str:
    """How many days until ``day`` ("Christmas is in 224 days, on Thursday, December 25.")."""
    n = (day - today).days
    if lang == "zh":
        what = name or "那天"
        if n == 0:
            return f"今天就是{what}。"
        if n < 0:
            return f"{what}是{-n}天前，{_date_zh(day, today)}。"
        return f"离{what}还有{n}天，是{_date_zh(day, today)}。"
    what = name or "That"
    if n == 0:
        return f"{what} is today."
    if n < 0:
        return f"{what} was {_days_en(n)} ago, on {_date_en(day, today)}."
    return f"{what} is in {_days_en(n)}, on {_date_en(day, today)}."
