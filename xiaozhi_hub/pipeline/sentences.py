"""Streamed LLM text → sentence-sized pieces for TTS, and text clean-up for speech.

Latency, not grammar, drives the splitting: TTS starts on the first piece, so the splitter releases
a short first chunk at an early comma once it has ``first_min_chars`` characters (or, in text with
spaces, at the last word boundary before ``first_max_chars`` when no punctuation has come by then:
synthesis time grows with the piece, and on a busy 2-core machine a 60-character first sentence took
~0.4 s to synthesize), and later pieces at sentence punctuation. English punctuation (``. ! ? ; :``) only ends a sentence when followed by
whitespace (or CJK text), so decimals (3.5), times (10:30), URLs and abbreviations (Mr., e.g.) stay
intact; the splitter therefore waits for the next character before deciding. Chinese punctuation
(``。！？；：``) ends a sentence at once. Runs with no punctuation are cut near ``max_chars``.

The pieces keep their emoji and markdown: call :func:`emotion_of` for the device's face and
:func:`clean_for_speech` for the text handed to TTS.
"""

from __future__ import annotations

import re
import unicodedata

ASCII_ENDS = ".!?;:"
CJK_ENDS = "。！？；：…"
# Closers that belong to the sentence they end: quotes, brackets, markdown emphasis.
CLOSERS = "\"')]}*_`”’」』）】》"
# Closers that can only close, so they may be dropped from the start of the next piece.
_PURE_CLOSERS = ")]}”’」』）】》"
EARLY_COMMAS = ",，、"
SOFT_BREAKS = ",，、"  # preferred cut points for over-long runs, before spaces

# "." after these does not end a sentence. Matched case-insensitively...
ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "vs", "etc", "approx", "inc", "ltd", "corp", "dept",
    "fig", "e.g", "i.e", "a.m", "p.m",
})
# ...and these only when capitalised, because "the sun. It" or "I sat. Then" must still split.
CAPITALISED_ABBREVIATIONS = frozenset({
    "St", "Mt", "Ft", "Co", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct",
    "Nov", "Dec", "Mon", "Tue", "Tues", "Wed", "Thu", "Thur", "Thurs", "Fri", "Sat", "Sun",
})

_DOTTED = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")  # e.g, i.e, U.S, a.m


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x3000 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF or 0x20000 <= o <= 0x2FFFF


def _has_speech_content(text: str) -> bool:
    return any(unicodedata.category(c)[0] in "LN" for c in text) or any(_is_emoji(c) for c in text)


