"""A transcript made ready for matching: its language, and the command without politeness around it."""

from __future__ import annotations

import re
import unicodedata

_CJK = r"\u3400-\u9fff"
_HAS_CJK = re.compile(rf"[{_CJK}]")
# A "." or ":" survives only between digits ("7:30", "3.5"); a "-" only before a digit.
_PUNCT = re.compile(r"(?<!\d)[.:]|[.:](?!\d)|[,!?;\"“”‘’«»()\[\]{}<>，。！？；、…~～—-]+(?!\d)")
_EN_PREFIX = re.compile(r"^(?:(?:hey|hi|hello|ok|okay|so|um|uh|please|xiaozhi|assistant|can you|could you|"
                        r"would you|will you|i want you to|i'd like you to|i would like you to|go ahead and|"
                        r"i want to|i'd like to|let's|let us)\s+)+")
_EN_SUFFIX = re.compile(r"(?:\s+(?:please|now|thanks|thank you|for me))+$")
_ZH_PREFIX = re.compile(r"^(?:请问|请你|请|帮我|帮忙|麻烦你|麻烦|小智|你好小智|你好|能不能|能否|可以|可不可以|给我|我想|我要)+")
_ZH_SUFFIX = re.compile(r"(?:吧|吗|呢|啊|呀|哦|好吗|好不好|可以吗|行吗|谢谢|一下)+$")
_CONTRACTIONS = (("what's", "what is"), ("that's", "that is"), ("it's", "it is"), ("i'm", "i am"),
                 ("you're", "you are"), ("we're", "we are"), ("can't", "cannot"), ("don't", "do not"))


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower().replace("’", "'")


def detect_language(text: str) -> str:
    return "zh" if _HAS_CJK.search(text) else "en"


def normalize(text: str, lang: str) -> str:
    """Lowercase, NFKC (full-width digits), no punctuation, no politeness around the command."""
    s = fold(text)
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
