"""Quantities as people say them (signed, with decimals) and numbers as the hub says them.

Builds on :mod:`xiaozhi_hub.tools.spoken` (digits, English words, Chinese characters) and adds what a
measurement needs: a sign ("minus 5", "negative five", "零下五", "负五", "-5"), decimals in words
("three point five", "三点五"), thousands separators ("1,000").
"""

from __future__ import annotations

import math
import re

from ..spoken import parse_number

_EN_DIGIT = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
             "seven": "7", "eight": "8", "nine": "9"}
_SIGN = re.compile(r"^(?:minus|negative|-|零下|负)\s*")


def parse_quantity(text: str) -> float | None:
    """A signed number in digits, English words or Chinese characters; None when it is not one."""
    s = text.strip().lower()
    sign = 1.0
    m = _SIGN.match(s)
    if m:
        sign, s = -1.0, s[m.end():]
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    if " point " in f" {s} ":
        whole, _, frac = s.partition("point")
        digits = [_EN_DIGIT.get(w) or (w if w.isdigit() else None) for w in frac.split()]
        if not digits or None in digits:
            return None
        base = parse_number(whole) if whole.strip() else 0.0
        value = None if base is None else base + float("0." + "".join(d for d in digits if d))
    else:
        value = parse_number(s)
    return None if value is None else sign * value


def rounded(value: float) -> float:
    """``value`` as it is said: two decimals, or three significant digits below 1."""
    if value == 0 or not math.isfinite(value):
        return value
    if abs(value) >= 1:
        return round(value, 2)
    return round(value, 2 - int(math.floor(math.log10(abs(value)))))


def format_number(value: float) -> str:
    """``value`` as it is said: "84", "2.5", "-40", "0.333" (call :func:`rounded` first to round)."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def is_exact(value: float) -> bool:
    """Whether ``value`` is said exactly (else "about")."""
    return math.isclose(rounded(value), value, rel_tol=1e-12, abs_tol=1e-12)
