"""Fast local intents: common commands matched by sentence templates before the LLM.

Small offline LLMs are slow and call tools unreliably, yet "volume to thirty" or "set a timer for
ten minutes" must work every time and at once. Each intent has sentence templates per language;
a transcript that matches one fully runs a built-in tool and speaks its short confirmation,
without the LLM. Anything not matched goes to the LLM unchanged.

Template syntax (a small subset of Home Assistant's hassil syntax):

* ``(a|b)`` alternatives, ``[a]`` or ``[a|b]`` optional, nesting allowed;
* ``{slot}`` captures a value; its type comes from the name: ``volume``, ``step``, ``value`` are
  numbers, ``duration`` a duration, ``time`` a clock time, ``entity`` a home entity name (it must be
  known to the Home Assistant hook), anything else (``label``) is free text;
* spaces are optional when matching, so one template serves "set the volume" and Chinese written
  with or without spaces.

Matching is deterministic: the language is chosen by the script (any CJK character → ``zh``),
intents are tried in their listed order and templates in theirs, and the first template whose slots
all parse wins. Numbers may be digits or words in either language ("thirty", "三十"). Everything is
precompiled regular expressions, so a match costs well under a millisecond.

Extra templates come from ``intents.sentences_file`` (YAML ``{language: {intent: [template, ...]}}``),
added before the built-in ones of the same intent, or replacing all built-ins with
``intents.replace_builtin``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from ..settings import IntentSettings
from ..tools.spoken import (EN_DURATION_WORDS, EN_NUMBER_WORDS, ZH_NUMBER_CHARS, ClockTime, parse_clock,
                            parse_duration, parse_int, parse_number)

# ---------------------------------------------------------------------------- built-in templates

BUILTIN_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "en": {
        "volume_set": [
            "[set|change|turn|put|make] [the] (volume|sound|speaker volume) [level] [to|at] {volume} [percent|%]",
            "(set|change|turn|put) [the] (volume|sound) (up|down) to {volume} [percent|%]",
            "volume {volume} [percent|%]",
        ],
        "volume_up": [
            "[turn|make] [the] (volume|sound|it|speaker) (up|louder|higher) [a (bit|little)] [more]",
            "(turn|crank) up the (volume|sound)",
            "(increase|raise) [the] (volume|sound) [by {step} [percent|%]]",
            "[turn] [the] (volume|sound) up by {step} [percent|%]",
            "[a] [little|bit] louder [please]", "(speak|talk) louder", "i can't hear you", "i cannot hear you",
        ],
        "volume_down": [
            "[turn|make] [the] (volume|sound|it|speaker) (down|quieter|softer|lower) [a (bit|little)] [more]",
            "(decrease|lower|reduce) [the] (volume|sound) [by {step} [percent|%]]",
            "[turn] [the] (volume|sound) down by {step} [percent|%]",
            "[a] [little|bit] (quieter|softer) [please]", "(speak|talk) (more quietly|softer|quieter)",
            "(you are|you're) too loud", "too loud",
        ],
        "mute": ["mute [the] [sound|volume|speaker|audio]", "(turn|switch) off the (sound|audio|speaker)"],
        "unmute": ["unmute [the] [sound|volume|speaker|audio]", "(turn|switch) on the (sound|audio|speaker)"],
        "get_volume": ["what is the (volume|volume level)", "how loud (is it|are you)", "what volume is it"],
        "time": [
            "what time is it [now|right now]", "what is the [current] time [now]", "tell me the time",
            "[do you know] what time it is", "[what is the] time please", "what time",
        ],
        "date": [
            "what (day|date) is it [today]", "what is [the] (date|day) [today]", "what is today's date",
            "tell me the date", "what day of the week is it [today]", "what is today", "which day is today",
        ],
        "timer_set": [
            "(set|start|create|make) [a|an|the] timer (for|of) {duration}",
            "(set|start|create|make) [a|an] {duration} timer",
            "(set|start|create|make) [a|an] timer (for|of) {duration} (for|to|called|named) {label}",
            "(set|start|create|make) [a|an] {duration} timer (for|to|called|named) {label}",
            "[a] timer (for|of) {duration}", "{duration} timer",
            "(remind me|wake me up|tell me) in {duration}",
            "(remind me|tell me) in {duration} to {label}",
            "remind me to {label} in {duration}",
            "count down [from] {duration}",
        ],
        "alarm_set": [
            "(set|create|make) [an|a|the] alarm (for|at) {time}",
            "(set|create|make) [an|a|the] alarm (for|at) {time} (for|to|called|named) {label}",
            "wake me [up] at {time}", "remind me at {time}", "remind me at {time} to {label}",
            "remind me to {label} at {time}",
        ],
        "timer_cancel_all": [
            "(cancel|stop|delete|remove|clear) all [of] [the|my] (timers|alarms|timers and alarms|reminders)",
        ],
        "alarm_cancel": ["(cancel|stop|delete|remove|turn off|clear) [the|my] alarm"],
        "timer_cancel": [
            "(cancel|stop|delete|remove|clear) [the|my] (timer|reminder|countdown)",
            "(cancel|stop|delete|remove|clear) [the|my] {label} (timer|reminder)",
        ],
        "timer_list": [
            "(what|which) (timers|alarms) [do i have|are (set|running|there)]",
            "(list|show) [me] [my|the|all] (timers|alarms)",
            "(do i have|are there) any (timers|alarms) [set|running]",
            "how much time is left [on [the|my] timer]", "how long is left [on [the|my] timer]",
            "how much longer [on [the|my] timer]", "time left [on [the|my] timer]",
        ],
        "stop": [
            "(stop|stop it|stop talking|goodbye|good bye|bye|bye bye|see you [later]|that is all|that will be all|"
            "exit|quit|go to sleep|shut up|be quiet|never mind|thanks bye|thank you goodbye|thank you bye|"
            "we are done|i am done|end [the] conversation)",
        ],
        "forget": [
            "forget (our|the|this|my) (conversation|chat|talk)",
            "(clear|delete|erase|wipe|reset) (your|the) (memory|conversation history|history|chat history)",
            "forget (everything|what) (i said|i told you|we said|we talked about)",
            "forget everything",
        ],
        "entity_set": [
            "(set|turn|put|dim|change|adjust) [the] {entity} (to|at) {value} [percent|%|degrees]",
        ],
        "entity_on": [
            "(turn|switch|put) on [the] {entity}", "(turn|switch) [the] {entity} on",
            "(activate|enable) [the] {entity}",
        ],
        "entity_off": [
            "(turn|switch|shut) off [the] {entity}", "(turn|switch|shut) [the] {entity} off",
            "(deactivate|disable) [the] {entity}",
        ],
    },
    "zh": {
        "volume_set": [
            "[把|将](音量|声音)(调到|调成|调为|设置为|设为|设置到|设置成|改成|改为|开到|调至|到)[百分之]{volume}[%]",
            "(调|设置|设|调节)(音量|声音)(到|为|成|至)[百分之]{volume}[%]",
            "音量[百分之]{volume}[%]",
        ],
        "volume_up": [
            "[把|将](音量|声音)(调大|调高|加大|开大|放大|增大|提高|大|高)[一][点|些|点儿]",
            "(调大|调高|加大|开大|增大|提高)[一][点|些|点儿](音量|声音)",
            "大[一]点声", "大声[一][点|些|点儿]", "声音太小[了]", "听不清[楚]",
        ],
        "volume_down": [
            "[把|将](音量|声音)(调小|调低|减小|关小|降低|放小|小|低)[一][点|些|点儿]",
            "(调小|调低|减小|关小|降低)[一][点|些|点儿](音量|声音)",
            "小[一]点声", "小声[一][点|些|点儿]", "声音太大[了]", "太吵[了]",
        ],
        "mute": ["静音", "(关闭|关掉)(声音|音量)", "[把]声音关[掉|了]"],
        "unmute": ["(取消|解除|关闭)静音", "(打开|开启)(声音|音量)"],
        "get_volume": ["[现在]音量[是]多少", "音量多大", "[现在]声音[是]多大"],
        "time": ["[现在]几点[了|钟|了呢]", "现在[是]什么时间", "现在几点钟", "报时", "告诉我[现在的]时间",
                 "现在时间"],
        "date": ["今天[是]几[月几]号", "今天[是](星期几|周几|礼拜几)", "今天[是]什么日子", "今天[的]日期",
                 "今天是哪天", "[今天]几号"],
        "timer_set": [
            "[帮我](设置|设定|定|设|开始|启动|来|开)[一个|个]{duration}[的](计时器|定时器|倒计时|计时|闹钟)",
            "[帮我](设置|设定|定|设|开始|启动)[一个|个](计时器|定时器|倒计时)[为]{duration}",
            "(计时|倒计时){duration}",
            "{duration}(后|以后|之后)(提醒|叫)我",
            "{duration}(后|以后|之后)(提醒|叫)我{label}",
            "(过|再过){duration}(提醒|叫)我[{label}]",
        ],
        "alarm_set": [
            "[帮我][明天|今天](设置|设定|定|设)[一个|个]{time}的闹钟",
            "[把]闹钟(定|设|设置)(在|到|为){time}",
            "[明天|今天]{time}(叫|喊)[醒]我[起床]",
            "[明天|今天]{time}提醒我[{label}]",
        ],
        "timer_cancel_all": ["(取消|删除|清除|关掉)(所有|全部)[的](计时器|定时器|闹钟|提醒|倒计时)",
                             "(计时器|闹钟|定时器)全部取消"],
        "alarm_cancel": ["(取消|关掉|关闭|删除|停止|关)[一下][那个]闹钟"],
        "timer_cancel": ["(取消|关掉|关闭|停止|删除|停)[一下][那个](计时器|定时器|倒计时|计时|提醒)",
                         "(取消|删除){label}的(计时器|提醒)"],
        "timer_list": ["[计时器|倒计时](还剩|剩下|还有)(多少|多长)时间", "(计时器|倒计时)还[剩|有]多久",
                       "[我]有(哪些|什么|几个)(计时器|定时器|闹钟|提醒)", "[查看|看看][我的](计时器|闹钟)"],
        "stop": ["(再见|拜拜|停|停止|别说了|不要说了|退出|结束|结束对话|不聊了|没事了|就这样|去睡吧|闭嘴|安静|"
                 "好了再见|谢谢再见)"],
        "forget": ["忘(记|掉)[我们|刚才|之前][的](对话|聊天|谈话)[记录|内容]",
                   "(清除|清空|删除)[你的](记忆|对话记录|聊天记录|对话)", "忘掉[所有|一切]"],
        "entity_set": ["[把|将]{entity}(调到|调成|调为|设为|设置为|设置到|调至)[百分之]{value}[%|度]"],
        "entity_on": ["(打开|开启|开|启动)[一下]{entity}", "[把|将]{entity}(打开|开开|开启|开)[了|一下]"],
        "entity_off": ["(关闭|关掉|关上|关)[一下]{entity}", "[把|将]{entity}(关了|关掉|关闭|关上|关)[了|一下]"],
    },
}

# Slot name -> type. Unlisted names are free text.
SLOT_TYPES = {"volume": "number", "step": "number", "value": "number", "duration": "duration",
              "time": "clock", "entity": "entity"}

# Regexes per slot type. Numbers and durations are matched by shape (so a greedy neighbour cannot
# swallow them); clock times, entities and text are lazy and validated by their parser.
_EN_NUM = "|".join(EN_NUMBER_WORDS)
_NUMBER_RE = (rf"(?:\d+(?:\.\d+)?|[{ZH_NUMBER_CHARS}0-9]+|"
              rf"(?:(?:{_EN_NUM})\b(?:[\s-]+(?:{_EN_NUM})\b)*))")
_DUR_WORD = rf"(?:\d+(?:\.\d+)?|{_EN_NUM}|{'|'.join(EN_DURATION_WORDS)})\b"
_DURATION_RE = (rf"(?:{_DUR_WORD}(?:[\s,-]+{_DUR_WORD})*|"
                rf"[{ZH_NUMBER_CHARS}0-9个半又]*(?:小时|钟头|分钟|秒钟|秒|分|天)[{ZH_NUMBER_CHARS}0-9个半又小时钟头分秒天]*)")
_SLOT_RES = {"number": _NUMBER_RE, "duration": _DURATION_RE, "clock": r".+?", "entity": r".+?", "text": r".+?"}


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


class TemplateError(ValueError):
    """A sentence template that cannot be compiled (unbalanced brackets, bad slot)."""


# ---------------------------------------------------------------------------- template compiler


def compile_template(template: str) -> tuple[str, list[tuple[str, str, str]]]:
    """Template → (regex source, [(group, slot, type)])."""
    slots: list[tuple[str, str, str]] = []
    pos = 0

    def parse_seq(stop: str) -> str:
        nonlocal pos
        alternatives: list[str] = []
        parts: list[str] = []
        while pos < len(template):
            c = template[pos]
            if c in stop:
                break
            if c == "|":
                alternatives.append("".join(parts))
                parts = []
                pos += 1
            elif c == "(":
                pos += 1
                inner = parse_seq(")")
                _expect(")")
                parts.append(rf"(?:{inner})")
            elif c == "[":
                pos += 1
                inner = parse_seq("]")
                _expect("]")
                parts.append(rf"(?:{inner})?")
            elif c == "{":
                end = template.find("}", pos)
                if end < 0:
                    raise TemplateError(f"{template!r}: unclosed {{")
                name, _, kind = template[pos + 1:end].strip().partition(":")
                kind = kind or SLOT_TYPES.get(name, "text")
                if not name.isidentifier() or kind not in _SLOT_RES:
                    raise TemplateError(f"{template!r}: bad slot {template[pos:end + 1]}")
                group = f"s{len(slots)}"
                slots.append((group, name, kind))
                parts.append(rf"(?P<{group}>{_SLOT_RES[kind]})")
                pos = end + 1
            elif c in ")]}":
                raise TemplateError(f"{template!r}: unbalanced {c}")
            elif c.isspace():
                parts.append(r"\s*")
                while pos < len(template) and template[pos].isspace():
                    pos += 1
            else:
                start = pos
                while pos < len(template) and template[pos] not in "()[]{}|" and not template[pos].isspace():
                    pos += 1
                parts.append(re.escape(_fold(template[start:pos])))
        alternatives.append("".join(parts))
        return "|".join(alternatives)

    def _expect(ch: str) -> None:
        nonlocal pos
        if pos >= len(template) or template[pos] != ch:
            raise TemplateError(f"{template!r}: missing {ch}")
        pos += 1

    source = parse_seq("")
    if pos != len(template):
        raise TemplateError(f"{template!r}: unbalanced {template[pos]}")
    # Spaces next to optional parts: "set [the] volume" must match "set volume" and "set the volume".
    return rf"\s*(?:{source})\s*", slots


# ---------------------------------------------------------------------------- normalisation

_CJK = r"\u3400-\u9fff"
_HAS_CJK = re.compile(rf"[{_CJK}]")
# A "." or ":" survives only between digits ("7:30", "3.5"); a "-" only before a digit.
_PUNCT = re.compile(r"(?<!\d)[.:]|[.:](?!\d)|[,!?;\"“”‘’«»()\[\]{}<>，。！？；、…~～—-]+(?!\d)")
_EN_PREFIX = re.compile(r"^(?:(?:hey|hi|hello|ok|okay|so|um|uh|please|xiaozhi|assistant|can you|could you|"
                        r"would you|will you|i want you to|i'd like you to|i would like you to|go ahead and|"
                        r"i want to|i'd like to|let's|let us)\s+)+")
_EN_SUFFIX = re.compile(r"(?:\s+(?:please|now|thanks|thank you|for me))+$")
_ZH_PREFIX = re.compile(r"^(?:请你|请|帮我|帮忙|麻烦你|麻烦|小智|你好小智|你好|能不能|能否|可以|可不可以|给我|我想|我要)+")
_ZH_SUFFIX = re.compile(r"(?:吧|吗|呢|啊|呀|哦|好吗|好不好|可以吗|行吗|谢谢|一下)+$")
_CONTRACTIONS = (("what's", "what is"), ("that's", "that is"), ("it's", "it is"), ("i'm", "i am"),
                 ("you're", "you are"), ("we're", "we are"), ("can't", "cannot"), ("don't", "do not"))


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower().replace("’", "'")


def detect_language(text: str) -> str:
    return "zh" if _HAS_CJK.search(text) else "en"


def normalize(text: str, lang: str) -> str:
    """Lowercase, NFKC (full-width digits), no punctuation, no politeness around the command."""
    s = _fold(text)
    s = _PUNCT.sub(" ", s)
    s = re.sub(r"\s+", " ", s).strip()
    if lang == "zh":
        s = re.sub(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])", "", s)
        for _ in range(2):
            s = _ZH_PREFIX.sub("", s)
            s = _ZH_SUFFIX.sub("", s)
    else:
        for a, b in _CONTRACTIONS:
            s = re.sub(rf"\b{re.escape(a)}\b", b, s)
        s = _EN_PREFIX.sub("", s)
        s = _EN_SUFFIX.sub("", s)
    return s.strip()


# ---------------------------------------------------------------------------- matcher

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


# ---------------------------------------------------------------------------- intent → tool call


@dataclass(frozen=True)
class IntentCall:
    """The built-in tool an intent runs, with its arguments."""

    tool: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


def _alarm_args(slots: Mapping[str, Any], now: dt.datetime) -> dict[str, Any] | None:
    from ..tools.builtin import next_occurrence

    clock: ClockTime = slots["time"]
    h24 = clock.hour24()
    at = next_occurrence(now, clock.hour if h24 is None else h24, clock.minute, ambiguous=h24 is None)
    args: dict[str, Any] = {"hour": at.hour, "minute": at.minute}
    if slots.get("label"):
        args["label"] = slots["label"]
    return args


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
    return None  # an intent from a sentences file with no built-in action
