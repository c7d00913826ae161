"""The loop guard: a model stuck repeating itself is cut before the repeat is spoken.

Checked on each piece against everything already spoken in the answer:

* a sentence said before (three tokens or more, ignoring case and punctuation), or the piece just
  said, again;
* the same token :data:`MAX_RUN` times running ("A: A: A: A:"; numbers do not count: "000 000");
* any :data:`NGRAM` tokens in a row said for the :data:`MAX_NGRAM_REPEATS`-th time (for Chinese,
  :data:`CJK_NGRAM` characters: four characters are often just two words, so four characters count
  only within the last :data:`CJK_WINDOW` characters: "献给一个活性，献给一个舟子，献给一个…");
* one symbol :data:`MAX_SYMBOL_RUN` times running ("))))").
"""

from __future__ import annotations

import collections
import re

from .text import is_cjk, tokens

MAX_RUN = 4
NGRAM = 4
CJK_NGRAM = 8
CJK_WINDOW = 60
MAX_NGRAM_REPEATS = 3
MAX_SYMBOL_RUN = 4
_SYMBOL_RUN = re.compile(rf"([^\w\s.])\1{{{MAX_SYMBOL_RUN - 1},}}")


class LoopGuard:
    """The spoken answer so far, and whether the next piece would repeat it."""

    def __init__(self) -> None:
        self.spoken: list[str] = []
        self._sentences: set[str] = set()
        self._grams: collections.Counter[tuple[str, ...]] = collections.Counter()
        self._last = ""

    def loop(self, piece: str) -> str | None:
        """What ``piece`` would repeat, or None."""
        symbols = _SYMBOL_RUN.search(piece)
        if symbols:
            return f"{symbols.group(1)!r} x{len(symbols.group(0))}"
        toks = tokens(piece)
        key = " ".join(toks)
        if toks and (key == self._last or (len(toks) >= 3 and key in self._sentences)):
            return f"sentence {key!r} again"
        seq = [*self.spoken[-(max(MAX_RUN, NGRAM) - 1):], *toks]
        run = 1
        for a, b in zip(seq, seq[1:]):
            run = run + 1 if a == b and not a.isdigit() else 1
            if run >= MAX_RUN:
                return f"{b!r} x{run}"
        new = collections.Counter(self._new_grams(toks))
        for gram, n in new.items():
            if self._grams[gram] + n >= MAX_NGRAM_REPEATS:
                return f"{' '.join(gram)!r} x{self._grams[gram] + n}"
        return self._local_cjk_loop(toks)

    def _local_cjk_loop(self, toks: list[str]) -> str | None:
        """Four Chinese characters for the third time within the last :data:`CJK_WINDOW` characters."""
        old = len(self.spoken[-CJK_WINDOW:])
        window = [*self.spoken[-CJK_WINDOW:], *toks]
        counts: collections.Counter[tuple[str, ...]] = collections.Counter()
        for i in range(len(window) - NGRAM + 1):
            gram = tuple(window[i:i + NGRAM])
            if all(is_cjk(t) for t in gram):
                counts[gram] += 1
                if counts[gram] >= MAX_NGRAM_REPEATS and i + NGRAM > old:
                    return f"{''.join(gram)!r} x{counts[gram]}"
        return None

    def _new_grams(self, toks: list[str]) -> list[tuple[str, ...]]:
        """The n-grams that saying ``toks`` after the spoken text adds (those crossing into it too)."""
        out: list[tuple[str, ...]] = []
        for n, chinese in ((NGRAM, False), (CJK_NGRAM, True)):
            seq = [*self.spoken[-(n - 1):], *toks]
            grams = (tuple(seq[i:i + n]) for i in range(max(0, len(seq) - n + 1)))
            out.extend(g for g in grams if all(is_cjk(t) for t in g) == chinese)
        return out

    def said(self, piece: str) -> None:
        """``piece`` was spoken."""
        toks = tokens(piece)
        self._grams.update(self._new_grams(toks))
        if len(toks) >= 3:
            self._sentences.add(" ".join(toks))
        if toks:
            self._last = " ".join(toks)
        self.spoken.extend(toks)