class SentenceSplitter:
    """Incremental splitter; one instance per LLM reply."""

    def __init__(self, first_min_chars: int = 8, max_chars: int = 120, first_max_chars: int = 40) -> None:
        if first_min_chars < 1 or max_chars < 10:
            raise ValueError("first_min_chars must be >= 1 and max_chars >= 10")
        self.first_min_chars = first_min_chars
        self.first_max_chars = first_max_chars
        self.max_chars = max_chars
        self._buf = ""
        self._emitted = 0

    def feed(self, delta: str) -> list[str]:
        """Add streamed text; return the pieces that are now complete."""
        self._buf += delta
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """End of the reply: return whatever is left (possibly several pieces)."""
        out = self._drain(final=True)
        rest = self._buf.strip()
        self._buf = ""
        if rest and _has_speech_content(rest):
            out.append(rest)
            self._emitted += 1
        return out

    # -- internals

    def _drain(self, final: bool) -> list[str]:
        out: list[str] = []
        while True:
            self._buf = self._buf.lstrip(" \t\r\n" + _PURE_CLOSERS)
            cut = self._boundary(final)
            if cut is None and self._emitted == 0:
                cut = self._early_word_cut()
            if cut is None:
                cut = self._long_run_cut()
            if cut is None:
                return out
            piece, self._buf = self._buf[:cut].strip(), self._buf[cut:]
            if piece and _has_speech_content(piece):
                out.append(piece)
                self._emitted += 1

    def _boundary(self, final: bool) -> int | None:
        """End index of the first complete piece in the buffer, or None if more text is needed."""
        buf, n = self._buf, len(self._buf)
        first = self._emitted == 0
        for i, ch in enumerate(buf):
            if ch == "\n":
                return i + 1
            if ch in CJK_ENDS:
                return self._absorb(i + 1)
            if ch in ASCII_ENDS or (first and ch in EARLY_COMMAS):
                j = self._absorb(i + 1)
                if j >= n:
                    if final:
                        return n
                    return None  # cannot tell "3." from "3.5" yet: wait for the next character
                if ch in EARLY_COMMAS:
                    if (ch != "," or buf[j].isspace()) and len(buf[:i].strip()) >= self.first_min_chars:
                        return j
                    continue
                if (buf[j].isspace() or _is_cjk(buf[j])) and not self._is_abbreviation(i):
                    if buf[j] == " " and j + 1 >= n and not final:
                        return None  # an emoji may follow the space ("Done! 😊"); wait one token
                    return j
        return None

    def _absorb(self, j: int) -> int:
        """Extend past repeated terminators ("?!", "..."), closing quotes/brackets and emoji.

        Emoji right after the punctuation ("Done! 😊") belong to the sentence they follow, so its
        emotion is shown with it.
        """
        buf, n = self._buf, len(self._buf)
        while j < n:
            c = buf[j]
            if c in ASCII_ENDS or c in CJK_ENDS or c in CLOSERS or _is_emoji(c) or ord(c) in _EMOJI_JOINERS:
                j += 1
            elif c == " " and j + 1 < n and _is_emoji(buf[j + 1]):
                j += 1
            else:
                break
        return j

    def _is_abbreviation(self, i: int) -> bool:
        """Is the '.' at ``i`` part of an abbreviation, an initial or a list number ("1. ")?"""
        if self._buf[i] != ".":
            return False
        start = i
        while start > 0 and not self._buf[start - 1].isspace():
            start -= 1
        token = self._buf[start:i].lstrip("(\"'*_“‘")
        if not token:
            return False
        if token.lower() in ABBREVIATIONS or token in CAPITALISED_ABBREVIATIONS or _DOTTED.match(token):
            return True                                           # "Mr", "Jan", "e.g", "U.S"
        if len(token) == 1 and token.isupper():                   # initials: "J. Smith"
            return True
        at_line_start = start == 0 or self._buf[start - 1] == "\n"
        return token.isdigit() and at_line_start                  # numbered list item

    def _early_word_cut(self) -> int | None:
        """First piece, no punctuation within ``first_max_chars``: cut after the last whole word."""
        buf = self._buf
        if len(buf) <= self.first_max_chars:
            return None
        k = buf.rfind(" ", 0, self.first_max_chars + 1)
        if k < self.first_min_chars:
            return None     # no word boundary (CJK text): wait for punctuation or max_chars
        return k + 1

    def _long_run_cut(self) -> int | None:
        """No punctuation for too long: cut at a comma or space near ``max_chars``."""
        buf = self._buf
        if len(buf) <= self.max_chars:
            return None
        window = buf[:self.max_chars]
        floor = self.max_chars // 2
        for marks in (SOFT_BREAKS, " \t"):
            k = max(window.rfind(m) for m in marks)
            if k >= floor:
                return k + 1
        return self.max_chars


# ---------------------------------------------------------------------------- speech clean-up

_EMOJI_RANGES = (
    (0x1F000, 0x1FAFF),   # emoticons, pictographs, transport, supplemental symbols, mahjong/cards
    (0x2600, 0x27BF),     # misc symbols, dingbats
    (0x2B00, 0x2BFF),     # arrows, stars
    (0x1F1E6, 0x1F1FF),   # regional indicators (flags)
    (0x2190, 0x21FF),     # arrows
    (0x2300, 0x23FF),     # misc technical (⌚ ⏰ ⏳)
)
_EMOJI_JOINERS = {0x200D, 0xFE0E, 0xFE0F, 0x20E3}


def _is_emoji(ch: str) -> bool:
    o = ord(ch)
    return any(a <= o <= b for a, b in _EMOJI_RANGES)


_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
# A bare domain ("example.com") is said the way people say it: "example dot com".
_DOMAIN = re.compile(r"\b([a-z0-9][\w-]*)\.(com|org|net|io|gov|edu|cn|uk|de|info|ai|dev|app)\b", re.IGNORECASE)
_CODE_FENCE = re.compile(r"```[a-zA-Z0-9_+-]*")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*+•·]|\d{1,3}[.)、])\s+", re.MULTILINE)
_QUOTE = re.compile(r"^\s*>+\s?", re.MULTILINE)
_HRULE = re.compile(r"^\s*([-*_=])\1{2,}\s*$", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*{1,3}|_{2,3}|~~)")
_UNDERSCORE_EMPH = re.compile(r"(?<!\w)_(?=\S)|(?<=\S)_(?!\w)")
_TABLE_RULE = re.compile(r"^\s*\|?(?:\s*:?-+:?\s*\|)+\s*:?-*:?\s*$", re.MULTILINE)
_TABLE_PIPE = re.compile(r"\s*\|\s*")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_SPACES = re.compile(r"[ \t\u3000]+")
# Symbols a TTS would spell out ("asterisk", "backslash") rather than skip. Keep + - = % & $ °.
_SPOKEN_NOISE = set("`^\\|<>{}[]~#*")


