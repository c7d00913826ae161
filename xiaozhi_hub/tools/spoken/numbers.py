"""Numbers as people say them: digits, English words, Chinese characters."""

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
    number = _EnglishNumber()
    i = 0
    while i < len(words):
        taken = number.take(words, i)
        if taken is None:
            return None
        i += taken
        if number.closed:          # "... and a half" ends the number
            if i != len(words):
                return None
            break
    return number.value()


@dataclass
class _EnglishNumber:
    """The number read so far, word by word."""

    total: int = 0
    current: int = 0
    fraction: float = 0.0
    last: str = ""          # kind of the previous number word, to refuse "thirty thirty" or "five six"
    seen: bool = False
    closed: bool = False

    def value(self) -> float | None:
        return self.total + self.current + self.fraction if self.seen else None

    def take(self, words: list[str], i: int) -> int | None:
        """Read the word at ``words[i]``; returns how many words it used, None if this is not a number."""
        w = words[i]
        if w == "and":
            if words[i + 1:i + 3] == ["a", "half"]:
                self.fraction, self.closed = 0.5, True
                return 3
            return 1
        if w in ("a", "an"):
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if nxt == "half" and not self.seen:
                self.fraction, self.seen = 0.5, True
                return 2
            if self.seen or nxt not in _EN_SCALES:
                return None  # an article counts only in "a hundred", "a thousand"
            self.current, self.last, self.seen = 1, "unit", True
            return 1
        if w == "half":
            if self.seen:
                return None
            self.fraction, self.seen = 0.5, True
            return 1
        return 1 if self._number_word(w) else None

    def _number_word(self, w: str) -> bool:
        if w in _EN_UNITS:
            if self.last in ("unit", "teen"):
                return False
            v = _EN_UNITS[w]
            self.current += v
            self.last = "teen" if v >= 10 else "unit"
        elif w in _EN_TENS:
            if self.last in ("unit", "teen", "tens"):
                return False
            self.current += _EN_TENS[w]
            self.last = "tens"
        elif w == "hundred":
            self.current = (self.current or 1) * 100
            self.last = "scale"
        elif w == "thousand":
            self.total += (self.current or 1) * 1000
            self.current = 0
            self.last = "scale"
        elif _DIGITS.match(w) and not self.seen:
            self.current, self.last = int(float(w)), "tens"
        else:
            return False
        self.seen = True
        return True


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
