"""The template syntax, compiled to regular expressions (a small subset of Home Assistant's hassil).

* ``(a|b)`` alternatives, ``[a]`` or ``[a|b]`` optional, nesting allowed;
* ``{slot}`` captures a value; its type comes from the name (:data:`SLOT_TYPES`): ``volume``,
  ``step``, ``value`` are numbers, ``duration`` a duration, ``time`` a clock time, ``entity`` a home
  entity name, ``amount`` a signed quantity, ``src``/``dst`` a unit, ``expr`` an arithmetic expression,
  ``when`` a day; anything else (``label``) is free text; ``{name:type}`` names the type explicitly;
* spaces are optional when matching, so one template serves "set the volume" and Chinese written
  with or without spaces.
"""

from __future__ import annotations

import re

from ...tools.everyday import UNIT_NAMES
from ...tools.spoken import EN_DURATION_WORDS, EN_NUMBER_WORDS, ZH_NUMBER_CHARS
from .normalize import fold

# Slot name -> type. Unlisted names are free text.
SLOT_TYPES = {"volume": "number", "step": "number", "value": "number", "duration": "duration",
              "time": "clock", "entity": "entity", "amount": "quantity", "src": "unit", "dst": "unit",
              "expr": "expression", "when": "day"}

# Regexes per slot type. Numbers and durations are matched by shape (so a greedy neighbour cannot
# swallow them); clock times, entities and text are lazy and validated by their parser.
_EN_NUM = "|".join(EN_NUMBER_WORDS)
_NUMBER_RE = (rf"(?:\d+(?:\.\d+)?|[{ZH_NUMBER_CHARS}0-9]+|"
              rf"(?:(?:{_EN_NUM})\b(?:[\s-]+(?:{_EN_NUM})\b)*))")
_DUR_WORD = rf"(?:\d+(?:\.\d+)?|{_EN_NUM}|{'|'.join(EN_DURATION_WORDS)})\b"
_DURATION_RE = (rf"(?:{_DUR_WORD}(?:[\s,-]+{_DUR_WORD})*|"
                rf"[{ZH_NUMBER_CHARS}0-9个半又]*(?:小时|钟头|分钟|秒钟|秒|分|天)[{ZH_NUMBER_CHARS}0-9个半又小时钟头分秒天]*)")
_QUANTITY_RE = rf"(?:(?:minus|negative)\s+|-|零下|负)?(?:\d+(?:,\d{{3}})*(?:\.\d+)?|{_NUMBER_RE})"
_UNIT_RE = "(?:" + "|".join(re.escape(fold(n)) for n in sorted(UNIT_NAMES, key=len, reverse=True)) + ")"
_SLOT_RES = {"number": _NUMBER_RE, "duration": _DURATION_RE, "clock": r".+?", "entity": r".+?", "text": r".+?",
             "quantity": _QUANTITY_RE, "unit": _UNIT_RE, "expression": r".+?", "day": r".+?"}


class TemplateError(ValueError):
    """A sentence template that cannot be compiled (unbalanced brackets, bad slot)."""


def compile_template(template: str) -> tuple[str, list[tuple[str, str, str]]]:
    """Template → (regex source, [(group, slot, type)])."""
    parser = _Parser(template)
    source = parser.sequence("")
    if parser.pos != len(template):
        raise TemplateError(f"{template!r}: unbalanced {template[parser.pos]}")
    # Spaces next to optional parts: "set [the] volume" must match "set volume" and "set the volume".
    return rf"\s*(?:{source})\s*", parser.slots


class _Parser:
    """Recursive descent over one template; ``pos`` is the next character to read."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.pos = 0
        self.slots: list[tuple[str, str, str]] = []

    def sequence(self, stop: str) -> str:
        """Alternatives up to a character in ``stop`` (or the end) → regex source."""
        alternatives: list[str] = []
        parts: list[str] = []
        while self.pos < len(self.template):
            c = self.template[self.pos]
            if c in stop:
                break
            if c == "|":
                alternatives.append("".join(parts))
                parts = []
                self.pos += 1
            else:
                parts.append(self._piece(c))
        alternatives.append("".join(parts))
        return "|".join(alternatives)

    def _piece(self, c: str) -> str:
        if c == "(":
            return rf"(?:{self._group(')')})"
        if c == "[":
            return rf"(?:{self._group(']')})?"
        if c == "{":
            return self._slot()
        if c in ")]}":
            raise TemplateError(f"{self.template!r}: unbalanced {c}")
        if c.isspace():
            while self.pos < len(self.template) and self.template[self.pos].isspace():
                self.pos += 1
            return r"\s*"
        return self._word()

    def _group(self, close: str) -> str:
        self.pos += 1
        inner = self.sequence(close)
        if self.pos >= len(self.template) or self.template[self.pos] != close:
            raise TemplateError(f"{self.template!r}: missing {close}")
        self.pos += 1
        return inner

    def _slot(self) -> str:
        template, pos = self.template, self.pos
        end = template.find("}", pos)
        if end < 0:
            raise TemplateError(f"{template!r}: unclosed {{")
        name, _, kind = template[pos + 1:end].strip().partition(":")
        kind = kind or SLOT_TYPES.get(name, "text")
        if not name.isidentifier() or kind not in _SLOT_RES:
            raise TemplateError(f"{template!r}: bad slot {template[pos:end + 1]}")
        group = f"s{len(self.slots)}"
        self.slots.append((group, name, kind))
        self.pos = end + 1
        return rf"(?P<{group}>{_SLOT_RES[kind]})"

    def _word(self) -> str:
        start = self.pos
        while self.pos < len(self.template) and self.template[self.pos] not in "()[]{}|" \
                and not self.template[self.pos].isspace():
            self.pos += 1
        return re.escape(fold(self.template[start:self.pos]))
