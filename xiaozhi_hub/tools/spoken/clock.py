"""Clock times as people say them ("half past seven", "下午3点15分") and as the hub says them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .numbers import parse_int

@dataclass(frozen=True)
class ClockTime:
    """A time of day as said; ``pm`` None means "not said" (the caller picks the next occurrence)."""

    hour: int
    minute: int
    pm: bool | None = None

    def hour24(self) -> int | None:
        """The 24-hour hour when am/pm is known (or the hour is unambiguous), else None."""
        if self.pm is None:
            return self.hour if self.hour == 0 or self.hour > 12 else None
        h = self.hour % 12
        return h + 12 if self.pm else h


_EN_CLOCK_MARK = re.compile(r"\s*\b(a\.?m\.?|p\.?m\.?|in the morning|in the afternoon|in the evening|at night|tonight|o'?clock)\b")


def parse_clock(text: str) -> ClockTime | None:
    """"7", "7 am", "7:30 pm", "seven thirty", "half past seven", "noon", "早上七点半", "下午3点15分"."""
    s = text.strip().lower()
    if not s:
        return None
    if re.search(r"[\u4e00-\u9fff]", s):
        return _parse_chinese_clock(s)
    return _parse_english_clock(s)


def _valid(h: int, m: int, pm: bool | None) -> ClockTime | None:
    if not (0 <= m < 60):
        return None
    if pm is not None and not 1 <= h <= 12:
        return None
    if not 0 <= h <= 23:
        return None
    return ClockTime(h, m, pm)


def _parse_english_clock(s: str) -> ClockTime | None:
    if s in ("noon", "midday"):
        return ClockTime(12, 0, True)
    if s == "midnight":
        return ClockTime(0, 0, None)
    pm: bool | None = None
    for mark in _EN_CLOCK_MARK.findall(s):
        mark = mark.replace(".", "")
        if mark in ("pm", "in the afternoon", "in the evening", "at night", "tonight"):
            pm = True
        elif mark in ("am", "in the morning"):
            pm = False
    s = _EN_CLOCK_MARK.sub("", s).strip()
    m = re.fullmatch(r"(\d{1,2})(?:[:.](\d{2}))?", s)
    if m:
        return _valid(int(m.group(1)), int(m.group(2) or 0), pm)
    m = re.fullmatch(r"(half|quarter|[\w\s-]+?) (past|after|to|before) ([\w\s-]+)", s)
    if m:
        hour = parse_int(m.group(3))
        mins = 30 if m.group(1) == "half" else 15 if m.group(1) == "quarter" else parse_int(
            re.sub(r"\s*minutes?$", "", m.group(1)))
        if hour is None or mins is None:
            return None
        if m.group(2) in ("to", "before"):
            return _valid((hour - 1) % 24 if hour else 23, 60 - mins, pm)
        return _valid(hour, mins, pm)
    words = s.replace("-", " ").split()
    if not words:
        return None
    # "seven", "seven thirty", "seven oh five", "twelve fifteen"
    for split in range(1, len(words) + 1):
        hour = parse_int(" ".join(words[:split]))
        if hour is None or hour > 23:
            continue
        rest = words[split:]
        if not rest:
            return _valid(hour, 0, pm)
        if rest[0] in ("oh", "o", "zero") and len(rest) == 2:
            minute = parse_int(rest[1])
        else:
            minute = parse_int(" ".join(rest))
        if minute is not None and minute < 60:
            return _valid(hour, minute, pm)
    return None


_ZH_PERIODS = (("凌晨", False), ("早上", False), ("早晨", False), ("上午", False), ("中午", True),
               ("下午", True), ("傍晚", True), ("晚上", True), ("今晚", True), ("明早", False))


def _parse_chinese_clock(s: str) -> ClockTime | None:
    s = s.replace(" ", "").replace("：", ":")
    pm: bool | None = None
    for word, is_pm in _ZH_PERIODS:
        if s.startswith(word):
            pm, s = is_pm, s[len(word):]
            break
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", s)
    if m:
        return _fix_zh(int(m.group(1)), int(m.group(2)), pm)
    m = re.fullmatch(r"([0-9零〇一二两三四五六七八九十]+)[点時时](.*)", s)
    if not m:
        return None
    hour = parse_int(m.group(1))
    rest = m.group(2).removesuffix("钟").removesuffix("整")
    if hour is None:
        return None
    if rest in ("", "整"):
        minute: int | None = 0
    elif rest == "半":
        minute = 30
    elif rest in ("一刻", "1刻"):
        minute = 15
    elif rest in ("三刻", "3刻"):
        minute = 45
    else:
        minute = parse_int(rest.removesuffix("分"))
    if minute is None:
        return None
    return _fix_zh(hour, minute, pm)


def _fix_zh(hour: int, minute: int, pm: bool | None) -> ClockTime | None:
    if pm is True and hour == 12:
        return _valid(12, minute, True)  # 中午十二点
    if pm is not None and hour > 12:
        return _valid(hour, minute, None)
    return _valid(hour, minute, pm)


def format_clock(hour: int, minute: int, lang: str) -> str:
    """Speakable time of day: "7:05 AM", "上午7点05分"."""
    if lang == "zh":
        period = "凌晨" if hour < 6 else "上午" if hour < 12 else "下午" if hour < 18 else "晚上"
        h12 = hour % 12 or 12
        return f"{period}{h12}点" + (f"{minute:02d}分" if minute else "")
    h12 = hour % 12 or 12
    suffix = "AM" if hour < 12 else "PM"
    return f"{h12}:{minute:02d} {suffix}" if minute else f"{h12} {suffix}"