def same_words(a: str, b: str) -> bool:
    """Whether two texts say the same words, ignoring case, spacing and punctuation
    (a draft vs the final transcript; a wake word as the device spelt it)."""
    return _words_key(a) == _words_key(b)


def _words_key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if unicodedata.category(ch)[0] in "LN")


def clean_for_speech(text: str) -> str:
    """Markdown, emoji, URLs and stray symbols removed (a bare domain said as "name dot com");
    "" when nothing speakable remains."""
    t = _MD_IMAGE.sub(r"\1", text)
    t = _MD_LINK.sub(r"\1", t)
    t = _URL.sub("", t)
    t = _DOMAIN.sub(r"\1 dot \2", t)
    t = _CODE_FENCE.sub("", t)
    t = _HTML_TAG.sub("", t)
    t = _HRULE.sub("", t)
    t = _HEADING.sub("", t)
    t = _BULLET.sub("", t)
    t = _QUOTE.sub("", t)
    t = _EMPHASIS.sub("", t)
    t = _UNDERSCORE_EMPH.sub("", t)
    if "|" in t:
        t = _TABLE_RULE.sub("", t)
        t = "\n".join(_TABLE_PIPE.sub(", ", line.strip().strip("|").strip()) for line in t.splitlines())
    t = "".join(_speakable_char(c) for c in t)
    t = " ".join(line.strip() for line in t.splitlines() if line.strip())
    t = _SPACES.sub(" ", t).strip()
    t = re.sub(r"\s+([,.!?;:，。！？；：、])", r"\1", t)
    return t if any(unicodedata.category(c)[0] in "LN" for c in t) else ""


def _speakable_char(c: str) -> str:
    o = ord(c)
    if c in _SPOKEN_NOISE or o in _EMOJI_JOINERS or _is_emoji(c):
        return ""
    if c == "_":  # snake_case names read as words
        return " "
    cat = unicodedata.category(c)
    if cat in ("So", "Sk", "Cs", "Co", "Cn") and c != "°":
        return ""
    if cat in ("Cc", "Cf") and c not in "\n\t":
        return ""
    if cat == "Mn" and 0xFE00 <= o <= 0xFE0F:
        return ""
    return c


# ---------------------------------------------------------------------------- emotion

# The reference server's table (SRV core/utils/textUtils.py) plus common look-alikes. Values are the
# firmware's emotion names.
EMOTIONS = ("happy", "laughing", "funny", "sad", "angry", "crying", "loving", "embarrassed",
            "surprised", "shocked", "thinking", "winking", "cool", "relaxed", "delicious", "kissy",
            "confident", "sleepy", "silly", "confused", "neutral")

EMOJI_EMOTIONS: dict[str, str] = {
    "😂": "funny", "🤣": "funny", "😹": "funny",
    "😭": "crying", "😿": "crying",
    "😠": "angry", "😡": "angry", "🤬": "angry", "👿": "angry", "💢": "angry",
    "😔": "sad", "😢": "sad", "☹": "sad", "🙁": "sad", "😞": "sad", "😟": "sad", "😥": "sad", "💔": "sad",
    "😍": "loving", "🥰": "loving", "❤": "loving", "💕": "loving", "💖": "loving", "😻": "loving", "♥": "loving",
    "😲": "surprised", "😮": "surprised", "😯": "surprised", "🤩": "surprised",
    "😱": "shocked", "😨": "shocked", "🙀": "shocked", "😧": "shocked",
    "🤔": "thinking", "🧐": "thinking",
    "😌": "relaxed", "😊": "happy", "☺": "happy",
    "😴": "sleepy", "🥱": "sleepy", "💤": "sleepy", "😪": "sleepy",
    "😜": "silly", "🤪": "silly", "😛": "silly", "😝": "silly",
    "🙄": "confused", "😕": "confused", "🤨": "confused", "😵": "confused",
    "😶": "neutral", "😐": "neutral", "😑": "neutral",
    "🙂": "happy", "😀": "happy", "😃": "happy", "😄": "happy", "😁": "happy", "👍": "happy", "🎉": "happy",
    "😆": "laughing", "😅": "laughing",
    "😳": "embarrassed", "😬": "embarrassed",
    "😉": "winking",
    "😎": "cool",
    "🤤": "delicious", "😋": "delicious",
    "😘": "kissy", "😗": "kissy", "😙": "kissy", "😚": "kissy",
    "😏": "confident", "💪": "confident",
}


def emotion_of(text: str) -> str | None:
    """The firmware emotion for the first emoji in ``text`` that has one; None if there is none."""
    for c in text:
        emotion = EMOJI_EMOTIONS.get(c)
        if emotion is not None:
            return emotion
    return None
