"""Words as the answer guards compare them, and how long a piece of text takes to say.

Tokens are lower-case words (contractions spelt out, so "you're" meets "you are") and single Chinese
characters; punctuation and markup are not tokens. The speech estimate is calibrated on Piper
(en_US joe, ``length_scale`` 1): about 13 letters a second, a digit said as a short word, a pause
per piece, a Chinese character about a quarter of a second. It errs on the long side, so an answer
the budget lets through is not longer than the budget says.
"""

from __future__ import annotations

import re
import unicodedata

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+(?:'[^\W_{_CJK}]+)?", re.UNICODE)
_CJK_CHAR = re.compile(rf"[{_CJK}]")

_CONTRACTIONS = {
    "you're": ("you", "are"), "we're": ("we", "are"), "they're": ("they", "are"), "i'm": ("i", "am"),
    "it's": ("it", "is"), "that's": ("that", "is"), "what's": ("what", "is"), "here's": ("here", "is"),
    "there's": ("there", "is"), "let's": ("let", "us"), "i'll": ("i", "will"), "you'll": ("you", "will"),
    "we'll": ("we", "will"), "i've": ("i", "have"), "you've": ("you", "have"), "i'd": ("i", "would"),
    "you'd": ("you", "would"), "don't": ("do", "not"), "doesn't": ("does", "not"), "didn't": ("did", "not"),
    "can't": ("can", "not"), "cannot": ("can", "not"), "won't": ("will", "not"), "isn't": ("is", "not"),
    "aren't": ("are", "not"), "wasn't": ("was", "not"),
}

LETTERS_PER_SECOND = 13.0
SECONDS_PER_DIGIT = 0.25
SECONDS_PER_CJK = 0.25
PAUSE_PER_PIECE = 0.35


def tokens(text: str) -> list[str]:
    """Lower-case words and single Chinese characters, contractions spelt out, punctuation dropped."""
    out: list[str] = []
    for tok in _TOKEN.findall(unicodedata.normalize("NFKC", text).lower().replace("’", "'")):
        out.extend(_CONTRACTIONS.get(tok, (tok,)))
    return out


def is_cjk(text: str) -> bool:
    return _CJK_CHAR.search(text) is not None


def speech_seconds(text: str, length_scale: float = 1.0) -> float:
    """About how long TTS takes to say ``text`` (already cleaned for speech); 0 for nothing."""
    letters = digits = cjk = 0
    for ch in text:
        if _CJK_CHAR.match(ch):
            cjk += 1
        elif ch.isdigit():
            digits += 1
        elif ch.isalpha():
            letters += 1
    if not letters and not digits and not cjk:
        return 0.0
    return length_scale * (PAUSE_PER_PIECE + letters / LETTERS_PER_SECOND + digits * SECONDS_PER_DIGIT
                           + cjk * SECONDS_PER_CJK)


_CLOSING = "\"')]}*_`”’」』）】》 \t\r\n"
SENTENCE_ENDS = ".!?。！？…"


def ends_sentence(piece: str) -> bool:
    """Whether a piece ends a sentence (not a clause cut at a comma, a colon or a long run)."""
    stripped = "".join(ch for ch in piece if unicodedata.category(ch)[0] != "S").rstrip(_CLOSING)
    return bool(stripped) and stripped[-1] in SENTENCE_ENDS


def join_piece(text: str, piece: str) -> str:
    """``text`` followed by ``piece`` as one answer: a space between them, none after Chinese."""
    if not text:
        return piece
    if not piece:
        return text
    glue = "" if is_cjk(text[-1]) or is_cjk(piece[0]) or text[-1] in "，。！？；：、" else " "
    return text + glue + piece
