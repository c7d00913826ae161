"""What cannot be said aloud is never sent to TTS: code and tool-call syntax.

Markdown, URLs and emoji are cleaned per sentence just before synthesis
(:func:`xiaozhi_hub.pipeline.sentences.clean_for_speech`); code cannot be cleaned, only dropped,
and a fenced block spans many pieces, so :class:`CodeFilter` follows the answer piece by piece:

* everything inside a fenced block (```` ``` ````), and the fence lines themselves;
* a piece with inline code (`` `x` ``), a call (``timedelta(days=7)``), an assignment, an import or
  definition line, operators of a programming language (``==``, ``->``, ``+=``), braces or JSON;
* tool-call syntax a model wrote as text (``<tool_call>``, ``<tools>``, chat-template tokens).
"""

from __future__ import annotations

import re

FENCE = "```"
_CODE = re.compile(
    r"`"                                                   # inline code
    r"|[{}]|==|!=|->|=>|\+=|-=|:=|&&|\|\|"                 # braces, operators of programming languages
    r"|\b[A-Za-z_][\w.]*\([^()]*\)"                        # a call: print(x), datetime.timedelta(days=7)
    r"|\b[a-z_][a-z0-9_]*\s*=\s*[\w\"'\[(]"                # an assignment: x = 5, days = [..]
    r"|^\s*(?:import\s+[\w.]+\s*$|from\s+[\w.]+\s+import\b|def\s+\w+\s*\(|class\s+\w+\s*[:(])"
    r"|\"\w+\"\s*:"                                        # JSON: "name":
    r"|</?(?:tool_call|tools|tool_response|function)\b|<\|",  # tool-call and chat-template syntax
    re.MULTILINE)


def looks_like_code(piece: str) -> bool:
    return _CODE.search(piece) is not None


class CodeFilter:
    """Follows fenced blocks across pieces; :meth:`speakable` is the part of a piece that may be said."""

    def __init__(self) -> None:
        self.in_fence = False
        self.dropped = 0          # pieces (or parts) dropped so far

    def speakable(self, piece: str) -> str:
        """``piece`` without code: "" when nothing of it may be said."""
        kept: list[str] = []
        parts = piece.split(FENCE)
        for i, part in enumerate(parts):
            if i:
                self.in_fence = not self.in_fence
            if self.in_fence:
                if part.strip():
                    self.dropped += 1
                continue
            if i and not self.in_fence:
                part = part.split("\n", 1)[1] if "\n" in part else ""   # the rest of a closing fence line
            kept.append(part)
        text = "".join(kept)
        if FENCE in piece and not text.strip():
            return ""
        if looks_like_code(text):
            self.dropped += 1
            return ""
        return text
