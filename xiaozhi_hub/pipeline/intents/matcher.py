"""Matching a transcript against the compiled templates, and the templates from the sentences file.

Matching is deterministic: the language is chosen by the script (any CJK character → ``zh``),
intents are tried in their listed order and templates in theirs, and the first template whose slots
all parse wins. Numbers may be digits or words in either language ("thirty", "三十"). Everything is
precompiled regular expressions, so a match costs well under a millisecond.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from ...settings import IntentSettings
from ...tools.everyday import find_units, parse_day, parse_quantity, spoken_expression
from ...tools.spoken import parse_clock, parse_duration, parse_int, parse_number
from .grammar import TemplateError, compile_template
from .normalize import detect_language, normalize
from .templates import BUILTIN_TEMPLATES


@dataclass(frozen=True)
class IntentMatch:
    intent: str
    slots: Mapping[str, Any]
    lang: str
    template: str
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class _Compiled:
    intent: str
    template: str
    regex: re.Pattern[str]
    slots: tuple[tuple[str, str, str], ...]  # (group name, slot name, slot type)


EntityResolver = Callable[[str], str | None]


class IntentMatcher:
    def __init__(self, templates: Mapping[str, Mapping[str, Sequence[str]]], languages: Sequence[str] = ("en", "zh"),
                 disabled: Sequence[str] = ()) -> None:
        self._compiled: dict[str, list[_Compiled]] = {}
        for lang in languages:
            out: list[_Compiled] = []
            for intent, sentences in (templates.get(lang) or {}).items():
                if intent in disabled:
                    continue
                for sentence in sentences:
                    source, slots = compile_template(sentence)
                    out.append(_Compiled(intent, sentence, re.compile(source), tuple(slots)))
            self._compiled[lang] = out

    @classmethod
    def from_settings(cls, settings: IntentSettings) -> "IntentMatcher":
        return cls(load_templates(settings), settings.languages, settings.disabled)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._compiled)

    def intents(self, lang: str) -> list[str]:
        seen: dict[str, None] = {}
        for c in self._compiled.get(lang, ()):
            seen.setdefault(c.intent)
        return list(seen)

    def match(self, text: str, resolve_entity: EntityResolver | None = None) -> IntentMatch | None:
        """The first template that matches ``text`` completely and whose slots all parse, or None."""
        t0 = time.perf_counter()
        lang = detect_language(text)
        compiled = self._compiled.get(lang)
        if not compiled:
            return None
        s = normalize(text, lang)
        if not s:
            return None
        for c in compiled:
            m = c.regex.fullmatch(s)
            if m is None:
                continue
            slots = _parse_slots(c, m, resolve_entity)
            if slots is None:
                continue
            return IntentMatch(c.intent, slots, lang, c.template, (time.perf_counter() - t0) * 1000)
        return None


_PARSERS: dict[str, Callable[[str], Any]] = {"quantity": parse_quantity, "unit": lambda raw: find_units(raw) or None,
                                            "expression": spoken_expression, "day": parse_day}


def _parse_slots(c: _Compiled, m: re.Match[str], resolve_entity: EntityResolver | None) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for group, name, kind in c.slots:
        raw = m.group(group)
        if raw is None:
            continue
        raw = raw.strip()
        value: Any
        if kind == "number":
            value = parse_int(raw)
            if value is None:
                value = parse_number(raw)
        elif kind == "duration":
            value = parse_duration(raw)
        elif kind == "clock":
            value = parse_clock(raw)
        elif kind == "entity":
            value = resolve_entity(raw) if resolve_entity is not None else None
        elif kind in _PARSERS:
            value = _PARSERS[kind](raw)
        else:
            value = raw or None
        if value is None:
            return None
        out[name] = value
    return out


def load_templates(settings: IntentSettings) -> dict[str, dict[str, list[str]]]:
    """Built-in templates merged with ``sentences_file`` (its templates first, so they win)."""
    base: dict[str, dict[str, list[str]]] = {} if settings.replace_builtin else {
        lang: {k: list(v) for k, v in intents.items()} for lang, intents in BUILTIN_TEMPLATES.items()}
    if not settings.sentences_file:
        return base
    path = Path(settings.sentences_file)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise TemplateError(f"{path}: cannot read intent sentences ({err})") from None
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: must map a language to {{intent: [templates]}}")
    for lang, intents in data.items():
        if not isinstance(intents, dict):
            raise TemplateError(f"{path}: {lang}: must map intent names to template lists")
        target = base.setdefault(str(lang), {})
        for intent, sentences in intents.items():
            if isinstance(sentences, str):
                sentences = [sentences]
            if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
                raise TemplateError(f"{path}: {lang}.{intent}: must be a list of templates")
            for s in sentences:
                compile_template(s)  # fail at startup, not at the first utterance
            target[str(intent)] = [*sentences, *target.get(str(intent), [])]
    return base
