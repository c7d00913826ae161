"""Numbers, durations and clock times as people say them, in English and Chinese.

ASR engines write numbers either as digits ("30") or as words ("thirty", "三十") depending on the
model and the language, so every intent slot that holds a quantity goes through these parsers.
They are pure functions: no I/O, no clock (a clock time is returned as hours and minutes; turning it
into a moment is the caller's job), so they are cheap enough for the 50 ms intent budget and easy to
test exhaustively. Each parser returns ``None`` when the text is not a quantity of its kind, which
makes the intent matcher fall through to the next template (and finally to the LLM).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ---------------------------------------------------------------------------- English numbers

_EN_UNITS = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_EN_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
            "seventy": 70, "eighty": 80, "ninety": 90}
_EN_SCALES = {"hundred": 100, "thousand": 1000}
_EN_ARTICLES = {"a": 1, "an": 1}

# Every word a spoken English number may contain (used to build slot regexes).
EN_NUMBER_WORDS = tuple(sorted({*_EN_UNITS, *_EN_TENS, *_EN_SCALES, *_EN_ARTICLES, "and", "half", "point"},
                               key=len, reverse=True))

_DIGITS = re.compile(r"^\d+(?:\.\d+)?$")


def parse_english_number(text: str) -> float | None:
    """"thirty five" → 35, "a hundred and twenty" → 120, "one and a half" → 1.5, "30" → 30."""
    s = text.strip().lower().replace("-", " ")
    if _DIGITS.match(s):
        return float(s)
    words = s.split()
    if not words:
        return None
    total = 0
    current = 0
    fraction = 0.0
    last = ""          # kind of the previous number word, to refuse "thirty thirty" or "five six"
    seen = False
    i = 0
    while i < len(words):
        w = words[i]
        if w == "and":
            if words[i + 1:i + 3] == ["a", "half"]:
                fraction = 0.5
                i += 3
                if i != len(words):
                    return None
                break
            i += 1
            continue
        if w in ("a", "an"):
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if nxt == "half" and not seen:
                fraction, seen = 0.5, True
                i += 2
                continue
            if seen or nxt not in _EN_SCALES:
                return None  # an article counts only in "a hundred", "a thousand"
            current, last, seen = 1, "unit", True
        elif w == "half":
            if seen:
                return None
            fraction, seen = 0.5, True
        elif w in _EN_UNITS:
            if last in ("unit", "teen"):
                return None
            v = _EN_UNITS[w]
            current += v
            last, seen = ("teen" if v >= 10 else "unit"), True
        elif w in _EN_TENS:
            if last in ("unit", "teen", "tens"):
                return None
            current += _EN_TENS[w]
            last, seen = "tens", True
        elif w == "hundred":
            current = (current or 1) * 100
            last, seen = "scale", True
        elif w == "thousand":
            total += (current or 1) * 1000
            current = 0
            last, seen = "scale", True
        elif _DIGITS.match(w) and not seen:
            current, last, seen = int(float(w)), "tens", True
        else:
            return None
        i += 1
    if not seen:
        return None
    return total + current + fraction


# ---------------------------------------------------------------------------- Chinese numbers

_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}
_ZH_SMALL = {"十": 10, "百": 100, "千": 1000}
ZH_NUMBER_CHARS = "零〇一二两俩三四五六七八九十百千万点"


def parse_chinese_number(text: str) -> float | None:
    """"三十" → 30, "十五" → 15, "一百零五" → 105, "两千" → 2000, "三点五" → 3.5, "30" → 30."""
    s = text.strip()
    if _DIGITS.match(s):
        return float(s)
    if not s or any(c not in ZH_NUMBER_CHARS and not c.isdigit() for c in s):
        return None
    if "点" in s:
        whole, _, frac = s.partition("点")
        w = parse_chinese_number(whole) if whole else None
        if w is None or not frac or any(c not in _ZH_DIGITS and not c.isdigit() for c in frac):
            return None
        digits = "".join(str(_ZH_DIGITS[c]) if c in _ZH_DIGITS else c for c in frac)
        return w + float("0." + digits)
    if s.isdigit():
        return float(s)
    total = 0
    section = 0
    digit: int | None = None
    for c in s:
        if c in _ZH_DIGITS:
            digit = _ZH_DIGITS[c]
        elif c.isdigit():
            digit = int(c)
        elif c in _ZH_SMALL:
            section += (1 if digit is None else digit) * _ZH_SMALL[c]
            digit = None
        elif c == "万":
            total += (section + (digit or 0)) * 10000
            section, digit = 0, None
    return float(total + section + (digit or 0))


def parse_number(text: str) -> float | None:
    """A number in digits, English words or Chinese characters (a trailing % or "percent" is allowed)."""
    s = text.strip().lower()
    s = re.sub(r"\s*(%|percent|per cent)$", "", s)
    if s.startswith("百分之"):
        s = s[3:]
    if not s:
        return None
    if re.search(r"[\u4e00-\u9fff]", s):
        return parse_chinese_number(s)
    return parse_english_number(s)


def parse_int(text: str) -> int | None:
    value = parse_number(text)
    if value is None or value != int(value):
        return None
    return int(value)


# ---------------------------------------------------------------------------- durations

_EN_UNIT_SECONDS = {
    "second": 1, "seconds": 1, "sec": 1, "secs": 1,
    "minute": 60, "minutes": 60, "min": 60, "mins": 60,
    "hour": 3600, "hours": 3600, "hr": 3600, "hrs": 3600,
    "day": 86400, "days": 86400,
}
_ZH_UNIT_SECONDS = (("小时", 3600), ("钟头", 3600), ("分钟", 60), ("秒钟", 1), ("秒", 1), ("分", 60), ("天", 86400))

EN_DURATION_WORDS = tuple(sorted(_EN_UNIT_SECONDS, key=len, reverse=True))


def parse_duration(text: str) -> int | None:
    """Seconds in "ten minutes", "an hour and a half", "1 hour 30 minutes", "十分钟", "一个半小时"."""
    s = text.strip().lower()
    if not s:
        return None
    if re.search(r"[\u4e00-\u9fff]", s):
        return _parse_chinese_duration(s)
    return _parse_english_duration(s)


def _parse_english_duration(s: str) -> int | None:
    s = s.replace("-", " ").replace(",", " ")
    # "half an hour" / "half a minute"
    m = re.fullmatch(r"half (?:an? )?(hour|minute)", s.strip())
    if m:
        return _EN_UNIT_SECONDS[m.group(1)] // 2
    words = s.split()
    total = 0.0
    pending: list[str] = []
    found = False
    i = 0
    while i < len(words):
        w = words[i]
        if w in _EN_UNIT_SECONDS:
            unit = _EN_UNIT_SECONDS[w]
            if not pending:
                return None
            n = 1.0 if pending in (["a"], ["an"], ["one"]) else parse_english_number(" ".join(pending))
            if n is None:
                return None
            total += n * unit
            pending = []
            found = True
            # "an hour and a half"
            if words[i + 1:i + 4] == ["and", "a", "half"]:
                total += unit / 2
                i += 3
        elif w == "and" and not pending:
            pass
        else:
            pending.append(w)
        i += 1
    if pending or not found or total <= 0:
        return None
    return int(round(total))


_ZH_DURATION_PART = re.compile(r"([0-9零〇一二两俩三四五六七八九十百千万点]*)(半?)(小时|钟头|分钟|秒钟|秒|分|天)(半?)")


def _parse_chinese_duration(s: str) -> int | None:
    s = s.replace(" ", "").replace("个", "").replace("又", "")
    total = 0.0
    pos = 0
    last_unit = 0
    for m in _ZH_DURATION_PART.finditer(s):
        if m.start() != pos:
            return None
        num, half_before, unit, half_after = m.groups()
        seconds = dict(_ZH_UNIT_SECONDS)[unit]
        if num:
            n = parse_chinese_number(num)
            if n is None:
                return None
        elif half_before:
            n = 0.0           # "半小时"
        else:
            return None
        if half_before or half_after:
            n += 0.5
        total += n * seconds
        last_unit = seconds
        pos = m.end()
    if pos < len(s):
        # a bare trailing number: "一小时三十" → minutes, "一分三十" → seconds
        n = parse_chinese_number(s[pos:])
        if n is None or not last_unit:
            return None
        total += n * (60 if last_unit >= 3600 else 1)
    if total <= 0:
        return None
    return int(round(total))


def format_duration(seconds: int, lang: str, compound: bool = False) -> str:
    """Speakable duration: "1 hour and 30 minutes", "1小时30分钟"; ``compound`` for use before a
    noun ("a 10 minute timer"), where English units stay singular."""
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if lang == "zh":
        parts = [f"{h}小时" if h else "", f"{m}分钟" if m else "", f"{s}秒" if s else ""]
        return "".join(parts) or "0秒"
    words = []
    for n, unit in ((h, "hour"), (m, "minute"), (s, "second")):
        if n:
            words.append(f"{n} {unit}{'' if n == 1 or compound else 's'}")
    if not words:
        return "0 seconds"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# ---------------------------------------------------------------------------- clock times


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
