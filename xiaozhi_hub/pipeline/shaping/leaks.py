"""The leak guard: an answer must never read out the prompt the model was given.

Small models repeat their instructions ("You're a helpful voice assistant in the home…", "To call a
function, reply with only this…") or earlier summaries, or write the conversation as a transcript
("User: … Assistant: …"). The guard is built per turn from what the model really received — the
system messages (the system prompt, the summary and its header), the tool instructions the provider
adds and each tool's name and description — so it recognises any prompt, not a fixed list:

* any run of :data:`LEAK_NGRAM` tokens of that text (words the user said are not counted);
* a tool's name as TTS would read it ("get time" for ``get_time``; names of two words or more);
* a role label of a transcript ("User:", "Assistant:", a piece starting "Q:" or "A:") or a
  chat-template token (``<|im_start|>``).

:meth:`PromptGuard.holds` tells whether a short piece could be the start of such a run, so it waits
for the next piece before it is judged.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from .text import tokens

LEAK_NGRAM = 5
HOLD_NGRAM = 4     # a piece ending in this many tokens of the prompt might be the start of a leak
_ROLE_LABEL = re.compile(r"(?:^|[\s.!?:;,])(user|assistant|system|human)\s*[:：]|^\s*([QA])\s*[:：]", re.IGNORECASE)
_TEMPLATE_TOKEN = re.compile(r"<\|[a-z_]+\|>|</?(?:tool_call|tools|tool_response)>", re.IGNORECASE)


def _grams(toks: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def spoken_name(tool_name: str) -> str:
    """A tool's name as TTS reads it: ``self.audio_speaker.set_volume`` → "self audio speaker set volume"."""
    return " ".join(tokens(re.sub(r"[._\-]+", " ", tool_name)))


class PromptGuard:
    """What of the prompt an answer may not repeat (one per turn)."""

    def __init__(self, texts: Iterable[str], tool_names: Iterable[str] = (), question: str = "") -> None:
        said = set(_grams(tokens(question), LEAK_NGRAM))
        self._grams: set[tuple[str, ...]] = set()
        self._starts: set[tuple[str, ...]] = set()
        for text in texts:
            toks = tokens(text)
            self._grams.update(g for g in _grams(toks, LEAK_NGRAM) if g not in said)
            self._starts.update(_grams(toks, HOLD_NGRAM))
        self._names = [re.compile(rf"\b{re.escape(n)}\b") for n in {spoken_name(t) for t in tool_names}
                       if len(n.split()) >= 2]

    def leak(self, piece: str, before: Sequence[str] = ()) -> str | None:
        """The prompt text ``piece`` repeats, or None. ``before``: the tokens already spoken, so a run
        that started in the previous piece is found too."""
        toks = tokens(piece)
        context = [*before[-(LEAK_NGRAM - 1):], *toks]
        for gram in _grams(context, LEAK_NGRAM):
            if gram in self._grams:
                return " ".join(gram)
        words = " ".join(toks)
        for name in self._names:
            found = name.search(words)
            if found:
                return found.group(0)
        label = _ROLE_LABEL.search(piece) or _TEMPLATE_TOKEN.search(piece)
        return label.group(0).strip(" .!?:;,") if label else None

    def holds(self, piece: str) -> bool:
        """Whether ``piece`` ends in a run of prompt text long enough to be the start of a leak."""
        toks = tokens(piece)
        return len(toks) >= HOLD_NGRAM and tuple(toks[-HOLD_NGRAM:]) in self._starts
