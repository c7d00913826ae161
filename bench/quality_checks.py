"""What the quality bench checks in each spoken answer (pure functions, unit-tested).

* **words** — Latin words and numbers; a Chinese character counts as half a word (Chinese words
  average about two characters), so 40 words is about the same speaking time in both languages;
* **leaks** — the answer repeats the instructions the model was given: any run of
  :data:`LEAK_NGRAM` consecutive words (or characters, for Chinese) of the system prompt, the tool
  instructions or a summary header, a tool's name as TTS reads it ("get time" for get_time), or
  conversation role labels ("User:"). Words the user said themselves are not counted;
* **loops** — the same word five times running ("A: A: A: A: A:"), the same symbol eight times,
  the same four words three times, or the same sentence twice;
* **unspeakable** — code, markdown, URLs or emoji that reached the speech synthesizer;
* **facts** — the expected pattern, with placeholders for the date and time filled in when asked.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Sequence

LEAK_NGRAM = 6
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+(?:'[^\W_{_CJK}]+)?", re.UNICODE)
_SYMBOL_RUN = re.compile(r"([^\w\s])\1{7,}")      # "））））））））": a model stuck on one symbol
_ROLE_LABEL = re.compile(r"(?:^|[\s.!?])(user|assistant|system)\s*:", re.IGNORECASE)
WEEKDAYS_ZH = "一二三四五六日"


def tokens(text: str) -> list[str]:
    """Lower-case words and single Chinese characters, punctuation dropped."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def is_cjk(token: str) -> bool:
    return len(token) == 1 and re.match(rf"[{_CJK}]", token) is not None


def word_count(text: str) -> float:
    toks = tokens(text)
    cjk = sum(1 for t in toks if is_cjk(t))
    return (len(toks) - cjk) + cjk / 2


def _ngrams(toks: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


@dataclass
class LeakGuard:
    """The instruction texts of a run, and whether an answer repeats any of them."""

    texts: set[str] = field(default_factory=set)
    tool_names: set[str] = field(default_factory=set)
    _grams: dict[tuple[str, ...], str] = field(default_factory=dict)

    def add_text(self, text: str) -> None:
        if not text or text in self.texts:
            return
        self.texts.add(text)
        for gram in _ngrams(tokens(text), LEAK_NGRAM):
            self._grams.setdefault(gram, text)

    def add_tool(self, name: str, description: str = "") -> None:
        self.tool_names.add(name)
        self.add_text(description)

    def find(self, answer: str, question: str = "") -> str | None:
        """The leaked piece of instruction text in ``answer`` (None when there is none)."""
        said = set(_ngrams(tokens(question), LEAK_NGRAM))
        for gram in _ngrams(tokens(answer), LEAK_NGRAM):
            if gram in self._grams and gram not in said:
                return " ".join(gram)
        answer_words = " ".join(tokens(answer))
        for name in self.tool_names:
            spoken = " ".join(tokens(name.replace("_", " ").replace(".", " ")))
            if len(spoken.split()) >= 2 and re.search(rf"\b{re.escape(spoken)}\b", answer_words):
                return name
        label = _ROLE_LABEL.search(answer)
        return label.group(0).strip(" .!?") if label else None


def find_loop(answer: str) -> str | None:
    """A repetition loop in ``answer`` (None when there is none)."""
    symbols = _SYMBOL_RUN.search(answer)
    if symbols:
        return f"{symbols.group(1)!r} x{len(symbols.group(0))}"
    toks = tokens(answer)
    run = 1
    for a, b in zip(toks, toks[1:]):
        run = run + 1 if a == b and not a.isdigit() else 1     # "000,000,000" is a number, not a loop
        if run >= 5:
            return f"{b!r} x{run}"
    counts = collections.Counter(_ngrams(toks, 4))
    gram, count = max(counts.items(), key=lambda kv: kv[1], default=((), 0))
    if count >= 3:
        return f"{' '.join(gram)!r} x{count}"
    sentences = [" ".join(tokens(s)) for s in re.split(r"(?<=[.!?。！？])\s*", answer)]
    seen = collections.Counter(s for s in sentences if len(s.split()) >= 4)   # words, or Chinese characters
    repeated = [s for s, c in seen.items() if c >= 2]
    return f"sentence {repeated[0]!r} twice" if repeated else None


_UNSPEAKABLE = {
    "code": re.compile(r"`|[{}]|==|!=|->|=>|\+=|:=|\b[A-Za-z_]\w*\([^()]*\)|\b[A-Za-z_]{2,}\.[A-Za-z_]{2,}\w*\("
                       r"|\b[a-z_][a-z0-9_]*\s*=\s*(?![\d\s.-])\S"
                       r"|^\s*(?:import\s+[\w.]+\s*$|from\s+[\w.]+\s+import\b|def\s+\w+\s*\(|class\s+\w+\s*[:(])"
                       r"|\"\w+\"\s*:\s*[\"\[\d]"),          # JSON: "name": "..."
    "markdown": re.compile(r"\*\*|__|^\s*#{1,6}\s|^\s*[-*+]\s+\S|\[[^\]]+\]\([^)]*\)|\|", re.MULTILINE),
    "url": re.compile(r"https?://|\bwww\.|\b[\w-]+\.(?:com|org|net|io|gov|edu|cn)\b", re.IGNORECASE),
    "emoji": re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F\u200D]"),
}


def unspeakable(sentences: Sequence[str]) -> dict[str, str]:
    """Per kind (code, markdown, url, emoji): the first sentence that has it."""
    found: dict[str, str] = {}
    for kind, pattern in _UNSPEAKABLE.items():
        for s in sentences:
            if pattern.search(s):
                found[kind] = s
                break
    return found


def _weekday(now: dt.datetime, days: int) -> str:
    day = (now + dt.timedelta(days=days)).weekday()
    zh = WEEKDAYS_ZH[day] + ("|天" if day == 6 else "")
    return rf"(?:\b{dt.date(2024, 1, 1 + day):%A}\b|(?:星期|周|礼拜)(?:{zh}))"


def _hour(now: dt.datetime) -> str:
    forms = set()
    for t in (now, now + dt.timedelta(minutes=2)):   # the answer may come a little later
        h12 = t.hour % 12 or 12
        forms.add(rf"\b{h12}(?::\d\d)?\s*(?:am|pm|a\.m\.|p\.m\.|o'clock)")
        forms.add(rf"\b{t.hour}:\d\d\b")
        forms.add(rf"(?:凌晨|上午|下午|晚上)?{h12}点")
    return "(?:" + "|".join(sorted(forms)) + ")"


def expected_pattern(expect: str, now: dt.datetime) -> re.Pattern[str]:
    """``expect`` with ``{weekday+N}`` and ``{hour}`` filled in for ``now``, compiled case-insensitively."""
    text = re.sub(r"\{weekday\+(\d+)\}", lambda m: _weekday(now, int(m.group(1))), expect)
    text = text.replace("{hour}", _hour(now))
    return re.compile(text, re.IGNORECASE | re.DOTALL)
