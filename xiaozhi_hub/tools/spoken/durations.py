"""Durations as people say them ("ten minutes", "an hour and a half", "一个半小时") and as the hub says them."""

from __future__ import annotations

import re

from .numbers import parse_chinese_number, parse_english_number

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
